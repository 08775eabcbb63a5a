//! Stage 3, resolving the route, in one place: the caller's preference header, the body's
//! model, the key's allow-list, the route's rules, and the fallback chain the attempts walk.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, HeaderName};

use crate::error::ApiError;
use crate::snapshot::{CompiledSnapshot, KeyPolicy, Route};
use crate::usage::Tags;

/// Header with the caller's ordered model preference (`fast-chat, gpt-4o-mini`): the first
/// alias that exists, that the key may use and that has a deployment available now serves,
/// else the body's `model`.
pub const MODEL_PREFERENCE: HeaderName = HeaderName::from_static("x-switchyard-models");

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

/// Where a request goes: the route that serves it and what chose that route.
#[derive(Debug)]
pub struct Resolved {
    /// The route the caller reached (by preference or by `model`): it names the request in
    /// usage events and metrics.
    pub requested: Arc<Route>,
    /// The route whose chain the attempts walk: `requested`, or a rule's target.
    pub serving: Arc<Route>,
    /// `rule` or `preference` when one chose the route before the strategy runs.
    pub origin: Option<&'static str>,
}

/// The route the caller reached, before the rules: the preference header's first usable
/// alias, else `model` (404/403 as [`resolve`]).
#[derive(Debug)]
pub struct Requested {
    route: Arc<Route>,
    preferred: bool,
}

impl Requested {
    /// Resolves the caller's preference (see [`MODEL_PREFERENCE`]), else `model`.
    pub fn new(
        snapshot: &CompiledSnapshot,
        key: &KeyPolicy,
        model: &str,
        headers: &HeaderMap,
    ) -> Result<Self, ApiError> {
        let (route, preferred) = preferred(snapshot, key, model, headers)?;
        Ok(Self { route, preferred })
    }

    /// Applies the route's rules, which see the request's tags and prompt estimate.
    pub fn with_rules(
        self,
        snapshot: &CompiledSnapshot,
        key: &KeyPolicy,
        tags: &Tags,
        prompt_tokens: u64,
    ) -> Resolved {
        let ruled = apply_rules(snapshot, &self.route, key, tags, prompt_tokens);
        let origin = match (&ruled, self.preferred) {
            (Some(_), _) => Some("rule"),
            (None, true) => Some("preference"),
            (None, false) => None,
        };
        Resolved {
            serving: ruled.unwrap_or_else(|| Arc::clone(&self.route)),
            requested: self.route,
            origin,
        }
    }
}

impl Resolved {
    /// The serving route followed by its fallback routes (each once, unknown ones skipped).
    pub fn chain<'s>(&'s self, snapshot: &'s CompiledSnapshot) -> Vec<&'s Route> {
        let route: &Route = &self.serving;
        let mut chain = vec![route];
        for alias in &route.fallbacks {
            if let Some(r) = snapshot.route(alias) {
                if !chain.iter().any(|c| std::ptr::eq(*c, &**r)) {
                    chain.push(r);
                }
            }
        }
        chain
    }
}

/// The caller's preference header first (see [`MODEL_PREFERENCE`]), else `model`. Says
/// whether the preference decided.
fn preferred(
    snapshot: &CompiledSnapshot,
    key: &KeyPolicy,
    model: &str,
    headers: &HeaderMap,
) -> Result<(Arc<Route>, bool), ApiError> {
    let preferred = headers
        .get(MODEL_PREFERENCE)
        .and_then(|v| v.to_str().ok())
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .take(16);
    let now = Instant::now();
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
fn apply_rules(
    snapshot: &CompiledSnapshot,
    route: &Route,
    key: &KeyPolicy,
    tags: &Tags,
    prompt_tokens: u64,
) -> Option<Arc<Route>> {
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
            .map(Arc::clone)
    })
}
