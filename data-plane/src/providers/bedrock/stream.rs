//! Bedrock `ConverseStream` (binary event stream) → OpenAI chunk stream, one event at a time.
//!
//! Each frame is decoded by [`super::eventstream`] and translated by [`Translator`] (pure) as
//! soon as it arrives: `messageStart` → the role chunk; a text `contentBlockDelta` → a content
//! delta; a `contentBlockStart` with `toolUse` → a `tool_calls` delta with index, id and name,
//! and its `toolUse.input` deltas → argument fragments (tool calls numbered in order of
//! appearance); a `reasoningContent` delta's `text` → a `reasoning_content` delta (its
//! `signature` and redacted reasoning are dropped); `messageStop` → the finish chunk;
//! `metadata` → a usage-only chunk (`choices: []`, marked [`Chunk::usage_only`]). Block stops
//! and event types added later yield nothing.
//!
//! The stream ends cleanly when the body ends after `messageStop`. An exception frame
//! (`:message-type: exception`), a frame with a bad CRC, garbage, or a body that ends earlier
//! ends it with an error, so a truncated answer is never presented as complete.

use bytes::Bytes;
use serde_json::{json, Value};

use super::eventstream::{Frame, FrameBody};
use super::response::{finish_reason, usage, Meta};
use crate::providers::stream::{drive, ended, interrupted, Translate};
use crate::providers::translate::StreamedCalls;
use crate::providers::{Chunk, ChunkStream, UpstreamError};

/// Why a frame cannot be translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// The payload is not the JSON the event type promises.
    Malformed(&'static str),
    /// Bedrock sent an exception frame; its type and message, for the log.
    Exception { kind: String, message: String },
}

/// Translation state of one stream.
#[derive(Debug)]
pub struct Translator {
    meta: Meta,
    /// Bedrock content block index → OpenAI tool call index.
    tools: StreamedCalls,
    started: bool,
    /// `messageStop` was seen: the answer is complete.
    pub finished: bool,
}

impl Translator {
    pub fn new(meta: Meta) -> Self {
        Self {
            meta,
            tools: StreamedCalls::default(),
            started: false,
            finished: false,
        }
    }

    /// The chunks one frame causes, in order.
    pub fn frame(&mut self, frame: &Frame) -> Result<Vec<Chunk>, EventError> {
        match frame.header(":message-type") {
            Some("event") | None => {}
            Some(other) => {
                let payload: Value = serde_json::from_slice(&frame.payload).unwrap_or_default();
                return Err(EventError::Exception {
                    kind: frame
                        .header(":exception-type")
                        .or(frame.header(":error-code"))
                        .unwrap_or(other)
                        .to_owned(),
                    message: payload
                        .get("message")
                        .or(payload.get("Message"))
                        .and_then(Value::as_str)
                        .or(frame.header(":error-message"))
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
        }
        let kind = frame.header(":event-type").unwrap_or_default();
        self.event(kind, &frame.payload)
    }

    /// The chunks one event causes, given its `:event-type` and JSON payload.
    pub fn event(&mut self, kind: &str, payload: &[u8]) -> Result<Vec<Chunk>, EventError> {
        let event: Value = serde_json::from_slice(payload)
            .map_err(|_| EventError::Malformed("stream event is not JSON"))?;
        let mut out = Vec::new();
        match kind {
            "messageStart" => self.start(&mut out),
            "contentBlockStart" => {
                self.start(&mut out);
                if let Some(tool) = event.pointer("/start/toolUse") {
                    let block = block_index(&event);
                    let delta = self
                        .tools
                        .open(block, tool.get("toolUseId"), tool.get("name"));
                    out.push(self.chunk(delta, None));
                }
            }
            "contentBlockDelta" => {
                self.start(&mut out);
                let delta = event.get("delta").unwrap_or(&Value::Null);
                if let Some(text) = delta.get("text").and_then(Value::as_str) {
                    if !text.is_empty() {
                        out.push(self.chunk(json!({ "content": text }), None));
                    }
                } else if let Some(reasoning) = delta.get("reasoningContent") {
                    let text = reasoning.get("text").and_then(Value::as_str);
                    if let Some(text) = text.filter(|t| !t.is_empty()) {
                        out.push(self.chunk(json!({ "reasoning_content": text }), None));
                    }
                } else if let Some(tool) = delta.get("toolUse") {
                    let fragment = tool.get("input").and_then(Value::as_str).unwrap_or("");
                    let Some(delta) = self.tools.arguments(block_index(&event), fragment) else {
                        return Err(EventError::Malformed(
                            "toolUse delta outside a toolUse block",
                        ));
                    };
                    out.push(self.chunk(delta, None));
                }
            }
            "messageStop" => {
                self.start(&mut out);
                self.finished = true;
                let stop = event.get("stopReason").and_then(Value::as_str);
                out.push(self.chunk(json!({}), Some(finish_reason(stop))));
            }
            "metadata" => {
                if let Some(u) = event.get("usage").map(usage) {
                    let data = json!({
                        "id": self.meta.id,
                        "object": "chat.completion.chunk",
                        "created": self.meta.created,
                        "model": self.meta.model,
                        "choices": [],
                        "usage": u.openai_json(false),
                    });
                    out.push(Chunk {
                        data: Bytes::from(data.to_string()),
                        usage: Some(u),
                        usage_only: true,
                    });
                }
            }
            // contentBlockStop and event types added later.
            _ => {}
        }
        Ok(out)
    }

    fn start(&mut self, out: &mut Vec<Chunk>) {
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({ "role": "assistant", "content": "" }), None));
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Chunk {
        let data = json!({
            "id": self.meta.id,
            "object": "chat.completion.chunk",
            "created": self.meta.created,
            "model": self.meta.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        Chunk {
            data: Bytes::from(data.to_string()),
            usage: None,
            usage_only: false,
        }
    }
}

fn block_index(event: &Value) -> u64 {
    event
        .get("contentBlockIndex")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Turns Bedrock's event-stream response into an OpenAI chunk stream.
pub fn chunks(provider: String, meta: Meta, response: reqwest::Response) -> ChunkStream {
    drive(provider, FrameBody::new(response), Translator::new(meta))
}

impl Translate<Frame> for Translator {
    fn translate(&mut self, provider: &str, frame: &Frame) -> Result<Vec<Chunk>, UpstreamError> {
        self.frame(frame).map_err(|e| match e {
            EventError::Malformed(detail) => UpstreamError::BadResponse {
                provider: provider.to_owned(),
                detail,
            },
            EventError::Exception { kind, message } => {
                tracing::info!(
                    provider,
                    kind,
                    message,
                    "upstream sent an exception mid-stream"
                );
                interrupted(provider)
            }
        })
    }

    fn finish(&mut self, provider: &str) -> Result<Vec<Chunk>, UpstreamError> {
        ended(self.finished, provider)
    }
}
