//! Bedrock `Converse` response → OpenAI `chat.completion` (pure; the pieces shared with the
//! stream translation live here too: stop reasons and usage).
//!
//! - `output.message.content`: text blocks are joined into `content`; `toolUse` blocks become
//!   `tool_calls` (Bedrock's `toolUseId` as id, `input` re-encoded as the `arguments` string);
//!   `reasoningContent` blocks' `reasoningText.text` becomes `reasoning_content` (as the other
//!   translated providers report reasoning; signatures and redacted reasoning are dropped);
//!   other blocks are dropped.
//! - `stopReason`: `end_turn`/`stop_sequence` → `stop`, `tool_use` → `tool_calls`,
//!   `max_tokens`/`model_context_window_exceeded` → `length`,
//!   `guardrail_intervened`/`content_filtered` → `content_filter`.
//! - `usage`: Bedrock counts cache reads and writes apart from `inputTokens` (its
//!   `totalTokens` adds them); OpenAI's `prompt_tokens` includes them, so `prompt_tokens` =
//!   `inputTokens` + `cacheReadInputTokens` + `cacheWriteInputTokens`, `cached_tokens` =
//!   `cacheReadInputTokens`, `cache_write_5m_tokens` = `cacheWriteInputTokens` (Converse does
//!   not say the lifetime; 5 minutes is the default), `completion_tokens` = `outputTokens`.

use serde_json::{json, Value};

use crate::providers::translate::assistant_message;
use crate::providers::Usage;

/// Identity of the OpenAI object being built (Bedrock sends no id or model name).
#[derive(Debug, Clone)]
pub struct Meta {
    /// `chatcmpl-...` id.
    pub id: String,
    /// The deployment's model id.
    pub model: String,
    /// Unix seconds.
    pub created: u64,
}

/// The completion and the usage Bedrock reported; `Err` when it is not a Converse response.
pub fn chat_response(
    response: &Value,
    meta: &Meta,
) -> Result<(Value, Option<Usage>), &'static str> {
    let content = response
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or("response has no output.message.content")?;
    let text: String = content
        .iter()
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    let tool_calls: Vec<Value> = content
        .iter()
        .filter_map(|b| b.get("toolUse"))
        .map(|t| {
            let input = t.get("input").cloned().unwrap_or_else(|| json!({}));
            json!({
                "id": t.get("toolUseId").and_then(Value::as_str).unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": t.get("name").and_then(Value::as_str).unwrap_or_default(),
                    "arguments": input.to_string(),
                },
            })
        })
        .collect();
    let mut message = assistant_message(&text, tool_calls);
    let reasoning: String = content
        .iter()
        .filter_map(|b| b.pointer("/reasoningContent/reasoningText/text"))
        .filter_map(Value::as_str)
        .collect();
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), json!(reasoning));
    }
    let usage = response.get("usage").map(usage);
    let mut out = json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(response.get("stopReason").and_then(Value::as_str)),
        }],
    });
    if let (Some(u), Some(object)) = (usage, out.as_object_mut()) {
        object.insert("usage".into(), u.openai_json(false));
    }
    Ok((out, usage))
}

/// OpenAI's `finish_reason` for a Bedrock `stopReason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("tool_use") => "tool_calls",
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("guardrail_intervened") | Some("content_filtered") => "content_filter",
        // end_turn, stop_sequence, or a reason added later.
        _ => "stop",
    }
}

/// Usage from a Bedrock `usage` object (`TokenUsage`).
pub fn usage(u: &Value) -> Usage {
    let count = |name: &str| u.get(name).and_then(Value::as_u64).unwrap_or(0);
    let cached = count("cacheReadInputTokens");
    Usage {
        prompt_tokens: count("inputTokens") + cached + count("cacheWriteInputTokens"),
        completion_tokens: count("outputTokens"),
        cached_tokens: cached,
        reasoning_tokens: 0,
        // Converse reports writes without their lifetime: the default, 5 minutes.
        cache_write_5m_tokens: count("cacheWriteInputTokens"),
        cache_write_1h_tokens: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_reads_and_writes_are_added_back_and_writes_are_five_minute_writes() {
        let u = usage(
            &json!({"inputTokens": 12, "outputTokens": 40, "totalTokens": 1552,
                              "cacheReadInputTokens": 1000, "cacheWriteInputTokens": 500}),
        );
        assert_eq!(
            u,
            Usage {
                prompt_tokens: 1512,
                completion_tokens: 40,
                cached_tokens: 1000,
                reasoning_tokens: 0,
                cache_write_5m_tokens: 500,
                cache_write_1h_tokens: 0,
            }
        );
    }
}
