//! Pass-through for clients that already speak Anthropic's Messages API (`/v1/messages`
//! routed to an Anthropic deployment): the client's body goes upstream byte for byte except
//! for the value of its top-level `model` (spliced in place: key order, whitespace, escapes and
//! fields the gateway does not know are kept as sent), with the client's `anthropic-version` /
//! `anthropic-beta` headers, and the answer comes back byte for byte. Only usage is read on the way: from the message's `usage`, or in a
//! stream from `message_start` (input, cache) and `message_delta` (output), which is the chunk
//! that carries it to the relay's metering.
//!
//! A stream that ends without `message_stop` or with an `error` event ends with an error, so
//! the relay reports it in the client's dialect and meters it as failed.

use std::time::Instant;

use http::{HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;

use super::response::AnthropicUsage;
use super::{error, Anthropic};
use crate::providers::forward::{frame, with_model};
use crate::providers::sse::{SseBody, SseEvent};
use crate::providers::stream::{drive, interrupted, Translate};
use crate::providers::{
    Call, ChatReply, Chunk, ChunkStream, JsonReply, NativeRequest, UpstreamError,
};

/// The client headers that travel upstream (they replace the adapter's defaults of the same
/// name).
const FORWARDED: [HeaderName; 2] = [
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("anthropic-beta"),
];

/// The client's headers of [`FORWARDED`] it sent, to send upstream.
pub(super) fn forwarded_headers(client: &http::HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    FORWARDED
        .iter()
        .filter_map(|name| Some((name.clone(), client.get(name)?.clone())))
        .collect()
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    #[serde(default)]
    message: Option<Box<Probe>>,
    #[serde(default)]
    error: Option<ErrorProbe>,
}

#[derive(Deserialize)]
struct ErrorProbe {
    #[serde(default)]
    message: Option<String>,
}

impl Anthropic {
    /// Sends the client's own Messages request; the value of `model` is replaced by the
    /// deployment's.
    pub async fn forward(
        &self,
        call: &Call<'_>,
        request: NativeRequest<'_>,
    ) -> Result<ChatReply, UpstreamError> {
        let start = Instant::now();
        let up = &self.upstream;
        let headers = forwarded_headers(request.headers);
        let body = with_model(&request.body, call.deployment.model_json.get())
            .ok_or_else(|| up.bad("request could not be encoded"))?;
        let url = call.deployment.endpoints.chat.clone();
        let response = up
            .post_with(call, url, body, &headers, error::adapt)
            .await?;
        if request.stream {
            let response = up.event_stream(response)?;
            return Ok(ChatReply::Stream(events(up.id.clone(), response)));
        }
        let body = up.read_body(call, start, response).await?;
        let usage = serde_json::from_slice::<Probe>(&body)
            .ok()
            .and_then(|p| p.usage)
            .map(AnthropicUsage::normalised);
        Ok(ChatReply::Json(JsonReply { body, usage }))
    }
}

/// The upstream's events as chunks whose `data` is the SSE frame to write as it is.
fn events(provider: String, response: reqwest::Response) -> ChunkStream {
    let verbatim = Verbatim {
        usage: AnthropicUsage::default(),
        stopped: false,
    };
    drive(provider, SseBody::new(response), verbatim)
}

/// Relays each event as it came, reading only its usage.
struct Verbatim {
    usage: AnthropicUsage,
    /// `message_stop` was seen.
    stopped: bool,
}

impl Translate<SseEvent> for Verbatim {
    fn translate(&mut self, provider: &str, event: &SseEvent) -> Result<Vec<Chunk>, UpstreamError> {
        let (chunk, last) = chunk(provider, &mut self.usage, event);
        self.stopped = last;
        chunk.map(|c| vec![c])
    }

    fn stopped(&self) -> bool {
        self.stopped
    }

    /// A body that ends without `message_stop` broke off.
    fn finish(&mut self, provider: &str) -> Result<Vec<Chunk>, UpstreamError> {
        Err(interrupted(provider))
    }
}

/// One upstream event → the chunk to relay; `true` once the stream is over.
fn chunk(
    provider: &str,
    usage: &mut AnthropicUsage,
    event: &SseEvent,
) -> (Result<Chunk, UpstreamError>, bool) {
    let probe = serde_json::from_slice::<Probe>(&event.data).ok();
    let kind = probe.as_ref().and_then(|p| p.kind.as_deref());
    let mut reported = None;
    match kind {
        Some("message_start") => {
            if let Some(u) = probe.as_ref().and_then(|p| p.message.as_ref()?.usage) {
                usage.update(u);
            }
        }
        Some("message_delta") => {
            if let Some(u) = probe.as_ref().and_then(|p| p.usage) {
                usage.update(u);
            }
            reported = Some(usage.normalised());
        }
        Some("error") => {
            let message = probe
                .and_then(|p| p.error?.message)
                .unwrap_or_else(|| "stream error".into());
            let e = UpstreamError::Failed {
                provider: provider.to_owned(),
                status: StatusCode::BAD_GATEWAY,
                message,
                retry_after: None,
            };
            return (Err(e), true);
        }
        _ => {}
    }
    let chunk = Chunk {
        data: frame(event),
        usage: reported,
        usage_only: false,
    };
    (Ok(chunk), kind == Some("message_stop"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            event: Some(name.into()),
            data: Bytes::copy_from_slice(data.as_bytes()),
        }
    }

    #[test]
    fn frames_pass_unchanged_and_usage_comes_from_start_and_delta() {
        let mut usage = AnthropicUsage::default();
        let start = event(
            "message_start",
            r#"{"type":"message_start","message":{"usage":{"input_tokens":7,"cache_read_input_tokens":3,"cache_creation_input_tokens":9,"cache_creation":{"ephemeral_5m_input_tokens":4,"ephemeral_1h_input_tokens":5},"output_tokens":1}}}"#,
        );
        let (c, last) = chunk("p", &mut usage, &start);
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        assert!(!last && c.usage.is_none());
        assert_eq!(
            &c.data[..],
            format!(
                "event: message_start\ndata: {}\n\n",
                String::from_utf8_lossy(&start.data)
            )
            .as_bytes()
        );
        let delta = event(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":12}}"#,
        );
        let (c, _) = chunk("p", &mut usage, &delta);
        let u = c.ok().and_then(|c| c.usage).unwrap_or_default();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.cached_tokens),
            (19, 12, 3)
        );
        assert_eq!((u.cache_write_5m_tokens, u.cache_write_1h_tokens), (4, 5));
        let (c, last) = chunk(
            "p",
            &mut usage,
            &event("message_stop", r#"{"type":"message_stop"}"#),
        );
        assert!(c.is_ok() && last);
        let (c, last) = chunk(
            "p",
            &mut usage,
            &event(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
        );
        assert!(
            last && c
                .err()
                .is_some_and(|e| e.to_string().contains("Overloaded"))
        );
    }
}
