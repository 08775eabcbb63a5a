//! `/admin/budgets`: spend limits per team, per key or per tag value.
//!
//! A team or key budget belongs to the team it limits, so that team's tokens see it; a
//! team-scoped token may only limit its own team, its own keys, or tags within its team.
//! Amounts are exact decimals (see `pricing::decimal`) and are returned as strings.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::common::{corrupt, ensure_team, load_visible, parse_id};
use super::extract::{if_match, JsonBody, Page};
use super::pricing::{decimal, opt_decimal};
use super::{with_etag, ApiError, AppState, List, Principal};
use crate::domain::budget::{Budget, BudgetPeriod, BudgetScope, BudgetSpec};
use crate::domain::resource::ResourceCommand;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/budgets", get(list).post(create))
        .route(
            "/admin/budgets/{id}",
            get(read).patch(update).delete(remove),
        )
}

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

impl BudgetView {
    fn of(id: Uuid, b: &Budget, version: i32) -> Self {
        Self::from_parts(id, b.team_id, &b.spec, version, b.created_at, b.updated_at)
    }

    fn from_parts(
        id: Uuid,
        team_id: Option<Uuid>,
        s: &BudgetSpec,
        version: i32,
        created_at: Option<DateTime<Utc>>,
        updated_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            id,
            team_id,
            name: s.name.clone(),
            scope: s.scope,
            target: s.target.clone(),
            amount_usd: s.amount_usd,
            period: s.period,
            hard: s.hard,
            version,
            created_at,
            updated_at,
        }
    }
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
    state: &AppState,
    who: &Principal,
    body: &CreateBudget,
) -> Result<(Option<Uuid>, String), ApiError> {
    let requested = who.owner(body.team_id)?;
    match body.scope {
        BudgetScope::Team => {
            let team: Uuid = body
                .target
                .parse()
                .map_err(|_| ApiError::invalid("target", "must be a team id"))?;
            if who.team.is_some_and(|own| own != team) {
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
            if let Err(e) = ensure_team(state, Some(team)).await {
                return Err(if matches!(e, ApiError::Invalid(_)) {
                    ApiError::invalid("target", "no such team")
                } else {
                    e
                });
            }
            Ok((Some(team), team.to_string()))
        }
        BudgetScope::Key => key_owner(state, who, &body.target, requested).await,
        BudgetScope::Tag => {
            ensure_team(state, requested).await?;
            Ok((requested, body.target.clone()))
        }
    }
}

/// A key budget belongs to the key's team; another team's key is reported like a missing one.
async fn key_owner(
    state: &AppState,
    who: &Principal,
    target: &str,
    requested: Option<Uuid>,
) -> Result<(Option<Uuid>, String), ApiError> {
    let key: Uuid = target
        .parse()
        .map_err(|_| ApiError::invalid("target", "must be a key id"))?;
    let client = state.store().pool().get().await?;
    let row = client
        .query_opt(
            "SELECT team_id FROM virtual_keys WHERE id = $1 AND revoked_at IS NULL",
            &[&key],
        )
        .await?;
    let team: Uuid = match row {
        Some(r) if who.can_see(r.get(0)) => r.get(0),
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

#[utoipa::path(post, path = "/admin/budgets",
    operation_id = "create_budget", tag = "budgets", request_body = CreateBudget, security(("bearer" = [])),
    responses((status = 201, body = BudgetView), (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    JsonBody(body): JsonBody<CreateBudget>,
) -> Result<Response, ApiError> {
    let (team_id, target) = owner_and_target(&state, &who, &body).await?;
    let spec = BudgetSpec {
        name: body.name,
        scope: body.scope,
        target,
        amount_usd: body.amount_usd,
        period: body.period,
        hard: body.hard,
    };
    let id = Uuid::now_v7();
    let command = ResourceCommand::Create {
        id: id.to_string(),
        team_id,
        spec,
    };
    let done = state
        .store()
        .execute::<Budget>(&id.to_string(), Some(0), &who.actor, command)
        .await?;
    Ok(with_etag(
        StatusCode::CREATED,
        done.version,
        &BudgetView::of(id, &done.state, done.version),
    ))
}

#[utoipa::path(get, path = "/admin/budgets",
    operation_id = "list_budgets", tag = "budgets", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query, description = "1-1000, default 100"), ("after" = Option<String>, Query, description = "cursor from `next`")),
    responses((status = 200, body = List<BudgetView>), (status = 401, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    page: Page,
) -> Result<axum::Json<List<BudgetView>>, ApiError> {
    let after = page.after_uuid()?;
    let client = state.store().pool().get().await?;
    let rows = client
        .query(
            "SELECT id, team_id, spec, version, created_at, updated_at FROM budgets
             WHERE ($1::uuid IS NULL OR team_id = $1) AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
            &[&who.team, &after, &(page.limit + 1)],
        )
        .await?;
    let mut views = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: Uuid = r.get(0);
        let spec: BudgetSpec =
            serde_json::from_value(r.get(2)).map_err(|e| corrupt("budget", &id.to_string(), &e))?;
        views.push(BudgetView::from_parts(
            id,
            r.get(1),
            &spec,
            r.get(3),
            r.get(4),
            r.get(5),
        ));
    }
    Ok(axum::Json(List::page(
        views,
        page.limit,
        |b: &BudgetView| b.id.to_string(),
    )))
}

async fn load(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<(Uuid, Budget, i32), ApiError> {
    let id = parse_id(id, "budget")?;
    let (budget, version) = load_visible::<BudgetSpec>(state, who, &id.to_string()).await?;
    Ok((id, budget, version))
}

#[utoipa::path(get, path = "/admin/budgets/{id}",
    operation_id = "get_budget", tag = "budgets", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = BudgetView), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (id, budget, version) = load(&state, &who, &id).await?;
    Ok(with_etag(
        StatusCode::OK,
        version,
        &BudgetView::of(id, &budget, version),
    ))
}

#[utoipa::path(patch, path = "/admin/budgets/{id}",
    operation_id = "update_budget", tag = "budgets", request_body = UpdateBudget, security(("bearer" = [])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "version from ETag")),
    responses((status = 200, body = BudgetView), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<UpdateBudget>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let (id, current, version) = load(&state, &who, &id).await?;
    let mut spec = current.spec;
    spec.name = body.name.unwrap_or(spec.name);
    spec.amount_usd = body.amount_usd.unwrap_or(spec.amount_usd);
    spec.period = body.period.unwrap_or(spec.period);
    spec.hard = body.hard.unwrap_or(spec.hard);
    let expected = Some(expected.unwrap_or(version));
    let done = state
        .store()
        .execute::<Budget>(
            &id.to_string(),
            expected,
            &who.actor,
            ResourceCommand::Update(spec),
        )
        .await?;
    Ok(with_etag(
        StatusCode::OK,
        done.version,
        &BudgetView::of(id, &done.state, done.version),
    ))
}

#[utoipa::path(delete, path = "/admin/budgets/{id}",
    operation_id = "delete_budget", tag = "budgets", security(("bearer" = [])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let expected = if_match(&headers)?;
    let (id, _, _) = load(&state, &who, &id).await?;
    let client = state.store().pool().get().await?;
    let in_use: i64 = client
        .query_one("SELECT count(*) FROM virtual_keys WHERE revoked_at IS NULL AND spec->>'budget_id' = $1", &[&id.to_string()])
        .await?
        .get(0);
    if in_use > 0 {
        return Err(ApiError::Conflict(format!(
            "{in_use} live key(s) still spend from this budget; detach them first"
        )));
    }
    state
        .store()
        .execute::<Budget>(
            &id.to_string(),
            expected,
            &who.actor,
            ResourceCommand::Delete,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
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
        let view = BudgetView::from_parts(Uuid::nil(), None, &spec, 1, None, None);
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
