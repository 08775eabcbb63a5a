//! An internal OpenAI chat completion → a Responses `response` object.
//!
//! The first choice is the answer. Its reasoning (`reasoning_content`, as OpenAI-compatible
//! servers and the gateway's translations report it) becomes a `reasoning` item with one
//! summary text, its text (or refusal) a `message` item, and each tool call a `function_call`
//! item. A `length` finish is status `incomplete` (reason `max_output_tokens`), a
//! `content_filter` finish `incomplete` (reason `content_filter`). Usage is the Responses
//! shape: `input_tokens` (cached included, as `input_tokens_details.cached_tokens`) and
//! `output_tokens` (reasoning included).

use bytes::Bytes;
use serde_json::{json, Value};

/// Ids of one response's parts, derived from the request id so they are stable and unique.
#[derive(Debug, Clone)]
pub struct Ids {
    pub response: String,
    base: String,
}

impl Ids {
    pub fn new(request: uuid::Uuid) -> Self {
        Self::from_base(&request.simple().to_string())
    }

    /// Ids around a fixed `base` (`resp_{base}`, `msg_{base}_{index}`, …).
    pub fn from_base(base: &str) -> Self {
        Self {
            response: format!("resp_{base}"),
            base: base.to_owned(),
        }
    }

    /// The id of the message item at output index `at`.
    pub fn message(&self, at: usize) -> String {
        format!("msg_{}_{at}", self.base)
    }

    /// The id of the reasoning item at output index `at`.
    pub fn reasoning(&self, at: usize) -> String {
        format!("rs_{}_{at}", self.base)
    }

    /// The id of the `index`th function call item.
    pub fn call(&self, index: u64) -> String {
        format!("fc_{}_{index}", self.base)
    }
}

/// Responses usage from an OpenAI `usage` object (absent counts as zero).
pub fn usage(u: &Value) -> Value {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let input = n(&u["prompt_tokens"]);
    let output = n(&u["completion_tokens"]);
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": n(&u["prompt_tokens_details"]["cached_tokens"])},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": n(&u["completion_tokens_details"]["reasoning_tokens"])},
        "total_tokens": input + output,
    })
}

/// `status` and `incomplete_details` for a chat `finish_reason`.
pub fn status(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// The `response` object around finished `output` items.
pub fn envelope(
    ids: &Ids,
    model: &str,
    created_at: u64,
    status: &str,
    incomplete: Value,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    json!({
        "id": ids.response,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": null,
        "max_output_tokens": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage,
        "user": null,
        "metadata": {},
    })
}

/// A finished `reasoning` item with one summary text.
pub fn reasoning_item(ids: &Ids, at: usize, text: &str) -> Value {
    json!({
        "id": ids.reasoning(at),
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}],
    })
}

/// A finished assistant `message` item with one text part.
pub fn message_item(ids: &Ids, at: usize, text: &str, status: &str) -> Value {
    json!({
        "id": ids.message(at),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    })
}

/// A finished `function_call` item.
pub fn call_item(ids: &Ids, index: u64, call_id: &str, name: &str, arguments: &str) -> Value {
    json!({
        "id": ids.call(index),
        "type": "function_call",
        "status": "completed",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    })
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Translates a completion; `None` if it is not an OpenAI completion object.
pub fn to_response(completion: &[u8], model: &str, ids: &Ids) -> Option<Bytes> {
    let c: Value = serde_json::from_slice(completion).ok()?;
    let choices = c.get("choices")?.as_array()?;
    let choice = choices.first().unwrap_or(&Value::Null);
    let msg = &choice["message"];
    let (status, incomplete) = status(choice["finish_reason"].as_str());
    let mut output = Vec::new();
    if let Some(r) = msg["reasoning_content"].as_str().filter(|r| !r.is_empty()) {
        output.push(reasoning_item(ids, output.len(), r));
    }
    let text: String = [&msg["content"], &msg["refusal"]]
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
    if !text.is_empty() {
        output.push(message_item(ids, output.len(), &text, status));
    }
    for (i, call) in msg["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let f = &call["function"];
        output.push(call_item(
            ids,
            i as u64,
            call["id"].as_str().unwrap_or_default(),
            f["name"].as_str().unwrap_or_default(),
            f["arguments"].as_str().unwrap_or("{}"),
        ));
    }
    let created = c["created"].as_u64().unwrap_or_else(now);
    let body = envelope(
        ids,
        model,
        created,
        status,
        incomplete,
        output,
        usage(&c["usage"]),
    );
    serde_json::to_vec(&body).ok().map(Bytes::from)
}
