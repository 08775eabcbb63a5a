//! Virtual keys: the file's keys in store terms, identity by (team, name), the budget a key's
//! `budget:` names, and the revocations, updates and creations that make the store match.

use std::collections::{HashMap, HashSet};

use chrono::DateTime;
use uuid::Uuid;

use super::teams::{resolve_team, TeamRef};
use super::{
    by_id_or_name, prefixed, Change, Current, CurrentKey, Desired, DesiredKey, DEFAULT_TEAM,
};
use crate::domain::key::{check_settings, KeyPatch, KeySettings};
use crate::domain::{Check, DomainError, FieldError};

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

/// Key identity is (team, name), so it must be unique in the file.
pub(super) fn duplicate_keys(keys: &[DesiredKey]) -> Vec<FieldError> {
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

pub(super) fn desired_key(
    i: usize,
    k: &proto::VirtualKey,
    errors: &mut Vec<FieldError>,
) -> DesiredKey {
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
        log_payloads: k.log_payloads,
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

/// Whether the file lists this live key (by team and name), so that pruning keeps it.
pub(super) fn lists_key(current: &Current, desired: &Desired, id: Uuid, team: Uuid) -> bool {
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
pub(super) enum BudgetRef<'a> {
    /// A budget of the file, by name.
    File(&'a str),
    /// A stored budget the file does not list.
    Stored(Uuid),
}

/// A key's `budget:`: the name of a budget in the file, else the `id` a budget has in the file
/// (exported files refer to budgets by id), else the id or name of a stored budget.
pub(super) fn key_budget<'a>(
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
    let stored = by_id_or_name(&current.budgets, budget, |b| b.id, |b| &b.spec.name);
    match stored[..] {
        // The file lists it under its name: follow the file's (it may replace this one).
        [b] => Ok(in_file(&b.spec.name)
            .map(|f| BudgetRef::File(&f.spec.name))
            .unwrap_or(BudgetRef::Stored(b.id))),
        [] => Err(format!("no budget `{budget}` in the file or the store")),
        _ => Err(format!("several budgets are named `{budget}`")),
    }
}

/// Revocations (which free secret hashes), updates, creations.
pub(super) fn plan_keys(
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
        log_payloads: Some(s.log_payloads),
    }
}
