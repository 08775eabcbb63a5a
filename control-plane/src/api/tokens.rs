//! `/admin/tokens`: admin tokens, global or scoped to one team. The secret is shown once.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::delete;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::token_hash;
use super::crud::{self, AdminResource, Creatable, Cx, Listed, Rows, Visible};
use super::extract::Page;
use super::secrets::{display_prefix, generate};
use super::{with_etag, ApiError, AppState, List, Principal};
use crate::domain::team::Team;
use crate::domain::token::{AdminToken, NewToken, TokenCommand};

crud::handlers!(AdminToken, TokenView, "tokens";
    create("create_token", "/admin/tokens", CreateToken, responses((status = 201, body = TokenWithSecret), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody))),
    list("list_tokens", "/admin/tokens", params(("limit" = Option<i64>, Query), ("after" = Option<String>, Query)));
    also ("/admin/tokens/{id}", delete(revoke)));

/// Prefix of every admin token.
pub const TOKEN_PREFIX: &str = "sya-";

impl AdminResource for AdminToken {
    type View = TokenView;
    const WHAT: &'static str = "admin token";
    const UUID_IDS: bool = true;

    /// A token's view has no version: a token only lives and dies.
    fn view(token: &AdminToken, _version: i32) -> TokenView {
        TokenView::of(token)
    }
}

/// An admin token: its prefix, never the secret.
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

/// A live token is seen by global tokens and by its team's.
impl Visible for AdminToken {
    fn visible_to(&self, who: &Principal) -> bool {
        self.live && who.can_see(self.team_id)
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

impl Creatable for AdminToken {
    type Body = CreateToken;

    async fn create(cx: Cx<'_>, body: CreateToken) -> Result<Response, ApiError> {
        let team = cx.who.owner(body.team_id)?;
        if let Some(team) = team {
            let (t, _) = cx.app.store().load::<Team>(&team.to_string()).await?;
            if !t.live {
                return Err(ApiError::invalid("team_id", "no such team"));
            }
        }
        let secret = generate(TOKEN_PREFIX)?;
        let id = Uuid::now_v7();
        let command = TokenCommand::Create(NewToken {
            id,
            name: body.name,
            team_id: team,
            sha256: token_hash(&secret),
            prefix: display_prefix(&secret),
        });
        let stream = id.to_string();
        let store = cx.app.store();
        let done = store
            .execute::<AdminToken>(&stream, Some(0), &cx.who.actor, command)
            .await?;
        let token = TokenView::of(&done.state);
        let created = TokenWithSecret { token, secret };
        Ok(with_etag(StatusCode::CREATED, done.version, &created))
    }
}

impl Listed for AdminToken {
    type Row = TokenView;

    async fn page(cx: Cx<'_>, page: &Page) -> Rows<TokenView> {
        let (after, limit) = (page.after_uuid()?, page.limit + 1);
        let rows = cx.app.store().token_page(cx.who.team, after, limit).await?;
        Ok(rows
            .iter()
            .map(|t| (t.id.to_string(), TokenView::of(t)))
            .collect())
    }
}

#[utoipa::path(operation_id = "revoke_token", delete, path = "/admin/tokens/{id}", tag = "tokens", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (stream, _, _) = crud::load::<AdminToken>(Cx::new(&state, &who), &id).await?;
    state
        .store()
        .execute::<AdminToken>(&stream, None, &who.actor, TokenCommand::Revoke)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
