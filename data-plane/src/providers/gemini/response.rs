//! Gemini `GenerateContentResponse` → OpenAI `chat.completion` (pure; the pieces shared with
//! the stream translation live here too: finish reasons, function calls, usage).
//!
//! - Each candidate becomes a choice; its text parts (thought summaries excluded) are joined
//!   into `content`, its thought summaries into `reasoning_content`, its `functionCall` parts become `tool_calls` with ids `call_<n>` (or
//!   Gemini's own id when it sends one) and the arguments re-encoded as a JSON string.
//! - `finishReason`: `STOP` → `stop` (`tool_calls` when the candidate called a function),
//!   `MAX_TOKENS` → `length`, safety-type reasons → `content_filter`, anything else → `stop`.
//! - `usageMetadata`: prompt = `promptTokenCount` + `toolUsePromptTokenCount`; completion =
//!   `candidatesTokenCount` + `thoughtsTokenCount` (OpenAI counts reasoning inside completion),
//!   reasoning = `thoughtsTokenCount`, cached = `cachedContentTokenCount`.
//! - No candidates and a `promptFeedback.blockReason`: the prompt was blocked, a
//!   [`Blocked`] error the adapter answers with a 400 `content_filter`.

use serde_json::{json, Value};

use crate::providers::translate::assistant_message;
use crate::providers::Usage;

/// Identity of the OpenAI object being built.
#[derive(Debug, Clone)]
pub struct Meta {
    /// `chatcmpl-...` id (used when Gemini sends no `responseId`).
    pub id: String,
    /// Model name (used when Gemini sends no `modelVersion`).
    pub model: String,
    /// Unix seconds.
    pub created: u64,
}

impl Meta {
    /// Takes Gemini's response id and model version when present.
    pub fn update_from(&mut self, response: &Value) {
        if let Some(id) = response.get("responseId").and_then(Value::as_str) {
            self.id = format!("chatcmpl-{id}");
        }
        if let Some(model) = response.get("modelVersion").and_then(Value::as_str) {
            model.clone_into(&mut self.model);
        }
    }
}

/// Why a response cannot be turned into a completion: the prompt was blocked
/// (`promptFeedback.blockReason`), or the answer is not a `GenerateContentResponse`.
pub use crate::providers::translate::Untranslatable;

/// The completion and the usage Gemini reported.
pub fn chat_response(
    response: &Value,
    meta: &Meta,
) -> Result<(Value, Option<Usage>), Untranslatable> {
    if !response.is_object() {
        return Err(Untranslatable::Malformed("response is not a JSON object"));
    }
    let mut meta = meta.clone();
    meta.update_from(response);
    let candidates = candidates(response);
    if candidates.is_empty() {
        if let Some(reason) = block_reason(response) {
            return Err(Untranslatable::Blocked(reason.to_owned()));
        }
    }
    let mut calls = 0;
    let choices: Vec<Value> = candidates
        .iter()
        .enumerate()
        .map(|(position, candidate)| {
            let parts = parts(candidate);
            let text = text_of(parts);
            let tool_calls: Vec<Value> = parts
                .iter()
                .filter_map(|p| p.get("functionCall"))
                .map(|call| tool_call(call, &mut calls))
                .collect();
            let called = !tool_calls.is_empty();
            let mut message = assistant_message(&text, tool_calls);
            let thoughts = thoughts_of(parts);
            if !thoughts.is_empty() {
                message.insert("reasoning_content".into(), json!(thoughts));
            }
            json!({
                "index": candidate_index(candidate, position),
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason(
                    candidate.get("finishReason").and_then(Value::as_str),
                    called,
                ),
            })
        })
        .collect();
    let usage = usage(response);
    let mut out = json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": choices,
    });
    if let (Some(u), Some(object)) = (usage, out.as_object_mut()) {
        object.insert("usage".into(), u.openai_json(true));
    }
    Ok((out, usage))
}

pub(super) fn candidates(response: &Value) -> &[Value] {
    response
        .get("candidates")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub(super) fn block_reason(response: &Value) -> Option<&str> {
    response
        .pointer("/promptFeedback/blockReason")
        .and_then(Value::as_str)
}

pub(super) fn candidate_index(candidate: &Value, position: usize) -> u64 {
    candidate
        .get("index")
        .and_then(Value::as_u64)
        .unwrap_or(position as u64)
}

pub(super) fn parts(candidate: &Value) -> &[Value] {
    candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The answer text: text parts that are not thought summaries, joined.
pub(super) fn text_of(parts: &[Value]) -> String {
    texts(parts, false)
}

/// The thought summaries (`thought: true` text parts), joined: the answer's reasoning.
pub(super) fn thoughts_of(parts: &[Value]) -> String {
    texts(parts, true)
}

fn texts(parts: &[Value], thoughts: bool) -> String {
    parts
        .iter()
        .filter(|p| (p.get("thought").and_then(Value::as_bool) == Some(true)) == thoughts)
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect()
}

/// An OpenAI `tool_calls` entry for a Gemini `functionCall`; `counter` numbers generated ids.
pub(super) fn tool_call(call: &Value, counter: &mut u64) -> Value {
    let id = match call.get("id").and_then(Value::as_str) {
        Some(id) => id.to_owned(),
        None => format!("call_{counter}"),
    };
    *counter += 1;
    let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
    json!({
        "id": id,
        "type": "function",
        "function": {
            "name": call.get("name").and_then(Value::as_str).unwrap_or_default(),
            "arguments": args.to_string(),
        },
    })
}

/// OpenAI's `finish_reason` for a Gemini `finishReason`.
pub(super) fn finish_reason(reason: Option<&str>, called: bool) -> Option<&'static str> {
    Some(match reason? {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if called => "tool_calls",
        _ => "stop",
    })
}

/// Usage from `usageMetadata`, if the response has it.
pub(super) fn usage(response: &Value) -> Option<Usage> {
    let meta = response.get("usageMetadata")?;
    let count = |name: &str| meta.get(name).and_then(Value::as_u64).unwrap_or(0);
    let thoughts = count("thoughtsTokenCount");
    Some(Usage {
        prompt_tokens: count("promptTokenCount") + count("toolUsePromptTokenCount"),
        completion_tokens: count("candidatesTokenCount") + thoughts,
        cached_tokens: count("cachedContentTokenCount"),
        reasoning_tokens: thoughts,
        ..Usage::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_prompt_is_reported_as_blocked() {
        let meta = Meta {
            id: "chatcmpl-x".into(),
            model: "m".into(),
            created: 1,
        };
        let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}});
        assert_eq!(
            chat_response(&blocked, &meta),
            Err(Untranslatable::Blocked("SAFETY".into()))
        );
        assert!(matches!(
            chat_response(&json!([1]), &meta),
            Err(Untranslatable::Malformed(_))
        ));
    }
}
