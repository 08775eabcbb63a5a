//! Building the one [`UsageEvent`] of a request.
//!
//! A [`Meter`] is made once the request is authenticated, routed and tagged (before
//! admission), travels with the request (into the stream relay for streams) and is consumed by
//! exactly one of [`Meter::refused`] or [`Meter::finish`], so a request cannot yield two
//! events. Usage is the provider's report, unchanged; only a stream that ended without one
//! gets an estimate (see `estimate`), flagged `usage_estimated`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proto::{ModelPrice, Outcome, Refusal, TokenUsage, UsageEvent};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::tags::Tags;
use crate::admission::Refused;
use crate::metrics;
use crate::providers::{Deployment, Usage};
use crate::snapshot::KeyPolicy;

/// What the event needs to know about a request from its start.
#[derive(Debug)]
pub struct Meter {
    /// The event id, also the request id (`x-request-id`).
    id: Uuid,
    time_ms: i64,
    started: Instant,
    proxy: Arc<str>,
    key: Arc<KeyPolicy>,
    tags: Tags,
    endpoint: &'static str,
    alias: String,
    provider: String,
    /// `gen_ai.provider.name` of the provider's kind.
    gen_ai_provider: &'static str,
    deployment: String,
    model: String,
    price: Option<Arc<ModelPrice>>,
    streamed: bool,
    prompt_estimate: u64,
    /// Attempts made so far (this one included) and why this deployment was chosen.
    attempts: u32,
    route_reason: Option<&'static str>,
    log: proto::LogPayloads,
    /// Guardrail detections per class.
    guardrail: std::collections::BTreeMap<String, u64>,
}

/// Where one request started and what it asked for.
#[derive(Debug)]
pub struct Start<'a> {
    /// The request id (UUIDv7) and when the request arrived.
    pub id: Uuid,
    pub started: Instant,
    pub proxy: &'a Arc<str>,
    pub key: &'a Arc<KeyPolicy>,
    pub tags: Tags,
    /// `chat` or `embeddings`.
    pub endpoint: &'static str,
    pub alias: &'a str,
    pub deployment: &'a Deployment,
    pub streamed: bool,
    /// The pre-call prompt estimate (used only if a stream ends without usage).
    pub prompt_estimate: u64,
    /// What the request log keeps of it.
    pub log: proto::LogPayloads,
}

/// How a request that reached a provider ended.
#[derive(Debug, Clone, Copy)]
pub struct End {
    /// Status the client got (200 for a stream that broke after it started).
    pub status: u16,
    /// The provider answered in full.
    pub ok: bool,
    /// Usage as the provider reported it.
    pub usage: Option<Usage>,
    /// For streams without a usage report: estimated completion tokens.
    pub estimated_completion: Option<u64>,
    /// Arrival to the first chunk handed to the client.
    pub ttft: Option<Duration>,
    pub abandoned: bool,
}

impl Meter {
    pub fn new(start: Start<'_>) -> Self {
        let d = start.deployment;
        Self {
            id: start.id,
            time_ms: arrival_ms(start.started),
            started: start.started,
            proxy: Arc::clone(start.proxy),
            key: Arc::clone(start.key),
            tags: start.tags,
            endpoint: start.endpoint,
            alias: start.alias.to_owned(),
            provider: d.provider.id().to_owned(),
            gen_ai_provider: metrics::gen_ai::provider_name(d.provider.kind()),
            deployment: d.id.clone(),
            model: d.model.clone(),
            price: d.price.clone(),
            streamed: start.streamed,
            prompt_estimate: start.prompt_estimate,
            attempts: 1,
            route_reason: None,
            log: start.log,
            guardrail: Default::default(),
        }
    }

    /// Records that this is attempt `attempt` of the request (earlier ones failed over to
    /// this deployment without an event of their own) and why its deployment was chosen.
    pub fn routed(&mut self, attempt: u32, reason: &'static str) {
        self.attempts = attempt.max(1);
        self.route_reason = Some(reason);
    }

    /// Adds guardrail detections (per class) to the event.
    pub fn guarded<'a>(&mut self, counts: impl IntoIterator<Item = (&'a String, &'a u64)>) {
        for (class, n) in counts {
            *self.guardrail.entry(class.clone()).or_default() += n;
        }
    }

    /// The effective tags (for admission).
    pub fn tags(&self) -> &Tags {
        &self.tags
    }

    /// Cost of `usage` at the deployment's snapshot price; zero when it has none.
    pub fn cost(&self, usage: &TokenUsage) -> Decimal {
        self.price.as_ref().map_or(Decimal::ZERO, |p| p.cost(usage))
    }

    /// The event of a request admission refused: no provider, no usage.
    pub fn refused(self, refused: &Refused) -> UsageEvent {
        let status = refused.status.as_u16();
        let refusal = Refusal {
            code: refused.code.to_owned(),
            limit: refused.limit.clone(),
        };
        let mut event = self.base(Outcome::Refused, status);
        event.refused = Some(refusal);
        event.provider = None;
        event.deployment = None;
        event.model = None;
        event.attempts = 0;
        metrics::usage_event("refused");
        event
    }

    /// The event of a request that reached a provider.
    pub fn finish(self, end: End) -> UsageEvent {
        let outcome = if end.ok {
            Outcome::Ok
        } else {
            Outcome::UpstreamError
        };
        let (usage, estimated) = match (end.usage, end.estimated_completion) {
            (Some(u), _) => (token_usage(u), false),
            (None, Some(completion)) => (
                TokenUsage {
                    prompt_tokens: self.prompt_estimate,
                    completion_tokens: completion,
                    ..TokenUsage::default()
                },
                true,
            ),
            (None, None) => (TokenUsage::default(), false),
        };
        let cost = self.cost(&usage);
        let gen_ai_provider = self.gen_ai_provider;
        let mut event = self.base(outcome, end.status);
        event.usage = usage;
        event.usage_estimated = estimated;
        event.cost_usd = cost;
        event.ttft_ms = end.ttft.map(millis);
        event.abandoned = end.abandoned;
        metrics::usage_event(if end.ok { "ok" } else { "upstream_error" });
        metrics::gen_ai::settled(&event, gen_ai_provider, end.usage.is_some());
        event
    }

    /// The event of a request answered from the response cache: no provider was called, so
    /// no attempt and no cost; `usage` is the stored answer's, and its cost at this
    /// deployment's price is what the hit saved.
    pub fn cache_hit(mut self, usage: TokenUsage) -> UsageEvent {
        let saved = self.cost(&usage);
        self.attempts = 0;
        let mut event = self.base(Outcome::Ok, 200);
        event.usage = usage;
        event.cache_hit = true;
        event.saved_cost_usd = saved;
        event.route_reason = Some("cache".to_owned());
        metrics::usage_event("ok");
        event
    }

    fn base(self, outcome: Outcome, status: u16) -> UsageEvent {
        UsageEvent {
            id: self.id.to_string(),
            time_ms: self.time_ms,
            proxy: self.proxy.to_string(),
            key_id: self.key.id.clone(),
            key_name: Some(self.key.name.clone()),
            team: self.key.team.clone(),
            tags: self.tags,
            endpoint: self.endpoint.to_owned(),
            alias: self.alias,
            provider: Some(self.provider),
            deployment: Some(self.deployment),
            model: Some(self.model),
            usage: TokenUsage::default(),
            usage_estimated: false,
            cost_usd: Decimal::ZERO,
            latency_ms: millis(self.started.elapsed()),
            ttft_ms: None,
            status,
            outcome,
            refused: None,
            streamed: self.streamed,
            abandoned: false,
            attempts: self.attempts,
            fallbacks: self.attempts.saturating_sub(1),
            cache_hit: false,
            saved_cost_usd: Decimal::ZERO,
            route_reason: self.route_reason.map(str::to_owned),
            log: self.log,
            guardrail: self.guardrail,
        }
    }
}

/// The provider's report in the event's shape.
pub fn token_usage(u: Usage) -> TokenUsage {
    TokenUsage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        cached_input_tokens: u.cached_tokens,
        reasoning_tokens: u.reasoning_tokens,
        cache_write_5m_tokens: u.cache_write_5m_tokens,
        cache_write_1h_tokens: u.cache_write_1h_tokens,
    }
}

/// Prompt plus completion tokens (what admission settles).
pub fn total_tokens(u: &TokenUsage) -> u64 {
    u.prompt_tokens + u.completion_tokens
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Unix milliseconds at `started` (now minus the time since).
fn arrival_ms(started: Instant) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let at = now.saturating_sub(started.elapsed());
    i64::try_from(at.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::compile;

    const KEY_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000001";

    fn fixture() -> crate::snapshot::CompiledSnapshot {
        let s: proto::Snapshot = serde_yaml::from_str(&format!(
            r#"
providers: [{{id: p, kind: vllm, base_url: "http://127.0.0.1:1/v1"}}]
routes:
  - {{alias: chat, deployments: [{{provider: p, model: m}}]}}
keys:
  - {{name: k, id: key-1, team: t1, sha256: "{KEY_HASH}", models: ["*"], tags: {{env: prod}}}}
pricing:
  - {{model: m, input_per_mtok: "2", output_per_mtok: "10", cached_input_per_mtok: "1",
     cache_write_5m_per_mtok: "2.5", cache_write_1h_per_mtok: "4"}}
"#
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        compile(s, &crate::snapshot::Context::default()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn meter(snapshot: &crate::snapshot::CompiledSnapshot, streamed: bool) -> Meter {
        let mut digest = [0u8; 32];
        digest[31] = 1;
        let key = snapshot
            .key(&digest)
            .unwrap_or_else(|| panic!("no key"))
            .clone();
        let route = snapshot.route("chat").unwrap_or_else(|| panic!("no route"));
        let deployment = route.primary().unwrap_or_else(|| panic!("no deployment"));
        Meter::new(Start {
            id: Uuid::now_v7(),
            started: Instant::now(),
            proxy: &Arc::from("proxy-1"),
            key: &key,
            tags: key.tags.clone(),
            endpoint: "chat",
            alias: "chat",
            deployment,
            streamed,
            prompt_estimate: 40,
            log: proto::LogPayloads::Metadata,
        })
    }

    #[test]
    fn a_served_request_carries_the_reported_usage_and_its_cost() {
        let s = fixture();
        let event = meter(&s, false).finish(End {
            status: 200,
            ok: true,
            usage: Some(Usage {
                prompt_tokens: 1_000,
                completion_tokens: 100,
                cached_tokens: 400,
                reasoning_tokens: 10,
                cache_write_5m_tokens: 100,
                cache_write_1h_tokens: 50,
            }),
            estimated_completion: None,
            ttft: None,
            abandoned: false,
        });
        assert_eq!(event.outcome, Outcome::Ok);
        assert_eq!(
            event.usage,
            TokenUsage {
                prompt_tokens: 1_000,
                completion_tokens: 100,
                cached_input_tokens: 400,
                reasoning_tokens: 10,
                cache_write_5m_tokens: 100,
                cache_write_1h_tokens: 50,
            }
        );
        // 450 × 2 + 400 × 1 + 100 × 2.5 + 50 × 4 + 100 × 10 (reasoning is output) = 2750 per
        // million.
        assert_eq!(event.cost_usd, Decimal::new(275, 5));
        assert!(!event.usage_estimated);
        assert_eq!(
            (
                event.key_id.as_deref(),
                event.key_name.as_deref(),
                event.team.as_deref()
            ),
            (Some("key-1"), Some("k"), Some("t1"))
        );
        assert_eq!(event.tags["env"], "prod");
        assert_eq!(
            (
                event.provider.as_deref(),
                event.deployment.as_deref(),
                event.model.as_deref()
            ),
            (Some("p"), Some("p/m"), Some("m"))
        );
        assert_eq!(
            (event.attempts, event.fallbacks, event.cache_hit),
            (1, 0, false)
        );
        assert_eq!(event.proxy, "proxy-1");
        assert!(Uuid::parse_str(&event.id).is_ok_and(|u| u.get_version_num() == 7));
        let now = arrival_ms(Instant::now());
        assert!((now - event.time_ms).abs() < 5_000);
    }

    #[test]
    fn a_stream_without_a_report_is_estimated() {
        let s = fixture();
        let event = meter(&s, true).finish(End {
            status: 200,
            ok: false,
            usage: None,
            estimated_completion: Some(7),
            ttft: Some(Duration::from_millis(12)),
            abandoned: true,
        });
        assert_eq!(event.outcome, Outcome::UpstreamError);
        assert!(event.usage_estimated && event.streamed && event.abandoned);
        assert_eq!(
            (event.usage.prompt_tokens, event.usage.completion_tokens),
            (40, 7)
        );
        assert_eq!(event.ttft_ms, Some(12));
        let failed = meter(&s, false).finish(End {
            status: 502,
            ok: false,
            usage: None,
            estimated_completion: None,
            ttft: None,
            abandoned: false,
        });
        assert_eq!(failed.usage, TokenUsage::default());
        assert_eq!(failed.cost_usd, Decimal::ZERO);
        assert_eq!(failed.status, 502);
    }

    #[test]
    fn a_refusal_names_its_limit_and_no_provider() {
        let s = fixture();
        let refused = Refused {
            status: http::StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limit_exceeded",
            limit: "key:key-1 rpm".into(),
            message: "slow down".into(),
            retry_after: None,
            headers: Vec::new(),
        };
        let event = meter(&s, false).refused(&refused);
        assert_eq!(event.outcome, Outcome::Refused);
        assert_eq!(event.status, 429);
        assert_eq!(event.attempts, 0);
        assert_eq!(event.provider, None);
        assert_eq!(
            event.refused,
            Some(Refusal {
                code: "rate_limit_exceeded".into(),
                limit: "key:key-1 rpm".into()
            })
        );
        // The JSON the publisher sends parses back to the same event.
        let json = serde_json::to_vec(&event).unwrap_or_default();
        assert_eq!(
            serde_json::from_slice::<UsageEvent>(&json).ok(),
            Some(event)
        );
    }
}
