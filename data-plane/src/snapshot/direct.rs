//! `provider/model` addressing: a caller may name any model of a configured provider as
//! `{provider id}/{upstream model}` (`openai/gpt-4o-mini`, `vllm/meta-llama/Llama-3-8B`: the
//! provider id ends at the first `/`) without a route being defined for it.
//!
//! Such a name is served by a route built on first use: one deployment of that provider and
//! model, the default retry policy, no fallbacks, no rules; priced from the snapshot's pricing
//! table by the upstream model name (unpriced when the table lacks it, exactly like a route's
//! unpriced deployment: it reserves nothing and is costed at zero, and admission logs it once).
//! A route alias that is literally the same string wins: callers see direct addressing only
//! for names no route claims. Whether a key may use a name is the key's allow-list, matched
//! against the whole string (`openai/*`, `openai/gpt-4o-mini`, `*`).
//!
//! The built routes are kept with the snapshot (at most [`MAX_BUILT`]), so a deployment's
//! breaker and latency history live as long as the snapshot serves it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use proto::{ModelPrice, ProviderKind};

use super::compile::Route;
use crate::providers::{Adapter, Deployment};
use crate::routing::Health;

/// Built routes kept per snapshot; past it, a new name is built per request (still served).
pub const MAX_BUILT: usize = 1024;
/// Longest upstream model name accepted.
const MAX_MODEL_LEN: usize = 256;

/// A configured provider, as direct addressing and route compilation use it.
#[derive(Debug)]
pub struct ProviderEntry {
    pub adapter: Arc<Adapter>,
    pub kind: ProviderKind,
    pub health_check: Option<Duration>,
}

/// What a snapshot needs to serve `provider/model` names.
#[derive(Debug, Default)]
pub struct Direct {
    providers: HashMap<String, ProviderEntry>,
    prices: HashMap<String, Arc<ModelPrice>>,
    health: Arc<Health>,
    built: Mutex<HashMap<String, Arc<Route>>>,
    /// The names `/v1/models` offers (see [`listed`]), sorted.
    listed: Vec<String>,
}

impl Direct {
    /// `deployed`: `(provider id, model)` of every route deployment; `aliases`: the routes.
    pub fn new(
        providers: HashMap<String, ProviderEntry>,
        prices: HashMap<String, Arc<ModelPrice>>,
        health: Arc<Health>,
        deployed: &[(String, String)],
        aliases: &[String],
    ) -> Self {
        let listed = listed(&providers, &prices, deployed, aliases);
        Self {
            providers,
            prices,
            health,
            built: Mutex::default(),
            listed,
        }
    }

    /// The configured provider `id`.
    pub fn provider(&self, id: &str) -> Option<&ProviderEntry> {
        self.providers.get(id)
    }

    /// The price of an upstream model, if the pricing table has it.
    pub fn price(&self, model: &str) -> Option<Arc<ModelPrice>> {
        self.prices.get(model).cloned()
    }

    /// The health record of a deployment id (`provider/model`), shared with every route that
    /// serves it.
    pub fn stats(&self, id: &str) -> Arc<crate::routing::select::Stats> {
        self.health.stats_for(id)
    }

    /// The `provider/model` names `/v1/models` offers, in name order.
    pub fn listed(&self) -> &[String] {
        &self.listed
    }

    /// Whether `name` reads as `provider/model` of a configured provider.
    pub fn addresses(&self, name: &str) -> bool {
        split(name).is_some_and(|(provider, _)| self.providers.contains_key(provider))
    }

    /// The route serving `name` as `provider/model`; `None` when `name` has no `/`, names no
    /// configured provider, or its model part is empty, too long or holds control characters.
    pub fn route(&self, name: &str) -> Option<Arc<Route>> {
        let (provider, model) = split(name)?;
        let entry = self.providers.get(provider)?;
        let mut built = self.built.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(route) = built.get(name) {
            return Some(Arc::clone(route));
        }
        let route = Arc::new(self.build(name, provider, model, entry)?);
        if built.len() < MAX_BUILT {
            built.insert(name.to_owned(), Arc::clone(&route));
        }
        Some(route)
    }

    fn build(
        &self,
        name: &str,
        provider: &str,
        model: &str,
        entry: &ProviderEntry,
    ) -> Option<Route> {
        let endpoints = entry
            .adapter
            .endpoints(model)
            .map_err(|e| tracing::warn!(provider, error = %e, "cannot address the provider's model directly"))
            .ok()?;
        let model_json = serde_json::value::to_raw_value(model).ok()?;
        let deployment = Deployment {
            stats: self.stats(name),
            timeout: None,
            health_check: None,
            weight: 1,
            priority: 0,
            id: name.to_owned(),
            provider: Arc::clone(&entry.adapter),
            endpoints,
            model: model.to_owned(),
            model_json,
            rpm: None,
            tpm: None,
            price: self.price(model),
        };
        Some(Route {
            alias: name.to_owned(),
            deployments: vec![deployment],
            timeout: None,
            reserve_output_tokens: None,
            strategy: proto::Strategy::default(),
            fallbacks: Vec::new(),
            retry: crate::routing::attempts::Policy::from(None),
            context_window: None,
            rules: Vec::new(),
        })
    }
}

/// `provider/model` → its two parts, if both are usable.
fn split(name: &str) -> Option<(&str, &str)> {
    let (provider, model) = name.split_once('/')?;
    let usable = !provider.is_empty()
        && !model.is_empty()
        && model.len() <= MAX_MODEL_LEN
        && !model.chars().any(char::is_control);
    usable.then_some((provider, model))
}

/// The `provider/model` names `/v1/models` offers: for each configured provider, every priced
/// model that a route already deploys on it or whose name belongs to the provider's family
/// ([`family`]); names a route alias already has are left out (the alias is listed).
fn listed(
    providers: &HashMap<String, ProviderEntry>,
    prices: &HashMap<String, Arc<ModelPrice>>,
    deployed: &[(String, String)],
    aliases: &[String],
) -> Vec<String> {
    let mut out = BTreeSet::new();
    for (provider, model) in deployed {
        if prices.contains_key(model) && providers.contains_key(provider) {
            out.insert(format!("{provider}/{model}"));
        }
    }
    for (id, entry) in providers {
        for model in prices.keys().filter(|m| family(entry.kind, m)) {
            out.insert(format!("{id}/{model}"));
        }
    }
    out.into_iter()
        .filter(|n| aliases.binary_search(n).is_err())
        .collect()
}

/// Whether a priced model's name is one a provider of `kind` serves under that name. Only the
/// vendors' own APIs are listed by name; Azure (deployment names), Bedrock (model ids), Vertex
/// and self-hosted servers list only what a route deploys on them.
pub fn family(kind: ProviderKind, model: &str) -> bool {
    let prefixes: &[&str] = match kind {
        ProviderKind::Openai => &["gpt-", "o1", "o3", "o4", "text-embedding-", "chatgpt-"],
        ProviderKind::Anthropic => &["claude-"],
        ProviderKind::Gemini => &["gemini-"],
        ProviderKind::Mistral => &["mistral-", "codestral-", "ministral-", "pixtral-"],
        _ => &[],
    };
    prefixes.iter().any(|p| model.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_the_first_slash_and_bad_parts_are_refused() {
        assert_eq!(split("openai/gpt-4o"), Some(("openai", "gpt-4o")));
        assert_eq!(
            split("vllm/meta-llama/Llama-3-8B"),
            Some(("vllm", "meta-llama/Llama-3-8B"))
        );
        for bad in ["gpt-4o", "/gpt-4o", "openai/", "openai/a\nb"] {
            assert_eq!(split(bad), None, "{bad:?}");
        }
        assert_eq!(split(&format!("p/{}", "m".repeat(MAX_MODEL_LEN + 1))), None);
    }

    #[test]
    fn families_claim_their_vendors_models_only() {
        assert!(family(ProviderKind::Openai, "gpt-4o-mini"));
        assert!(family(ProviderKind::Openai, "o4-mini"));
        assert!(!family(ProviderKind::Openai, "claude-sonnet-4-5"));
        assert!(family(ProviderKind::Anthropic, "claude-sonnet-4-5"));
        assert!(family(ProviderKind::Gemini, "gemini-2.5-flash"));
        assert!(!family(ProviderKind::AzureOpenai, "gpt-4o"));
        assert!(!family(ProviderKind::Vllm, "gpt-4o"));
    }
}
