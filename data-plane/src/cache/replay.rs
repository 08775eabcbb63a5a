//! A stored completion streamed again: the internal chunks a provider would have sent for it
//! (the role and reasoning, the text, each tool call whole, the finish reason, then the usage
//! alone), which the client's dialect writes as its own stream exactly as it writes a live one.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::providers::Chunk;

/// The chunks of `completion`, in order.
pub fn chunks(completion: &Value) -> Vec<Chunk> {
    let head = |choices: Value| {
        json!({
            "id": completion["id"],
            "object": "chat.completion.chunk",
            "created": completion["created"],
            "model": completion["model"],
            "choices": choices,
        })
    };
    let choice = &completion["choices"][0];
    let message = &choice["message"];
    let mut out = Vec::new();
    let mut push = |value: Value, usage_only: bool| {
        out.push(Chunk {
            data: Bytes::from(value.to_string()),
            usage: None,
            usage_only,
        })
    };
    let mut first = json!({"role": "assistant", "content": ""});
    if let Some(reasoning) = message["reasoning_content"].as_str() {
        first["reasoning_content"] = json!(reasoning);
    }
    push(head(json!([{"index": 0, "delta": first}])), false);
    for field in ["content", "refusal"] {
        if let Some(text) = message[field].as_str().filter(|t| !t.is_empty()) {
            push(head(json!([{"index": 0, "delta": {field: text}}])), false);
        }
    }
    for (i, call) in message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let mut call = call.clone();
        call["index"] = json!(i);
        push(
            head(json!([{"index": 0, "delta": {"tool_calls": [call]}}])),
            false,
        );
    }
    let reason = choice["finish_reason"].clone();
    push(
        head(json!([{"index": 0, "delta": {}, "finish_reason": reason}])),
        false,
    );
    if completion["usage"].is_object() {
        let mut last = head(json!([]));
        last["usage"] = completion["usage"].clone();
        push(last, true);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::assemble::Assembler;
    use super::*;

    /// Replayed chunks assemble back into the completion they came from.
    #[test]
    fn a_replay_assembles_back_into_its_completion() {
        let completion = json!({
            "id": "c1", "object": "chat.completion", "created": 5, "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Hi", "reasoning_content": "think",
                "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                               {"id": "t2", "type": "function", "function": {"name": "g", "arguments": "[]"}}]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        });
        let chunks = chunks(&completion);
        assert!(chunks.last().is_some_and(|c| c.usage_only));
        let mut a = Assembler::default();
        for c in &chunks {
            a.push(&c.data);
        }
        assert_eq!(a.completion(), Some(completion));
    }
}
