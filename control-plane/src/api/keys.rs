//! `/admin/keys`: virtual keys. The secret is returned once, at creation and at rotation;
//! afterwards only its prefix.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use proto::LogPayloads;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::common::double_option;
use super::crud::{self, AdminResource, Creatable, Cx, Decided, Listed, Rows, Updatable, Visible};
use super::extract::{if_match, JsonBody, Page};
use super::pricing::{opt_decimal, Money};
use super::secrets::{display_prefix, generate};
use super::{ApiError, AppState, List, Principal};
use crate::api::auth::token_hash;
use crate::domain::key::{KeyCommand, KeyPatch, KeySettings, Secret, VirtualKey};
use crate::domain::log_payloads::LogPayloadsSchema;
use crate::domain::team::Team;

crud::handlers!(VirtualKey, KeyView, "keys";
    create("create_key", "/admin/keys", CreateKey, responses((status = 201, body = KeyWithSecret), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody))),
    list("list_keys", "/admin/keys", params(("limit" = Option<i64>, Query), ("after" = Option<String>, Query), ("team_id" = Option<String>, Query))),
    read("read_key", "/admin/keys/{id}", params(("id" = String, Path))),
    update("update_key", "/admin/keys/{id}", UpdateKey, params(("id" = String, Path), ("If-Match" = Option<String>, Header)));
    also ("/admin/keys/{id}/revoke", post(revoke)), ("/admin/keys/{id}/rotate", post(rotate)));

/// Prefix of every virtual key secret.
pub const KEY_PREFIX: &str = "sk-sy-";

impl AdminResource for VirtualKey {
    type View = KeyView;
    const UUID_IDS: bool = true;

    fn view(k: &VirtualKey, version: i32) -> KeyView {
        KeyView {
            id: k.id,
            team_id: k.team_id,
            settings: k.settings.clone(),
            prefixes: if k.live {
                k.secrets.iter().map(|x| x.prefix.clone()).collect()
            } else {
                vec![]
            },
            revoked_at: k.revoked_at,
            version,
            created_at: k.created_at,
            updated_at: k.updated_at,
        }
    }
}

/// A virtual key as responses show it: its settings and the prefixes of its secrets, never the
/// secrets.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: Uuid,
    pub team_id: Uuid,
    /// `name`, `models`, `expires_at`, `tags`, `rpm`, `tpm`, `budget_id`,
    /// `max_request_cost_usd`, `log_payloads`.
    #[serde(flatten)]
    pub settings: KeySettings,
    /// Prefixes of the secrets that currently work (two during a rotation's grace period).
    pub prefixes: Vec<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub version: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A key is seen by global tokens and its team's, revoked or not (it stays readable).
impl Visible for VirtualKey {
    fn visible_to(&self, who: &Principal) -> bool {
        self.created_at.is_some() && who.can_see(Some(self.team_id))
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
    /// What the request log keeps of this key's requests. Default: its team's policy, else
    /// `metadata`.
    #[schema(value_type = Option<LogPayloadsSchema>)]
    pub log_payloads: Option<LogPayloads>,
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
    /// `null` removes the key's own policy (its team's applies).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<LogPayloadsSchema>)]
    pub log_payloads: Option<Option<LogPayloads>>,
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
async fn check_team(cx: Cx<'_>, team: Uuid) -> Result<(), ApiError> {
    let (t, _) = cx.app.store().load::<Team>(&team.to_string()).await?;
    if !t.live || !cx.who.can_see(Some(team)) {
        return Err(ApiError::invalid("team_id", "no such team"));
    }
    Ok(())
}

/// 422 unless the budget exists and is visible to the caller.
async fn check_budget(cx: Cx<'_>, budget: Option<Uuid>) -> Result<(), ApiError> {
    let Some(id) = budget else { return Ok(()) };
    match cx.app.store().budget_team(id).await? {
        Some(team) if cx.who.can_see(team) => Ok(()),
        _ => Err(ApiError::invalid("budget_id", "no such budget")),
    }
}

/// The answer to a command that issued a secret: the key and that secret, shown this once.
fn with_secret(secret: String) -> impl FnOnce(&VirtualKey, i32) -> KeyWithSecret {
    move |k, version| KeyWithSecret {
        key: VirtualKey::view(k, version),
        secret,
    }
}

impl Creatable for VirtualKey {
    type Body = CreateKey;

    async fn create(cx: Cx<'_>, body: CreateKey) -> Result<Response, ApiError> {
        let team = cx
            .who
            .owner(body.team_id)?
            .ok_or_else(|| ApiError::invalid("team_id", "required for a global admin token"))?;
        check_team(cx, team).await?;
        check_budget(cx, body.budget_id).await?;
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
            log_payloads: body.log_payloads,
        };
        let command = KeyCommand::Create {
            id,
            team_id: team,
            settings,
            secret: stored,
        };
        let stream = id.to_string();
        let created = with_secret(secret);
        crud::run_with(cx, &stream, Some(0), command, StatusCode::CREATED, created).await
    }
}

impl Updatable for VirtualKey {
    type Patch = UpdateKey;
    /// The patch goes into the command as it is; the aggregate applies it.
    const PIN: bool = false;

    async fn merge(cx: Cx<'_>, _: VirtualKey, body: UpdateKey) -> Decided<Self> {
        if let Some(budget) = body.budget_id {
            check_budget(cx, budget).await?;
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
            log_payloads: body.log_payloads,
        }))
    }
}

impl Listed for VirtualKey {
    type Row = KeyView;

    /// `?team_id=` narrows the page to one team.
    async fn page(cx: Cx<'_>, page: &Page) -> Rows<KeyView> {
        let after = page.after_uuid()?;
        let team_filter = match page.params.get("team_id").filter(|t| !t.is_empty()) {
            Some(t) => Some(
                t.parse::<Uuid>()
                    .map_err(|_| ApiError::invalid("team_id", "not a team id"))?,
            ),
            None => None,
        };
        let store = cx.app.store();
        let rows = store
            .key_page(cx.who.team, team_filter, after, page.limit + 1)
            .await?;
        Ok(crud::keyed::<Self>(&rows, |k| k.id.to_string()))
    }
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
    let cx = Cx::new(&state, &who);
    let expected = if_match(&headers)?;
    let (stream, _, _) = crud::load::<VirtualKey>(cx, &id).await?;
    crud::run::<VirtualKey>(cx, &stream, expected, KeyCommand::Revoke, StatusCode::OK).await
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
    let cx = Cx::new(&state, &who);
    let expected = if_match(&headers)?;
    let (stream, _, _) = crud::load::<VirtualKey>(cx, &id).await?;
    let (secret, stored) = new_secret()?;
    let command = KeyCommand::Rotate {
        secret: stored,
        grace_seconds: body.grace_seconds,
    };
    crud::run_with(
        cx,
        &stream,
        expected,
        command,
        StatusCode::OK,
        with_secret(secret),
    )
    .await
}
