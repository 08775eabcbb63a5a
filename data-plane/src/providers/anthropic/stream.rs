//! Anthropic Messages streams translated into OpenAI `chat.completion.chunk`s, event by event.
//!
//! Each Anthropic event yields at most the chunks it causes, as soon as it is decoded:
//! `message_start` → the role chunk; a text `content_block_delta` → a content delta; a
//! `tool_use` block start → a `tool_calls` delta with id and name, its `input_json_delta`s →
//! argument deltas (tool calls are numbered in order of appearance); `message_delta` → the
//! finish chunk, then a usage-only chunk (`choices: []`, marked [`Chunk::usage_only`]) carrying
//! the tokens of `message_start` and `message_delta` together; a `thinking_delta` → a
//! `reasoning_content` delta (signatures are dropped). `ping` and block stops yield nothing.
//! The stream ends cleanly at `message_stop` (or at end of body
//! after `message_delta`); an `error` event, garbage or a body that breaks off earlier ends it
//! with an error, so a truncated answer is never presented as complete.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::response::{finish_reason, AnthropicUsage};
use crate::providers::sse::{SseBody, SseEvent};
use crate::providers::stream::{drive, ended, Translate};
use crate::providers::translate::StreamedCalls;
use crate::providers::{Chunk, ChunkStream, UpstreamError};

/// The fields of any Anthropic stream event that the translation reads.
#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<StartMessage>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    content_block: Option<Value>,
    #[serde(default)]
    delta: Option<Value>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
}

/// Translation state of one stream; pure, fed one decoded event at a time.
#[derive(Debug)]
pub struct Translator {
    provider: String,
    created: u64,
    id: String,
    model: String,
    usage: AnthropicUsage,
    /// Anthropic content block index → OpenAI tool call index.
    tools: StreamedCalls,
    /// `message_delta` was seen: the answer is complete.
    pub finished: bool,
    /// `message_stop` was seen: nothing more will come.
    pub ended: bool,
}

impl Translator {
    /// `created` is the Unix time stamped on every chunk (Anthropic sends none).
    pub fn new(provider: String, created: u64) -> Self {
        Self {
            provider,
            created,
            id: String::new(),
            model: String::new(),
            usage: AnthropicUsage::default(),
            tools: StreamedCalls::default(),
            finished: false,
            ended: false,
        }
    }

    fn bad(&self, detail: &'static str) -> UpstreamError {
        UpstreamError::BadResponse {
            provider: self.provider.clone(),
            detail,
        }
    }

    /// The chunks one event's `data` causes, in order.
    pub fn event(&mut self, data: &[u8]) -> Result<Vec<Chunk>, UpstreamError> {
        let event: Event =
            serde_json::from_slice(data).map_err(|_| self.bad("stream event is not JSON"))?;
        match event.kind.as_str() {
            "message_start" => {
                let message = event
                    .message
                    .ok_or_else(|| self.bad("message_start without a message"))?;
                self.id = message.id;
                self.model = message.model;
                if let Some(u) = message.usage {
                    self.usage.update(u);
                }
                Ok(vec![
                    self.chunk(json!({"role": "assistant", "content": ""}), None)
                ])
            }
            "content_block_start" => {
                let block = event.content_block.unwrap_or(Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let index = event.index.unwrap_or(0);
                        let delta = self.tools.open(index, block.get("id"), block.get("name"));
                        Ok(vec![self.chunk(delta, None)])
                    }
                    Some("text") => match block.get("text").and_then(Value::as_str) {
                        Some(t) if !t.is_empty() => {
                            Ok(vec![self.chunk(json!({"content": t}), None)])
                        }
                        _ => Ok(Vec::new()),
                    },
                    _ => Ok(Vec::new()),
                }
            }
            "content_block_delta" => {
                let delta = event.delta.unwrap_or(Value::Null);
                let text = |k: &str| delta.get(k).and_then(Value::as_str).unwrap_or("");
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        Ok(vec![self.chunk(json!({"content": text("text")}), None)])
                    }
                    Some("thinking_delta") if !text("thinking").is_empty() => {
                        Ok(vec![self.chunk(
                            json!({"reasoning_content": text("thinking")}),
                            None,
                        )])
                    }
                    Some("input_json_delta") => {
                        let piece = text("partial_json");
                        let Some(delta) = event.index.and_then(|i| self.tools.arguments(i, piece))
                        else {
                            return Err(self.bad("input_json_delta outside a tool_use block"));
                        };
                        Ok(vec![self.chunk(delta, None)])
                    }
                    _ => Ok(Vec::new()),
                }
            }
            "message_delta" => {
                if let Some(u) = event.usage {
                    self.usage.update(u);
                }
                let stop = event
                    .delta
                    .as_ref()
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                self.finished = true;
                let finish = self.chunk(json!({}), Some(finish_reason(stop)));
                Ok(vec![finish, self.usage_chunk()])
            }
            "message_stop" => {
                self.ended = true;
                Ok(Vec::new())
            }
            "error" => {
                let e = event.error.unwrap_or(ErrorBody {
                    kind: String::new(),
                    message: String::new(),
                });
                tracing::info!(provider = %self.provider, kind = %e.kind, message = %e.message, "upstream sent an error event mid-stream");
                self.ended = true;
                Err(UpstreamError::Interrupted {
                    provider: self.provider.clone(),
                })
            }
            // ping, content_block_stop, and event types added later.
            _ => Ok(Vec::new()),
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Chunk {
        let data = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        Chunk {
            data: Bytes::from(data.to_string()),
            usage: None,
            usage_only: false,
        }
    }

    fn usage_chunk(&self) -> Chunk {
        let usage = self.usage.normalised();
        let data = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage.openai_json(false),
        });
        Chunk {
            data: Bytes::from(data.to_string()),
            usage: Some(usage),
            usage_only: true,
        }
    }
}

/// Turns an upstream Anthropic SSE response into an OpenAI chunk stream.
pub fn chunks(provider: String, created: u64, response: reqwest::Response) -> ChunkStream {
    let translator = Translator::new(provider.clone(), created);
    drive(provider, SseBody::new(response), translator)
}

impl Translate<SseEvent> for Translator {
    fn translate(&mut self, _: &str, event: &SseEvent) -> Result<Vec<Chunk>, UpstreamError> {
        self.event(&event.data)
    }

    fn stopped(&self) -> bool {
        self.ended
    }

    fn finish(&mut self, provider: &str) -> Result<Vec<Chunk>, UpstreamError> {
        ended(self.finished, provider)
    }
}
