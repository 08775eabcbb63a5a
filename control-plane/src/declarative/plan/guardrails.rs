//! Guardrail policies: the file's `guardrails` in store terms, and the puts and deletes that
//! make the store's match.
//!
//! A policy of the file is identified by its `name` (its `id`, when it is the id of a stored
//! policy, as in files exported from a control plane; else the `id` only names it when it has
//! no name). Its `applies_to` names teams by name or id and keys by id, or by name (unique in
//! the file or the store); routes by alias. Teams and keys the same apply creates are
//! resolved when the put runs, after them.

use std::collections::HashSet;

use uuid::Uuid;

use super::teams::{resolve_team, TeamRef};
use super::{prefixed, Change, Current, Desired};
use crate::domain::guardrail::GuardrailSpec;
use crate::domain::resource::Spec;
use crate::domain::FieldError;

/// A policy of the file: its spec with `applies_to` as written.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredGuardrail {
    /// The file's `id`.
    pub file_id: String,
    pub spec: GuardrailSpec,
}

/// A stored policy.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentGuardrail {
    pub id: Uuid,
    pub spec: GuardrailSpec,
}

/// A key or team `applies_to` names that the apply creates first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pending {
    Team(String),
    Key(TeamRef, String),
}

/// The file's policies, validated like the API's; a name listed twice is an error.
pub(super) fn desired_guardrails(
    policies: &[proto::GuardrailPolicy],
    errors: &mut Vec<FieldError>,
) -> Vec<DesiredGuardrail> {
    let mut seen = HashSet::new();
    policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let name = if p.name.is_empty() { &p.id } else { &p.name };
            let spec = GuardrailSpec {
                name: name.clone(),
                applies_to: p.applies_to.clone(),
                default_action: p.default_action,
                classes: p.classes.clone(),
                custom: p.custom.clone(),
                output: p.output,
            };
            if let Err(e) = spec.validate() {
                errors.extend(prefixed(e, &format!("guardrails[{i}]")));
            }
            if !seen.insert(name.clone()) {
                errors.push(FieldError::new(
                    format!("guardrails[{i}].name"),
                    format!("duplicate guardrail `{name}`"),
                ));
            }
            DesiredGuardrail {
                file_id: p.id.clone(),
                spec,
            }
        })
        .collect()
}

/// `applies_to` in store terms: ids of the teams and keys that exist, and those the apply
/// creates (resolved when the put runs).
fn resolve(
    current: &Current,
    desired: &Desired,
    spec: &GuardrailSpec,
) -> (GuardrailSpec, Vec<Pending>) {
    let mut out = spec.clone();
    let mut pending = Vec::new();
    out.applies_to.teams.clear();
    for team in &spec.applies_to.teams {
        match resolve_team(current, team) {
            TeamRef::Existing(id) => out.applies_to.teams.push(id.to_string()),
            TeamRef::New(name) => pending.push(Pending::Team(name)),
        }
    }
    out.applies_to.keys.clear();
    for key in &spec.applies_to.keys {
        let by_id = key
            .parse::<Uuid>()
            .ok()
            .filter(|id| current.keys.iter().any(|k| k.id == *id));
        if let Some(id) = by_id {
            out.applies_to.keys.push(id.to_string());
            continue;
        }
        // A key of the file by name: the one the apply keeps (existing) or creates.
        let listed = desired.keys.iter().find(|k| k.settings.name == *key);
        match listed {
            Some(k) => {
                let team = resolve_team(current, &k.team);
                let existing = match &team {
                    TeamRef::Existing(t) => current
                        .keys
                        .iter()
                        .find(|c| c.team_id == *t && c.settings.name == *key),
                    TeamRef::New(_) => None,
                };
                match existing {
                    Some(c) => out.applies_to.keys.push(c.id.to_string()),
                    None => pending.push(Pending::Key(team, key.clone())),
                }
            }
            None => {
                if let Some(c) = current.keys.iter().find(|c| c.settings.name == *key) {
                    out.applies_to.keys.push(c.id.to_string());
                }
            }
        }
    }
    out.applies_to.teams.sort();
    out.applies_to.keys.sort();
    (out, pending)
}

/// Keys and teams `applies_to` names that neither exist nor are in the file.
pub fn guardrail_reference_errors(current: &Current, desired: &Desired) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, g) in desired.guardrails.iter().enumerate() {
        for (j, key) in g.spec.applies_to.keys.iter().enumerate() {
            let known = key
                .parse::<Uuid>()
                .is_ok_and(|id| current.keys.iter().any(|k| k.id == id))
                || desired.keys.iter().any(|k| k.settings.name == *key)
                || current.keys.iter().any(|k| k.settings.name == *key);
            if !known {
                errors.push(FieldError::new(
                    format!("guardrails[{i}].applies_to.keys[{j}]"),
                    format!("no key `{key}` in the file or the store"),
                ));
            }
        }
        for (j, team) in g.spec.applies_to.teams.iter().enumerate() {
            let known = matches!(resolve_team(current, team), TeamRef::Existing(_))
                || super::teams::creates_team(desired, team);
            if !known {
                errors.push(FieldError::new(
                    format!("guardrails[{i}].applies_to.teams[{j}]"),
                    format!("no team `{team}` in the file or the store"),
                ));
            }
        }
    }
    errors
}

/// Puts for the file's policies that are missing or differ, and deletes for stored ones the
/// file does not list.
pub(super) fn plan_guardrails(current: &Current, desired: &Desired) -> (Vec<Change>, Vec<Change>) {
    let mut puts = Vec::new();
    let mut kept = HashSet::new();
    for g in &desired.guardrails {
        let stored = g
            .file_id
            .parse::<Uuid>()
            .ok()
            .and_then(|id| current.guardrails.iter().find(|c| c.id == id))
            .or_else(|| {
                current
                    .guardrails
                    .iter()
                    .find(|c| c.spec.name == g.spec.name)
            });
        let (spec, pending) = resolve(current, desired, &g.spec);
        if let Some(c) = stored {
            kept.insert(c.id);
            if c.spec == spec && pending.is_empty() {
                continue;
            }
        }
        puts.push(Change::PutGuardrail {
            id: stored.map_or_else(Uuid::now_v7, |c| c.id),
            create: stored.is_none(),
            spec,
            pending,
        });
    }
    let deletes = current
        .guardrails
        .iter()
        .filter(|c| !kept.contains(&c.id))
        .map(|c| Change::DeleteGuardrail { id: c.id })
        .collect();
    (puts, deletes)
}
