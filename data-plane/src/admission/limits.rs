//! Which limits apply to one request, and how much each must reserve.
//!
//! - Hard budgets whose scope matches: `team` (target = the key's team), `key` (target = the
//!   key's id), `tag` (target = a tag name; one pool per distinct value the request carries),
//!   plus the budget the key names in `budget` (by id). Soft budgets never block: the control
//!   plane alerts on them.
//! - Rate limits (requests and tokens per minute) of the key, of its team and of the
//!   deployment.
//!
//! Budgets are looked up through a [`BudgetIndex`] built once per snapshot, so a request does
//! a few hash lookups however many budgets there are.

use std::collections::HashMap;
use std::sync::Arc;

use proto::{Budget, BudgetScope, PoolKey, RateUnit};
use rust_decimal::Decimal;

use super::pool::PoolKind;
use super::AdmitRequest;
use crate::snapshot::CompiledSnapshot;

/// One pool a request must reserve from.
#[derive(Debug)]
pub struct PoolSpec {
    pub key: PoolKey,
    pub kind: PoolKind,
    /// The pool's limit (budget amount, or requests/tokens per window).
    pub limit: Decimal,
    /// What this request reserves from it.
    pub amount: Decimal,
}

/// Hard budgets of one snapshot, by what they match.
#[derive(Debug, Default)]
pub struct BudgetIndex {
    /// Identifies the snapshot this index was built from.
    pub(super) origin: (u64, usize, usize),
    by_team: HashMap<String, Vec<Arc<Budget>>>,
    by_key: HashMap<String, Vec<Arc<Budget>>>,
    /// Tag-scoped budgets by tag name.
    by_tag: HashMap<String, Vec<Arc<Budget>>>,
    /// Hard budgets by id (for `KeyPolicy::budget`).
    by_id: HashMap<String, Arc<Budget>>,
}

impl BudgetIndex {
    /// What identifies `snapshot`'s budget list (version, address and length).
    pub fn origin_of(snapshot: &CompiledSnapshot) -> (u64, usize, usize) {
        (
            snapshot.version,
            snapshot.budgets.as_ptr() as usize,
            snapshot.budgets.len(),
        )
    }

    /// Indexes the hard budgets of `snapshot`.
    pub fn build(snapshot: &CompiledSnapshot) -> Self {
        let mut index = Self {
            origin: Self::origin_of(snapshot),
            ..Self::default()
        };
        for b in snapshot.budgets.iter().filter(|b| b.hard) {
            let by = match b.scope {
                BudgetScope::Team => &mut index.by_team,
                BudgetScope::Key => &mut index.by_key,
                BudgetScope::Tag => &mut index.by_tag,
            };
            by.entry(b.target.clone()).or_default().push(Arc::clone(b));
            index.by_id.insert(b.id.clone(), Arc::clone(b));
        }
        index
    }

    /// Whether no hard budget exists.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// Appends the budget pools of `request` (nothing when the reservation costs nothing: budgets
/// cannot block what has no price).
pub fn budget_pools(
    index: &BudgetIndex,
    request: &AdmitRequest<'_>,
    cost: Decimal,
    now_s: i64,
    out: &mut Vec<PoolSpec>,
) {
    if cost <= Decimal::ZERO || index.is_empty() {
        return;
    }
    let key = request.key;
    let mut push = |b: &Budget, scope_value: &str| {
        let (start, next) = proto::period_bounds(b.period, now_s);
        let pool = PoolKey::Budget {
            budget_id: b.id.clone(),
            scope_value: scope_value.to_owned(),
            period_start: start,
        };
        if out.iter().any(|s| s.key == pool) {
            return;
        }
        out.push(PoolSpec {
            key: pool,
            kind: PoolKind::Budget {
                name: b.name.clone(),
                resets_at_ms: next.map(|t| t.saturating_mul(1000)),
            },
            limit: b.amount_usd,
            amount: cost,
        });
    };
    if let Some(team) = &key.team {
        for b in index.by_team.get(team).into_iter().flatten() {
            push(b, team);
        }
    }
    if let Some(id) = &key.id {
        for b in index.by_key.get(id).into_iter().flatten() {
            push(b, id);
        }
    }
    if !index.by_tag.is_empty() {
        for (name, value) in request.tags {
            for b in index.by_tag.get(name).into_iter().flatten() {
                push(b, value);
            }
        }
    }
    if let Some(b) = key.budget.as_ref().and_then(|id| index.by_id.get(id)) {
        match b.scope {
            BudgetScope::Team | BudgetScope::Key => push(b, &b.target),
            // A tag budget counts per tag value: a request without the tag is not in it.
            BudgetScope::Tag => {
                if let Some(value) = request.tags.get(&b.target) {
                    push(b, value);
                }
            }
        }
    }
}

/// Appends the rate-limit pools of `request` (key, team, deployment; requests and tokens).
pub fn rate_pools(request: &AdmitRequest<'_>, tokens: u64, now_s: i64, out: &mut Vec<PoolSpec>) {
    let key = request.key;
    let team = key
        .team
        .as_ref()
        .and_then(|t| request.snapshot.teams.get(t).map(|p| (t, p)));
    let any = key.rpm.is_some()
        || key.tpm.is_some()
        || request.deployment.rpm.is_some()
        || request.deployment.tpm.is_some()
        || team.is_some_and(|(_, p)| p.rpm.is_some() || p.tpm.is_some());
    if !any {
        return;
    }
    let window_start = proto::rate_window(now_s);
    let window_end_ms = (window_start + 60).saturating_mul(1000);
    let mut push = |scope: &dyn Fn() -> String, unit: RateUnit, limit: Option<u64>| {
        let Some(limit) = limit else { return };
        let amount = match unit {
            RateUnit::Requests => Decimal::ONE,
            RateUnit::Tokens => Decimal::from(tokens),
        };
        out.push(PoolSpec {
            key: PoolKey::Rate {
                scope: scope(),
                unit,
                window_start,
                limit,
            },
            kind: PoolKind::Rate {
                unit,
                window_end_ms,
            },
            limit: Decimal::from(limit),
            amount,
        });
    };
    // A key without a stable id is limited under its name.
    let key_scope = || format!("key:{}", key.id.as_deref().unwrap_or(&key.name));
    push(&key_scope, RateUnit::Requests, key.rpm);
    push(&key_scope, RateUnit::Tokens, key.tpm);
    if let Some((id, policy)) = team {
        let team_scope = || format!("team:{id}");
        push(&team_scope, RateUnit::Requests, policy.rpm);
        push(&team_scope, RateUnit::Tokens, policy.tpm);
    }
    let deployment = request.deployment;
    let deployment_scope = || format!("deployment:{}", deployment.id);
    push(&deployment_scope, RateUnit::Requests, deployment.rpm);
    push(&deployment_scope, RateUnit::Tokens, deployment.tpm);
}
