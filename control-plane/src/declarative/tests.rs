//! Tests of the pure plan: order, idempotence, pruning, key identity, validation paths.

use super::*;

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
    for c in changes.iter().cloned() {
        match c {
            Change::PutProvider { id, spec, .. } => {
                current.providers.insert(id, spec);
            }
            Change::PutRoute { alias, spec, .. } => {
                current.routes.insert(alias, spec);
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
                    };
                }
                key.sha256 = rotate.or(key.sha256.take());
            }
            Change::CreateKey {
                team,
                settings,
                sha256,
            } => {
                let team_id = match team {
                    TeamRef::Existing(id) => id,
                    TeamRef::New(name) => current.teams[&name],
                };
                current.keys.push(CurrentKey {
                    id: Uuid::now_v7(),
                    team_id,
                    settings,
                    sha256: Some(sha256),
                });
            }
            Change::DeleteRoute { alias } => {
                current.routes.remove(&alias);
            }
            Change::DeleteProvider { id } => {
                current.providers.remove(&id);
            }
        }
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
            Change::DeleteRoute { .. } => "delete route",
            Change::DeleteProvider { .. } => "delete provider",
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
fn settings_the_file_cannot_express_are_kept() {
    let mut current = Current::default();
    let first = plan(&current, &desired(FILE));
    simulate(&mut current, &first);
    let openai = current.providers.get_mut("openai").unwrap();
    openai.settings.insert("project".into(), "p".into());
    assert!(plan(&current, &desired(FILE)).is_empty());
    current.providers.get_mut("openai").unwrap().timeout_ms = Some(5);
    let changes = plan(&current, &desired(FILE));
    assert!(
        matches!(&changes[..], [Change::PutProvider { spec, create: false, .. }] if spec.settings.len() == 1 && spec.timeout_ms.is_none())
    );
}

#[test]
fn domain_problems_are_reported_with_file_paths() {
    let yaml = r#"
providers: [{ id: p, kind: openai }]
routes: [{ alias: r, deployments: [{ provider: p, model: m, weight: 0 }] }]
keys:
  - { name: a, sha256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", budget: nope, rpm: 0 }
  - { name: a, sha256: "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9" }
"#;
    let snapshot: Snapshot = serde_yaml::from_str(yaml).unwrap();
    let errors = Desired::from_snapshot(&snapshot).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "routes[0].deployments[0].weight",
            "keys[0].budget",
            "keys[0].rpm",
            "keys[1].name"
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
            tpm: None
        },
    }));
    assert!(
        changes.contains(&Change::CreateTeam {
            name: "research".into(),
            limits: TeamLimits {
                rpm: None,
                tpm: Some(5000)
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
                    tpm: None
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
