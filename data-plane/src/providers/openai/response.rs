//! Complete (non-streaming) OpenAI-dialect responses: validated and measured, passed on as is.

use bytes::Bytes;
use serde::Deserialize;

use crate::providers::{JsonReply, OpenAiUsage, UpstreamError};

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

fn probe(provider: &str, body: Bytes, what: &'static str) -> Result<JsonReply, UpstreamError> {
    match serde_json::from_slice::<Probe>(&body) {
        Ok(p) => Ok(JsonReply {
            usage: p.usage.map(Into::into),
            body,
        }),
        Err(_) => Err(UpstreamError::BadResponse {
            provider: provider.to_owned(),
            detail: what,
        }),
    }
}

/// A chat completion: must be a JSON object; its usage is read.
pub fn chat(provider: &str, body: Bytes) -> Result<JsonReply, UpstreamError> {
    probe(provider, body, "chat completion is not a JSON object")
}

/// An embeddings list: must be a JSON object; its usage is read.
pub fn embeddings(provider: &str, body: Bytes) -> Result<JsonReply, UpstreamError> {
    probe(provider, body, "embeddings response is not a JSON object")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Usage;

    #[test]
    fn usage_is_read_from_a_reference_response() {
        // Shape from OpenAI's API reference (chat completion object).
        let body = Bytes::from_static(br#"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion","created":1741569952,"model":"gpt-4.1-2025-04-14","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I assist you today?","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":3,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default"}"#);
        let reply = chat("p", body.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            reply.usage,
            Some(Usage {
                prompt_tokens: 19,
                completion_tokens: 10,
                cached_tokens: 3,
                reasoning_tokens: 2,
                ..Usage::default()
            })
        );
        assert_eq!(reply.body, body, "the body is passed on byte for byte");
    }

    #[test]
    fn garbage_is_a_bad_response() {
        assert!(matches!(
            chat("p", Bytes::from_static(b"<html>oops")),
            Err(UpstreamError::BadResponse { .. })
        ));
        assert!(matches!(
            embeddings("p", Bytes::from_static(b"[1,2]")),
            Err(UpstreamError::BadResponse { .. })
        ));
    }
}
