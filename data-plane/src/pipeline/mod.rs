//! The request pipeline before a provider is called: who is calling, what they sent, and
//! which route serves it.

pub mod auth;
pub mod body;

use std::sync::Arc;

use crate::error::ApiError;
use crate::snapshot::{CompiledSnapshot, KeyPolicy, Route};

/// The route for `model` if it exists (404) and the key may use it (403).
pub fn resolve(
    snapshot: &CompiledSnapshot,
    key: &KeyPolicy,
    model: &str,
) -> Result<Arc<Route>, ApiError> {
    let route = snapshot
        .route(model)
        .ok_or_else(|| ApiError::ModelNotFound(model.to_owned()))?;
    if !key.allows(model) {
        return Err(ApiError::ModelNotAllowed(model.to_owned()));
    }
    Ok(Arc::clone(route))
}

/// Header with the caller's ordered model preference (`fast-chat, gpt-4o-mini`): the first
/// alias that exists, that the key may use and that has a deployment available now serves,
/// else the body's `model`.
pub const MODEL_PREFERENCE: http::HeaderName = http::HeaderName::from_static("x-switchyard-models");

/// The route for the request: the caller's preference header first (see
/// [`MODEL_PREFERENCE`]), else `model`. Says whether the preference decided.
pub fn resolve_preferred(
    snapshot: &CompiledSnapshot,
    key: &KeyPolicy,
    model: &str,
    headers: &http::HeaderMap,
) -> Result<(Arc<Route>, bool), ApiError> {
    let preferred = headers
        .get(MODEL_PREFERENCE)
        .and_then(|v| v.to_str().ok())
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .take(16);
    let now = std::time::Instant::now();
    for alias in preferred {
        if let Ok(route) = resolve(snapshot, key, alias) {
            if route
                .deployments
                .iter()
                .any(|d| d.stats.breaker.available(now))
            {
                return Ok((route, true));
            }
        }
    }
    resolve(snapshot, key, model).map(|r| (r, false))
}

/// The route a request is served by after `route`'s rules (first match wins, one level).
pub fn apply_rules<'s>(
    snapshot: &'s CompiledSnapshot,
    route: &'s Route,
    key: &KeyPolicy,
    tags: &crate::usage::Tags,
    prompt_tokens: u64,
) -> Option<&'s Route> {
    route.rules.iter().find_map(|rule| {
        let team = rule
            .team
            .as_ref()
            .is_none_or(|t| key.team.as_ref() == Some(t));
        let who = rule
            .key
            .as_ref()
            .is_none_or(|k| key.id.as_ref() == Some(k) || &key.name == k);
        let tagged = rule.tags.iter().all(|(k, v)| tags.get(k) == Some(v));
        let size = rule.min_prompt_tokens.is_none_or(|n| prompt_tokens >= n);
        (team && who && tagged && size)
            .then(|| snapshot.route(&rule.route))
            .flatten()
            .map(|r| &**r)
    })
}
