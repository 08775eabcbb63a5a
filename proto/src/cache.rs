//! Response-cache policies as they travel in the snapshot, and the names of what the cache
//! keeps in NATS.
//!
//! A policy says whether answers are cached for the requests it applies to (by key, route or
//! team), for how long, how large an entry may be, which finish reasons may be stored and
//! whether an entry is shared beyond the team that caused it. Its `epoch` grows each time the
//! policy's cache is purged: it is part of every entry's key, so a purge makes every older
//! entry unreachable on every proxy as soon as the snapshot arrives.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// JetStream key-value bucket of exact-cache entries, shared by every proxy.
pub const CACHE_KV_BUCKET: &str = "switchyard_cache";
/// The longest TTL a policy may set (7 days): the bucket's `max_age`, since nats-server 2.9
/// has no per-message TTL; each entry carries its own expiry, checked on read.
pub const CACHE_MAX_TTL_SECS: u64 = 7 * 24 * 3600;
/// The largest entry a policy may allow (NATS's default maximum payload is 1 MiB).
pub const CACHE_MAX_ENTRY_BYTES: u64 = 1 << 20;

/// One cache policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachePolicy {
    /// Stable id (letters, digits, `-`, `_`, `.`).
    pub id: String,
    /// The team that owns the policy: it then applies only to that team's keys, whatever it
    /// names. `None`: a global policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Off keeps the policy (and so shadows less specific ones) without caching.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// What it applies to; all empty: every request.
    #[serde(default)]
    pub applies_to: CacheTargets,
    /// How long an entry answers, in seconds (1 to [`CACHE_MAX_TTL_SECS`]).
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
    /// The largest answer stored, in bytes (its internal JSON form).
    #[serde(default = "default_max_entry")]
    pub max_entry_bytes: u64,
    /// Finish reasons (OpenAI's terms: `stop`, `length`, `tool_calls`, `content_filter`) whose
    /// answers may be stored.
    #[serde(default = "default_finish_reasons")]
    pub finish_reasons: Vec<String>,
    /// Entries answer every team's requests; by default an entry answers only the team whose
    /// request made it.
    #[serde(default)]
    pub shared: bool,
    /// Grows with each purge; part of every entry's key.
    #[serde(default)]
    pub epoch: u64,
    /// Semantic matching: a prompt similar enough to a cached one is answered with its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<SemanticSettings>,
}

/// What a policy applies to. A request takes the most specific policy: one naming its key,
/// else its route, else its team, else one naming nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheTargets {
    /// Key ids or names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Team ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
    /// Route aliases (the alias the caller asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

impl CacheTargets {
    /// Names nothing: the policy applies to every request.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.teams.is_empty() && self.routes.is_empty()
    }
}

/// Semantic-cache settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemanticSettings {
    #[serde(default)]
    pub enabled: bool,
    /// Cosine similarity at or above which a stored answer is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Decimal>,
    /// A route (alias) that serves `/v1/embeddings`: prompts are embedded by it, as a request
    /// of the caller's key, metered like any other. `None`: the proxy's in-process model.
    /// Each embedder's vectors form their own index: the two never answer for each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_route: Option<String>,
}

fn yes() -> bool {
    true
}

fn default_ttl() -> u64 {
    300
}

fn default_max_entry() -> u64 {
    256 * 1024
}

/// `stop` and `tool_calls`: an answer cut by `length` or a filter is not worth repeating.
pub fn default_finish_reasons() -> Vec<String> {
    vec!["stop".into(), "tool_calls".into()]
}

impl CachePolicy {
    /// A policy applying to everything, with the defaults.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            team: None,
            enabled: true,
            applies_to: CacheTargets::default(),
            ttl_secs: default_ttl(),
            max_entry_bytes: default_max_entry(),
            finish_reasons: default_finish_reasons(),
            shared: false,
            epoch: 0,
            semantic: None,
        }
    }

    /// Checks the policy's own fields; `at` is its path.
    pub fn problems(&self, at: &str) -> Vec<ValidationError> {
        let mut errors = Vec::new();
        let mut push = |field: &str, reason: String| {
            errors.push(ValidationError {
                path: format!("{at}.{field}"),
                reason,
            })
        };
        if !(1..=CACHE_MAX_TTL_SECS).contains(&self.ttl_secs) {
            push(
                "ttl_secs",
                format!("must be between 1 and {CACHE_MAX_TTL_SECS}"),
            );
        }
        if !(1..=CACHE_MAX_ENTRY_BYTES).contains(&self.max_entry_bytes) {
            push(
                "max_entry_bytes",
                format!("must be between 1 and {CACHE_MAX_ENTRY_BYTES}"),
            );
        }
        for (i, reason) in self.finish_reasons.iter().enumerate() {
            if !matches!(
                reason.as_str(),
                "stop" | "length" | "tool_calls" | "content_filter" | "function_call"
            ) {
                push(
                    &format!("finish_reasons[{i}]"),
                    format!("`{reason}` is not a finish reason (stop, length, tool_calls, content_filter, function_call)"),
                );
            }
        }
        if let Some(t) = self.semantic.as_ref().and_then(|s| s.threshold) {
            if t <= Decimal::ZERO || t > Decimal::ONE {
                push("semantic.threshold", "must be in (0, 1]".into());
            }
        }
        if let Some(route) = self
            .semantic
            .as_ref()
            .and_then(|s| s.embedding_route.as_ref())
        {
            if route.trim().is_empty() || route.len() > 256 {
                push(
                    "semantic.embedding_route",
                    "must be a route alias (1 to 256 characters)".into(),
                );
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_policy_takes_the_defaults_and_its_json_is_locked() {
        let p: CachePolicy = serde_json::from_str(r#"{"id":"p"}"#).unwrap();
        assert_eq!(p, CachePolicy::new("p"));
        assert!(p.problems("cache_policies[0]").is_empty());
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"id":"p","enabled":true,"applies_to":{},"ttl_secs":300,
                "max_entry_bytes":262144,"finish_reasons":["stop","tool_calls"],"shared":false,"epoch":0})
        );
        let bad = CachePolicy {
            ttl_secs: 0,
            finish_reasons: vec!["done".into()],
            ..CachePolicy::new("p")
        };
        let paths: Vec<String> = bad.problems("x").into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["x.ttl_secs", "x.finish_reasons[0]"]);
    }
}
