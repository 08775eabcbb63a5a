//! Budgets: what a budget's `target` resolves to, references that name nothing, and the
//! budgets to create, update, replace (scope or target changed) or delete, matched by name.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::keys::{key_budget, lists_key, BudgetRef};
use super::teams::{creates_team, resolve_team, TeamRef};
use super::{by_id_or_name, prefixed, Change, Current, Desired, DesiredBudget, DesiredKey};
use crate::domain::budget::{BudgetPeriod, BudgetScope, BudgetSpec};
use crate::domain::resource::Spec;
use crate::domain::FieldError;

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

/// The file's budgets, validated like the API's; a name listed twice is an error.
pub(super) fn desired_budgets(
    budgets: &[proto::Budget],
    errors: &mut Vec<FieldError>,
) -> Vec<DesiredBudget> {
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
    let live = by_id_or_name(&current.keys, target, |c| c.id, |c| &c.settings.name);
    match live[..] {
        [c] => Ok(BudgetTarget::Key {
            id: c.id,
            team: c.team_id,
        }),
        [] => Err(format!("no key `{target}` in the file or the store")),
        _ => Err(format!("several live keys are named `{target}`")),
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

/// Budgets to create or update, matched by name, and those to delete once the keys no longer
/// use them. Also returns the id each budget of the file will have, by name.
pub(super) fn plan_budgets<'a>(
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
