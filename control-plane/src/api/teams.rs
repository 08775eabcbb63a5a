//! `/admin/teams`: create, list, read, update, delete.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::common::{double_option, parse_id};
use super::extract::{if_match, JsonBody, Page};
use super::{with_etag, ApiError, AppState, List, Principal};
use crate::domain::team::{Team, TeamCommand};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/teams", get(list).post(create))
        .route("/admin/teams/{id}", get(read).patch(update).delete(remove))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamView {
    pub id: Uuid,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    /// Requests per minute across all of the team's keys (null: no limit).
    pub rpm: Option<u64>,
    /// Tokens per minute across all of the team's keys (null: no limit).
    pub tpm: Option<u64>,
    pub version: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl TeamView {
    fn of(t: &Team, version: i32) -> Self {
        Self {
            id: t.id,
            name: t.name.clone(),
            metadata: t.metadata.clone(),
            rpm: t.rpm,
            tpm: t.tpm,
            version,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    pub name: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Requests per minute across all of the team's keys, 1-1000000000000.
    pub rpm: Option<u64>,
    /// Tokens per minute across all of the team's keys, 1-1000000000000.
    pub tpm: Option<u64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeam {
    pub name: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub rpm: Option<Option<u64>>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub tpm: Option<Option<u64>>,
}

#[utoipa::path(operation_id = "create_team", post, path = "/admin/teams", tag = "teams", request_body = CreateTeam, security(("bearer" = [])),
    responses((status = 201, body = TeamView), (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    JsonBody(body): JsonBody<CreateTeam>,
) -> Result<Response, ApiError> {
    who.require_global()?;
    let id = Uuid::now_v7();
    let done = state
        .store()
        .execute::<Team>(
            &id.to_string(),
            Some(0),
            &who.actor,
            TeamCommand::Create {
                id,
                name: body.name,
                metadata: body.metadata,
                rpm: body.rpm,
                tpm: body.tpm,
            },
        )
        .await?;
    Ok(with_etag(
        StatusCode::CREATED,
        done.version,
        &TeamView::of(&done.state, done.version),
    ))
}

#[utoipa::path(operation_id = "list_teams", get, path = "/admin/teams", tag = "teams", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query, description = "1-1000, default 100"), ("after" = Option<String>, Query, description = "cursor from `next`")),
    responses((status = 200, body = List<TeamView>), (status = 401, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    page: Page,
) -> Result<axum::Json<List<TeamView>>, ApiError> {
    let after = page.after_uuid()?;
    let client = state.store().pool().get().await?;
    let rows = client
        .query(
            "SELECT id, name, spec, version, created_at, updated_at, rpm, tpm FROM teams
             WHERE ($1::uuid IS NULL OR id = $1) AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
            &[&who.team, &after, &(page.limit + 1)],
        )
        .await?;
    let views = rows
        .iter()
        .map(|r| TeamView {
            id: r.get(0),
            name: r.get(1),
            metadata: serde_json::from_value(r.get(2)).unwrap_or_default(),
            rpm: r
                .get::<_, Option<i64>>(6)
                .and_then(|v| u64::try_from(v).ok()),
            tpm: r
                .get::<_, Option<i64>>(7)
                .and_then(|v| u64::try_from(v).ok()),
            version: r.get(3),
            created_at: r.get(4),
            updated_at: r.get(5),
        })
        .collect();
    Ok(axum::Json(List::page(views, page.limit, |t: &TeamView| {
        t.id.to_string()
    })))
}

async fn load(state: &AppState, who: &Principal, id: &str) -> Result<(Team, i32), ApiError> {
    let id = parse_id(id, "team")?;
    who.check(Some(id), "team")?;
    let (team, version) = state.store().load::<Team>(&id.to_string()).await?;
    if !team.live {
        return Err(ApiError::NotFound("team".into()));
    }
    Ok((team, version))
}

#[utoipa::path(operation_id = "read_team", get, path = "/admin/teams/{id}", tag = "teams", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = TeamView), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (team, version) = load(&state, &who, &id).await?;
    Ok(with_etag(
        StatusCode::OK,
        version,
        &TeamView::of(&team, version),
    ))
}

#[utoipa::path(operation_id = "update_team", patch, path = "/admin/teams/{id}", tag = "teams", request_body = UpdateTeam, security(("bearer" = [])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "version from ETag")),
    responses((status = 200, body = TeamView), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<UpdateTeam>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    load(&state, &who, &id).await?;
    who.require_global()?;
    let done = state
        .store()
        .execute::<Team>(
            &id,
            expected,
            &who.actor,
            TeamCommand::Update {
                name: body.name,
                metadata: body.metadata,
                rpm: body.rpm,
                tpm: body.tpm,
            },
        )
        .await?;
    Ok(with_etag(
        StatusCode::OK,
        done.version,
        &TeamView::of(&done.state, done.version),
    ))
}

#[utoipa::path(operation_id = "remove_team", delete, path = "/admin/teams/{id}", tag = "teams", security(("bearer" = [])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let expected = if_match(&headers)?;
    let (team, _) = load(&state, &who, &id).await?;
    who.require_global()?;
    let client = state.store().pool().get().await?;
    let in_use: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM virtual_keys WHERE team_id = $1 AND revoked_at IS NULL)
                  + (SELECT count(*) FROM providers WHERE team_id = $1) + (SELECT count(*) FROM routes WHERE team_id = $1)
                  + (SELECT count(*) FROM budgets WHERE team_id = $1)",
            &[&team.id],
        )
        .await?
        .get(0);
    if in_use > 0 {
        return Err(ApiError::Conflict(
            "the team still owns live keys, providers, routes or budgets; remove them first".into(),
        ));
    }
    state
        .store()
        .execute::<Team>(&id, expected, &who.actor, TeamCommand::Delete)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
