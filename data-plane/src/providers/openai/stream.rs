//! OpenAI-dialect chat streams: SSE events in, chunks out, one at a time as they arrive.
//!
//! The stream ends cleanly at `data: [DONE]` (or at end of body after a chunk that carried a
//! `finish_reason`, for servers that omit `[DONE]`); a body that breaks off or carries
//! something that is not a chunk ends it with an error, so the relay never presents a
//! truncated answer as complete.

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::providers::sse::{SseBody, SseEvent};
use crate::providers::stream::{drive, ended, interrupted, Translate};
use crate::providers::{Chunk, ChunkStream, OpenAiUsage, UpstreamError};

#[derive(Deserialize)]
struct ChunkProbe {
    #[serde(default)]
    choices: Option<Vec<ChoiceProbe>>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ChoiceProbe {
    #[serde(default)]
    finish_reason: Option<IgnoredAny>,
}

/// The OpenAI family's events: chunks as they are, classified.
struct Classify {
    /// A chunk carried a `finish_reason`.
    finished: bool,
    /// `[DONE]` was seen.
    done: bool,
}

/// Turns an upstream SSE response into a chunk stream.
pub fn chunks(provider: String, response: reqwest::Response) -> ChunkStream {
    let classify = Classify {
        finished: false,
        done: false,
    };
    drive(provider, SseBody::new(response), classify)
}

impl Translate<SseEvent> for Classify {
    fn translate(&mut self, provider: &str, event: &SseEvent) -> Result<Vec<Chunk>, UpstreamError> {
        if event.data.as_ref() == b"[DONE]" {
            self.done = true;
            return Ok(Vec::new());
        }
        let (chunk, finished) = parse(provider, event.data.clone())?;
        self.finished |= finished;
        Ok(vec![chunk])
    }

    fn stopped(&self) -> bool {
        self.done
    }

    /// A body may end without `[DONE]` after a chunk that finished (some servers omit it).
    fn finish(&mut self, provider: &str) -> Result<Vec<Chunk>, UpstreamError> {
        ended(self.finished, provider)
    }
}

/// One chunk and whether it carries a `finish_reason`.
fn parse(provider: &str, data: Bytes) -> Result<(Chunk, bool), UpstreamError> {
    let probe: ChunkProbe =
        serde_json::from_slice(&data).map_err(|_| bad(provider, "stream chunk is not JSON"))?;
    if probe.error.is_some() {
        tracing::info!(provider, "upstream sent an error event mid-stream");
        return Err(interrupted(provider));
    }
    let finished = probe
        .choices
        .as_ref()
        .is_some_and(|c| c.iter().any(|c| c.finish_reason.is_some()));
    let usage_only = probe.usage.is_some() && probe.choices.as_ref().is_some_and(Vec::is_empty);
    Ok((
        Chunk {
            data,
            usage: probe.usage.map(Into::into),
            usage_only,
        },
        finished,
    ))
}

fn bad(provider: &str, detail: &'static str) -> UpstreamError {
    UpstreamError::BadResponse {
        provider: provider.to_owned(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_chunks_are_classified() {
        // Shapes from OpenAI's API reference (chat completion chunk object).
        let first = br#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}"#;
        let last = br#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#;
        let usage = br#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}"#;
        let (c, finished) = parse("p", Bytes::from_static(first)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!finished && !c.usage_only && c.usage.is_none());
        let (_, finished) = parse("p", Bytes::from_static(last)).unwrap_or_else(|e| panic!("{e}"));
        assert!(finished, "finish_reason null is not a finish, \"stop\" is");
        let (c, _) = parse("p", Bytes::from_static(usage)).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.usage_only);
        assert_eq!(
            c.usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
            Some((9, 12))
        );
    }

    #[test]
    fn mistral_style_usage_on_the_last_content_chunk_is_not_usage_only() {
        let data = br#"{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;
        let (c, finished) = parse("p", Bytes::from_static(data)).unwrap_or_else(|e| panic!("{e}"));
        assert!(finished && !c.usage_only);
        assert_eq!(c.usage.map(|u| u.completion_tokens), Some(7));
    }

    #[test]
    fn error_events_and_garbage_end_the_stream() {
        assert!(parse(
            "p",
            Bytes::from_static(br#"{"error":{"message":"overloaded"}}"#)
        )
        .is_err());
        assert!(parse("p", Bytes::from_static(b"{not json")).is_err());
    }
}
