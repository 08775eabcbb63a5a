//! Soft budgets: after a batch is committed, each soft budget the batch's events touched is
//! compared with its period's spend in the ledger; the first time spend reaches the amount in
//! a period, a row goes into `budget_alerts` and a [`proto::BudgetAlert`] onto
//! [`proto::BUDGET_ALERT_SUBJECT`].
//!
//! Guarantees: one alert per budget, scope value and period across all replicas (the row's
//! primary key decides who announces). Cheap: only budgets touched by the batch are summed,
//! over the ledger's daily rows, and a crossing already seen is remembered in memory.
//! A tag budget owned by a team counts only that team's spend of the tag; a global one counts
//! everybody's.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use proto::{period_bounds, BudgetAlert, UsageEvent, BUDGET_ALERT_SUBJECT};
use rust_decimal::Decimal;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::ledger::tag_row;
use crate::domain::budget::{BudgetPeriod, BudgetScope, BudgetSpec};

/// A budget as loaded from the projection (soft ones here; every one for the gauges of
/// [`super::budget_use`]).
#[derive(Debug, Clone)]
pub struct SoftBudget {
    pub id: Uuid,
    pub team_id: Option<Uuid>,
    pub spec: BudgetSpec,
}

/// One budget pool: a scope value in one period.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pool {
    pub budget: Uuid,
    pub scope_value: String,
    /// Unix seconds (0 for `total`).
    pub period_start: i64,
    pub period_end: Option<i64>,
}

/// The proto period of a domain one.
pub fn period(p: BudgetPeriod) -> proto::BudgetPeriod {
    match p {
        BudgetPeriod::Daily => proto::BudgetPeriod::Daily,
        BudgetPeriod::Weekly => proto::BudgetPeriod::Weekly,
        BudgetPeriod::Monthly => proto::BudgetPeriod::Monthly,
        BudgetPeriod::Total => proto::BudgetPeriod::Total,
    }
}

/// The pools of `budgets` that `events` added spend to.
pub fn touched<'a>(
    budgets: &[SoftBudget],
    events: impl IntoIterator<Item = &'a UsageEvent> + Clone,
) -> BTreeSet<Pool> {
    let mut pools = BTreeSet::new();
    for b in budgets {
        let team = b.team_id.map(|t| t.to_string());
        for e in events.clone() {
            let value = match b.spec.scope {
                BudgetScope::Team => e.team.as_ref().filter(|t| **t == b.spec.target),
                BudgetScope::Key => e.key_id.as_ref().filter(|k| **k == b.spec.target),
                BudgetScope::Tag => {
                    if team.is_some() && e.team != team {
                        continue;
                    }
                    e.tags.get(&b.spec.target)
                }
            };
            let Some(value) = value else { continue };
            let (start, end) = period_bounds(period(b.spec.period), e.time_ms.div_euclid(1000));
            pools.insert(Pool {
                budget: b.id,
                scope_value: value.clone(),
                period_start: start,
                period_end: end,
            });
        }
    }
    pools
}

/// Soft-budget checking state of one folder.
#[derive(Debug, Default)]
pub struct SoftBudgets {
    /// Pools known to have alerted already (by this or another replica).
    alerted: HashSet<(Uuid, String, i64)>,
}

fn day(secs: i64) -> NaiveDate {
    DateTime::from_timestamp(secs, 0)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

impl SoftBudgets {
    /// Checks the soft budgets `events` touched; returns the alerts this call announced.
    pub async fn check<C: GenericClient>(
        &mut self,
        db: &C,
        nats: &async_nats::Client,
        events: &[&UsageEvent],
    ) -> Result<Vec<BudgetAlert>, tokio_postgres::Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let budgets = load(db, true).await?;
        let mut announced = Vec::new();
        for pool in touched(&budgets, events.iter().copied()) {
            let key = (pool.budget, pool.scope_value.clone(), pool.period_start);
            if self.alerted.contains(&key) {
                continue;
            }
            let Some(budget) = budgets.iter().find(|b| b.id == pool.budget) else {
                continue;
            };
            let spent = spent(db, budget, &pool).await?;
            if spent < budget.spec.amount_usd {
                continue;
            }
            let start = DateTime::<Utc>::from_timestamp(pool.period_start, 0).unwrap_or_default();
            let inserted = db
                .query_opt(
                    "INSERT INTO budget_alerts (budget_id, scope_value, period_start, amount_usd, spent_usd)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING budget_id",
                    &[&pool.budget, &pool.scope_value, &start, &budget.spec.amount_usd, &spent],
                )
                .await?;
            self.alerted.insert(key);
            if inserted.is_none() {
                continue;
            }
            let alert = BudgetAlert {
                budget_id: pool.budget.to_string(),
                budget_name: budget.spec.name.clone(),
                scope_value: pool.scope_value.clone(),
                period_start: pool.period_start,
                amount_usd: budget.spec.amount_usd,
                spent_usd: spent.normalize(),
            };
            tracing::warn!(
                budget = %alert.budget_id, name = %alert.budget_name, scope_value = %alert.scope_value,
                amount_usd = %alert.amount_usd, spent_usd = %alert.spent_usd,
                "soft budget reached"
            );
            metrics::counter!("switchyard_budget_soft_alerts_total", "budget" => budget.spec.name.clone())
                .increment(1);
            match serde_json::to_vec(&alert) {
                Ok(body) => {
                    if let Err(e) = nats.publish(BUDGET_ALERT_SUBJECT, body.into()).await {
                        tracing::warn!(error = %e, "could not publish a budget alert");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not encode a budget alert"),
            }
            announced.push(alert);
        }
        Ok(announced)
    }
}

/// The budgets of the projection; only the soft ones if `soft_only`.
pub async fn load<C: GenericClient>(
    db: &C,
    soft_only: bool,
) -> Result<Vec<SoftBudget>, tokio_postgres::Error> {
    let rows = db
        .query(
            "SELECT id, team_id, spec FROM budgets WHERE NOT $1 OR spec->>'hard' = 'false' ORDER BY id",
            &[&soft_only],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let spec: BudgetSpec = serde_json::from_value(r.get(2)).ok()?;
            Some(SoftBudget {
                id: r.get(0),
                team_id: r.get(1),
                spec,
            })
        })
        .collect())
}

/// The ledger's first day of a period starting at `start` and the first day after it (UTC).
pub fn days(start: i64, end: Option<i64>) -> (NaiveDate, Option<NaiveDate>) {
    (day(start), end.map(day))
}

/// Spend of one pool, from the ledger's daily rows (periods start on UTC day boundaries).
pub async fn spent<C: GenericClient>(
    db: &C,
    budget: &SoftBudget,
    pool: &Pool,
) -> Result<Decimal, tokio_postgres::Error> {
    let (from, to) = days(pool.period_start, pool.period_end);
    let range = "day >= $1 AND ($2::date IS NULL OR day < $2)";
    let row = match budget.spec.scope {
        BudgetScope::Team => {
            db.query_one(
                &format!("SELECT COALESCE(SUM(cost_usd), 0) FROM spend_ledger WHERE {range} AND team_id = $3 AND tag = ''"),
                &[&from, &to, &pool.scope_value],
            )
            .await?
        }
        BudgetScope::Key => {
            db.query_one(
                &format!("SELECT COALESCE(SUM(cost_usd), 0) FROM spend_ledger WHERE {range} AND key_id = $3 AND tag = ''"),
                &[&from, &to, &pool.scope_value],
            )
            .await?
        }
        BudgetScope::Tag => {
            let team = budget.team_id.map(|t| t.to_string());
            db.query_one(
                &format!("SELECT COALESCE(SUM(cost_usd), 0) FROM spend_ledger WHERE {range} AND tag = $3 AND ($4::text IS NULL OR team_id = $4)"),
                &[&from, &to, &tag_row(&budget.spec.target, &pool.scope_value), &team],
            )
            .await?
        }
    };
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(scope: BudgetScope, target: &str, team: Option<Uuid>) -> SoftBudget {
        SoftBudget {
            id: Uuid::now_v7(),
            team_id: team,
            spec: BudgetSpec {
                name: "b".into(),
                scope,
                target: target.into(),
                amount_usd: Decimal::ONE,
                period: BudgetPeriod::Daily,
                hard: false,
            },
        }
    }

    fn event(team: &str, key: &str, tag: Option<(&str, &str)>) -> UsageEvent {
        serde_json::from_value(serde_json::json!({
            "id": "x", "time_ms": 1_795_275_000_000i64, "proxy": "p", "endpoint": "chat",
            "alias": "a", "latency_ms": 1, "status": 200, "outcome": "ok",
            "team": team, "key_id": key,
            "tags": tag.map(|(k, v)| serde_json::json!({k: v})).unwrap_or_else(|| serde_json::json!({})),
        }))
        .unwrap()
    }

    #[test]
    fn only_budgets_the_events_touched_are_checked() {
        let team = Uuid::now_v7();
        let budgets = vec![
            budget(BudgetScope::Team, &team.to_string(), Some(team)),
            budget(BudgetScope::Key, "k9", None),
            budget(BudgetScope::Tag, "env", Some(team)),
        ];
        let a = event(&team.to_string(), "k1", Some(("env", "prod")));
        let b = event("other-team", "k1", Some(("env", "dev")));
        let pools = touched(&budgets, [&a, &b]);
        let values: Vec<_> = pools.iter().map(|p| p.scope_value.as_str()).collect();
        // The team budget and the team's tag budget (only its own team's `prod`).
        assert_eq!(pools.len(), 2, "{values:?}");
        assert!(values.contains(&"prod"));
        let p = pools.iter().next().unwrap();
        assert_eq!(
            (p.period_start, p.period_end),
            (1_795_219_200, Some(1_795_305_600))
        );
    }
}
