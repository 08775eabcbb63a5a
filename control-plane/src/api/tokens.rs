//! `/admin/tokens`: admin tokens, global or scoped to one team. The secret is shown once.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{delete, get};
use axum::Router;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::token_hash;
use super::common::parse_id;
use super::extract::{JsonBody, Page};
use super::secrets::{display_prefix, generate};
use super::{with_etag, ApiError, AppState, List, Principal};
use crate::domain::team::Team;
use crate::domain::token::{AdminToken, TokenCommand};

/// Prefix of every admin token.
pub const TOKEN_PREFIX: &str = "sya-";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/tokens", get(list).post(create))
        .route("/admin/tokens/{id}", delete(revoke))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub id: Uuid,
    pub name: String,
    /// `null` for a global token.
    pub team_id: Option<Uuid>,
    pub prefix: String,
    pub created_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenView {
    fn of(t: &AdminToken) -> Self {
        Self {
            id: t.id,
            name: t.name.clone(),
            team_id: t.team_id,
            prefix: t.prefix.clone(),
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenWithSecret {
    pub token: TokenView,
    /// Shown once; only its hash is stored.
    pub secret: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    /// Scope the token to this team. Team-scoped callers can only create tokens for their team.
    pub team_id: Option<Uuid>,
}

#[utoipa::path(operation_id = "create_token", post, path = "/admin/tokens", tag = "tokens", request_body = CreateToken, security(("bearer" = [])),
    responses((status = 201, body = TokenWithSecret), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    JsonBody(body): JsonBody<CreateToken>,
) -> Result<Response, ApiError> {
    let team = who.owner(body.team_id)?;
    if let Some(team) = team {
        let (t, _) = state.store().load::<Team>(&team.to_string()).await?;
        if !t.live {
            return Err(ApiError::invalid("team_id", "no such team"));
        }
    }
    let secret = generate(TOKEN_PREFIX)?;
    let id = Uuid::now_v7();
    let command = TokenCommand::Create {
        id,
        name: body.name,
        team_id: team,
        sha256: token_hash(&secret),
        prefix: display_prefix(&secret),
    };
    let done = state
        .store()
        .execute::<AdminToken>(&id.to_string(), Some(0), &who.actor, command)
        .await?;
    Ok(with_etag(
        StatusCode::CREATED,
        done.version,
        &TokenWithSecret {
            token: TokenView::of(&done.state),
            secret,
        },
    ))
}

#[utoipa::path(operation_id = "list_tokens", get, path = "/admin/tokens", tag = "tokens", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("after" = Option<String>, Query)),
    responses((status = 200, body = List<TokenView>), (status = 401, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    page: Page,
) -> Result<axum::Json<List<TokenView>>, ApiError> {
    let after = page.after_uuid()?;
    let client = state.store().pool().get().await?;
    let rows = client
        .query(
            "SELECT id, name, team_id, prefix, created_at, revoked_at FROM admin_tokens
             WHERE ($1::uuid IS NULL OR team_id = $1) AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
            &[&who.team, &after, &(page.limit + 1)],
        )
        .await?;
    let views = rows
        .iter()
        .map(|r| TokenView {
            id: r.get(0),
            name: r.get(1),
            team_id: r.get(2),
            prefix: r.get(3),
            created_at: r.get(4),
            revoked_at: r.get(5),
        })
        .collect();
    Ok(axum::Json(List::page(
        views,
        page.limit,
        |t: &TokenView| t.id.to_string(),
    )))
}

#[utoipa::path(operation_id = "revoke_token", delete, path = "/admin/tokens/{id}", tag = "tokens", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, "admin token")?;
    let (token, _) = state.store().load::<AdminToken>(&id.to_string()).await?;
    if !token.live || !who.can_see(token.team_id) {
        return Err(ApiError::NotFound("admin token".into()));
    }
    state
        .store()
        .execute::<AdminToken>(&id.to_string(), None, &who.actor, TokenCommand::Revoke)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
