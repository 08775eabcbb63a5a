//! `GET /admin/budgets/usage`: each budget with what it has used and what remains of it in
//! its current period. Read-only.
//!
//! Spend is the folded ledger's, summed exactly as the `switchyard_budget_spent_usd` gauges
//! sum it (`usage::budget_use`), so the answer trails traffic by the fold lag. A team or key
//! budget has one pool; a tag budget has one per value of its tag that spent in the period
//! (each value has the whole amount to itself), the biggest spenders first, at most 100. The
//! budgets listed are those `GET /admin/budgets` lists to the same token, in the same order and
//! pages.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use proto::period_bounds;
use rust_decimal::Decimal;
use serde::Serialize;

use super::budgets::BudgetView;
use super::crud::AdminResource;
use super::extract::Page;
use super::{ApiError, AppState, List, Principal};
use crate::domain::budget::{Budget, BudgetSpec};
use crate::store::admin::BUDGETS;
use crate::usage::alerts::{self, SoftBudget};
use crate::usage::budget_use;

pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/budgets/usage", get(list))
}

/// What one pool of a budget used in the current period.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PoolUse {
    /// The team id, the key id, or the tag's value.
    pub scope_value: String,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "3.25")]
    pub spent_usd: Decimal,
    /// The amount less what was spent, never below zero (a hard budget can end slightly
    /// over: a request is settled at its real cost).
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "1.75")]
    pub remaining_usd: Decimal,
}

/// A budget and its use in the current period.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BudgetUse {
    #[serde(flatten)]
    pub budget: BudgetView,
    /// Start of the current period (UTC; the epoch for `total`).
    pub period_start: DateTime<Utc>,
    /// End of the current period, exclusive; null for `total`.
    pub period_end: Option<DateTime<Utc>>,
    /// A team or key budget's one pool; a tag budget's values that spent in the period.
    pub pools: Vec<PoolUse>,
}

fn time(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// The pool of a budget whose ledger spend is `spent`.
pub fn pool_use(amount: Decimal, scope_value: String, spent: Decimal) -> PoolUse {
    PoolUse {
        scope_value,
        spent_usd: spent.normalize(),
        remaining_usd: (amount - spent).max(Decimal::ZERO).normalize(),
    }
}

#[utoipa::path(get, path = "/admin/budgets/usage",
    operation_id = "list_budget_usage", tag = "budgets", security(("bearer" = [])),
    params(
        ("limit" = Option<i64>, Query, description = "1-1000, default 100"),
        ("after" = Option<String>, Query, description = "cursor from `next`")),
    responses((status = 200, body = List<BudgetUse>), (status = 401, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    page: Page,
) -> Result<Json<List<BudgetUse>>, ApiError> {
    let after = page.after_uuid()?;
    let budgets = state
        .store()
        .spec_page::<BudgetSpec>(&BUDGETS, who.team, &after, page.limit + 1)
        .await?;
    let now = Utc::now().timestamp();
    let client = state.store().pool().get().await?;
    let db: &tokio_postgres::Client = &client;
    let mut used = Vec::with_capacity(budgets.len());
    for (budget, version) in &budgets {
        let (start, end) = period_bounds(alerts::period(budget.spec.period), now);
        let pools = budget_use::pools(db, &soft(budget), start, end).await?;
        let amount = budget.spec.amount_usd;
        used.push(BudgetUse {
            budget: Budget::view(budget, *version),
            period_start: time(start),
            period_end: end.map(time),
            pools: pools
                .into_iter()
                .map(|(value, spent)| pool_use(amount, value, spent))
                .collect(),
        });
    }
    Ok(Json(List::page(used, page.limit, |b: &BudgetUse| {
        b.budget.id.to_string()
    })))
}

/// The shape the ledger readers take.
fn soft(b: &Budget) -> SoftBudget {
    SoftBudget {
        id: b.id.parse().unwrap_or_default(),
        team_id: b.team_id,
        spec: b.spec.clone(),
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    use super::*;

    #[test]
    fn the_document_describes_the_usage_list() {
        let doc = serde_json::to_value(super::super::openapi::ApiDoc::openapi()).unwrap();
        let op = &doc["paths"]["/admin/budgets/usage"]["get"];
        assert_eq!(op["operationId"], "list_budget_usage");
        let schema = &doc["components"]["schemas"]["BudgetUse"];
        let text = schema.to_string();
        for field in ["pools", "period_start", "period_end", "BudgetView"] {
            assert!(text.contains(field), "{field} missing from {schema}");
        }
        let pool = &doc["components"]["schemas"]["PoolUse"]["properties"];
        assert_eq!(pool["remaining_usd"]["type"], "string");
    }

    #[test]
    fn remaining_is_the_amount_less_spend_and_never_negative() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let p = pool_use(d("5.00"), "t".into(), d("1.2500000000"));
        assert_eq!(
            (p.spent_usd.to_string(), p.remaining_usd.to_string()),
            ("1.25".into(), "3.75".into())
        );
        let over = pool_use(d("1"), "t".into(), d("1.02"));
        assert_eq!(over.remaining_usd, Decimal::ZERO);
        let json = serde_json::to_value(&over).unwrap();
        assert_eq!(
            (json["spent_usd"].as_str(), json["remaining_usd"].as_str()),
            (Some("1.02"), Some("0"))
        );
    }
}
