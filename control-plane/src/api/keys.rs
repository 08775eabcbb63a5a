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
    let client = state.store().pool().get().await?;
    let row = client
        .query_opt("SELECT team_id FROM budgets WHERE id = $1", &[&id])
        .await?;
    match row {
        Some(r) if who.can_see(r.get(0)) => Ok(()),
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

#[utoipa::path(operation_id = "list_keys", get, path = "/admin/keys", tag = "keys", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("after" = Option<String>, Query), ("team_id" = Option<String>, Query)),
    responses((status = 200, body = List<KeyView>), (status = 401, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    page: Page,
) -> Result<axum::Json<List<KeyView>>, ApiError> {
    let after = page.after_uuid()?;
    let team_filter = match page.params.get("team_id").filter(|t| !t.is_empty()) {
        Some(t) => Some(
            t.parse::<Uuid>()
                .map_err(|_| ApiError::invalid("team_id", "not a team id"))?,
        ),
        None => None,
    };
    let client = state.store().pool().get().await?;
    let rows = client
        .query(
            "SELECT k.id, k.team_id, k.spec, k.revoked_at, k.version, k.created_at, k.updated_at,
                    COALESCE((SELECT array_agg(prefix ORDER BY valid_until NULLS LAST) FROM key_secrets s WHERE s.key_id = k.id), '{}')
             FROM virtual_keys k
             WHERE ($1::uuid IS NULL OR k.team_id = $1) AND ($2::uuid IS NULL OR k.team_id = $2) AND ($3::uuid IS NULL OR k.id > $3)
             ORDER BY k.id LIMIT $4",
            &[&who.team, &team_filter, &after, &(page.limit + 1)],
        )
        .await?;
    let views = rows
        .iter()
        .map(|r| {
            let s: KeySettings = serde_json::from_value(r.get(2)).unwrap_or_default();
            KeyView {
                id: r.get(0),
                team_id: r.get(1),
                name: s.name,
                prefixes: r.get(7),
                models: s.models,
                expires_at: s.expires_at,
                tags: s.tags,
                rpm: s.rpm,
                tpm: s.tpm,
                budget_id: s.budget_id,
                max_request_cost_usd: s.max_request_cost_usd,
                revoked_at: r.get(3),
                version: r.get(4),
                created_at: r.get(5),
                updated_at: r.get(6),
            }
        })
        .collect();
    Ok(axum::Json(List::page(views, page.limit, |k: &KeyView| {
        k.id.to_string()
    })))
}

async fn load(state: &AppState, who: &Principal, id: &str) -> Result<(VirtualKey, i32), ApiError> {
    let id = parse_id(id, "key")?;
    let (key, version) = state.store().load::<VirtualKey>(&id.to_string()).await?;
    if key.created_at.is_none() || !who.can_see(Some(key.team_id)) {
        return Err(ApiError::NotFound("key".into()));
    }
    Ok((key, version))
}

#[utoipa::path(operation_id = "read_key", get, path = "/admin/keys/{id}", tag = "keys", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = KeyView), (status = 401, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn read(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (key, version) = load(&state, &who, &id).await?;
    Ok(with_etag(
        StatusCode::OK,
        version,
        &KeyView::of(&key, version),
    ))
}

#[utoipa::path(operation_id = "update_key", patch, path = "/admin/keys/{id}", tag = "keys", request_body = UpdateKey, security(("bearer" = [])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = KeyView), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<UpdateKey>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let (key, _) = load(&state, &who, &id).await?;
    if let Some(budget) = body.budget_id {
        check_budget(&state, &who, budget).await?;
    }
    let patch = KeyPatch {
        name: body.name,
        models: body.models,
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
            &key.id.to_string(),
            expected,
            &who.actor,
            KeyCommand::Update(patch),
        )
        .await?;
    Ok(with_etag(
        StatusCode::OK,
        done.version,
        &KeyView::of(&done.state, done.version),
    ))
}

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
    let (key, _) = load(&state, &who, &id).await?;
    let done = state
        .store()
        .execute::<VirtualKey>(
            &key.id.to_string(),
            expected,
            &who.actor,
            KeyCommand::Revoke,
        )
        .await?;
    Ok(with_etag(
        StatusCode::OK,
        done.version,
        &KeyView::of(&done.state, done.version),
    ))
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
    let (key, _) = load(&state, &who, &id).await?;
    let (secret, stored) = new_secret()?;
    let done = state
        .store()
        .execute::<VirtualKey>(
            &key.id.to_string(),
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
