//! Each budget's limit and its spend in the current period, as gauges for the dashboards and
//! the alert rules: `switchyard_budget_limit_usd` and `switchyard_budget_spent_usd`, with the
//! same labels, so `spent / limit` needs no matching clauses: `budget` (its name), `scope`
//! (`team`, `key`, `tag`), `scope_value` (the team id, the key id, or the tag's value),
//! `period` and `hard`. A team or key budget has one pair; a tag budget one per value of the
//! tag that spent in the period, at most [`MAX_TAG_VALUES`] (the biggest spenders).
//!
//! Spend is the folded ledger's (what `GET /admin/spend` shows), so the gauges trail traffic by
//! the fold lag plus the refresh period. A series that is no longer current (its budget was
//! deleted, or its tag value has not spent yet in a new period) is set to NaN, on which no
//! comparison, and so no alert, is true. Every replica exports the same values.

use std::collections::HashSet;

use proto::period_bounds;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use tokio_postgres::GenericClient;

use super::alerts::{self, Pool, SoftBudget};
use crate::domain::budget::BudgetScope;
use crate::store::{Store, StoreError};

pub const LIMIT: &str = "switchyard_budget_limit_usd";
pub const SPENT: &str = "switchyard_budget_spent_usd";
/// Tag values exported per tag budget.
pub const MAX_TAG_VALUES: i64 = 100;

type Labels = [(&'static str, String); 5];

/// The series exported by the last refresh.
#[derive(Debug, Default)]
pub struct BudgetGauges {
    exported: HashSet<Labels>,
}

impl BudgetGauges {
    /// Reads every budget and its current period's spend and sets the gauges; `now` is Unix
    /// seconds.
    pub async fn refresh(&mut self, store: &Store, now: i64) -> Result<(), StoreError> {
        let client = store.pool().get().await?;
        let db: &tokio_postgres::Client = &client;
        let mut current = HashSet::new();
        for budget in alerts::load(db, false).await? {
            let (start, end) = period_bounds(alerts::period(budget.spec.period), now);
            let limit = budget.spec.amount_usd.to_f64().unwrap_or(f64::NAN);
            for (value, spent) in pools(db, &budget, start, end).await? {
                let labels = labels(&budget, value);
                metrics::gauge!(LIMIT, &labels).set(limit);
                metrics::gauge!(SPENT, &labels).set(spent.to_f64().unwrap_or(f64::NAN));
                current.insert(labels);
            }
        }
        for gone in self.exported.difference(&current) {
            metrics::gauge!(LIMIT, gone).set(f64::NAN);
            metrics::gauge!(SPENT, gone).set(f64::NAN);
        }
        self.exported = current;
        Ok(())
    }
}

fn labels(budget: &SoftBudget, scope_value: String) -> Labels {
    let spec = &budget.spec;
    [
        ("budget", spec.name.clone()),
        ("scope", snake(&spec.scope)),
        ("scope_value", scope_value),
        ("period", snake(&spec.period)),
        ("hard", spec.hard.to_string()),
    ]
}

/// The pools of `budget` in the period `[start, end)`: its scope values and their spend.
pub async fn pools<C: GenericClient>(
    db: &C,
    budget: &SoftBudget,
    start: i64,
    end: Option<i64>,
) -> Result<Vec<(String, Decimal)>, tokio_postgres::Error> {
    if budget.spec.scope != BudgetScope::Tag {
        let pool = Pool {
            budget: budget.id,
            scope_value: budget.spec.target.clone(),
            period_start: start,
            period_end: end,
        };
        let spent = alerts::spent(db, budget, &pool).await?;
        return Ok(vec![(pool.scope_value, spent)]);
    }
    let (from, to) = alerts::days(start, end);
    let prefix = format!("{}=", budget.spec.target);
    let team = budget.team_id.map(|t| t.to_string());
    let rows = db
        .query(
            "SELECT substr(tag, char_length($3) + 1), SUM(cost_usd) AS spent FROM spend_ledger
             WHERE day >= $1 AND ($2::date IS NULL OR day < $2) AND starts_with(tag, $3)
               AND ($4::text IS NULL OR team_id = $4)
             GROUP BY tag ORDER BY spent DESC LIMIT $5",
            &[&from, &to, &prefix, &team, &MAX_TAG_VALUES],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The name the API uses for a scope or a period (`team`, `monthly`).
fn snake(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}
