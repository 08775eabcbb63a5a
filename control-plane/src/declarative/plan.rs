//! The pure half of declarative configuration: the file and the store in comparable terms,
//! the validation the domain adds to the snapshot's own, and [`plan`], which lists the commands
//! that turn one into the other. No I/O, so every rule here is tested without a database.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::DateTime;
use proto::{Credential, Snapshot};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::budget::{BudgetPeriod, BudgetScope, BudgetSpec};
use crate::domain::key::{check_settings, KeyPatch, KeySettings};
use crate::domain::pricing::{built_in, PriceSpec};
use crate::domain::provider::ProviderSpec;
use crate::domain::resource::Spec;
use crate::domain::route::RouteSpec;
use crate::domain::team::check_limits;
use crate::domain::{Check, DomainError, FieldError};
use crate::seal::SealKey;

/// Team of the keys that name none.
pub const DEFAULT_TEAM: &str = "default";

/// What the store holds now, as read from the projections.
#[derive(Debug, Clone, Default)]
pub struct Current {
    pub providers: BTreeMap<String, ProviderSpec>,
    pub routes: BTreeMap<String, RouteSpec>,
    /// Team name → id.
    pub teams: BTreeMap<String, Uuid>,
    /// Limits of the teams that have any.
    pub team_limits: BTreeMap<Uuid, TeamLimits>,
    /// Live keys only.
    pub keys: Vec<CurrentKey>,
    /// (team, name) of revoked keys: the names stay taken.
    pub revoked: HashSet<(Uuid, String)>,
    pub budgets: Vec<CurrentBudget>,
    /// Price overrides by model (the built-in table is not here).
    pub prices: BTreeMap<String, PriceSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CurrentBudget {
    pub id: Uuid,
    /// The team that sees the budget (kept as is when a tag budget is updated).
    pub team_id: Option<Uuid>,
    pub spec: BudgetSpec,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CurrentKey {
    pub id: Uuid,
    pub team_id: Uuid,
    pub settings: KeySettings,
    /// The hash of the current (not rotated-out) secret.
    pub sha256: Option<String>,
}

/// A team's requests and tokens per minute (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TeamLimits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

/// The file, in store terms.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub providers: Vec<(String, ProviderSpec)>,
    pub routes: Vec<(String, RouteSpec)>,
    pub keys: Vec<DesiredKey>,
    /// Teams with limits, by name (or an existing team's id). A team the file does not list
    /// has no limits.
    pub teams: Vec<(String, TeamLimits)>,
    pub budgets: Vec<DesiredBudget>,
    /// Price overrides by model.
    pub prices: Vec<(String, PriceSpec)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredKey {
    /// Team name (or, for files exported from a control plane, an existing team's id).
    pub team: String,
    /// `budget_id` is left empty here: the plan fills it from [`DesiredKey::budget`].
    pub settings: KeySettings,
    pub sha256: String,
    /// The key's `budget:` as written: see [`key_budget`].
    pub budget: Option<String>,
}

/// A budget of the file. Budgets are identified by `name`: the file's `id` is not the budget's
/// id (budgets in the control plane have UUIDs drawn when they are created); it only lets the
/// file's keys refer to the budget by it, as files exported from a control plane do.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredBudget {
    pub file_id: String,
    /// `target` as written in the file: see [`budget_target`].
    pub spec: BudgetSpec,
}

/// What a budget's `target` resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetTarget {
    /// A team that exists or that the plan creates.
    Team(TeamRef),
    /// A live key.
    Key {
        id: Uuid,
        team: Uuid,
    },
    /// A key the plan creates (its id is drawn when the budget or the key needs it first).
    NewKey {
        team: TeamRef,
        name: String,
    },
    Tag(String),
}

impl BudgetTarget {
    /// The stored `target` and owner team, when known before anything runs.
    fn known(&self) -> Option<(String, Option<Uuid>)> {
        match self {
            Self::Team(TeamRef::Existing(id)) => Some((id.to_string(), Some(*id))),
            Self::Key { id, team } => Some((id.to_string(), Some(*team))),
            Self::Tag(tag) => Some((tag.clone(), None)),
            Self::Team(TeamRef::New(_)) | Self::NewKey { .. } => None,
        }
    }
}

/// A team a key goes to: one that exists, or one the plan creates first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TeamRef {
    Existing(Uuid),
    New(String),
}

/// One command the plan issues.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    PutProvider {
        id: String,
        spec: ProviderSpec,
        create: bool,
    },
    PutRoute {
        alias: String,
        spec: RouteSpec,
        create: bool,
    },
    CreateTeam {
        name: String,
        limits: TeamLimits,
    },
    /// Sets an existing team's limits. `unlisted`: the file does not mention the team, so its
    /// limits are removed (pruning only).
    SetTeamLimits {
        id: Uuid,
        limits: TeamLimits,
        unlisted: bool,
    },
    RevokeKey {
        id: Uuid,
    },
    /// New settings and/or a new secret (rotated with no grace period).
    UpdateKey {
        id: Uuid,
        patch: Option<KeyPatch>,
        rotate: Option<String>,
    },
    CreateKey {
        team: TeamRef,
        settings: KeySettings,
        sha256: String,
    },
    /// Sets a model's price override.
    SetPrice {
        model: String,
        spec: PriceSpec,
        create: bool,
    },
    /// Removes a price override the file does not list (pruning only).
    RemovePrice {
        model: String,
    },
    /// `spec.target` is filled from `target` when it runs. `replaces`: the budget of that name
    /// whose scope or target changed (both are fixed at creation), deleted after the keys
    /// moved over.
    CreateBudget {
        id: Uuid,
        spec: BudgetSpec,
        target: BudgetTarget,
        replaces: Option<Uuid>,
    },
    UpdateBudget {
        id: Uuid,
        spec: BudgetSpec,
    },
    /// `replaced`: the other half of a `CreateBudget { replaces }` (runs without pruning too).
    DeleteBudget {
        id: Uuid,
        replaced: bool,
    },
    DeleteRoute {
        alias: String,
    },
    DeleteProvider {
        id: String,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub created: u32,
    pub updated: u32,
    /// Deleted providers, routes and budgets; revoked keys; removed price overrides.
    pub deleted: u32,
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApplyReport {
    pub providers: Counts,
    pub routes: Counts,
    pub keys: Counts,
    pub teams_created: u32,
    /// Teams whose limits changed.
    pub teams_updated: u32,
    /// A budget whose scope or target changed is replaced, and counted as updated.
    pub budgets: Counts,
    /// Price overrides (an entry equal to the built-in price, with no override, is none).
    pub prices: Counts,
    /// Events appended to the log (0 when the store already matched).
    pub events: u32,
    /// Position of the last event appended, if any.
    pub position: Option<i64>,
}

/// Sealed credentials must open with this control plane's key (when it has one), or the data
/// planes, which share the key, could not use them either.
pub fn sealed_errors(seal: Option<&SealKey>, s: &Snapshot) -> Vec<FieldError> {
    let Some(key) = seal else { return Vec::new() };
    s.providers
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.api_key {
            Some(Credential::Sealed { sealed }) if key.open(&p.id, sealed).is_none() => Some(FieldError::new(
                format!("providers[{i}].api_key"),
                "this sealed value does not open with the control plane's SWITCHYARD_SEAL_KEY for this provider id",
            )),
            _ => None,
        })
        .collect()
}

/// Desired keys that would be created under the name of a revoked key of the same team, which
/// the store refuses (names of revoked keys stay taken).
pub fn revoked_names(current: &Current, desired: &Desired) -> Vec<FieldError> {
    let live: HashSet<(Uuid, &str)> = current
        .keys
        .iter()
        .map(|k| (k.team_id, k.settings.name.as_str()))
        .collect();
    let mut errors = Vec::new();
    for (i, k) in desired.keys.iter().enumerate() {
        if let TeamRef::Existing(team) = resolve_team(current, &k.team) {
            let name = k.settings.name.as_str();
            if !live.contains(&(team, name)) && current.revoked.contains(&(team, name.to_owned())) {
                errors.push(FieldError::new(
                    format!("keys[{i}].name"),
                    format!("team `{}` has a revoked key named `{name}`; names of revoked keys cannot be reused", k.team),
                ));
            }
        }
    }
    errors
}

/// A domain error's field paths under `prefix`.
fn prefixed(e: DomainError, prefix: &str) -> Vec<FieldError> {
    match e {
        DomainError::Invalid(list) => list
            .into_iter()
            .map(|f| FieldError::new(format!("{prefix}.{}", f.path), f.reason))
            .collect(),
        other => vec![FieldError::new(prefix, other.to_string())],
    }
}

impl Desired {
    /// Converts a (structurally valid) snapshot, checking what the domain adds on top.
    pub fn from_snapshot(s: &Snapshot) -> Result<Self, Vec<FieldError>> {
        let providers: Vec<(String, ProviderSpec)> = s
            .providers
            .iter()
            .map(|p| (p.id.clone(), provider_spec(p)))
            .collect();
        let routes: Vec<(String, RouteSpec)> = s
            .routes
            .iter()
            .map(|r| {
                (
                    r.alias.clone(),
                    RouteSpec {
                        deployments: r.deployments.clone(),
                        timeout_ms: r.timeout_ms,
                        reserve_output_tokens: r.reserve_output_tokens,
                    },
                )
            })
            .collect();
        let mut errors = spec_errors(&providers, "providers");
        errors.extend(spec_errors(&routes, "routes"));
        let keys: Vec<DesiredKey> = s
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| desired_key(i, k, &mut errors))
            .collect();
        errors.extend(duplicate_keys(&keys));
        let teams = desired_teams(&s.teams, &mut errors);
        let budgets = desired_budgets(&s.budgets, &mut errors);
        let prices = desired_prices(&s.pricing, &mut errors);
        if errors.is_empty() {
            Ok(Self {
                providers,
                routes,
                keys,
                teams,
                budgets,
                prices,
            })
        } else {
            Err(errors)
        }
    }
}

/// Each spec's own validation, with paths under `list[i]`.
fn spec_errors<S: Spec>(items: &[(String, S)], list: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, (_, spec)) in items.iter().enumerate() {
        if let Err(e) = spec.validate() {
            errors.extend(prefixed(e, &format!("{list}[{i}]")));
        }
    }
    errors
}

/// Key identity is (team, name), so it must be unique in the file.
fn duplicate_keys(keys: &[DesiredKey]) -> Vec<FieldError> {
    let mut seen = HashSet::new();
    let mut errors = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if !seen.insert((k.team.as_str(), k.settings.name.as_str())) {
            let reason = format!("duplicate key `{}` in team `{}`", k.settings.name, k.team);
            errors.push(FieldError::new(format!("keys[{i}].name"), reason));
        }
    }
    errors
}

/// The file's team limits, validated like the API's; a team listed twice is an error.
fn desired_teams(
    teams: &[proto::TeamPolicy],
    errors: &mut Vec<FieldError>,
) -> Vec<(String, TeamLimits)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, t) in teams.iter().enumerate() {
        let at = format!("teams[{i}]");
        let mut check = Check::new();
        check.name(&format!("{at}.id"), &t.id);
        if !seen.insert(t.id.as_str()) {
            check.fail(&format!("{at}.id"), format!("duplicate team `{}`", t.id));
        }
        check_limits(&mut check, &format!("{at}."), t.rpm, t.tpm);
        if let Err(DomainError::Invalid(list)) = check.done() {
            errors.extend(list);
        }
        let limits = TeamLimits {
            rpm: t.rpm,
            tpm: t.tpm,
        };
        out.push((t.id.clone(), limits));
    }
    out
}

/// The file's budgets, validated like the API's; a name listed twice is an error.
fn desired_budgets(budgets: &[proto::Budget], errors: &mut Vec<FieldError>) -> Vec<DesiredBudget> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, b) in budgets.iter().enumerate() {
        let spec = BudgetSpec {
            name: b.name.clone(),
            scope: match b.scope {
                proto::BudgetScope::Team => BudgetScope::Team,
                proto::BudgetScope::Key => BudgetScope::Key,
                proto::BudgetScope::Tag => BudgetScope::Tag,
            },
            target: b.target.clone(),
            amount_usd: b.amount_usd,
            period: match b.period {
                proto::BudgetPeriod::Daily => BudgetPeriod::Daily,
                proto::BudgetPeriod::Weekly => BudgetPeriod::Weekly,
                proto::BudgetPeriod::Monthly => BudgetPeriod::Monthly,
                proto::BudgetPeriod::Total => BudgetPeriod::Total,
            },
            hard: b.hard,
        };
        if let Err(e) = spec.validate() {
            errors.extend(prefixed(e, &format!("budgets[{i}]")));
        }
        if !seen.insert(b.name.as_str()) {
            let reason = format!("duplicate budget `{}`", b.name);
            errors.push(FieldError::new(format!("budgets[{i}].name"), reason));
        }
        out.push(DesiredBudget {
            file_id: b.id.clone(),
            spec,
        });
    }
    out
}

/// The file's prices, checked like `PUT /admin/pricing/{model}`; a model listed twice is an
/// error.
fn desired_prices(
    prices: &[proto::ModelPrice],
    errors: &mut Vec<FieldError>,
) -> Vec<(String, PriceSpec)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, p) in prices.iter().enumerate() {
        let at = format!("pricing[{i}]");
        let mut check = Check::new();
        if p.model.is_empty()
            || p.model.len() > 256
            || p.model.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            check.fail(
                &format!("{at}.model"),
                "must be 1-256 characters without whitespace",
            );
        }
        if !seen.insert(p.model.as_str()) {
            check.fail(
                &format!("{at}.model"),
                format!("duplicate model `{}`", p.model),
            );
        }
        if let Err(DomainError::Invalid(list)) = check.done() {
            errors.extend(list);
        }
        let spec = PriceSpec {
            input_per_mtok: p.input_per_mtok,
            output_per_mtok: p.output_per_mtok,
            cached_input_per_mtok: p.cached_input_per_mtok,
        };
        if let Err(e) = spec.validate() {
            errors.extend(prefixed(e, &at));
        }
        out.push((p.model.clone(), spec));
    }
    out
}

fn provider_spec(p: &proto::Provider) -> ProviderSpec {
    ProviderSpec {
        kind: p.kind,
        base_url: p.base_url.clone(),
        api_version: p.api_version.clone(),
        timeout_ms: p.timeout_ms,
        stream_usage: p.stream_usage,
        headers: p.headers.clone(),
        settings: BTreeMap::new(),
        credential: p.api_key.clone(),
    }
}

fn desired_key(i: usize, k: &proto::VirtualKey, errors: &mut Vec<FieldError>) -> DesiredKey {
    let at = format!("keys[{i}]");
    let team = k.team.clone().unwrap_or_else(|| DEFAULT_TEAM.to_owned());
    let mut check = Check::new();
    check.name(&format!("{at}.team"), &team);
    let expires_at = k.expires_at.and_then(|secs| {
        let t = DateTime::from_timestamp(secs, 0);
        if t.is_none() {
            check.fail(&format!("{at}.expires_at"), "out of range");
        }
        t
    });
    if let Err(DomainError::Invalid(list)) = check.done() {
        errors.extend(list);
    }
    let settings = KeySettings {
        name: k.name.clone(),
        models: k.models.clone(),
        expires_at,
        tags: k.tags.clone(),
        rpm: k.rpm,
        tpm: k.tpm,
        budget_id: None,
        max_request_cost_usd: k.max_request_cost_usd,
    };
    errors.extend(
        check_settings(&settings)
            .err()
            .map(|e| prefixed(e, &at))
            .unwrap_or_default(),
    );
    DesiredKey {
        team,
        settings,
        sha256: k.sha256.clone(),
        budget: k.budget.clone(),
    }
}

/// The commands that turn `current` into `desired`, in the order they must run. Pure, but for
/// the ids of budgets to create, which are drawn here so that keys can refer to them.
pub fn plan(current: &Current, desired: &Desired) -> Vec<Change> {
    let mut changes = plan_puts(current, desired);
    plan_teams(current, desired, &mut changes);
    plan_prices(current, desired, &mut changes);
    let (budget_ids, budget_deletes) = plan_budgets(current, desired, &mut changes);
    plan_keys(current, desired, &budget_ids, &mut changes);
    changes.extend(budget_deletes);
    let aliases: HashSet<&str> = desired.routes.iter().map(|(a, _)| a.as_str()).collect();
    let gone_routes = current
        .routes
        .keys()
        .filter(|a| !aliases.contains(a.as_str()));
    changes.extend(gone_routes.map(|a| Change::DeleteRoute { alias: a.clone() }));
    let ids: HashSet<&str> = desired
        .providers
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    let gone_providers = current
        .providers
        .keys()
        .filter(|id| !ids.contains(id.as_str()));
    changes.extend(gone_providers.map(|id| Change::DeleteProvider { id: id.clone() }));
    changes
}

/// Providers, then routes, that are missing or differ.
fn plan_puts(current: &Current, desired: &Desired) -> Vec<Change> {
    let mut changes = Vec::new();
    for (id, spec) in &desired.providers {
        let mut spec = spec.clone();
        let cur = current.providers.get(id);
        if let Some(cur) = cur {
            // The file cannot express kind-specific settings: keep the ones set through the API.
            spec.settings = cur.settings.clone();
        }
        if cur != Some(&spec) {
            changes.push(Change::PutProvider {
                id: id.clone(),
                spec,
                create: cur.is_none(),
            });
        }
    }
    for (alias, spec) in &desired.routes {
        let cur = current.routes.get(alias);
        if cur != Some(spec) {
            changes.push(Change::PutRoute {
                alias: alias.clone(),
                spec: spec.clone(),
                create: cur.is_none(),
            });
        }
    }
    changes
}

/// A team named in the file: by name, else by id (files exported from a control plane carry
/// team ids), else a new team of that name.
pub fn resolve_team(current: &Current, team: &str) -> TeamRef {
    if let Some(id) = current.teams.get(team) {
        return TeamRef::Existing(*id);
    }
    match team.parse::<Uuid>() {
        Ok(id) if current.teams.values().any(|t| *t == id) => TeamRef::Existing(id),
        _ => TeamRef::New(team.to_owned()),
    }
}

/// What a budget's `target` names: for scope `team`, a team as keys name theirs (one the file
/// creates counts); for scope `key`, the name of a key in the file, else the id or name of a
/// live key; for scope `tag`, the tag. `Err`: why it names nothing.
pub fn budget_target(
    current: &Current,
    desired: &Desired,
    spec: &BudgetSpec,
) -> Result<BudgetTarget, String> {
    let target = spec.target.as_str();
    match spec.scope {
        BudgetScope::Tag => Ok(BudgetTarget::Tag(target.to_owned())),
        BudgetScope::Team => match resolve_team(current, target) {
            TeamRef::New(name) if !creates_team(desired, &name) => {
                Err(format!("no team `{target}` in the store or the file"))
            }
            team => Ok(BudgetTarget::Team(team)),
        },
        BudgetScope::Key => key_target(current, desired, target),
    }
}

/// Whether applying the file creates this team (it lists it, or one of its keys names it).
fn creates_team(desired: &Desired, name: &str) -> bool {
    desired.teams.iter().any(|(t, _)| t == name) || desired.keys.iter().any(|k| k.team == name)
}

fn key_target(current: &Current, desired: &Desired, target: &str) -> Result<BudgetTarget, String> {
    let in_file: Vec<&DesiredKey> = desired
        .keys
        .iter()
        .filter(|k| k.settings.name == target)
        .collect();
    match in_file[..] {
        [k] => {
            let team = resolve_team(current, &k.team);
            let live = match team {
                TeamRef::Existing(t) => current
                    .keys
                    .iter()
                    .find(|c| c.team_id == t && c.settings.name == target),
                TeamRef::New(_) => None,
            };
            return Ok(match live {
                Some(c) => BudgetTarget::Key {
                    id: c.id,
                    team: c.team_id,
                },
                None => BudgetTarget::NewKey {
                    team,
                    name: target.to_owned(),
                },
            });
        }
        [] => {}
        _ => return Err(format!("several keys of the file are named `{target}`")),
    }
    // Files exported from a control plane name keys by id.
    let by_id = target
        .parse::<Uuid>()
        .ok()
        .and_then(|id| current.keys.iter().find(|c| c.id == id));
    let live: Vec<&CurrentKey> = match by_id {
        Some(c) => vec![c],
        None => current
            .keys
            .iter()
            .filter(|c| c.settings.name == target)
            .collect(),
    };
    match live[..] {
        [c] => Ok(BudgetTarget::Key {
            id: c.id,
            team: c.team_id,
        }),
        [] => Err(format!("no key `{target}` in the file or the store")),
        _ => Err(format!("several live keys are named `{target}`")),
    }
}

/// Whether the file lists this live key (by team and name), so that pruning keeps it.
fn lists_key(current: &Current, desired: &Desired, id: Uuid, team: Uuid) -> bool {
    let Some(live) = current.keys.iter().find(|k| k.id == id) else {
        return false;
    };
    desired.keys.iter().any(|k| {
        k.settings.name == live.settings.name
            && resolve_team(current, &k.team) == TeamRef::Existing(team)
    })
}

/// The budget a key's `budget:` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BudgetRef<'a> {
    /// A budget of the file, by name.
    File(&'a str),
    /// A stored budget the file does not list.
    Stored(Uuid),
}

/// A key's `budget:`: the name of a budget in the file, else the `id` a budget has in the file
/// (exported files refer to budgets by id), else the id or name of a stored budget.
fn key_budget<'a>(
    current: &Current,
    desired: &'a Desired,
    budget: &str,
) -> Result<BudgetRef<'a>, String> {
    let in_file = |name: &str| desired.budgets.iter().find(|b| b.spec.name == name);
    let file = in_file(budget).or_else(|| {
        desired
            .budgets
            .iter()
            .find(|b| !b.file_id.is_empty() && b.file_id == budget)
    });
    if let Some(b) = file {
        return Ok(BudgetRef::File(&b.spec.name));
    }
    let by_id = budget
        .parse::<Uuid>()
        .ok()
        .and_then(|id| current.budgets.iter().find(|b| b.id == id));
    let stored: Vec<&CurrentBudget> = match by_id {
        Some(b) => vec![b],
        None => current
            .budgets
            .iter()
            .filter(|b| b.spec.name == budget)
            .collect(),
    };
    match stored[..] {
        // The file lists it under its name: follow the file's (it may replace this one).
        [b] => Ok(in_file(&b.spec.name)
            .map(|f| BudgetRef::File(&f.spec.name))
            .unwrap_or(BudgetRef::Stored(b.id))),
        [] => Err(format!("no budget `{budget}` in the file or the store")),
        _ => Err(format!("several budgets are named `{budget}`")),
    }
}

/// Budget targets and key budgets that name nothing, or (when pruning) a key the apply revokes
/// or a budget it deletes.
pub fn reference_errors(current: &Current, desired: &Desired, prune: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, b) in desired.budgets.iter().enumerate() {
        let target = &b.spec.target;
        let reason = match budget_target(current, desired, &b.spec) {
            Err(reason) => reason,
            Ok(BudgetTarget::Key { id, team })
                if prune && !lists_key(current, desired, id, team) =>
            {
                format!("key `{target}` is not in the file, so this apply revokes it; list it, or apply without pruning")
            }
            Ok(_) => continue,
        };
        errors.push(FieldError::new(format!("budgets[{i}].target"), reason));
    }
    for (i, k) in desired.keys.iter().enumerate() {
        let Some(budget) = &k.budget else { continue };
        let reason = match key_budget(current, desired, budget) {
            Err(reason) => reason,
            Ok(BudgetRef::Stored(_)) if prune => format!(
                "budget `{budget}` is not in the file, so this apply deletes it; list it, or apply without pruning"
            ),
            Ok(_) => continue,
        };
        errors.push(FieldError::new(format!("keys[{i}].budget"), reason));
    }
    errors
}

/// Price overrides to set, except where the file repeats a built-in price that has no override
/// (files made from a published snapshot list the whole table), and overrides of models the
/// file does not list, to remove.
fn plan_prices(current: &Current, desired: &Desired, changes: &mut Vec<Change>) {
    let built: HashMap<String, PriceSpec> = built_in().into_iter().collect();
    for (model, spec) in &desired.prices {
        let cur = current.prices.get(model);
        if cur.or_else(|| built.get(model)) != Some(spec) {
            changes.push(Change::SetPrice {
                model: model.clone(),
                spec: spec.clone(),
                create: cur.is_none(),
            });
        }
    }
    let listed: HashSet<&str> = desired.prices.iter().map(|(m, _)| m.as_str()).collect();
    changes.extend(
        current
            .prices
            .keys()
            .filter(|m| !listed.contains(m.as_str()))
            .map(|m| Change::RemovePrice { model: m.clone() }),
    );
}

/// Budgets to create or update, matched by name, and those to delete once the keys no longer
/// use them. Also returns the id each budget of the file will have, by name.
fn plan_budgets<'a>(
    current: &Current,
    desired: &'a Desired,
    changes: &mut Vec<Change>,
) -> (HashMap<&'a str, Uuid>, Vec<Change>) {
    let mut ids = HashMap::new();
    let mut matched = HashSet::new();
    let mut deletes = Vec::new();
    for b in &desired.budgets {
        // Unresolvable targets were reported by `reference_errors`.
        let Ok(target) = budget_target(current, desired, &b.spec) else {
            continue;
        };
        let name = b.spec.name.as_str();
        let cur = current.budgets.iter().find(|c| c.spec.name == name);
        matched.extend(cur.map(|c| c.id));
        match (cur, target.known()) {
            (Some(cur), Some((t, _))) if cur.spec.scope == b.spec.scope && cur.spec.target == t => {
                ids.insert(name, cur.id);
                let spec = BudgetSpec {
                    target: t,
                    ..b.spec.clone()
                };
                if spec != cur.spec {
                    changes.push(Change::UpdateBudget { id: cur.id, spec });
                }
            }
            (cur, _) => {
                let id = Uuid::now_v7();
                ids.insert(name, id);
                let replaces = cur.map(|c| c.id);
                if let Some(old) = replaces {
                    deletes.push(Change::DeleteBudget {
                        id: old,
                        replaced: true,
                    });
                }
                changes.push(Change::CreateBudget {
                    id,
                    spec: b.spec.clone(),
                    target,
                    replaces,
                });
            }
        }
    }
    deletes.extend(
        current
            .budgets
            .iter()
            .filter(|c| !matched.contains(&c.id))
            .map(|c| Change::DeleteBudget {
                id: c.id,
                replaced: false,
            }),
    );
    (ids, deletes)
}

/// Teams to create (those the file lists with limits, then those its keys name), and limits
/// of existing teams to set or, for teams the file does not list, to remove.
fn plan_teams(current: &Current, desired: &Desired, changes: &mut Vec<Change>) {
    let mut new_teams: Vec<(&str, TeamLimits)> = Vec::new();
    let mut listed = HashSet::new();
    for (team, limits) in &desired.teams {
        match resolve_team(current, team) {
            TeamRef::Existing(id) => {
                listed.insert(id);
                if current.team_limits.get(&id).copied().unwrap_or_default() != *limits {
                    changes.push(Change::SetTeamLimits {
                        id,
                        limits: *limits,
                        unlisted: false,
                    });
                }
            }
            TeamRef::New(_) => new_teams.push((team.as_str(), *limits)),
        }
    }
    for k in &desired.keys {
        if let TeamRef::New(name) = resolve_team(current, &k.team) {
            if !new_teams.iter().any(|(n, _)| *n == name) {
                new_teams.push((&k.team, TeamLimits::default()));
            }
        }
    }
    for (id, limits) in &current.team_limits {
        if !listed.contains(id) && *limits != TeamLimits::default() {
            changes.push(Change::SetTeamLimits {
                id: *id,
                limits: TeamLimits::default(),
                unlisted: true,
            });
        }
    }
    changes.extend(
        new_teams
            .into_iter()
            .map(|(name, limits)| Change::CreateTeam {
                name: name.to_owned(),
                limits,
            }),
    );
}

/// Revocations (which free secret hashes), updates, creations.
fn plan_keys(
    current: &Current,
    desired: &Desired,
    budget_ids: &HashMap<&str, Uuid>,
    changes: &mut Vec<Change>,
) {
    let refs: Vec<TeamRef> = desired
        .keys
        .iter()
        .map(|k| resolve_team(current, &k.team))
        .collect();
    let existing: HashMap<(Uuid, &str), &CurrentKey> = current
        .keys
        .iter()
        .map(|k| ((k.team_id, k.settings.name.as_str()), k))
        .collect();
    let mut matched = HashSet::new();
    let mut rest = Vec::new();
    for (team, k) in refs.into_iter().zip(&desired.keys) {
        let mut settings = k.settings.clone();
        settings.budget_id = k
            .budget
            .as_deref()
            .and_then(|b| budget_id(current, desired, budget_ids, b));
        let found = match &team {
            TeamRef::Existing(t) => existing.get(&(*t, k.settings.name.as_str())),
            TeamRef::New(_) => None,
        };
        match found {
            Some(cur) => {
                matched.insert(cur.id);
                let patch = (cur.settings != settings).then(|| full_patch(&settings));
                let rotate =
                    (cur.sha256.as_deref() != Some(k.sha256.as_str())).then(|| k.sha256.clone());
                if patch.is_some() || rotate.is_some() {
                    rest.push(Change::UpdateKey {
                        id: cur.id,
                        patch,
                        rotate,
                    });
                }
            }
            None => rest.push(Change::CreateKey {
                team,
                settings,
                sha256: k.sha256.clone(),
            }),
        }
    }
    changes.extend(
        current
            .keys
            .iter()
            .filter(|k| !matched.contains(&k.id))
            .map(|k| Change::RevokeKey { id: k.id }),
    );
    rest.sort_by_key(|c| matches!(c, Change::CreateKey { .. }));
    changes.extend(rest);
}

/// The id of the budget a key's `budget:` names (unresolvable ones were reported by
/// `reference_errors`).
fn budget_id(
    current: &Current,
    desired: &Desired,
    budget_ids: &HashMap<&str, Uuid>,
    budget: &str,
) -> Option<Uuid> {
    match key_budget(current, desired, budget).ok()? {
        BudgetRef::File(name) => budget_ids.get(name).copied(),
        BudgetRef::Stored(id) => Some(id),
    }
}

/// A patch that sets every field (the key aggregate drops the unchanged ones).
fn full_patch(s: &KeySettings) -> KeyPatch {
    KeyPatch {
        name: Some(s.name.clone()),
        models: Some(s.models.clone()),
        expires_at: Some(s.expires_at),
        tags: Some(s.tags.clone()),
        rpm: Some(s.rpm),
        tpm: Some(s.tpm),
        budget_id: Some(s.budget_id),
        max_request_cost_usd: Some(s.max_request_cost_usd),
    }
}

/// Counts of what the plan changes, by kind.
pub fn tally(changes: &[Change]) -> ApplyReport {
    let mut r = ApplyReport::default();
    for c in changes {
        match c {
            Change::PutProvider { create: true, .. } => r.providers.created += 1,
            Change::PutProvider { .. } => r.providers.updated += 1,
            Change::PutRoute { create: true, .. } => r.routes.created += 1,
            Change::PutRoute { .. } => r.routes.updated += 1,
            Change::CreateTeam { .. } => r.teams_created += 1,
            Change::SetTeamLimits { .. } => r.teams_updated += 1,
            Change::RevokeKey { .. } => r.keys.deleted += 1,
            Change::UpdateKey { .. } => r.keys.updated += 1,
            Change::CreateKey { .. } => r.keys.created += 1,
            Change::SetPrice { create: true, .. } => r.prices.created += 1,
            Change::SetPrice { .. } => r.prices.updated += 1,
            Change::RemovePrice { .. } => r.prices.deleted += 1,
            Change::CreateBudget { replaces: None, .. } => r.budgets.created += 1,
            Change::CreateBudget { .. } | Change::UpdateBudget { .. } => r.budgets.updated += 1,
            Change::DeleteBudget {
                replaced: false, ..
            } => r.budgets.deleted += 1,
            // Counted with its `CreateBudget`.
            Change::DeleteBudget { replaced: true, .. } => {}
            Change::DeleteRoute { .. } => r.routes.deleted += 1,
            Change::DeleteProvider { .. } => r.providers.deleted += 1,
        }
    }
    r
}
