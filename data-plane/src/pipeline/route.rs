//! Stage 3, resolving the route, in one place: the caller's preference header, the body's
//! model, the key's allow-list, the route's rules, and the fallback chain the attempts walk.
//!
//! A model name is a route alias first; a name no alias claims that reads as
//! `provider/model` of a configured provider is served directly by that provider (see
//! `snapshot::direct`: one deployment, default retries, no fallbacks). The key's allow-list
//! is matched against the name as the caller wrote it in both cases.

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

/// The route for `model` (an alias, else a `provider/model` name) if it exists (404) and the
/// key may use it (403).
pub fn resolve(
    snapshot: &CompiledSnapshot,
    key: &KeyPolicy,
    model: &str,
) -> Result<Arc<Route>, ApiError> {
    let not_found = || ApiError::ModelNotFound(model.to_owned());
    let alias = snapshot.route(model);
    if alias.is_none() && !snapshot.addresses_directly(model) {
        return Err(not_found());
    }
    // Checked before a direct route is built, so a key cannot fill the snapshot's table of
    // built routes with names it may not use.
    if !key.allows(model) {
        return Err(ApiError::ModelNotAllowed(model.to_owned()));
    }
    match alias {
        Some(route) => Ok(Arc::clone(route)),
        None => snapshot.direct_route(model).ok_or_else(not_found),
    }
}

/// Every name `key` may address, in name order: the aliases it is allowed, and the
/// `provider/model` names of priced models it is allowed (`snapshot::direct` says which are
/// offered). What `/v1/models` lists.
pub fn visible<'s>(snapshot: &'s CompiledSnapshot, key: &KeyPolicy) -> Vec<&'s str> {
    let mut names: Vec<&str> = snapshot
        .aliases()
        .iter()
        .chain(snapshot.direct_names())
        .map(String::as_str)
        .filter(|name| key.allows(name))
        .collect();
    names.sort_unstable();
    names
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

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> CompiledSnapshot {
        let key = |n: u8| format!("{:064x}", n);
        let yaml = format!(
            r#"
providers:
  - {{id: oa, kind: openai, base_url: "http://127.0.0.1:1/v1"}}
  - {{id: local, kind: vllm, base_url: "http://127.0.0.1:2/v1"}}
pricing:
  - {{model: gpt-4o-mini, input_per_mtok: "0.15", output_per_mtok: "0.60"}}
  - {{model: claude-sonnet-4-5, input_per_mtok: "3", output_per_mtok: "15"}}
  - {{model: llama, input_per_mtok: "0.1", output_per_mtok: "0.1"}}
routes:
  - {{alias: oa/gpt-4o, deployments: [{{provider: local, model: llama}}]}}
  - {{alias: chat, deployments: [{{provider: local, model: llama}}]}}
keys:
  - {{name: all, sha256: "{}", models: ["*"]}}
  - {{name: oa-only, sha256: "{}", models: ["oa/*", "chat"]}}
  - {{name: aliases, sha256: "{}", models: ["chat", "gpt-*"]}}
"#,
            key(1),
            key(2),
            key(3)
        );
        let s: proto::Snapshot = serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{e}"));
        crate::snapshot::compile(s, &crate::snapshot::Context::default())
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn key(s: &CompiledSnapshot, n: u8) -> Arc<KeyPolicy> {
        let mut d = [0u8; 32];
        d[31] = n;
        Arc::clone(s.key(&d).unwrap_or_else(|| panic!("no key {n}")))
    }

    #[test]
    fn provider_model_names_are_served_without_a_route() {
        let s = snapshot();
        let all = key(&s, 1);
        let route = resolve(&s, &all, "oa/gpt-4o-mini").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(route.alias, "oa/gpt-4o-mini");
        assert!(route.fallbacks.is_empty() && route.rules.is_empty());
        let [d] = &route.deployments[..] else {
            panic!("one deployment expected")
        };
        assert_eq!(
            (d.id.as_str(), d.model.as_str()),
            ("oa/gpt-4o-mini", "gpt-4o-mini")
        );
        assert_eq!(d.provider.id(), "oa");
        assert_eq!(
            d.price.as_ref().map(|p| p.output_per_mtok.to_string()),
            Some("0.60".into())
        );
        assert_eq!(
            d.endpoints.chat.as_str(),
            "http://127.0.0.1:1/v1/chat/completions"
        );
        // The model part may itself hold `/` (Hugging Face names on vLLM); unpriced is served.
        let hf = resolve(&s, &all, "local/meta/Llama-3").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hf.deployments[0].model, "meta/Llama-3");
        assert!(hf.deployments[0].price.is_none());
        // Built once per snapshot: the same route (and breaker) serves the next request.
        let again = resolve(&s, &all, "oa/gpt-4o-mini").unwrap_or_else(|e| panic!("{e}"));
        assert!(Arc::ptr_eq(&route, &again));
    }

    #[test]
    fn an_alias_with_a_slash_wins_and_the_allow_list_decides() {
        let s = snapshot();
        let (all, oa_only, aliases) = (key(&s, 1), key(&s, 2), key(&s, 3));
        let alias = resolve(&s, &all, "oa/gpt-4o").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(alias.deployments[0].id, "local/llama");
        assert!(resolve(&s, &oa_only, "oa/gpt-4o-mini").is_ok());
        assert!(matches!(
            resolve(&s, &oa_only, "local/llama"),
            Err(ApiError::ModelNotAllowed(_))
        ));
        assert!(matches!(
            resolve(&s, &aliases, "oa/gpt-4o-mini"),
            Err(ApiError::ModelNotAllowed(_))
        ));
        for unknown in ["nope/gpt-4o", "oa/", "gpt-4o-mini"] {
            assert!(
                matches!(resolve(&s, &all, unknown), Err(ApiError::ModelNotFound(_))),
                "{unknown}"
            );
        }
    }

    #[test]
    fn listed_names_are_priced_models_of_each_provider_family_or_deployed_there() {
        let s = snapshot();
        // oa (openai): its family's priced model; local (vllm): what a route deploys there.
        // `oa/gpt-4o` is an alias and `oa/claude-sonnet-4-5` is not OpenAI's.
        assert_eq!(s.direct_names(), ["local/llama", "oa/gpt-4o-mini"]);
        assert_eq!(
            visible(&s, &key(&s, 1)),
            ["chat", "local/llama", "oa/gpt-4o", "oa/gpt-4o-mini"]
        );
        assert_eq!(
            visible(&s, &key(&s, 2)),
            ["chat", "oa/gpt-4o", "oa/gpt-4o-mini"]
        );
        assert_eq!(visible(&s, &key(&s, 3)), ["chat"]);
    }
}
