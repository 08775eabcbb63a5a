//! `/admin/keys`: virtual keys. The secret is returned once, at creation and at rotation;
//! afterwards only its prefix.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::common::{double_option, parse_id};
use super::crud::{self, AdminResource, Command, Listed, Updatable};
use super::extract::{if_match, JsonBody, Page};
use super::pricing::{opt_decimal, Money};
use super::secrets::{display_prefix, generate};
use super::{with_etag, ApiError, AppState, List, Principal};
use crate::api::auth::token_hash;
use crate::domain::key::{KeyCommand, KeyPatch, KeySettings, Secret, VirtualKey};
use crate::domain::team::Team;

/// Prefix of every virtual key secret.
pub const KEY_PREFIX: &str = "sk-sy-";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/keys", get(list).post(create))
        .route("/admin/keys/{id}", get(read).patch(update))
        .route("/admin/keys/{id}/revoke", post(revoke))
        .route("/admin/keys/{id}/rotate", post(rotate))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: Uuid,
    pub team_id: Uuid,
    pub name: String,
    /// Prefixes of the secrets that currently work (two during a rotation's grace period).
    pub prefixes: Vec<String>,
    pub models: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub tags: BTreeMap<String, String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub budget_id: Option<Uuid>,
    /// The most one request may cost (USD); null: no cap.
    #[serde(with = "rust_decimal::serde::str_option")]
    #[schema(value_type = Option<String>, example = "0.50")]
    pub max_request_cost_usd: Option<Decimal>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub version: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl KeyView {
    fn of(k: &VirtualKey, version: i32) -> Self {
        let s = &k.settings;
        Self {
            id: k.id,
            team_id: k.team_id,
            name: s.name.clone(),
            prefixes: if k.live {
                k.secrets.iter().map(|x| x.prefix.clone()).collect()
            } else {
                vec![]
            },
            models: s.models.clone(),
            expires_at: s.expires_at,
            tags: s.tags.clone(),
            rpm: s.rpm,
            tpm: s.tpm,
            budget_id: s.budget_id,
            max_request_cost_usd: s.max_request_cost_usd,
            revoked_at: k.revoked_at,
            version,
            created_at: k.created_at,
            updated_at: k.updated_at,
        }
    }
}

/// A key together with its secret: shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyWithSecret {
    pub key: KeyView,
    /// The secret to give to the caller. It is not stored and cannot be shown again.
    pub secret: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Owning team; team-scoped tokens may omit it.
    pub team_id: Option<Uuid>,
    pub name: String,
    /// Aliases this key may call (`*` = all, `gpt-*` = prefix). Default: all.
    pub models: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub budget_id: Option<Uuid>,
    /// The most one request may cost (USD, exact decimal as a string or a number, > 0): a
    /// request whose reserved cost is higher is refused before it reaches a provider.
    #[serde(default, deserialize_with = "opt_decimal")]
    #[schema(value_type = Option<String>, example = "0.50")]
    pub max_request_cost_usd: Option<Decimal>,
}

/// `deserialize_with` for a nullable amount of a patch: `null` clears it.
fn nullable_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Decimal>>, D::Error> {
    Option::<Money>::deserialize(d).map(|m| Some(m.map(|m| m.0)))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    pub name: Option<String>,
    pub models: Option<Vec<String>>,
    /// `null` removes the expiry.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub rpm: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub tpm: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub budget_id: Option<Option<Uuid>>,
    /// `null` removes the cap.
    #[serde(default, deserialize_with = "nullable_decimal")]
    #[schema(value_type = Option<String>, example = "0.50")]
    pub max_request_cost_usd: Option<Option<Decimal>>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old secret keeps working (0-2592000 s). Default 0.
    #[serde(default)]
    pub grace_seconds: u64,
}

fn new_secret() -> Result<(String, Secret), ApiError> {
    let secret = generate(KEY_PREFIX)?;
    Ok((
        secret.clone(),
        Secret {
            sha256: token_hash(&secret),
            prefix: display_prefix(&secret),
            valid_until: None,
        },
    ))
}

/// 422 unless the team exists and the caller may use it.
async fn check_team(state: &AppState, who: &Principal, team: Uuid) -> Result<(), ApiError> {
    let (t, _) = state.store().load::<Team>(&team.to_string()).await?;
    if !t.live || !who.can_see(Some(team)) {
        return Err(ApiError::invalid("team_id", "no such team"));
    }
    Ok(())
}

/// 422 unless the budget exists and is visible to the caller.
async fn check_budget(
    state: &AppState,
    who: &Principal,
    budget: Option<Uuid>,
) -> Result<(), ApiError> {
    let Some(id) = budget else { return Ok(()) };
    match state.store().budget_team(id).await? {
        Some(team) if who.can_see(team) => Ok(()),
        _ => Err(ApiError::invalid("budget_id", "no such budget")),
    }
}

#[utoipa::path(operation_id = "create_key", post, path = "/admin/keys", tag = "keys", request_body = CreateKey, security(("bearer" = [])),
    responses((status = 201, body = KeyWithSecret), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<Response, ApiError> {
    let team = who
        .owner(body.team_id)?
        .ok_or_else(|| ApiError::invalid("team_id", "required for a global admin token"))?;
    check_team(&state, &who, team).await?;
    check_budget(&state, &who, body.budget_id).await?;
    let (secret, stored) = new_secret()?;
    let id = Uuid::now_v7();
    let settings = KeySettings {
        name: body.name,
        models: body.models.unwrap_or_else(|| vec!["*".into()]),
        expires_at: body.expires_at,
        tags: body.tags,
        rpm: body.rpm,
        tpm: body.tpm,
        budget_id: body.budget_id,
        max_request_cost_usd: body.max_request_cost_usd,
    };
    let done = state
        .store()
        .execute::<VirtualKey>(
            &id.to_string(),
            Some(0),
            &who.actor,
            KeyCommand::Create {
                id,
                team_id: team,
                settings,
                secret: stored,
            },
        )
        .await?;
    Ok(with_etag(
        StatusCode::CREATED,
        done.version,
        &KeyWithSecret {
            key: KeyView::of(&done.state, done.version),
            secret,
        },
    ))
}

/// Keys for the generic admin operations. A revoked key can still be read.
pub struct Keys;

impl AdminResource for Keys {
    type State = VirtualKey;
    type View = KeyView;
    const WHAT: &'static str = "key";

    fn stream_id(id: &str) -> Result<String, ApiError> {
        Ok(parse_id(id, "key")?.to_string())
    }

    fn visible(key: &VirtualKey, who: &Principal) -> bool {
        key.created_at.is_some() && who.can_see(Some(key.team_id))
    }

    fn view(key: &VirtualKey, version: i32) -> KeyView {
        KeyView::of(key, version)
    }
}

impl Updatable for Keys {
    type Patch = UpdateKey;
    /// The patch goes into the command as it is; the aggregate applies it.
    const PIN: bool = false;

    async fn merge(
        app: &AppState,
        who: &Principal,
        _: &str,
        _: VirtualKey,
        body: UpdateKey,
    ) -> Result<Command<Self>, ApiError> {
        if let Some(budget) = body.budget_id {
            check_budget(app, who, budget).await?;
        }
        Ok(KeyCommand::Update(KeyPatch {
            name: body.name,
            models: body.models,
            expires_at: body.expires_at,
            tags: body.tags,
            rpm: body.rpm,
            tpm: body.tpm,
            budget_id: body.budget_id,
            max_request_cost_usd: body.max_request_cost_usd,
        }))
    }
}

impl Listed for Keys {
    type Row = KeyView;

    /// `?team_id=` narrows the page to one team.
    async fn page(app: &AppState, who: &Principal, page: &Page) -> Result<Vec<KeyView>, ApiError> {
        let after = page.after_uuid()?;
        let team_filter = match page.params.get("team_id").filter(|t| !t.is_empty()) {
            Some(t) => Some(
                t.parse::<Uuid>()
                    .map_err(|_| ApiError::invalid("team_id", "not a team id"))?,
            ),
            None => None,
        };
        let rows = app
            .store()
            .key_page(who.team, team_filter, after, page.limit + 1)
            .await?;
        Ok(rows.iter().map(|(k, v)| KeyView::of(k, *v)).collect())
    }

    fn cursor(row: &KeyView) -> String {
        row.id.to_string()
    }
}

crud::handlers!(Keys, KeyView, "keys";
    list("list_keys", "/admin/keys", params(("limit" = Option<i64>, Query), ("after" = Option<String>, Query), ("team_id" = Option<String>, Query))),
    read("read_key", "/admin/keys/{id}", params(("id" = String, Path))),
    update("update_key", "/admin/keys/{id}", UpdateKey, params(("id" = String, Path), ("If-Match" = Option<String>, Header))),
);

#[utoipa::path(operation_id = "revoke_key", post, path = "/admin/keys/{id}/revoke", tag = "keys", security(("bearer" = [])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = KeyView), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let (stream, _, _) = crud::load::<Keys>(&state, &who, &id).await?;
    let command = KeyCommand::Revoke;
    crud::run::<Keys>(&state, &who, &stream, expected, command, StatusCode::OK).await
}

#[utoipa::path(operation_id = "rotate_key", post, path = "/admin/keys/{id}/rotate", tag = "keys", request_body = RotateKey, security(("bearer" = [])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = KeyWithSecret), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RotateKey>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let (stream, _, _) = crud::load::<Keys>(&state, &who, &id).await?;
    let (secret, stored) = new_secret()?;
    let done = state
        .store()
        .execute::<VirtualKey>(
            &stream,
            expected,
            &who.actor,
            KeyCommand::Rotate {
                secret: stored,
                grace_seconds: body.grace_seconds,
            },
        )
        .await?;
    Ok(with_etag(
        StatusCode::OK,
        done.version,
        &KeyWithSecret {
            key: KeyView::of(&done.state, done.version),
            secret,
        },
    ))
}
