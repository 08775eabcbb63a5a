//! An internal OpenAI chat completion → an Anthropic message.
//!
//! The first choice is the answer: its reasoning (`reasoning_content`) a `thinking` block
//! (without a signature: only Anthropic signs thinking), its text (or refusal) a `text` block and its tool
//! calls `tool_use` blocks whose `input` is the parsed `arguments`. Usage is Anthropic's split:
//! `input_tokens` excludes cache reads and writes, which are `cache_read_input_tokens` and
//! `cache_creation_input_tokens` (`prompt_tokens_details.cache_write_tokens`).

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::stop_reason;

/// Anthropic usage from an OpenAI `usage` object (absent counts as zero).
pub fn usage(u: &Value) -> Value {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let cached = n(&u["prompt_tokens_details"]["cached_tokens"]);
    let written = n(&u["prompt_tokens_details"]["cache_write_tokens"]);
    let mut out = Map::new();
    out.insert(
        "input_tokens".into(),
        json!(n(&u["prompt_tokens"]).saturating_sub(cached + written)),
    );
    out.insert("output_tokens".into(), json!(n(&u["completion_tokens"])));
    if cached > 0 {
        out.insert("cache_read_input_tokens".into(), json!(cached));
    }
    if written > 0 {
        out.insert("cache_creation_input_tokens".into(), json!(written));
    }
    Value::Object(out)
}

/// Translates a completion; `None` if it is not an OpenAI completion object.
pub fn to_message(completion: &[u8], model: &str, id: &str) -> Option<Bytes> {
    let c: Value = serde_json::from_slice(completion).ok()?;
    let choices = c.get("choices")?.as_array()?;
    let choice = choices.first().unwrap_or(&Value::Null);
    let msg = &choice["message"];
    let mut content = Vec::new();
    if let Some(r) = msg["reasoning_content"].as_str().filter(|r| !r.is_empty()) {
        content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
    }
    for text in [&msg["content"], &msg["refusal"]] {
        if let Some(t) = text.as_str().filter(|t| !t.is_empty()) {
            content.push(json!({"type": "text", "text": t}));
        }
    }
    for call in msg["tool_calls"].as_array().into_iter().flatten() {
        content.push(json!({
            "type": "tool_use",
            "id": call["id"],
            "name": call["function"]["name"],
            "input": tool_input(call["function"]["arguments"].as_str().unwrap_or_default()),
        }));
    }
    let body = json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
        "stop_sequence": null,
        "usage": usage(&c["usage"]),
    });
    serde_json::to_vec(&body).ok().map(Bytes::from)
}

/// Tool arguments as an object; text that is not a JSON object is kept under `_raw` rather
/// than lost (the client sees what the model produced).
pub fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"_raw": arguments}),
    }
}
