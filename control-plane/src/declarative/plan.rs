//! The pure half of declarative configuration: the file and the store in comparable terms,
//! the validation the domain adds to the snapshot's own, and [`plan`], which lists the commands
//! that turn one into the other. No I/O, so every rule here is tested without a database.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::DateTime;
use proto::{Credential, Snapshot};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::key::{check_settings, KeyPatch, KeySettings};
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredKey {
    /// Team name (or, for files exported from a control plane, an existing team's id).
    pub team: String,
    pub settings: KeySettings,
    pub sha256: String,
}

/// A team a key goes to: one that exists, or one the plan creates first.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Deleted providers and routes; revoked keys.
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
        if errors.is_empty() {
            Ok(Self {
                providers,
                routes,
                keys,
                teams,
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
    let budget_id = k.budget.as_ref().and_then(|b| {
        let id = b.parse::<Uuid>().ok();
        if id.is_none() {
            check.fail(&format!("{at}.budget"), "must be a budget id");
        }
        id
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
        budget_id,
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
    }
}

/// The commands that turn `current` into `desired`, in the order they must run. Pure.
pub fn plan(current: &Current, desired: &Desired) -> Vec<Change> {
    let mut changes = plan_puts(current, desired);
    plan_teams(current, desired, &mut changes);
    plan_keys(current, desired, &mut changes);
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
fn plan_keys(current: &Current, desired: &Desired, changes: &mut Vec<Change>) {
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
        let found = match &team {
            TeamRef::Existing(t) => existing.get(&(*t, k.settings.name.as_str())),
            TeamRef::New(_) => None,
        };
        match found {
            Some(cur) => {
                matched.insert(cur.id);
                let patch = (cur.settings != k.settings).then(|| full_patch(&k.settings));
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
                settings: k.settings.clone(),
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
            Change::DeleteRoute { .. } => r.routes.deleted += 1,
            Change::DeleteProvider { .. } => r.providers.deleted += 1,
        }
    }
    r
}
