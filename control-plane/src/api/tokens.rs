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
use super::crud::{self, AdminResource, Listed};
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

/// Admin tokens for the generic admin operations.
pub struct Tokens;

impl AdminResource for Tokens {
    type State = AdminToken;
    type View = TokenView;
    const WHAT: &'static str = "admin token";

    fn stream_id(id: &str) -> Result<String, ApiError> {
        Ok(parse_id(id, "admin token")?.to_string())
    }

    fn visible(token: &AdminToken, who: &Principal) -> bool {
        token.live && who.can_see(token.team_id)
    }

    fn view(token: &AdminToken, _version: i32) -> TokenView {
        TokenView::of(token)
    }
}

impl Listed for Tokens {
    type Row = TokenView;

    async fn page(
        app: &AppState,
        who: &Principal,
        page: &Page,
    ) -> Result<Vec<TokenView>, ApiError> {
        let after = page.after_uuid()?;
        let rows = app
            .store()
            .token_page(who.team, after, page.limit + 1)
            .await?;
        Ok(rows.iter().map(TokenView::of).collect())
    }

    fn cursor(row: &TokenView) -> String {
        row.id.to_string()
    }
}

crud::handlers!(Tokens, TokenView, "tokens";
    list("list_tokens", "/admin/tokens", params(("limit" = Option<i64>, Query), ("after" = Option<String>, Query))),
);

#[utoipa::path(operation_id = "revoke_token", delete, path = "/admin/tokens/{id}", tag = "tokens", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (stream, _, _) = crud::load::<Tokens>(&state, &who, &id).await?;
    state
        .store()
        .execute::<AdminToken>(&stream, None, &who.actor, TokenCommand::Revoke)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
