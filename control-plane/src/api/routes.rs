//! `/admin/routes`: model aliases and the deployments that serve them.
//!
//! Every deployment must name a provider that exists and that the caller may see; a route may
//! use only global providers or providers of its own team, so a team's credentials never serve
//! another team's (or every team's) traffic.

use axum::response::Response;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::common::{double_option, ensure_team};
use super::crud::{self, AdminResource, Creatable, Cx, Decided, Deletable, Tabled, Updatable};
use super::{ApiError, List};
use crate::domain::resource::ResourceCommand;
use crate::domain::route::{Route, RouteSpec};
use crate::domain::Check;
use crate::store::admin::{SpecTable, PROVIDERS, ROUTES};

crud::handlers!(Route, RouteView, "routes";
    create("create_route", "/admin/routes", CreateRoute, responses((status = 201, body = RouteView), (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody))),
    list("list_routes", "/admin/routes"), read("get_route", "/admin/routes/{alias}", params(("alias" = String, Path, description = "percent-encoded if it contains `/`"))),
    update("update_route", "/admin/routes/{alias}", UpdateRoute, params(("alias" = String, Path), ("If-Match" = Option<String>, Header, description = "version from ETag"))),
    remove("delete_route", "/admin/routes/{alias}", params(("alias" = String, Path), ("If-Match" = Option<String>, Header))));

/// One provider + upstream model pair.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentBody {
    /// Provider id.
    pub provider: String,
    /// Model name as the provider knows it.
    pub model: String,
    /// Relative share of traffic within a priority tier (default 1).
    pub weight: Option<u32>,
    /// Lower tiers are used first (default 0).
    pub priority: Option<u32>,
    /// Requests per minute this deployment may receive, across all proxies.
    pub rpm: Option<u64>,
    /// Tokens per minute this deployment may receive, across all proxies.
    pub tpm: Option<u64>,
    /// This deployment's own timeout (ms), over the route's and the provider's.
    pub timeout_ms: Option<u64>,
}

impl From<DeploymentBody> for proto::Deployment {
    fn from(d: DeploymentBody) -> Self {
        Self {
            provider: d.provider,
            model: d.model,
            weight: d.weight,
            priority: d.priority,
            rpm: d.rpm,
            tpm: d.tpm,
            timeout_ms: d.timeout_ms,
        }
    }
}

impl From<&proto::Deployment> for DeploymentBody {
    fn from(d: &proto::Deployment) -> Self {
        Self {
            provider: d.provider.clone(),
            model: d.model.clone(),
            weight: d.weight,
            priority: d.priority,
            rpm: d.rpm,
            tpm: d.tpm,
            timeout_ms: d.timeout_ms,
        }
    }
}

impl AdminResource for Route {
    type View = RouteView;

    fn view(r: &Route, version: i32) -> RouteView {
        let s = &r.spec;
        let deployments = s.deployments.iter().map(DeploymentBody::from).collect();
        RouteView {
            alias: r.id.clone(),
            team_id: r.team_id,
            deployments,
            timeout_ms: s.timeout_ms,
            reserve_output_tokens: s.reserve_output_tokens,
            strategy: s.strategy,
            fallbacks: s.fallbacks.clone(),
            retry: s.retry.clone(),
            context_window: s.context_window,
            rules: s.rules.clone(),
            version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A route as responses show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RouteView {
    pub alias: String,
    pub team_id: Option<Uuid>,
    pub deployments: Vec<DeploymentBody>,
    pub timeout_ms: Option<u64>,
    pub reserve_output_tokens: Option<u64>,
    /// `weighted` (default), `ordered`, `lowest_latency`, `least_inflight` or `cheapest`.
    #[schema(value_type = Option<String>, example = "weighted")]
    pub strategy: Option<proto::Strategy>,
    pub fallbacks: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub retry: Option<proto::RetryPolicy>,
    pub context_window: Option<u64>,
    #[schema(value_type = Vec<Object>)]
    pub rules: Vec<proto::RouteRule>,
    pub version: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoute {
    /// The model name callers send: 1-256 characters without whitespace.
    pub alias: String,
    pub deployments: Vec<DeploymentBody>,
    pub timeout_ms: Option<u64>,
    /// Completion tokens reserved against budgets and token limits when a request sets no
    /// `max_tokens`.
    pub reserve_output_tokens: Option<u64>,
    /// How a deployment is picked within the best available priority tier: `weighted`
    /// (default), `ordered`, `lowest_latency`, `least_inflight` or `cheapest`.
    #[schema(value_type = Option<String>, example = "weighted")]
    pub strategy: Option<proto::Strategy>,
    /// Aliases tried in order once this route's deployments are exhausted.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// `{max_attempts, retries, backoff_ms, max_backoff_ms, deadline_ms, on: [rate_limited,
    /// server_error, timeout, connection_error, context_window, content_policy]}`.
    #[schema(value_type = Option<Object>)]
    pub retry: Option<proto::RetryPolicy>,
    /// Largest prompt (tokens) the route's models accept.
    pub context_window: Option<u64>,
    /// `[{team?, key?, tags?, min_prompt_tokens?, route}]`: the first matching rule sends the
    /// request to `route`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub rules: Vec<proto::RouteRule>,
    pub team_id: Option<Uuid>,
}

/// A partial update: absent fields are kept; `"timeout_ms": null` clears the timeout.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoute {
    pub deployments: Option<Vec<DeploymentBody>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub timeout_ms: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub reserve_output_tokens: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub strategy: Option<Option<proto::Strategy>>,
    pub fallbacks: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub retry: Option<Option<proto::RetryPolicy>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>)]
    pub context_window: Option<Option<u64>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub rules: Option<Vec<proto::RouteRule>>,
}

fn check_alias(check: &mut Check, alias: &str) {
    if alias.is_empty()
        || alias.len() > 256
        || alias.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        check.fail("alias", "must be 1-256 characters without whitespace");
    }
}

/// Each deployment's provider must exist, be visible to the caller, and be global or owned by
/// the route's team. Unknown and invisible providers get the same message.
async fn check_providers(
    cx: Cx<'_>,
    owner: Option<Uuid>,
    deployments: &[proto::Deployment],
    check: &mut Check,
) -> Result<(), ApiError> {
    let ids: Vec<String> = deployments.iter().map(|d| d.provider.clone()).collect();
    let teams = cx.app.store().owners(&PROVIDERS, &ids).await?;
    for (i, d) in deployments.iter().enumerate() {
        let path = format!("deployments[{i}].provider");
        match teams.get(&d.provider) {
            Some(team) if cx.who.can_see(*team) => {
                if team.is_some() && *team != owner {
                    check.fail(
                        &path,
                        format!(
                            "provider `{}` belongs to a team; only routes of that team may use it",
                            d.provider
                        ),
                    );
                }
            }
            _ => check.fail(&path, format!("unknown provider `{}`", d.provider)),
        }
    }
    Ok(())
}

/// Fallback and rule targets must name other routes the caller can see; `path` names the
/// field of the i-th one.
async fn check_fallbacks(
    cx: Cx<'_>,
    alias: &str,
    fallbacks: &[String],
    path: fn(usize) -> String,
    check: &mut Check,
) -> Result<(), ApiError> {
    if fallbacks.is_empty() {
        return Ok(());
    }
    let teams = cx.app.store().owners(&ROUTES, fallbacks).await?;
    for (i, f) in fallbacks.iter().enumerate() {
        let path = path(i);
        if f == alias {
            check.fail(&path, "a route cannot fall back to itself");
        } else if !teams.get(f).is_some_and(|team| cx.who.can_see(*team)) {
            check.fail(&path, format!("unknown route `{f}`"));
        }
    }
    Ok(())
}

fn fallback_path(i: usize) -> String {
    format!("fallbacks[{i}]")
}

fn rule_path(i: usize) -> String {
    format!("rules[{i}].route")
}

/// The reference checks of a whole spec: providers, fallbacks and rule targets.
async fn check_spec(
    cx: Cx<'_>,
    alias: &str,
    owner: Option<Uuid>,
    spec: &RouteSpec,
) -> Result<(), ApiError> {
    let mut check = Check::new();
    check_alias(&mut check, alias);
    check_providers(cx, owner, &spec.deployments, &mut check).await?;
    check_fallbacks(cx, alias, &spec.fallbacks, fallback_path, &mut check).await?;
    let targets: Vec<String> = spec.rules.iter().map(|r| r.route.clone()).collect();
    check_fallbacks(cx, alias, &targets, rule_path, &mut check).await?;
    Ok(check.done()?)
}

impl Creatable for Route {
    type Body = CreateRoute;

    async fn create(cx: Cx<'_>, body: CreateRoute) -> Result<Response, ApiError> {
        let team_id = cx.who.owner(body.team_id)?;
        ensure_team(cx.app, team_id).await?;
        let spec = RouteSpec {
            deployments: body.deployments.into_iter().map(Into::into).collect(),
            timeout_ms: body.timeout_ms,
            reserve_output_tokens: body.reserve_output_tokens,
            strategy: body.strategy,
            fallbacks: body.fallbacks,
            retry: body.retry,
            context_window: body.context_window,
            rules: body.rules,
        };
        check_spec(cx, &body.alias, team_id, &spec).await?;
        let alias = body.alias;
        let command = ResourceCommand::Create {
            id: alias.clone(),
            team_id,
            spec,
        };
        crud::run::<Self>(cx, &alias, None, command, StatusCode::CREATED).await
    }
}

impl Updatable for Route {
    type Patch = UpdateRoute;

    /// Changed deployments, fallbacks and rules are checked against what the caller may see.
    async fn merge(cx: Cx<'_>, current: Route, body: UpdateRoute) -> Decided<Self> {
        let alias = &current.id;
        let mut spec = current.spec;
        if let Some(deployments) = body.deployments {
            spec.deployments = deployments.into_iter().map(Into::into).collect();
            let mut check = Check::new();
            check_providers(cx, current.team_id, &spec.deployments, &mut check).await?;
            check.done()?;
        }
        crate::domain::assign_present!(spec, body; timeout_ms, reserve_output_tokens, strategy, retry, context_window);
        if let Some(fallbacks) = body.fallbacks {
            let mut check = Check::new();
            check_fallbacks(cx, alias, &fallbacks, fallback_path, &mut check).await?;
            check.done()?;
            spec.fallbacks = fallbacks;
        }
        if let Some(rules) = body.rules {
            let targets: Vec<String> = rules.iter().map(|r| r.route.clone()).collect();
            let mut check = Check::new();
            check_fallbacks(cx, alias, &targets, rule_path, &mut check).await?;
            check.done()?;
            spec.rules = rules;
        }
        Ok(ResourceCommand::Update(spec))
    }
}

/// Nothing has to give way before a route is deleted: a fallback or rule naming it stops
/// matching.
impl Deletable for Route {
    async fn delete(_: Cx<'_>, _: &Route) -> Decided<Self> {
        Ok(ResourceCommand::Delete)
    }
}

impl Tabled for RouteSpec {
    const TABLE: SpecTable = ROUTES;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_single_tokens() {
        for (alias, ok) in [
            ("gpt-4o", true),
            ("org/model:tag", true),
            ("", false),
            ("a b", false),
            ("a\tb", false),
        ] {
            let mut check = Check::new();
            check_alias(&mut check, alias);
            assert_eq!(check.done().is_ok(), ok, "{alias:?}");
        }
        assert!(!{
            let mut check = Check::new();
            check_alias(&mut check, &"x".repeat(257));
            check.done().is_ok()
        });
    }

    #[test]
    fn deployment_bodies_round_trip_to_the_wire_type() {
        let body: DeploymentBody =
            serde_json::from_str(r#"{"provider":"p","model":"m","weight":2}"#).unwrap();
        let wire: proto::Deployment = body.into();
        assert_eq!((wire.weight, wire.priority), (Some(2), None));
        assert!(
            serde_json::from_str::<DeploymentBody>(r#"{"provider":"p","model":"m","x":1}"#)
                .is_err()
        );
    }
}
