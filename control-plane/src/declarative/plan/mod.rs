//! The pure half of declarative configuration: the file and the store in comparable terms,
//! the validation the domain adds to the snapshot's own, and [`plan`], which lists the commands
//! that turn one into the other. No I/O, so every rule here is tested without a database.
//!
//! One submodule per resource: [`resources`] (providers and routes), [`teams`], [`keys`],
//! [`budgets`] and [`prices`] each turn their part of the file into store terms and plan their
//! commands; this module holds the shared types and puts the commands in order.

mod budgets;
mod cache;
mod guardrails;
mod keys;
mod prices;
mod resources;
mod teams;

use std::collections::{BTreeMap, HashSet};

use proto::Snapshot;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::budget::BudgetSpec;
use crate::domain::cache_policy::CachePolicySpec;
use crate::domain::key::{KeyPatch, KeySettings};
use crate::domain::pricing::PriceSpec;
use crate::domain::provider::ProviderSpec;
use crate::domain::route::RouteSpec;
use crate::domain::{Check, DomainError, FieldError};

pub use budgets::{budget_target, reference_errors, BudgetTarget};
pub use guardrails::{guardrail_reference_errors, CurrentGuardrail, DesiredGuardrail, Pending};
pub use keys::revoked_names;
pub use resources::sealed_errors;
pub use teams::{resolve_team, TeamRef};

use budgets::{desired_budgets, plan_budgets};
use cache::{desired_policies, plan_cache_policies};
use guardrails::{desired_guardrails, plan_guardrails};
use keys::{desired_key, duplicate_keys, plan_keys};
use prices::{desired_prices, plan_prices};
use resources::{plan_puts, provider_spec, spec_errors};
use teams::{desired_teams, plan_teams};

/// Team of the keys that name none.
pub const DEFAULT_TEAM: &str = "default";

/// What the store holds now, as read from the projections.
#[derive(Debug, Clone, Default)]
pub struct Current {
    pub providers: BTreeMap<String, ProviderSpec>,
    pub routes: BTreeMap<String, RouteSpec>,
    /// Team name → id.
    pub teams: BTreeMap<String, Uuid>,
    /// Limits and log policy of the teams that have any.
    pub team_limits: BTreeMap<Uuid, TeamLimits>,
    /// Live keys only.
    pub keys: Vec<CurrentKey>,
    /// (team, name) of revoked keys: the names stay taken.
    pub revoked: HashSet<(Uuid, String)>,
    pub budgets: Vec<CurrentBudget>,
    /// Price overrides by model (the built-in table is not here).
    pub prices: BTreeMap<String, PriceSpec>,
    /// Cache policies by id.
    pub cache_policies: BTreeMap<String, CachePolicySpec>,
    pub guardrails: Vec<CurrentGuardrail>,
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

/// A team's requests and tokens per minute (`None`: no limit) and its request-log policy
/// (`None`: not set), as the file's `teams` list sets them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TeamLimits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub log_payloads: Option<proto::LogPayloads>,
}

/// The file, in store terms.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub providers: Vec<(String, ProviderSpec)>,
    pub routes: Vec<(String, RouteSpec)>,
    pub keys: Vec<DesiredKey>,
    /// Teams with limits or a log policy, by name (or an existing team's id). A team the file
    /// does not list has neither.
    pub teams: Vec<(String, TeamLimits)>,
    pub budgets: Vec<DesiredBudget>,
    /// Price overrides by model.
    pub prices: Vec<(String, PriceSpec)>,
    /// Cache policies by id (team names in `applies_to.teams` not yet resolved).
    pub cache_policies: Vec<(String, CachePolicySpec)>,
    pub guardrails: Vec<DesiredGuardrail>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredKey {
    /// Team name (or, for files exported from a control plane, an existing team's id).
    pub team: String,
    /// `budget_id` is left empty here: the plan fills it from [`DesiredKey::budget`].
    pub settings: KeySettings,
    pub sha256: String,
    /// The key's `budget:` as written: see [`key_budget`](keys::key_budget).
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
    /// Sets an existing team's limits and log policy. `unlisted`: the file does not mention the
    /// team, so they are removed (pruning only).
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
    /// Creates or replaces a cache policy (its stored epoch kept).
    PutCachePolicy {
        id: String,
        spec: CachePolicySpec,
        create: bool,
    },
    /// Deletes a cache policy the file does not list (pruning only).
    DeleteCachePolicy {
        id: String,
    },
    /// Creates or replaces a guardrail policy; `pending`: teams and keys created earlier in
    /// this apply, added to `applies_to` when it runs.
    PutGuardrail {
        id: Uuid,
        create: bool,
        spec: crate::domain::guardrail::GuardrailSpec,
        pending: Vec<Pending>,
    },
    /// A stored policy the file does not list (pruning only).
    DeleteGuardrail {
        id: Uuid,
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
    /// Teams whose limits or log policy changed.
    pub teams_updated: u32,
    /// A budget whose scope or target changed is replaced, and counted as updated.
    pub budgets: Counts,
    /// Price overrides (an entry equal to the built-in price, with no override, is none).
    pub prices: Counts,
    pub cache_policies: Counts,
    pub guardrails: Counts,
    /// Events appended to the log (0 when the store already matched).
    pub events: u32,
    /// Position of the last event appended, if any.
    pub position: Option<i64>,
}

/// A domain error's field paths under `prefix`.
/// The stored items a file names by `target`: the one whose id it is (files exported from a
/// control plane name things by id), else every one of that name.
fn by_id_or_name<'a, T>(
    items: &'a [T],
    target: &str,
    id: impl Fn(&T) -> Uuid,
    name: impl Fn(&T) -> &str,
) -> Vec<&'a T> {
    let by_id = target
        .parse::<Uuid>()
        .ok()
        .and_then(|want| items.iter().find(|i| id(i) == want));
    match by_id {
        Some(item) => vec![item],
        None => items.iter().filter(|i| name(i) == target).collect(),
    }
}

/// A list of the file keyed by one field of each item (`list[i].field`): each key checked by
/// `key_check` and refused when listed twice (a duplicate `what`), then the item by `rest`
/// (given its path `list[i]`); the failures go to `errors`, in that order. Returns each item's
/// key and what `rest` made of it.
fn unique_items<'a, T, V>(
    items: &'a [T],
    [list, field, what]: [&str; 3],
    key: impl Fn(&'a T) -> &'a str,
    key_check: fn(&mut Check, &str, &str),
    mut rest: impl FnMut(&mut Check, &str, &'a T) -> V,
    errors: &mut Vec<FieldError>,
) -> Vec<(String, V)> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{list}[{i}]");
        let path = format!("{at}.{field}");
        let id = key(item);
        let mut check = Check::new();
        key_check(&mut check, &path, id);
        if !seen.insert(id) {
            check.fail(&path, format!("duplicate {what} `{id}`"));
        }
        let value = rest(&mut check, &at, item);
        if let Err(DomainError::Invalid(list)) = check.done() {
            errors.extend(list);
        }
        out.push((id.to_owned(), value));
    }
    out
}

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
                        strategy: r.strategy,
                        fallbacks: r.fallbacks.clone(),
                        retry: r.retry.clone(),
                        context_window: r.context_window,
                        rules: r.rules.clone(),
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
        let cache_policies = desired_policies(&s.cache_policies, &mut errors);
        let guardrails = desired_guardrails(&s.guardrails, &mut errors);
        if errors.is_empty() {
            Ok(Self {
                providers,
                routes,
                keys,
                teams,
                budgets,
                prices,
                cache_policies,
                guardrails,
            })
        } else {
            Err(errors)
        }
    }
}

/// The commands that turn `current` into `desired`, in the order they must run. Pure, but for
/// the ids of budgets to create, which are drawn here so that keys can refer to them.
pub fn plan(current: &Current, desired: &Desired) -> Vec<Change> {
    let mut changes = plan_puts(current, desired);
    plan_teams(current, desired, &mut changes);
    plan_cache_policies(current, desired, &mut changes);
    plan_prices(current, desired, &mut changes);
    let (budget_ids, budget_deletes) = plan_budgets(current, desired, &mut changes);
    plan_keys(current, desired, &budget_ids, &mut changes);
    // After the keys and teams they may name; deleted before the routes they may name.
    let (guardrail_puts, guardrail_deletes) = plan_guardrails(current, desired);
    changes.extend(guardrail_puts);
    changes.extend(guardrail_deletes);
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
            Change::PutCachePolicy { create: true, .. } => r.cache_policies.created += 1,
            Change::PutCachePolicy { .. } => r.cache_policies.updated += 1,
            Change::DeleteCachePolicy { .. } => r.cache_policies.deleted += 1,
            Change::PutGuardrail { create: true, .. } => r.guardrails.created += 1,
            Change::PutGuardrail { .. } => r.guardrails.updated += 1,
            Change::DeleteGuardrail { .. } => r.guardrails.deleted += 1,
        }
    }
    r
}
