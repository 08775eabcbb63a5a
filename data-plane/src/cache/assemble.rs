//! A stream's answer put together as it is relayed: the internal chunks the relay forwards are
//! also folded, piece by piece, into one internal completion, which is stored once the stream
//! ended well. The client's delivery is never held back for it.

use serde_json::{json, Map, Value};

/// The answer so far.
#[derive(Debug, Default)]
pub struct Assembler {
    id: Option<Value>,
    created: Option<Value>,
    model: Option<Value>,
    content: String,
    reasoning: String,
    refusal: String,
    /// Tool calls by index: id, name, arguments so far.
    tools: Vec<(Value, Value, String)>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    /// A chunk this assembler cannot represent (another choice, unreadable JSON): the answer
    /// is not stored.
    spoiled: bool,
}

impl Assembler {
    /// Folds one internal chunk (the JSON after `data: `).
    pub fn push(&mut self, data: &[u8]) {
        if self.spoiled {
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else {
            self.spoiled = true;
            return;
        };
        for (field, slot) in [
            ("id", &mut self.id),
            ("created", &mut self.created),
            ("model", &mut self.model),
        ] {
            if slot.is_none() && !chunk[field].is_null() {
                *slot = Some(chunk[field].clone());
            }
        }
        if chunk["usage"].is_object() {
            self.usage = Some(chunk["usage"].clone());
        }
        let Some(choices) = chunk["choices"].as_array() else {
            return;
        };
        for choice in choices {
            if choice["index"].as_u64().unwrap_or(0) != 0 {
                self.spoiled = true;
                return;
            }
            let delta = &choice["delta"];
            for (field, text) in [
                ("content", &mut self.content),
                ("reasoning_content", &mut self.reasoning),
                ("refusal", &mut self.refusal),
            ] {
                if let Some(piece) = delta[field].as_str() {
                    text.push_str(piece);
                }
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let Ok(index) = usize::try_from(call["index"].as_u64().unwrap_or(0)) else {
                    self.spoiled = true;
                    return;
                };
                if index > self.tools.len() || index > 128 {
                    self.spoiled = true;
                    return;
                }
                if index == self.tools.len() {
                    self.tools.push((Value::Null, Value::Null, String::new()));
                }
                let (id, name, arguments) = &mut self.tools[index];
                if id.is_null() && !call["id"].is_null() {
                    *id = call["id"].clone();
                }
                if name.is_null() && !call["function"]["name"].is_null() {
                    *name = call["function"]["name"].clone();
                }
                if let Some(piece) = call["function"]["arguments"].as_str() {
                    arguments.push_str(piece);
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finish_reason = Some(reason.to_owned());
            }
        }
    }

    /// Marks the answer as one the cache cannot hold.
    pub fn spoil(&mut self) {
        self.spoiled = true;
    }

    /// The finish reason seen, if any.
    pub fn finish_reason(&self) -> Option<&str> {
        self.finish_reason.as_deref()
    }

    /// The whole answer as a chat completion; `None` if it cannot be stored (spoiled, or no
    /// finish reason: the stream did not really end).
    pub fn completion(self) -> Option<Value> {
        if self.spoiled {
            return None;
        }
        let finish = self.finish_reason?;
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        message.insert(
            "content".into(),
            if self.content.is_empty() && !self.tools.is_empty() {
                Value::Null
            } else {
                json!(self.content)
            },
        );
        if !self.reasoning.is_empty() {
            message.insert("reasoning_content".into(), json!(self.reasoning));
        }
        if !self.refusal.is_empty() {
            message.insert("refusal".into(), json!(self.refusal));
        }
        if !self.tools.is_empty() {
            let calls: Vec<Value> = self
                .tools
                .into_iter()
                .map(|(id, name, arguments)| {
                    json!({"id": id, "type": "function",
                           "function": {"name": name, "arguments": arguments}})
                })
                .collect();
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        let mut completion = json!({
            "id": self.id.unwrap_or_else(|| json!("chatcmpl-cached")),
            "object": "chat.completion",
            "created": self.created.unwrap_or(json!(0)),
            "model": self.model.unwrap_or(Value::Null),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        });
        if let Some(usage) = self.usage {
            completion["usage"] = usage;
        }
        Some(completion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fold_into_the_completion_they_stream() {
        let mut a = Assembler::default();
        for chunk in [
            r#"{"id":"c1","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"lo","tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\""}}]}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"}]}"#,
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        ] {
            a.push(chunk.as_bytes());
        }
        assert_eq!(a.finish_reason(), Some("tool_calls"));
        let c = a.completion().unwrap();
        assert_eq!(c["choices"][0]["message"]["content"], "Hello");
        assert_eq!(
            c["choices"][0]["message"]["tool_calls"][0],
            json!({"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}})
        );
        assert_eq!(c["usage"]["total_tokens"], 5);
        assert_eq!(
            (c["id"].as_str(), c["created"].as_u64()),
            (Some("c1"), Some(5))
        );
    }

    #[test]
    fn an_unfinished_or_multi_choice_stream_is_not_stored() {
        let mut a = Assembler::default();
        a.push(br#"{"choices":[{"index":0,"delta":{"content":"x"}}]}"#);
        assert!(a.completion().is_none());
        let mut b = Assembler::default();
        b.push(br#"{"choices":[{"index":1,"delta":{"content":"x"},"finish_reason":"stop"}]}"#);
        assert!(b.completion().is_none());
    }
}
