//! Gemini `streamGenerateContent?alt=sse` → OpenAI chunk stream, one event at a time.
//!
//! Every `data:` event is a complete `GenerateContentResponse` holding the next slice of the
//! answer. [`Translator`] (pure) turns each into OpenAI chunks as it arrives: a role chunk the
//! first time a candidate appears, a text delta, a `tool_calls` delta (Gemini sends each call
//! whole), and a finish chunk when the candidate carries a `finishReason`. Gemini repeats a
//! running `usageMetadata` on events; the last one is reported once, in a usage-only chunk
//! (`choices: []`) after the body ends. Gemini sends no `[DONE]`: a body that ends after a
//! finish reason is complete, one that ends before is [`UpstreamError::Interrupted`].

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde_json::{json, Value};

use super::response::{
    block_reason, candidate_index, candidates, finish_reason, parts, text_of, thoughts_of,
    tool_call, usage, Meta,
};
use crate::providers::sse::{SseBody, SseEvent};
use crate::providers::stream::{drive, interrupted, Translate};
use crate::providers::{Chunk, ChunkStream, UpstreamError, Usage};

/// Why an event cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// Not JSON, or not a response object.
    Malformed,
    /// Gemini sent an `error` object mid-stream.
    Upstream,
}

/// Translation state of one stream.
#[derive(Debug)]
pub struct Translator {
    meta: Meta,
    /// Candidates whose role chunk was sent.
    started: BTreeSet<u64>,
    /// Per candidate: tool calls sent so far (the `index` of the next one).
    tool_calls: BTreeMap<u64, u64>,
    /// Generated tool call ids, numbered across the stream.
    call_counter: u64,
    finished: bool,
    usage: Option<Usage>,
}

impl Translator {
    pub fn new(meta: Meta) -> Self {
        Self {
            meta,
            started: BTreeSet::new(),
            tool_calls: BTreeMap::new(),
            call_counter: 0,
            finished: false,
            usage: None,
        }
    }

    /// Whether a finish reason was seen (the stream may end cleanly).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The OpenAI chunks for one Gemini event, in order.
    pub fn event(&mut self, data: &[u8]) -> Result<Vec<Value>, EventError> {
        let response: Value = serde_json::from_slice(data).map_err(|_| EventError::Malformed)?;
        if !response.is_object() {
            return Err(EventError::Malformed);
        }
        if response.get("error").is_some() {
            return Err(EventError::Upstream);
        }
        if self.started.is_empty() {
            self.meta.update_from(&response);
        }
        if let Some(u) = usage(&response) {
            self.usage = Some(u);
        }
        let mut out = Vec::new();
        let candidates = candidates(&response);
        if candidates.is_empty() {
            if block_reason(&response).is_some() {
                // A blocked prompt arrives as a 200 stream; end it the way OpenAI ends a
                // filtered answer.
                self.start(0, &mut out);
                out.push(self.chunk(0, json!({}), Some("content_filter")));
                self.finished = true;
            }
            return Ok(out);
        }
        for (position, candidate) in candidates.iter().enumerate() {
            let index = candidate_index(candidate, position);
            self.start(index, &mut out);
            let parts = parts(candidate);
            let thoughts = thoughts_of(parts);
            if !thoughts.is_empty() {
                out.push(self.chunk(index, json!({ "reasoning_content": thoughts }), None));
            }
            let text = text_of(parts);
            if !text.is_empty() {
                out.push(self.chunk(index, json!({ "content": text }), None));
            }
            let calls: Vec<Value> = parts
                .iter()
                .filter_map(|p| p.get("functionCall"))
                .map(|call| {
                    let next = self.tool_calls.entry(index).or_insert(0);
                    let mut delta = tool_call(call, &mut self.call_counter);
                    if let Some(d) = delta.as_object_mut() {
                        d.insert("index".into(), json!(*next));
                    }
                    *next += 1;
                    delta
                })
                .collect();
            if !calls.is_empty() {
                out.push(self.chunk(index, json!({ "tool_calls": calls }), None));
            }
            let called = self.tool_calls.get(&index).is_some_and(|n| *n > 0);
            if let Some(reason) = finish_reason(
                candidate.get("finishReason").and_then(Value::as_str),
                called,
            ) {
                out.push(self.chunk(index, json!({}), Some(reason)));
                self.finished = true;
            }
        }
        Ok(out)
    }

    /// The usage-only chunk to send after the last event, if Gemini reported usage.
    pub fn end(&self) -> Option<(Value, Usage)> {
        let u = self.usage?;
        let chunk = json!({
            "id": self.meta.id,
            "object": "chat.completion.chunk",
            "created": self.meta.created,
            "model": self.meta.model,
            "choices": [],
            "usage": u.openai_json(true),
        });
        Some((chunk, u))
    }

    fn start(&mut self, index: u64, out: &mut Vec<Value>) {
        if self.started.insert(index) {
            out.push(self.chunk(index, json!({ "role": "assistant", "content": "" }), None));
        }
    }

    fn chunk(&self, index: u64, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.meta.id,
            "object": "chat.completion.chunk",
            "created": self.meta.created,
            "model": self.meta.model,
            "choices": [{
                "index": index,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish,
            }],
        })
    }
}

/// Turns Gemini's SSE response into an OpenAI chunk stream.
pub fn chunks(provider: String, meta: Meta, response: reqwest::Response) -> ChunkStream {
    drive(provider, SseBody::new(response), Translator::new(meta))
}

impl Translate<SseEvent> for Translator {
    fn translate(&mut self, provider: &str, event: &SseEvent) -> Result<Vec<Chunk>, UpstreamError> {
        match self.event(&event.data) {
            Ok(values) => Ok(values.into_iter().map(|v| chunk(&v, None)).collect()),
            Err(EventError::Malformed) => Err(UpstreamError::BadResponse {
                provider: provider.to_owned(),
                detail: "stream chunk is not JSON",
            }),
            Err(EventError::Upstream) => {
                tracing::info!(provider, "upstream sent an error event mid-stream");
                Err(interrupted(provider))
            }
        }
    }

    /// The usage-only chunk, if Gemini reported usage.
    fn finish(&mut self, provider: &str) -> Result<Vec<Chunk>, UpstreamError> {
        if !self.finished() {
            return Err(interrupted(provider));
        }
        Ok(self
            .end()
            .map(|(v, u)| chunk(&v, Some(u)))
            .into_iter()
            .collect())
    }
}

/// A chunk of the OpenAI dialect; one that carries `usage` is the usage-only chunk.
fn chunk(value: &Value, usage: Option<Usage>) -> Chunk {
    Chunk {
        data: Bytes::from(value.to_string()),
        usage,
        usage_only: usage.is_some(),
    }
}
