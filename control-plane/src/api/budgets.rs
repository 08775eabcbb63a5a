//! `/admin/budgets`: spend limits per team, per key or per tag value.
//!
//! A team or key budget belongs to the team it limits, so that team's tokens see it; a
//! team-scoped token may only limit its own team, its own keys, or tags within its team.
//! Amounts are exact decimals (see `pricing::decimal`) and are returned as strings.

use axum::response::Response;
use chrono::{DateTime, Utc};
use http::StatusCode;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::common::ensure_team;
use super::crud::{self, AdminResource, Creatable, Cx, Decided, Deletable, Tabled, Updatable};
use super::pricing::{decimal, opt_decimal};
use super::{ApiError, List};
use crate::domain::budget::{Budget, BudgetPeriod, BudgetScope, BudgetSpec};
use crate::domain::resource::ResourceCommand;
use crate::store::admin::{SpecTable, BUDGETS};

crud::handlers!(Budget, BudgetView, "budgets";
    create("create_budget", "/admin/budgets", CreateBudget, responses((status = 201, body = BudgetView), (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody))),
    list("list_budgets", "/admin/budgets"), read("get_budget", "/admin/budgets/{id}", params(("id" = String, Path))),
    update("update_budget", "/admin/budgets/{id}", UpdateBudget, params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "version from ETag"))),
    remove("delete_budget", "/admin/budgets/{id}", params(("id" = String, Path), ("If-Match" = Option<String>, Header))));

impl AdminResource for Budget {
    type View = BudgetView;
    const UUID_IDS: bool = true;

    fn view(b: &Budget, version: i32) -> BudgetView {
        BudgetView {
            id: budget_id(b),
            team_id: b.team_id,
            name: b.spec.name.clone(),
            scope: b.spec.scope,
            target: b.spec.target.clone(),
            amount_usd: b.spec.amount_usd,
            period: b.spec.period,
            hard: b.spec.hard,
            version,
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }
}

/// A budget as responses show it; the amount is an exact decimal string.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BudgetView {
    pub id: Uuid,
    pub team_id: Option<Uuid>,
    pub name: String,
    pub scope: BudgetScope,
    /// Team id, key id, or tag name.
    pub target: String,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "12.50")]
    pub amount_usd: Decimal,
    pub period: BudgetPeriod,
    pub hard: bool,
    pub version: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A budget's id: its stream id is always its UUID.
fn budget_id(b: &Budget) -> Uuid {
    b.id.parse().unwrap_or_default()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBudget {
    pub name: String,
    pub scope: BudgetScope,
    /// Team id (scope `team`), key id (scope `key`) or tag name (scope `tag`).
    pub target: String,
    /// Exact decimal, as a string (`"12.50"`) or a number.
    #[serde(deserialize_with = "decimal")]
    #[schema(value_type = String, example = "12.50")]
    pub amount_usd: Decimal,
    pub period: BudgetPeriod,
    /// Hard budgets block requests; soft ones only alert. Default true.
    #[serde(default = "yes")]
    pub hard: bool,
    pub team_id: Option<Uuid>,
}

/// A partial update; scope and target are fixed at creation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBudget {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "opt_decimal")]
    #[schema(value_type = Option<String>, example = "20")]
    pub amount_usd: Option<Decimal>,
    pub period: Option<BudgetPeriod>,
    pub hard: Option<bool>,
}

/// The owner team and the normalised target of a new budget.
async fn owner_and_target(
    cx: Cx<'_>,
    body: &CreateBudget,
) -> Result<(Option<Uuid>, String), ApiError> {
    let requested = cx.who.owner(body.team_id)?;
    match body.scope {
        BudgetScope::Team => {
            let team: Uuid = body
                .target
                .parse()
                .map_err(|_| ApiError::invalid("target", "must be a team id"))?;
            if cx.who.team.is_some_and(|own| own != team) {
                return Err(ApiError::Forbidden(
                    "a team-scoped token can only set budgets for its own team".into(),
                ));
            }
            if requested.is_some_and(|owner| owner != team) {
                return Err(ApiError::invalid(
                    "team_id",
                    "a team budget belongs to the team it limits",
                ));
            }
            if let Err(e) = ensure_team(cx.app, Some(team)).await {
                return Err(if matches!(e, ApiError::Invalid(_)) {
                    ApiError::invalid("target", "no such team")
                } else {
                    e
                });
            }
            Ok((Some(team), team.to_string()))
        }
        BudgetScope::Key => key_owner(cx, &body.target, requested).await,
        BudgetScope::Tag => {
            ensure_team(cx.app, requested).await?;
            Ok((requested, body.target.clone()))
        }
    }
}

/// A key budget belongs to the key's team; another team's key is reported like a missing one.
async fn key_owner(
    cx: Cx<'_>,
    target: &str,
    requested: Option<Uuid>,
) -> Result<(Option<Uuid>, String), ApiError> {
    let key: Uuid = target
        .parse()
        .map_err(|_| ApiError::invalid("target", "must be a key id"))?;
    let team = match cx.app.store().live_key_team(key).await? {
        Some(team) if cx.who.can_see(Some(team)) => team,
        _ => return Err(ApiError::invalid("target", "no such key")),
    };
    if requested.is_some_and(|owner| owner != team) {
        return Err(ApiError::invalid(
            "team_id",
            "a key budget belongs to the key's team",
        ));
    }
    Ok((Some(team), key.to_string()))
}

impl Creatable for Budget {
    type Body = CreateBudget;

    async fn create(cx: Cx<'_>, body: CreateBudget) -> Result<Response, ApiError> {
        let (team_id, target) = owner_and_target(cx, &body).await?;
        let spec = BudgetSpec {
            name: body.name,
            scope: body.scope,
            target,
            amount_usd: body.amount_usd,
            period: body.period,
            hard: body.hard,
        };
        let id = Uuid::now_v7().to_string();
        let command = ResourceCommand::Create {
            id: id.clone(),
            team_id,
            spec,
        };
        crud::run::<Self>(cx, &id, Some(0), command, StatusCode::CREATED).await
    }
}

impl Updatable for Budget {
    type Patch = UpdateBudget;

    async fn merge(_: Cx<'_>, current: Budget, body: UpdateBudget) -> Decided<Self> {
        let mut spec = current.spec;
        spec.name = body.name.unwrap_or(spec.name);
        spec.amount_usd = body.amount_usd.unwrap_or(spec.amount_usd);
        spec.period = body.period.unwrap_or(spec.period);
        spec.hard = body.hard.unwrap_or(spec.hard);
        Ok(ResourceCommand::Update(spec))
    }
}

impl Deletable for Budget {
    /// Refused while live keys spend from the budget.
    async fn delete(cx: Cx<'_>, b: &Budget) -> Decided<Self> {
        let in_use = cx.app.store().keys_on_budget(budget_id(b)).await?;
        if in_use > 0 {
            return Err(ApiError::Conflict(format!(
                "{in_use} live key(s) still spend from this budget; detach them first"
            )));
        }
        Ok(ResourceCommand::Delete)
    }
}

impl Tabled for BudgetSpec {
    const TABLE: SpecTable = BUDGETS;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_defaults_to_hard_and_reads_exact_amounts() {
        let body: CreateBudget =
            serde_json::from_str(r#"{"name":"n","scope":"tag","target":"project","amount_usd":"12.50","period":"monthly"}"#).unwrap();
        assert!(body.hard);
        assert_eq!(body.amount_usd.to_string(), "12.50");
        let bad = serde_json::from_str::<CreateBudget>(
            r#"{"name":"n","scope":"org","target":"t","amount_usd":1,"period":"daily"}"#,
        );
        assert!(bad.is_err(), "unknown scope");
    }

    #[test]
    fn views_serialize_amounts_as_strings() {
        let spec = BudgetSpec {
            name: "n".into(),
            amount_usd: "0.10".parse().unwrap(),
            ..Default::default()
        };
        let budget = Budget {
            id: Uuid::nil().to_string(),
            spec,
            ..Default::default()
        };
        let view = Budget::view(&budget, 1);
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(
            (
                json["amount_usd"].as_str(),
                json["scope"].as_str(),
                json["period"].as_str()
            ),
            (Some("0.10"), Some("team"), Some("monthly"))
        );
    }
}
