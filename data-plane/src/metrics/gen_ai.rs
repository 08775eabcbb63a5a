//! The OpenTelemetry GenAI metrics (semantic conventions, `gen_ai.*`), in their Prometheus
//! form: dots become underscores and the unit is a suffix (`gen_ai.client.operation.duration`
//! in seconds is `gen_ai_client_operation_duration_seconds`; `{token}` adds none). Buckets are
//! the ones the conventions advise.
//!
//! The gateway is the GenAI *client* of its providers (operation duration, token usage: one
//! observation per request that reached a provider, from its usage event) and the GenAI
//! *server* of its callers (time to first token: arrival to the first chunk the caller got).
//! Labels: `gen_ai_operation_name` (`chat`, `embeddings`), `gen_ai_provider_name` (the
//! conventions' well-known value of the provider's kind), `provider` (the configured provider
//! id, which tells two providers of one kind apart), `gen_ai_request_model` (the upstream
//! model, capped: see [`super::labels`]), `gen_ai_token_type` (`input`, `output`) and, when
//! the request failed, `error_type` (the HTTP status the caller got, or `stream_error` for a
//! stream that broke after its head was sent).

use std::time::Duration;

use metrics::histogram;
use proto::{ProviderKind, UsageEvent};

use super::labels::MODELS;

pub const OPERATION_DURATION: &str = "gen_ai_client_operation_duration_seconds";
pub const TOKEN_USAGE: &str = "gen_ai_client_token_usage";
pub const TIME_TO_FIRST_TOKEN: &str = "gen_ai_server_time_to_first_token_seconds";

pub const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
pub const TOKEN_BUCKETS: &[f64] = &[
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];
pub const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// `gen_ai.provider.name` for a provider kind: the conventions' well-known value where one
/// exists, else the kind's own name.
pub fn provider_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai => "openai",
        ProviderKind::AzureOpenai => "azure.ai.openai",
        ProviderKind::Mistral => "mistral_ai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::VertexAi => "gcp.vertex_ai",
        ProviderKind::Bedrock => "aws.bedrock",
        other @ (ProviderKind::Vllm | ProviderKind::Ollama | ProviderKind::OpenaiCompatible) => {
            other.as_str()
        }
    }
}

/// `gen_ai.operation.name` of an endpoint: every dialect's conversation is a `chat`.
pub fn operation_name(endpoint: &str) -> &'static str {
    match endpoint {
        "embeddings" => "embeddings",
        _ => "chat",
    }
}

/// Records a request that reached a provider, from its usage event. `reported`: the usage is
/// the provider's own report (an estimate is not token usage in the conventions' sense).
pub fn settled(event: &UsageEvent, provider_name: &'static str, reported: bool) {
    let raw_model = event.model.as_deref().unwrap_or_default();
    let provider = event.provider.as_deref().unwrap_or_default();
    let error = error_type(event);
    let operation = operation_name(&event.endpoint);
    // Which series a request records into is part of the key: a series exists only once
    // something was recorded into it (no empty time-to-first-token for complete answers, no
    // token usage for estimates).
    let has_ttft = if event.ttft_ms.is_some() { "ttft" } else { "" };
    let has_tokens = if reported { "tokens" } else { "" };
    let key = [
        operation,
        provider_name,
        provider,
        raw_model,
        error.as_deref().unwrap_or_default(),
        has_ttft,
        has_tokens,
    ];
    let h = super::handles::cached("gen_ai.settled", &key, || {
        let labels = vec![
            ("gen_ai_operation_name", operation.to_owned()),
            ("gen_ai_provider_name", provider_name.to_owned()),
            ("provider", provider.to_owned()),
            ("gen_ai_request_model", MODELS.label(raw_model)),
        ];
        let token = |kind: &str| {
            let mut l = labels.clone();
            l.push(("gen_ai_token_type", kind.to_owned()));
            histogram!(TOKEN_USAGE, &l)
        };
        let tokens = reported.then(|| (token("input"), token("output")));
        let ttft = event
            .ttft_ms
            .map(|_| histogram!(TIME_TO_FIRST_TOKEN, &labels));
        let mut labels = labels;
        if let Some(error) = &error {
            labels.push(("error_type", error.clone()));
        }
        Settled {
            ttft,
            tokens,
            duration: histogram!(OPERATION_DURATION, &labels),
        }
    });
    if let (Some(ttft), Some(h)) = (event.ttft_ms, &h.ttft) {
        h.record(millis(ttft));
    }
    if let Some((input, output)) = &h.tokens {
        input.record(event.usage.prompt_tokens as f64);
        output.record(event.usage.completion_tokens as f64);
    }
    h.duration.record(millis(event.latency_ms));
}

/// The series [`settled`] records into for one set of labels.
#[derive(Clone)]
struct Settled {
    ttft: Option<metrics::Histogram>,
    tokens: Option<(metrics::Histogram, metrics::Histogram)>,
    duration: metrics::Histogram,
}

/// `error.type` of a failed request: the status its caller got, or `stream_error` when the
/// caller got a stream's 200 head before it broke.
fn error_type(event: &UsageEvent) -> Option<String> {
    match event.outcome {
        proto::Outcome::Ok => None,
        _ if event.status < 400 => Some("stream_error".to_owned()),
        _ => Some(event.status.to_string()),
    }
}

fn millis(ms: u64) -> f64 {
    Duration::from_millis(ms).as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_provider_names() {
        assert_eq!(provider_name(ProviderKind::AzureOpenai), "azure.ai.openai");
        assert_eq!(provider_name(ProviderKind::Bedrock), "aws.bedrock");
        assert_eq!(provider_name(ProviderKind::Vllm), "vllm");
        assert_eq!(operation_name("messages"), "chat");
        assert_eq!(operation_name("embeddings"), "embeddings");
    }
}
