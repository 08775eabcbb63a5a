//! Tests of the pure plan: order, idempotence, pruning, key identity, budgets and prices,
//! validation paths.

use rust_decimal::Decimal;

use super::*;
use crate::domain::budget::BudgetScope;
use plan::{CurrentGuardrail, Pending};

const HASH_A: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
const HASH_B: &str = "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9";
const HASH_C: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

const FILE: &str = r#"
providers:
  - { id: openai, kind: openai, api_key: { env: OPENAI_API_KEY } }
routes:
  - alias: fast
    deployments: [{ provider: openai, model: gpt-4o-mini }]
keys:
  - { name: svc, sha256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", team: payments, models: ["*"] }
  - { name: ci, sha256: "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9", models: [fast] }
"#;

fn desired(yaml: &str) -> Desired {
    let snapshot: Snapshot = serde_yaml::from_str(yaml).unwrap();
    snapshot.validate().unwrap();
    Desired::from_snapshot(&snapshot).unwrap()
}

/// What the store would hold after the changes ran (the pure model of `run`).
fn simulate(current: &mut Current, changes: &[Change]) {
    let mut new_keys: HashMap<(TeamRef, String), Uuid> = HashMap::new();
    for c in changes.iter().cloned() {
        match c {
            Change::PutProvider { id, spec, .. } => {
                current.providers.insert(id, spec);
            }
            Change::PutRoute { alias, spec, .. } => {
                current.routes.insert(alias, spec);
            }
            Change::PutCachePolicy { id, spec, .. } => {
                current.cache_policies.insert(id, spec);
            }
            Change::DeleteCachePolicy { id } => {
                current.cache_policies.remove(&id);
            }
            Change::CreateTeam { name, limits } => {
                let id = Uuid::now_v7();
                current.teams.insert(name, id);
                if limits != TeamLimits::default() {
                    current.team_limits.insert(id, limits);
                }
            }
            Change::SetTeamLimits { id, limits, .. } => {
                current.team_limits.insert(id, limits);
                current
                    .team_limits
                    .retain(|_, l| *l != TeamLimits::default());
            }
            Change::RevokeKey { id } => current.keys.retain(|k| k.id != id),
            Change::UpdateKey { id, patch, rotate } => {
                let Some(key) = current.keys.iter_mut().find(|k| k.id == id) else {
                    panic!("unknown key")
                };
                if let Some(p) = patch {
                    key.settings = KeySettings {
                        name: p.name.unwrap(),
                        models: p.models.unwrap(),
                        expires_at: p.expires_at.unwrap(),
                        tags: p.tags.unwrap(),
                        rpm: p.rpm.unwrap(),
                        tpm: p.tpm.unwrap(),
                        budget_id: p.budget_id.unwrap(),
                        max_request_cost_usd: p.max_request_cost_usd.unwrap(),
                        log_payloads: p.log_payloads.unwrap(),
                    };
                }
                key.sha256 = rotate.or(key.sha256.take());
            }
            Change::CreateKey {
                team,
                settings,
                sha256,
            } => {
                let id = *new_keys
                    .entry((team.clone(), settings.name.clone()))
                    .or_insert_with(Uuid::now_v7);
                let team_id = team_id(current, &team);
                current.keys.push(CurrentKey {
                    id,
                    team_id,
                    settings,
                    sha256: Some(sha256),
                });
            }
            Change::SetPrice { model, spec, .. } => {
                current.prices.insert(model, spec);
            }
            Change::RemovePrice { model } => {
                current.prices.remove(&model);
            }
            Change::CreateBudget {
                id,
                mut spec,
                target,
                ..
            } => {
                let team_id = match target {
                    BudgetTarget::Team(team) => {
                        let team = team_id(current, &team);
                        spec.target = team.to_string();
                        Some(team)
                    }
                    BudgetTarget::Key { id, team } => {
                        spec.target = id.to_string();
                        Some(team)
                    }
                    BudgetTarget::NewKey { team, name } => {
                        let key = *new_keys
                            .entry((team.clone(), name))
                            .or_insert_with(Uuid::now_v7);
                        spec.target = key.to_string();
                        Some(team_id(current, &team))
                    }
                    BudgetTarget::Tag(tag) => {
                        spec.target = tag;
                        None
                    }
                };
                current.budgets.push(CurrentBudget { id, team_id, spec });
            }
            Change::UpdateBudget { id, spec } => {
                let Some(b) = current.budgets.iter_mut().find(|b| b.id == id) else {
                    panic!("unknown budget")
                };
                b.spec = spec;
            }
            Change::DeleteBudget { id, .. } => current.budgets.retain(|b| b.id != id),
            Change::DeleteRoute { alias } => {
                current.routes.remove(&alias);
            }
            Change::DeleteProvider { id } => {
                current.providers.remove(&id);
            }
            Change::PutGuardrail {
                id,
                mut spec,
                pending,
                ..
            } => {
                for p in pending {
                    match p {
                        Pending::Team(name) => {
                            spec.applies_to.teams.push(current.teams[&name].to_string())
                        }
                        Pending::Key(team, name) => {
                            let key = *new_keys.entry((team, name)).or_insert_with(Uuid::now_v7);
                            spec.applies_to.keys.push(key.to_string());
                        }
                    }
                }
                spec.applies_to.teams.sort();
                spec.applies_to.keys.sort();
                current.guardrails.retain(|g| g.id != id);
                current.guardrails.push(CurrentGuardrail { id, spec });
            }
            Change::DeleteGuardrail { id } => current.guardrails.retain(|g| g.id != id),
        }
    }
}

fn team_id(current: &Current, team: &TeamRef) -> Uuid {
    match team {
        TeamRef::Existing(id) => *id,
        TeamRef::New(name) => current.teams[name],
    }
}

fn kinds(changes: &[Change]) -> Vec<&'static str> {
    changes
        .iter()
        .map(|c| match c {
            Change::PutProvider { create: true, .. } => "create provider",
            Change::PutProvider { .. } => "update provider",
            Change::PutRoute { create: true, .. } => "create route",
            Change::PutRoute { .. } => "update route",
            Change::CreateTeam { .. } => "create team",
            Change::SetTeamLimits {
                unlisted: false, ..
            } => "set team limits",
            Change::SetTeamLimits { .. } => "clear team limits",
            Change::RevokeKey { .. } => "revoke key",
            Change::UpdateKey { .. } => "update key",
            Change::CreateKey { .. } => "create key",
            Change::SetPrice { create: true, .. } => "set price",
            Change::SetPrice { .. } => "change price",
            Change::RemovePrice { .. } => "remove price",
            Change::CreateBudget { replaces: None, .. } => "create budget",
            Change::CreateBudget { .. } => "replace budget",
            Change::UpdateBudget { .. } => "update budget",
            Change::DeleteBudget {
                replaced: false, ..
            } => "delete budget",
            Change::DeleteBudget { .. } => "delete replaced budget",
            Change::DeleteRoute { .. } => "delete route",
            Change::DeleteProvider { .. } => "delete provider",
            Change::PutCachePolicy { create: true, .. } => "create cache policy",
            Change::PutCachePolicy { .. } => "update cache policy",
            Change::DeleteCachePolicy { .. } => "delete cache policy",
            Change::PutGuardrail { create: true, .. } => "create guardrail",
            Change::PutGuardrail { .. } => "update guardrail",
            Change::DeleteGuardrail { .. } => "delete guardrail",
        })
        .collect()
}

#[test]
fn an_empty_store_gets_everything_in_dependency_order_then_nothing() {
    let mut current = Current::default();
    let changes = plan(&current, &desired(FILE));
    let expected = [
        "create provider",
        "create route",
        "create team",
        "create team",
        "create key",
        "create key",
    ];
    assert_eq!(kinds(&changes), expected);
    assert!(
        changes.contains(&Change::CreateTeam {
            name: DEFAULT_TEAM.into(),
            limits: TeamLimits::default(),
        }),
        "keys without a team go to `default`"
    );
    let report = tally(&changes);
    assert_eq!(
        (
            report.providers.created,
            report.routes.created,
            report.keys.created,
            report.teams_created
        ),
        (1, 1, 2, 2)
    );
    simulate(&mut current, &changes);
    assert_eq!(
        plan(&current, &desired(FILE)),
        vec![],
        "applying the same file again changes nothing"
    );
}

#[test]
fn what_the_file_drops_is_pruned_routes_before_providers() {
    let mut current = Current::default();
    let first = plan(&current, &desired(FILE));
    simulate(&mut current, &first);
    let smaller =
        desired("providers: [{ id: ollama, kind: ollama, base_url: \"http://h:11434/v1\" }]");
    let changes = plan(&current, &smaller);
    assert_eq!(
        kinds(&changes),
        [
            "create provider",
            "revoke key",
            "revoke key",
            "delete route",
            "delete provider"
        ]
    );
    simulate(&mut current, &changes);
    assert!(plan(&current, &smaller).is_empty());
}

#[test]
fn keys_are_updated_rotated_or_moved_by_team_and_name() {
    let mut current = Current::default();
    let first = plan(&current, &desired(FILE));
    simulate(&mut current, &first);
    let payments = current.teams["payments"];
    let changed = FILE
        .replace("models: [\"*\"] }", "models: [fast], rpm: 5 }")
        .replace(HASH_A, HASH_C)
        .replace(HASH_B, HASH_A);
    let changes = plan(&current, &desired(&changed));
    assert_eq!(kinds(&changes), ["update key", "update key"]);
    let Change::UpdateKey {
        patch: Some(patch),
        rotate: Some(new),
        ..
    } = &changes[0]
    else {
        panic!("{changes:?}")
    };
    assert_eq!((patch.rpm, new.as_str()), (Some(Some(5)), HASH_C));
    assert!(
        matches!(&changes[1], Change::UpdateKey { patch: None, rotate: Some(h), .. } if h == HASH_A)
    );

    let moved = FILE.replace("team: payments", "team: default");
    assert_eq!(
        kinds(&plan(&current, &desired(&moved))),
        ["revoke key", "create key"]
    );
    let by_id = FILE.replace("team: payments", &format!("team: \"{payments}\""));
    assert!(
        plan(&current, &desired(&by_id)).is_empty(),
        "an exported file names teams by id"
    );

    let svc = current
        .keys
        .iter()
        .find(|k| k.team_id == payments)
        .unwrap()
        .id;
    simulate(&mut current, &[Change::RevokeKey { id: svc }]);
    current.revoked.insert((payments, "svc".into()));
    let taken = revoked_names(&current, &desired(FILE));
    assert_eq!(
        taken.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
        ["keys[0].name"]
    );
}

#[test]
fn kind_specific_settings_are_part_of_the_file() {
    let with_settings = r#"
providers:
  - { id: vertex, kind: vertex_ai, settings: { project: p1, location: europe-west4 } }
"#;
    let mut current = Current::default();
    let first = plan(&current, &desired(with_settings));
    assert!(
        matches!(&first[..], [Change::PutProvider { spec, create: true, .. }] if spec.settings["location"] == "europe-west4")
    );
    simulate(&mut current, &first);
    assert!(plan(&current, &desired(with_settings)).is_empty());
    // A setting changed in the file is an update; one set only through the API is the file's
    // to remove, like any other field.
    let moved = with_settings.replace("europe-west4", "us-central1");
    let changes = plan(&current, &desired(&moved));
    assert!(
        matches!(&changes[..], [Change::PutProvider { spec, create: false, .. }] if spec.settings["location"] == "us-central1")
    );
    current
        .providers
        .get_mut("vertex")
        .unwrap()
        .settings
        .insert("extra".into(), "x".into());
    assert_eq!(plan(&current, &desired(with_settings)).len(), 1);
}

#[test]
fn domain_problems_are_reported_with_file_paths() {
    let yaml = r#"
providers: [{ id: p, kind: openai }]
routes: [{ alias: r, deployments: [{ provider: p, model: m, weight: 0 }] }]
keys:
  - { name: a, sha256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", rpm: 0 }
  - { name: a, sha256: "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9" }
budgets:
  - { id: x, name: b, scope: tag, target: "", amount_usd: "0", period: daily, hard: true }
  - { id: y, name: b, scope: tag, target: t, amount_usd: "1", period: daily, hard: true }
pricing:
  - { model: "has space", input_per_mtok: "-1", output_per_mtok: "1" }
  - { model: m, input_per_mtok: "1", output_per_mtok: "1" }
  - { model: m, input_per_mtok: "1", output_per_mtok: "1" }
"#;
    let snapshot: Snapshot = serde_yaml::from_str(yaml).unwrap();
    let errors = Desired::from_snapshot(&snapshot).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "routes[0].deployments[0].weight",
            "keys[0].rpm",
            "keys[1].name",
            "budgets[0].target",
            "budgets[0].amount_usd",
            "budgets[1].name",
            "pricing[0].model",
            "pricing[0].input_per_mtok",
            "pricing[2].model",
        ]
    );
}

#[test]
fn sealed_values_must_open_with_our_key() {
    let key = SealKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let good = key.seal("openai", "sk").unwrap();
    let yaml = format!("providers:\n  - {{ id: openai, kind: openai, api_key: {{ sealed: \"{good}\" }} }}\n  - {{ id: other, kind: openai, api_key: {{ sealed: \"{good}\" }} }}");
    let snapshot: Snapshot = serde_yaml::from_str(&yaml).unwrap();
    let errors = sealed_errors(Some(&key), &snapshot);
    assert_eq!(
        errors.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
        ["providers[1].api_key"]
    );
    assert!(sealed_errors(None, &snapshot).is_empty());
}

#[test]
fn team_limits_and_key_cost_caps_are_planned_and_converge() {
    let mut current = Current::default();
    let with_limits = format!(
        "{FILE}teams:\n  - {{ id: payments, rpm: 100 }}\n  - {{ id: research, tpm: 5000 }}\n"
    )
    .replace(
        "models: [fast] }",
        "models: [fast], max_request_cost_usd: \"0.25\" }",
    );
    let changes = plan(&current, &desired(&with_limits));
    assert!(changes.contains(&Change::CreateTeam {
        name: "payments".into(),
        limits: TeamLimits {
            rpm: Some(100),
            ..TeamLimits::default()
        },
    }));
    assert!(
        changes.contains(&Change::CreateTeam {
            name: "research".into(),
            limits: TeamLimits {
                tpm: Some(5000),
                ..TeamLimits::default()
            },
        }),
        "a team listed only for its limits is created"
    );
    assert_eq!(tally(&changes).teams_created, 3);
    simulate(&mut current, &changes);
    let ci = current
        .keys
        .iter()
        .find(|k| k.settings.name == "ci")
        .unwrap();
    assert_eq!(
        ci.settings.max_request_cost_usd.map(|d| d.to_string()),
        Some("0.25".into())
    );
    assert!(plan(&current, &desired(&with_limits)).is_empty());

    // Changed on an existing team; limits of a team the file no longer lists are removed.
    let payments = current.teams["payments"];
    let research = current.teams["research"];
    let changed = format!("{FILE}teams:\n  - {{ id: \"{payments}\", rpm: 50 }}\n");
    let changes = plan(&current, &desired(&changed));
    assert_eq!(
        changes
            .iter()
            .filter(|c| matches!(c, Change::SetTeamLimits { .. }))
            .cloned()
            .collect::<Vec<_>>(),
        vec![
            Change::SetTeamLimits {
                id: payments,
                limits: TeamLimits {
                    rpm: Some(50),
                    ..TeamLimits::default()
                },
                unlisted: false
            },
            Change::SetTeamLimits {
                id: research,
                limits: TeamLimits::default(),
                unlisted: true
            },
        ]
    );
    simulate(&mut current, &changes);
    assert!(plan(&current, &desired(&changed)).is_empty());

    let bad = "teams: [{ id: a, rpm: 0 }, { id: a }]";
    let snapshot: Snapshot = serde_yaml::from_str(bad).unwrap();
    let errors = Desired::from_snapshot(&snapshot).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["teams[0].rpm", "teams[1].id"]);
}

const BUDGETS: &str = r#"budgets:
  - { id: b1, name: team-cap, scope: team, target: payments, amount_usd: "100", period: monthly, hard: true }
  - { id: b2, name: svc-cap, scope: key, target: svc, amount_usd: "10", period: daily, hard: false }
  - { id: b3, name: per-project, scope: tag, target: project, amount_usd: "5.50", period: weekly, hard: true }
"#;

/// FILE with BUDGETS, and `ci` spending from `team-cap`.
fn with_budgets() -> String {
    format!("{FILE}{BUDGETS}").replace("models: [fast] }", "models: [fast], budget: team-cap }")
}

fn budget<'a>(current: &'a Current, name: &str) -> &'a CurrentBudget {
    current
        .budgets
        .iter()
        .find(|b| b.spec.name == name)
        .unwrap()
}

fn key<'a>(current: &'a Current, name: &str) -> &'a CurrentKey {
    current
        .keys
        .iter()
        .find(|k| k.settings.name == name)
        .unwrap()
}

#[test]
fn budgets_are_created_for_each_scope_before_the_keys_that_use_them() {
    let mut current = Current::default();
    let changes = plan(&current, &desired(&with_budgets()));
    assert_eq!(
        kinds(&changes),
        [
            "create provider",
            "create route",
            "create team",
            "create team",
            "create budget",
            "create budget",
            "create budget",
            "create key",
            "create key",
        ]
    );
    let targets: Vec<&BudgetTarget> = changes
        .iter()
        .filter_map(|c| match c {
            Change::CreateBudget { target, .. } => Some(target),
            _ => None,
        })
        .collect();
    let payments = TeamRef::New("payments".into());
    assert_eq!(
        targets,
        [
            &BudgetTarget::Team(payments.clone()),
            &BudgetTarget::NewKey {
                team: payments,
                name: "svc".into()
            },
            &BudgetTarget::Tag("project".into()),
        ]
    );
    let report = tally(&changes);
    assert_eq!(report.budgets.created, 3);

    simulate(&mut current, &changes);
    let payments = current.teams["payments"];
    let team_cap = budget(&current, "team-cap");
    assert_eq!(
        (team_cap.spec.target.clone(), team_cap.team_id),
        (payments.to_string(), Some(payments))
    );
    let svc = key(&current, "svc").id;
    let svc_cap = budget(&current, "svc-cap");
    assert_eq!(
        (svc_cap.spec.target.clone(), svc_cap.team_id),
        (svc.to_string(), Some(payments)),
        "a key budget targets the key's id and belongs to the key's team"
    );
    assert_eq!(budget(&current, "per-project").team_id, None);
    assert_eq!(key(&current, "ci").settings.budget_id, Some(team_cap.id));
    assert!(
        plan(&current, &desired(&with_budgets())).is_empty(),
        "applying the same file again changes nothing"
    );

    // A file exported from the control plane names targets and key budgets by id.
    let team_cap_id = team_cap.id;
    let exported = with_budgets()
        .replace("target: payments", &format!("target: \"{payments}\""))
        .replace("target: svc", &format!("target: \"{svc}\""))
        .replace("id: b1", &format!("id: \"{team_cap_id}\""))
        .replace("budget: team-cap", &format!("budget: \"{team_cap_id}\""));
    assert!(plan(&current, &desired(&exported)).is_empty());
    let by_file_id = with_budgets().replace("budget: team-cap", "budget: b1");
    assert!(plan(&current, &desired(&by_file_id)).is_empty());
}

#[test]
fn budgets_are_updated_replaced_when_retargeted_and_pruned() {
    let mut current = Current::default();
    let first = plan(&current, &desired(&with_budgets()));
    simulate(&mut current, &first);
    let old_svc_cap = budget(&current, "svc-cap").id;

    // team-cap's amount changes; svc-cap moves to `ci` (which now spends from it);
    // per-project is dropped.
    let changed = format!("{FILE}{BUDGETS}")
        .replace("amount_usd: \"100\"", "amount_usd: \"150\"")
        .replace("target: svc", "target: ci")
        .replace("models: [fast] }", "models: [fast], budget: svc-cap }")
        .replace(
            "  - { id: b3, name: per-project, scope: tag, target: project, amount_usd: \"5.50\", period: weekly, hard: true }\n",
            "",
        );
    let changes = plan(&current, &desired(&changed));
    assert_eq!(
        kinds(&changes),
        [
            "update budget",
            "replace budget",
            "update key",
            "delete replaced budget",
            "delete budget",
        ]
    );
    let Change::CreateBudget {
        id: new_svc_cap,
        replaces,
        ..
    } = &changes[1]
    else {
        panic!("{changes:?}")
    };
    assert_eq!(*replaces, Some(old_svc_cap));
    assert!(
        matches!(&changes[2], Change::UpdateKey { patch: Some(p), .. } if p.budget_id == Some(Some(*new_svc_cap))),
        "the key follows its budget to the new id"
    );
    let report = tally(&changes);
    assert_eq!(
        (
            report.budgets.created,
            report.budgets.updated,
            report.budgets.deleted
        ),
        (0, 2, 1)
    );

    simulate(&mut current, &changes);
    let ci = key(&current, "ci").id;
    assert_eq!(budget(&current, "svc-cap").spec.target, ci.to_string());
    assert_eq!(
        budget(&current, "team-cap").spec.amount_usd,
        Decimal::from(150)
    );
    assert_eq!(current.budgets.len(), 2);
    assert!(plan(&current, &desired(&changed)).is_empty());
}

#[test]
fn budget_targets_and_key_budgets_that_name_nothing_are_errors() {
    let yaml = r#"
keys:
  - { name: svc, sha256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", team: payments, budget: nope }
  - { name: svc, sha256: "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9", team: other, budget: kept }
budgets:
  - { id: a, name: a, scope: team, target: nowhere, amount_usd: "1", period: daily, hard: true }
  - { id: b, name: b, scope: key, target: ghost, amount_usd: "1", period: daily, hard: true }
  - { id: c, name: c, scope: key, target: svc, amount_usd: "1", period: daily, hard: true }
  - { id: d, name: d, scope: team, target: payments, amount_usd: "1", period: daily, hard: true }
  - { id: e, name: e, scope: tag, target: anything, amount_usd: "1", period: daily, hard: true }
"#;
    let mut current = Current::default();
    current.budgets.push(CurrentBudget {
        id: Uuid::now_v7(),
        team_id: None,
        spec: crate::domain::budget::BudgetSpec {
            name: "kept".into(),
            scope: BudgetScope::Tag,
            target: "t".into(),
            amount_usd: Decimal::ONE,
            ..Default::default()
        },
    });
    let legacy = Uuid::now_v7();
    current.teams.insert("ops".into(), Uuid::now_v7());
    current.keys.push(CurrentKey {
        id: legacy,
        team_id: current.teams["ops"],
        settings: KeySettings {
            name: "legacy".into(),
            ..Default::default()
        },
        sha256: Some(HASH_C.into()),
    });
    let yaml = format!(
        "{yaml}  - {{ id: f, name: f, scope: key, target: legacy, amount_usd: \"1\", period: daily, hard: true }}\n"
    );
    let wanted = desired(&yaml);
    let budget = wanted.budgets.last().unwrap();
    assert_eq!(
        budget_target(&current, &wanted, &budget.spec),
        Ok(BudgetTarget::Key {
            id: legacy,
            team: current.teams["ops"]
        }),
        "a live key the file does not list, by name"
    );
    let paths = |prune: bool| -> Vec<String> {
        reference_errors(&current, &wanted, prune)
            .into_iter()
            .map(|e| e.path)
            .collect()
    };
    // `apply` reports these before it runs any command, so such a file changes nothing.
    assert_eq!(
        paths(true),
        [
            "budgets[0].target",
            "budgets[1].target",
            "budgets[2].target",
            "budgets[5].target",
            "keys[0].budget",
            "keys[1].budget",
        ],
        "unknown team, unknown key, a key name used in two teams, a key the pruning apply \
         would revoke, unknown budget, and a stored budget the pruning apply would delete"
    );
    assert_eq!(
        paths(false),
        [
            "budgets[0].target",
            "budgets[1].target",
            "budgets[2].target",
            "keys[0].budget",
        ]
    );
}

#[test]
fn log_policies_of_keys_and_teams_are_planned_and_converge() {
    use proto::LogPayloads::{Full, Metadata, Off};
    let mut current = Current::default();
    let svc = |policy: &str| {
        FILE.replace(
            r#"team: payments, models: ["*"] }"#,
            &format!(r#"team: payments, models: ["*"], log_payloads: {policy} }}"#),
        )
    };
    let file = format!(
        "{}teams:\n  - {{ id: payments, log_payloads: off }}\n",
        svc("full")
    );
    let changes = plan(&current, &desired(&file));
    assert!(
        changes.contains(&Change::CreateTeam {
            name: "payments".into(),
            limits: TeamLimits {
                log_payloads: Some(Off),
                ..TeamLimits::default()
            },
        }),
        "{changes:?}"
    );
    simulate(&mut current, &changes);
    let policy = |current: &Current| {
        let key = current.keys.iter().find(|k| k.settings.name == "svc");
        key.unwrap().settings.log_payloads
    };
    assert_eq!(policy(&current), Some(Full));
    assert!(plan(&current, &desired(&file)).is_empty());

    // The key's policy changed; the team's removed with the team no longer listed.
    let changed = svc("metadata");
    let changes = plan(&current, &desired(&changed));
    assert_eq!(kinds(&changes), ["clear team limits", "update key"]);
    simulate(&mut current, &changes);
    assert_eq!(policy(&current), Some(Metadata));
    assert!(current.team_limits.is_empty());
    assert!(plan(&current, &desired(&changed)).is_empty());
}

#[test]
fn prices_are_set_changed_and_pruned_but_built_ins_are_not_overrides() {
    let prices = r#"pricing:
  - { model: gpt-4o-mini, input_per_mtok: "0.15", output_per_mtok: "0.6", cached_input_per_mtok: "0.075" }
  - { model: gpt-4o, input_per_mtok: "2", output_per_mtok: "8" }
  - { model: local-llama, input_per_mtok: "0", output_per_mtok: "0.1" }
"#;
    let mut current = Current::default();
    let changes = plan(&current, &desired(prices));
    assert_eq!(
        kinds(&changes),
        ["set price", "set price"],
        "gpt-4o-mini at its built-in price is no override"
    );
    assert_eq!(tally(&changes).prices.created, 2);
    simulate(&mut current, &changes);
    assert_eq!(
        current.prices.keys().collect::<Vec<_>>(),
        ["gpt-4o", "local-llama"]
    );
    assert!(plan(&current, &desired(prices)).is_empty());

    let changed = prices
        .replace("output_per_mtok: \"0.1\"", "output_per_mtok: \"0.2\"")
        .replace(
            "  - { model: gpt-4o, input_per_mtok: \"2\", output_per_mtok: \"8\" }\n",
            "",
        );
    let changes = plan(&current, &desired(&changed));
    assert_eq!(kinds(&changes), ["change price", "remove price"]);
    let report = tally(&changes);
    assert_eq!((report.prices.updated, report.prices.deleted), (1, 1));
    simulate(&mut current, &changes);
    assert!(plan(&current, &desired(&changed)).is_empty());

    // A file made from a published snapshot lists the whole table: built-in prices as they
    // are, overrides with their values.
    let mut published = String::from("pricing:\n");
    for (model, spec) in crate::domain::pricing::built_in() {
        let spec = current.prices.get(&model).cloned().unwrap_or(spec);
        // As the snapshot carries it (JSON is YAML), cache prices included.
        let price = serde_json::to_string(&spec.price(&model)).unwrap();
        published.push_str(&format!("  - {price}\n"));
    }
    published
        .push_str("  - { model: local-llama, input_per_mtok: \"0\", output_per_mtok: \"0.2\" }\n");
    assert!(plan(&current, &desired(&published)).is_empty());
    assert!(plan(&Current::default(), &desired(&published))
        .iter()
        .all(|c| matches!(c, Change::SetPrice { model, .. } if model == "local-llama")));
}

#[test]
fn guardrails_name_new_teams_and_keys_converge_and_are_pruned() {
    let file = format!(
        "{FILE}guardrails:\n  - {{ id: pii, applies_to: {{ teams: [payments], keys: [ci], routes: [fast] }}, default_action: redact, classes: {{ aws_access_key: block }} }}\n"
    );
    let wanted = desired(&file);
    let mut current = Current::default();
    assert!(guardrail_reference_errors(&current, &wanted).is_empty());
    let changes = plan(&current, &wanted);
    let kinds = kinds(&changes);
    let at = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(
        at("create guardrail") > at("create key") && at("create guardrail") > at("create team")
    );
    simulate(&mut current, &changes);
    let g = &current.guardrails[0].spec;
    assert_eq!(g.name, "pii");
    assert_eq!(g.applies_to.teams, [current.teams["payments"].to_string()]);
    let ci = current
        .keys
        .iter()
        .find(|k| k.settings.name == "ci")
        .unwrap();
    assert_eq!(g.applies_to.keys, [ci.id.to_string()]);
    assert!(
        plan(&current, &wanted).is_empty(),
        "a second apply changes nothing"
    );
    let changed = file.replace("aws_access_key: block", "aws_access_key: mask");
    assert_eq!(
        self::kinds(&plan(&current, &desired(&changed))),
        ["update guardrail"]
    );
    assert_eq!(
        self::kinds(&plan(&current, &desired(FILE))),
        ["delete guardrail"]
    );
    let unknown = file.replace("keys: [ci]", "keys: [nobody]");
    assert_eq!(
        guardrail_reference_errors(&current, &desired(&unknown)).len(),
        1
    );
}
