//! Pass-through for clients that speak OpenAI's Responses API (`/v1/responses` routed to an
//! OpenAI or Azure OpenAI deployment): the client's body goes upstream byte for byte except
//! for the value of its top-level `model`, and the answer comes back byte for byte. Only usage
//! is read on the way: from the response's `usage`, or in a stream from the terminal event
//! (`response.completed`, `response.incomplete` or `response.failed`), which is the chunk
//! that carries it to the relay's metering.
//!
//! A stream that ends without a terminal event, or with an `error` event, ends with an
//! error, so the relay reports it (as `response.failed`) and meters it as failed.

use std::time::Instant;

use http::StatusCode;
use serde::Deserialize;

use super::OpenAiFamily;
use crate::providers::common::same_error;
use crate::providers::forward::{frame, with_model};
use crate::providers::sse::{SseBody, SseEvent};
use crate::providers::stream::{drive, interrupted, Translate};
use crate::providers::{
    Call, ChatReply, Chunk, ChunkStream, JsonReply, NativeRequest, UpstreamError, Usage,
};

/// The Responses API's usage object.
#[derive(Debug, Default, Deserialize)]
struct ResponsesUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<Details>,
    #[serde(default)]
    output_tokens_details: Option<Details>,
}

#[derive(Debug, Default, Deserialize)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl From<ResponsesUsage> for Usage {
    fn from(u: ResponsesUsage) -> Self {
        Self {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            cached_tokens: u
                .input_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            reasoning_tokens: u
                .output_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            ..Usage::default()
        }
    }
}

/// A response object, or a stream event (which nests it under `response`).
#[derive(Deserialize)]
struct Probe {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    usage: Option<ResponsesUsage>,
    #[serde(default)]
    response: Option<Box<Probe>>,
    #[serde(default)]
    message: Option<String>,
}

impl OpenAiFamily {
    /// Sends the client's own Responses request; the value of `model` is replaced by the
    /// deployment's.
    pub async fn forward(
        &self,
        call: &Call<'_>,
        request: NativeRequest<'_>,
    ) -> Result<ChatReply, UpstreamError> {
        let start = Instant::now();
        let up = &self.upstream;
        let Some(url) = self.responses.clone() else {
            return Err(up.bad("the deployment does not speak the Responses API"));
        };
        let body = with_model(&request.body, call.deployment.model_json.get())
            .ok_or_else(|| up.bad("request could not be encoded"))?;
        let response = up.post(call, url, body, same_error).await?;
        if request.stream {
            let response = up.event_stream(response)?;
            return Ok(ChatReply::Stream(events(up.id.clone(), response)));
        }
        let body = up.read_body(call, start, response).await?;
        let usage = serde_json::from_slice::<Probe>(&body)
            .ok()
            .and_then(|p| p.usage)
            .map(Usage::from);
        Ok(ChatReply::Json(JsonReply { body, usage }))
    }
}

fn events(provider: String, response: reqwest::Response) -> ChunkStream {
    drive(
        provider,
        SseBody::new(response),
        Verbatim { stopped: false },
    )
}

/// Relays each event as it came, reading only the terminal event's usage.
struct Verbatim {
    stopped: bool,
}

impl Translate<SseEvent> for Verbatim {
    fn translate(&mut self, provider: &str, event: &SseEvent) -> Result<Vec<Chunk>, UpstreamError> {
        let (chunk, last) = chunk(provider, event);
        self.stopped = last;
        chunk.map(|c| vec![c])
    }

    fn stopped(&self) -> bool {
        self.stopped
    }

    /// A body that ends before the terminal event broke off.
    fn finish(&mut self, provider: &str) -> Result<Vec<Chunk>, UpstreamError> {
        Err(interrupted(provider))
    }
}

/// One upstream event → the chunk to relay; `true` once the stream is over.
fn chunk(provider: &str, event: &SseEvent) -> (Result<Chunk, UpstreamError>, bool) {
    let probe = serde_json::from_slice::<Probe>(&event.data).ok();
    let kind = probe.as_ref().and_then(|p| p.kind.as_deref());
    let terminal = matches!(
        kind,
        Some("response.completed" | "response.incomplete" | "response.failed")
    );
    if kind == Some("error") {
        let message = probe
            .and_then(|p| p.message)
            .unwrap_or_else(|| "stream error".into());
        let e = UpstreamError::Failed {
            provider: provider.to_owned(),
            status: StatusCode::BAD_GATEWAY,
            message,
            retry_after: None,
        };
        return (Err(e), true);
    }
    let usage = terminal
        .then(|| probe.and_then(|p| p.response?.usage).map(Usage::from))
        .flatten()
        .or(terminal.then(Usage::default));
    let chunk = Chunk {
        data: frame(event),
        usage,
        usage_only: false,
    };
    (Ok(chunk), terminal)
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
    fn frames_pass_unchanged_and_usage_comes_from_the_terminal_event() {
        let created = event(
            "response.created",
            r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","usage":null}}"#,
        );
        let (c, last) = chunk("p", &created);
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        assert!(!last && c.usage.is_none());
        assert_eq!(
            &c.data[..],
            format!(
                "event: response.created\ndata: {}\n\n",
                String::from_utf8_lossy(&created.data)
            )
            .as_bytes()
        );
        let done = event(
            "response.completed",
            r#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":8},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":64},"total_tokens":123}}}"#,
        );
        let (c, last) = chunk("p", &done);
        let u = c.ok().and_then(|c| c.usage).unwrap_or_default();
        assert!(last);
        assert_eq!(
            (
                u.prompt_tokens,
                u.completion_tokens,
                u.cached_tokens,
                u.reasoning_tokens
            ),
            (36, 87, 8, 64)
        );
        let (c, last) = chunk(
            "p",
            &event(
                "error",
                r#"{"type":"error","code":"server_error","message":"The server had an error","sequence_number":3}"#,
            ),
        );
        assert!(
            last && c
                .err()
                .is_some_and(|e| e.to_string().contains("The server had an error"))
        );
    }
}
