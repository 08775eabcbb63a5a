//! Usage events: one per request that reached a provider, and one per request refused by
//! admission. Data planes publish them to JetStream with acknowledgement (spooling to disk
//! while NATS is away); the control plane folds them into `usage_events` and `spend_ledger`.
//!
//! The event id is a UUIDv7 chosen once per request and sent as the JetStream `Nats-Msg-Id`,
//! so a replayed event is dropped by the stream's duplicate window and, past it, by the
//! primary key of `usage_events`.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// JetStream stream holding usage events.
pub const USAGE_STREAM: &str = "SWITCHYARD_USAGE";
/// Subjects of [`USAGE_STREAM`]: `switchyard.usage.<team id or "none">`.
pub const USAGE_SUBJECTS: &str = "switchyard.usage.>";
/// Durable pull consumer shared by every control-plane replica that folds usage.
pub const USAGE_FOLD_CONSUMER: &str = "switchyard-fold";
/// Header a data plane sets on an event it publishes from its on-disk spool (a replay).
pub const USAGE_REPLAYED_HEADER: &str = "Switchyard-Replayed";
/// Subject on which the control plane announces a soft budget crossing ([`BudgetAlert`]).
pub const BUDGET_ALERT_SUBJECT: &str = "switchyard.alert.budget";

/// The subject an event is published on.
pub fn usage_subject(team: Option<&str>) -> String {
    format!("switchyard.usage.{}", team.unwrap_or("none"))
}

/// Tokens of one request as the provider reported them (or as estimated, see
/// [`UsageEvent::usage_estimated`]).
///
/// `prompt_tokens` is every input token, cache reads and cache writes included, whatever the
/// provider's own convention (Anthropic's and Bedrock's `input_tokens` exclude them and are
/// added back; OpenAI's and Gemini's prompt counts include cache reads already). The cache
/// counts are subsets of it, and disjoint: [`TokenUsage::classes`] splits the whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    /// Prompt tokens read from the provider's cache (a subset of `prompt_tokens`): OpenAI
    /// `cached_tokens`, Anthropic `cache_read_input_tokens`, Bedrock `cacheReadInputTokens`,
    /// Gemini `cachedContentTokenCount`.
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Reasoning tokens (a subset of `completion_tokens`, billed as output).
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// Prompt tokens written to the provider's cache to be kept 5 minutes (a subset of
    /// `prompt_tokens`): Anthropic `cache_creation.ephemeral_5m_input_tokens` (or the whole
    /// `cache_creation_input_tokens` when it comes without a split), Bedrock
    /// `cacheWriteInputTokens`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_5m_tokens: u64,
    /// Prompt tokens written to the provider's cache to be kept 1 hour (a subset of
    /// `prompt_tokens`): Anthropic `cache_creation.ephemeral_1h_input_tokens`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_1h_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A request's tokens split into the classes a provider bills at different rates; the five
/// add up to prompt plus completion tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenClasses {
    /// Prompt tokens neither read from nor written to the cache.
    pub input: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    /// Completion tokens, reasoning included.
    pub output: u64,
}

impl TokenUsage {
    /// The names of the six counters, in field order: the columns of `usage_events` and
    /// `spend_ledger`, and the fields of the admin API's usage and spend views.
    pub const COUNTERS: [&'static str; 6] = [
        "prompt_tokens",
        "completion_tokens",
        "cached_input_tokens",
        "reasoning_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
    ];

    /// The six counters, in the order of [`TokenUsage::COUNTERS`].
    pub fn counts(&self) -> [u64; 6] {
        [
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_input_tokens,
            self.reasoning_tokens,
            self.cache_write_5m_tokens,
            self.cache_write_1h_tokens,
        ]
    }

    /// The disjoint classes. Cache counts that add up to more than `prompt_tokens` (a provider
    /// bug) are cut in the order reads, 5-minute writes, 1-hour writes, so the classes never
    /// count more input than there was.
    pub fn classes(&self) -> TokenClasses {
        let mut left = self.prompt_tokens;
        let mut take = |n: u64| {
            let n = n.min(left);
            left -= n;
            n
        };
        let cache_read = take(self.cached_input_tokens);
        let cache_write_5m = take(self.cache_write_5m_tokens);
        let cache_write_1h = take(self.cache_write_1h_tokens);
        TokenClasses {
            input: left,
            cache_read,
            cache_write_5m,
            cache_write_1h,
            output: self.completion_tokens,
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The provider answered in full.
    Ok,
    /// The provider refused or failed (HTTP error, timeout, broken stream).
    UpstreamError,
    /// Refused by admission (budget, rate limit, per-request cap) before any provider call.
    Refused,
}

/// Why admission refused a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// `budget_exceeded`, `budget_unavailable`, `rate_limit_exceeded` or `request_cost_cap`.
    pub code: String,
    /// The budget or limit that refused it (budget name, or `key:<id> rpm`…).
    pub limit: String,
}

/// One metered request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// UUIDv7, unique per request.
    pub id: String,
    /// When the request arrived (Unix milliseconds, UTC).
    pub time_ms: i64,
    /// Id of the proxy process that served it.
    pub proxy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Caller tags (header, `metadata`, `user`) with the key's forced tags on top.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// `chat`, `embeddings` or `messages`.
    pub endpoint: String,
    /// The model alias the caller asked for.
    pub alias: String,
    /// Provider id of the deployment that answered (the last one tried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Deployment id (`provider/model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Upstream model name; the ledger and pricing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub usage: TokenUsage,
    /// The provider sent no usage report (stream broken or cut); `usage` was estimated from
    /// what was streamed.
    #[serde(default)]
    pub usage_estimated: bool,
    /// Cost at the proxy's snapshot prices (the ledger recomputes it from the pricing table
    /// valid at `time_ms`).
    #[serde(default)]
    pub cost_usd: Decimal,
    /// Arrival to last byte, in milliseconds.
    pub latency_ms: u64,
    /// Arrival to first streamed byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    /// HTTP status the client got (200 for a stream that broke after it started).
    pub status: u16,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
    #[serde(default)]
    pub streamed: bool,
    /// The client left before the end of the stream (it was still read to the end).
    #[serde(default)]
    pub abandoned: bool,
    /// Upstream attempts made (0 when refused).
    #[serde(default)]
    pub attempts: u32,
    /// Attempts that moved to another deployment.
    #[serde(default)]
    pub fallbacks: u32,
    /// Answered from the gateway's response cache: no provider was called, `cost_usd` is
    /// zero and `usage` is the stored answer's.
    #[serde(default)]
    pub cache_hit: bool,
    /// On a cache hit: what the stored answer cost when the provider made it, at the proxy's
    /// snapshot prices (the fold recomputes it from the pricing table).
    #[serde(default, skip_serializing_if = "Decimal::is_zero")]
    pub saved_cost_usd: Decimal,
    /// Why the deployment that answered was chosen: the route's strategy (`weighted`,
    /// `ordered`, `lowest_latency`, `least_inflight`, `cheapest`), `explore`, `all_open` or
    /// `fallback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_reason: Option<String>,
    /// What the request log keeps of it (`metadata` when absent): `off` requests are metered
    /// but not listed; `full` ones have a [`crate::RequestPayload`] with the same id.
    #[serde(default, skip_serializing_if = "crate::LogPayloads::is_metadata")]
    pub log: crate::LogPayloads,
    /// Guardrail detections in the request (and, with output checks, its answer) per class:
    /// counts, never values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub guardrail: BTreeMap<String, u64>,
}

/// Announced when spend under a soft budget crosses its amount (once per budget, scope value
/// and period).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetAlert {
    pub budget_id: String,
    pub budget_name: String,
    pub scope_value: String,
    pub period_start: i64,
    pub amount_usd: Decimal,
    pub spent_usd: Decimal,
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD_EVENT: &str = r#"{"id":"01936f5e-0000-7000-8000-000000000001","time_ms":1795275000000,"proxy":"p","endpoint":"messages","alias":"claude","model":"claude-sonnet-4-5","usage":{"prompt_tokens":100,"completion_tokens":5,"cached_input_tokens":40,"reasoning_tokens":0},"cost_usd":"0.001","latency_ms":3,"status":200,"outcome":"ok"}"#;

    #[test]
    fn an_event_without_cache_writes_reads_and_writes_as_before() {
        let e: UsageEvent = serde_json::from_str(OLD_EVENT).unwrap();
        assert_eq!(e.usage.cache_write_5m_tokens, 0);
        assert_eq!(e.usage.cache_write_1h_tokens, 0);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json["usage"],
            serde_json::json!({"prompt_tokens":100,"completion_tokens":5,"cached_input_tokens":40,"reasoning_tokens":0})
        );
    }

    #[test]
    fn cache_writes_travel_split_by_lifetime() {
        let mut e: UsageEvent = serde_json::from_str(OLD_EVENT).unwrap();
        e.usage.cache_write_5m_tokens = 30;
        e.usage.cache_write_1h_tokens = 20;
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json["usage"],
            serde_json::json!({"prompt_tokens":100,"completion_tokens":5,"cached_input_tokens":40,
                               "reasoning_tokens":0,"cache_write_5m_tokens":30,"cache_write_1h_tokens":20})
        );
        let back: UsageEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
        assert_eq!(
            back.usage.classes(),
            TokenClasses {
                input: 10,
                cache_read: 40,
                cache_write_5m: 30,
                cache_write_1h: 20,
                output: 5
            }
        );
    }

    #[test]
    fn classes_never_count_more_input_than_the_prompt() {
        let u = TokenUsage {
            prompt_tokens: 50,
            completion_tokens: 1,
            cached_input_tokens: 40,
            cache_write_5m_tokens: 30,
            cache_write_1h_tokens: 20,
            ..TokenUsage::default()
        };
        let c = u.classes();
        assert_eq!(
            (c.input, c.cache_read, c.cache_write_5m, c.cache_write_1h),
            (0, 40, 10, 0)
        );
    }
}
