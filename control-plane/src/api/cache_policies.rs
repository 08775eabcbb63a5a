//! `/admin/cache-policies`: response-cache policies, and `DELETE
//! /admin/cache-policies/{id}/entries`, which purges the policy's cache.
//!
//! A policy owned by a team applies only to that team's keys, whatever it names (the data
//! plane checks the owner), and a team-scoped token may only name its own team. A purge raises
//! the policy's `epoch` (an ordinary update, in the log like any change): every entry's key
//! contains the epoch, so each proxy stops answering from older entries as soon as the next
//! snapshot arrives, and those entries age out of memory and NATS on their own.

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::common::ensure_team;
use super::crud::{self, AdminResource, Creatable, Cx, Decided, Deletable, Tabled, Updatable};
use super::extract::if_match;
use super::{ApiError, AppState, List, Principal};
use crate::domain::cache_policy::{CachePolicy, CachePolicySpec};
use crate::domain::resource::ResourceCommand;
use crate::domain::Check;
use crate::store::admin::{SpecTable, CACHE_POLICIES};

crud::handlers!(CachePolicy, CachePolicyView, "cache";
    create("create_cache_policy", "/admin/cache-policies", CreateCachePolicy, responses((status = 201, body = CachePolicyView), (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody))),
    list("list_cache_policies", "/admin/cache-policies"), read("get_cache_policy", "/admin/cache-policies/{id}", params(("id" = String, Path))),
    update("update_cache_policy", "/admin/cache-policies/{id}", UpdateCachePolicy, params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "version from ETag"))),
    remove("delete_cache_policy", "/admin/cache-policies/{id}", params(("id" = String, Path), ("If-Match" = Option<String>, Header)));
    also ("/admin/cache-policies/{id}/entries", axum::routing::delete(purge)));

impl AdminResource for CachePolicy {
    type View = CachePolicyView;
    const WHAT: &'static str = "cache policy";

    fn view(p: &CachePolicy, version: i32) -> CachePolicyView {
        let s = &p.spec;
        CachePolicyView {
            id: p.id.clone(),
            team_id: p.team_id,
            enabled: s.enabled,
            applies_to: targets_view(&s.applies_to),
            ttl_secs: s.ttl_secs,
            max_entry_bytes: s.max_entry_bytes,
            finish_reasons: s.finish_reasons.clone(),
            shared: s.shared,
            epoch: s.epoch,
            semantic: s.semantic.as_ref().map(|m| SemanticView {
                enabled: m.enabled,
                threshold: m.threshold.map(|t| t.to_string()),
                embedding_route: m.embedding_route.clone(),
            }),
            version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// What a policy applies to; all empty: every request (of its team, for a team's policy).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Key ids or names.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Team ids.
    #[serde(default)]
    pub teams: Vec<String>,
    /// Route aliases.
    #[serde(default)]
    pub routes: Vec<String>,
}

fn targets_view(t: &proto::CacheTargets) -> Targets {
    Targets {
        keys: t.keys.clone(),
        teams: t.teams.clone(),
        routes: t.routes.clone(),
    }
}

/// Semantic-cache settings: served by proxies that have an embedder (the in-process model, or
/// `embedding_route`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SemanticView {
    #[serde(default)]
    pub enabled: bool,
    /// Cosine similarity threshold in (0, 1], as a decimal string.
    #[schema(example = "0.92")]
    pub threshold: Option<String>,
    /// A route serving `/v1/embeddings` that embeds the prompts, as requests of the caller's
    /// key (metered like any other); absent: the proxy's in-process model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_route: Option<String>,
}

/// A cache policy as responses show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CachePolicyView {
    pub id: String,
    pub team_id: Option<Uuid>,
    pub enabled: bool,
    pub applies_to: Targets,
    pub ttl_secs: u64,
    pub max_entry_bytes: u64,
    pub finish_reasons: Vec<String>,
    pub shared: bool,
    /// Raised by each purge.
    pub epoch: u64,
    pub semantic: Option<SemanticView>,
    pub version: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCachePolicy {
    /// Letters, digits, `-`, `_`, `.`.
    pub id: String,
    /// Default true.
    pub enabled: Option<bool>,
    #[serde(default)]
    pub applies_to: Targets,
    /// Seconds an entry answers (1 to 604800); default 300.
    pub ttl_secs: Option<u64>,
    /// Largest answer stored (bytes, up to 1 MiB); default 262144.
    pub max_entry_bytes: Option<u64>,
    /// Finish reasons whose answers are stored; default `["stop", "tool_calls"]`.
    pub finish_reasons: Option<Vec<String>>,
    /// Entries answer every team (default: only the team whose request made them).
    #[serde(default)]
    pub shared: bool,
    pub semantic: Option<SemanticView>,
    pub team_id: Option<Uuid>,
}

/// A partial update: absent fields are kept.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCachePolicy {
    pub enabled: Option<bool>,
    pub applies_to: Option<Targets>,
    pub ttl_secs: Option<u64>,
    pub max_entry_bytes: Option<u64>,
    pub finish_reasons: Option<Vec<String>>,
    pub shared: Option<bool>,
    pub semantic: Option<SemanticView>,
}

fn semantic(v: Option<SemanticView>) -> Result<Option<proto::SemanticSettings>, ApiError> {
    v.map(|s| {
        let threshold = s
            .threshold
            .map(|t| t.trim().parse::<rust_decimal::Decimal>())
            .transpose()
            .map_err(|_| ApiError::invalid("semantic.threshold", "must be a decimal"))?;
        Ok(proto::SemanticSettings {
            enabled: s.enabled,
            threshold,
            embedding_route: s.embedding_route,
        })
    })
    .transpose()
}

/// A team's policy may name only its own team.
fn own_targets(owner: Option<Uuid>, t: &Targets) -> Result<proto::CacheTargets, ApiError> {
    if let Some(team) = owner {
        if t.teams.iter().any(|named| *named != team.to_string()) {
            return Err(ApiError::invalid(
                "applies_to.teams",
                "a team's cache policy can only name its own team",
            ));
        }
    }
    Ok(proto::CacheTargets {
        keys: t.keys.clone(),
        teams: t.teams.clone(),
        routes: t.routes.clone(),
    })
}

impl Creatable for CachePolicy {
    type Body = CreateCachePolicy;

    async fn create(cx: Cx<'_>, body: CreateCachePolicy) -> Result<Response, ApiError> {
        let team_id = cx.who.owner(body.team_id)?;
        let mut check = Check::new();
        check.ident("id", &body.id);
        check.done()?;
        ensure_team(cx.app, team_id).await?;
        let defaults = CachePolicySpec::default();
        let spec = CachePolicySpec {
            enabled: body.enabled.unwrap_or(true),
            applies_to: own_targets(team_id, &body.applies_to)?,
            ttl_secs: body.ttl_secs.unwrap_or(defaults.ttl_secs),
            max_entry_bytes: body.max_entry_bytes.unwrap_or(defaults.max_entry_bytes),
            finish_reasons: body.finish_reasons.unwrap_or(defaults.finish_reasons),
            shared: body.shared,
            epoch: 0,
            semantic: semantic(body.semantic)?,
        };
        let command = ResourceCommand::Create {
            id: body.id.clone(),
            team_id,
            spec,
        };
        crud::run::<Self>(cx, &body.id, None, command, StatusCode::CREATED).await
    }
}

impl Updatable for CachePolicy {
    type Patch = UpdateCachePolicy;

    async fn merge(_: Cx<'_>, current: CachePolicy, patch: UpdateCachePolicy) -> Decided<Self> {
        let mut spec = current.spec;
        if let Some(t) = &patch.applies_to {
            spec.applies_to = own_targets(current.team_id, t)?;
        }
        if patch.semantic.is_some() {
            spec.semantic = semantic(patch.semantic)?;
        }
        crate::domain::assign_present!(spec, patch; enabled, ttl_secs, max_entry_bytes, finish_reasons, shared);
        Ok(ResourceCommand::Update(spec))
    }
}

impl Deletable for CachePolicy {
    async fn delete(_: Cx<'_>, _: &CachePolicy) -> Decided<Self> {
        Ok(ResourceCommand::Delete)
    }
}

impl Tabled for CachePolicySpec {
    const TABLE: SpecTable = CACHE_POLICIES;
}

/// Purges a policy's cache: every entry stored under it stops answering, on every proxy, once
/// the next snapshot arrives. Answers the policy with its new `epoch`.
#[utoipa::path(operation_id = "purge_cache_policy", delete, path = "/admin/cache-policies/{id}/entries", tag = "cache", security(("bearer" = [])),
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = CachePolicyView), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn purge(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cx = Cx::new(&state, &who);
    let expected = if_match(&headers)?;
    let (stream, current, version) = crud::load::<CachePolicy>(cx, &id).await?;
    let mut spec = current.spec;
    spec.epoch += 1;
    let expected = Some(expected.unwrap_or(version));
    crud::run::<CachePolicy>(
        cx,
        &stream,
        expected,
        ResourceCommand::Update(spec),
        StatusCode::OK,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_team_policy_names_only_its_team() {
        let team = Uuid::now_v7();
        let other = Targets {
            teams: vec![Uuid::now_v7().to_string()],
            ..Targets::default()
        };
        assert!(own_targets(Some(team), &other).is_err());
        assert!(own_targets(None, &other).is_ok());
        let own = Targets {
            teams: vec![team.to_string()],
            keys: vec!["k".into()],
            ..Targets::default()
        };
        assert_eq!(own_targets(Some(team), &own).unwrap().keys, ["k"]);
    }
}
