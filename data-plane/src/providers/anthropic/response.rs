//! Anthropic Messages responses translated into OpenAI chat completions.
//!
//! Text blocks are joined into `message.content`, `tool_use` blocks become `tool_calls` (the
//! `input` object serialized as the `arguments` string), `thinking` blocks become `reasoning_content` (as OpenAI-compatible reasoning servers report
//! it; redacted thinking is dropped), and the
//! stop reason and usage are mapped (see [`finish_reason`] and [`AnthropicUsage`]).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::providers::{JsonReply, UpstreamError, Usage};

/// Anthropic's `usage` object. Anthropic counts cache reads and cache writes apart from
/// `input_tokens`; OpenAI's `prompt_tokens` includes them, so they are added back.
/// `cache_creation` splits the writes by lifetime; writes reported without it (older API
/// versions, Bedrock-style reports) are 5-minute writes, Anthropic's default lifetime.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation: Option<CacheCreation>,
}

/// Anthropic's split of cache writes by lifetime.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct CacheCreation {
    #[serde(default)]
    pub ephemeral_5m_input_tokens: u64,
    #[serde(default)]
    pub ephemeral_1h_input_tokens: u64,
}

impl AnthropicUsage {
    /// Fields present in `later` replace these (a `message_delta` repeats or updates counts).
    pub fn update(&mut self, later: AnthropicUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_creation = later.cache_creation.or(self.cache_creation);
    }

    pub fn normalised(self) -> Usage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let split = self.cache_creation.unwrap_or_default();
        let one_hour = split.ephemeral_1h_input_tokens;
        // The total wins over its split; what the split leaves unnamed is the default lifetime.
        let written = self
            .cache_creation_input_tokens
            .unwrap_or(split.ephemeral_5m_input_tokens + one_hour)
            .max(one_hour);
        Usage {
            prompt_tokens: self.input_tokens.unwrap_or(0) + cached + written,
            completion_tokens: self.output_tokens.unwrap_or(0),
            cached_tokens: cached,
            reasoning_tokens: 0,
            cache_write_5m_tokens: written - one_hour,
            cache_write_1h_tokens: one_hour,
        }
    }
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, or none reported.
        _ => "stop",
    }
}

#[derive(Deserialize)]
struct Message {
    id: String,
    model: String,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// A complete OpenAI `chat.completion` for an Anthropic message; `created` is Unix seconds
/// (Anthropic sends no timestamp).
pub fn chat(provider: &str, body: &[u8], created: u64) -> Result<JsonReply, UpstreamError> {
    let message: Message =
        serde_json::from_slice(body).map_err(|_| UpstreamError::BadResponse {
            provider: provider.to_owned(),
            detail: "message is not an Anthropic message object",
        })?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in &message.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => {
                reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or(""))
            }
            Some("tool_use") => tool_calls.push(json!({
                "id": block.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": block.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": block.get("input").map_or_else(|| "{}".to_owned(), Value::to_string),
                },
            })),
            _ => {}
        }
    }
    let mut msg = json!({
        "role": "assistant",
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::from(text) },
        "refusal": null,
    });
    if !tool_calls.is_empty() {
        msg["tool_calls"] = Value::Array(tool_calls);
    }
    if !reasoning.is_empty() {
        msg["reasoning_content"] = Value::from(reasoning);
    }
    let usage = message.usage.normalised();
    let out = json!({
        "id": message.id,
        "object": "chat.completion",
        "created": created,
        "model": message.model,
        "choices": [{
            "index": 0,
            "message": msg,
            "logprobs": null,
            "finish_reason": finish_reason(message.stop_reason.as_deref()),
        }],
        "usage": usage.openai_json(false),
    });
    let body = serde_json::to_vec(&out).map_err(|_| UpstreamError::BadResponse {
        provider: provider.to_owned(),
        detail: "message could not be re-encoded",
    })?;
    Ok(JsonReply {
        body: Bytes::from(body),
        usage: Some(usage),
    })
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    fn normalised(json: &str) -> Usage {
        serde_json::from_str::<AnthropicUsage>(json)
            .unwrap_or_else(|e| panic!("{e}"))
            .normalised()
    }

    #[test]
    fn cache_reads_and_writes_are_added_back_and_writes_split_by_lifetime() {
        let u = normalised(
            r#"{"input_tokens":10,"cache_read_input_tokens":100,"cache_creation_input_tokens":50,
                "cache_creation":{"ephemeral_5m_input_tokens":20,"ephemeral_1h_input_tokens":30},"output_tokens":7}"#,
        );
        assert_eq!(
            u,
            Usage {
                prompt_tokens: 160,
                completion_tokens: 7,
                cached_tokens: 100,
                reasoning_tokens: 0,
                cache_write_5m_tokens: 20,
                cache_write_1h_tokens: 30,
            }
        );
    }

    #[test]
    fn writes_without_a_split_are_five_minute_writes() {
        let u = normalised(r#"{"input_tokens":1,"cache_creation_input_tokens":40}"#);
        assert_eq!(
            (
                u.prompt_tokens,
                u.cache_write_5m_tokens,
                u.cache_write_1h_tokens
            ),
            (41, 40, 0)
        );
        // A split without the total is the sum of its parts.
        let u = normalised(
            r#"{"input_tokens":1,"cache_creation":{"ephemeral_5m_input_tokens":2,"ephemeral_1h_input_tokens":3}}"#,
        );
        assert_eq!(
            (
                u.prompt_tokens,
                u.cache_write_5m_tokens,
                u.cache_write_1h_tokens
            ),
            (6, 2, 3)
        );
    }

    #[test]
    fn a_later_report_keeps_the_split_it_does_not_repeat() {
        let mut u: AnthropicUsage = serde_json::from_str(
            r#"{"input_tokens":5,"cache_creation_input_tokens":8,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":8}}"#,
        )
        .unwrap_or_default();
        u.update(
            serde_json::from_str(r#"{"output_tokens":3,"cache_creation_input_tokens":8}"#)
                .unwrap_or_default(),
        );
        let n = u.normalised();
        assert_eq!(
            (
                n.prompt_tokens,
                n.completion_tokens,
                n.cache_write_1h_tokens,
                n.cache_write_5m_tokens
            ),
            (13, 3, 8, 0)
        );
    }
}
