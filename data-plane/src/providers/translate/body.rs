//! Reading an OpenAI chat body for a translation into another wire format: the fields as JSON
//! values, the message list, and message text, with the client's mistakes as an
//! [`Untranslatable`] (a 400 naming the field) rather than a wrong request upstream.

use serde_json::Value;

use super::{bad, Untranslatable};
use crate::providers::JsonBody;

/// How translations read one top-level field (`null` counts as absent).
pub type Field<'a> = dyn Fn(&str) -> Result<Option<Value>, Untranslatable> + 'a;

/// Top-level field `name` of `body`, parsed; `null` counts as absent.
pub fn field(body: &JsonBody, name: &str) -> Result<Option<Value>, Untranslatable> {
    body.get(name)
        .map(|raw| serde_json::from_str::<Value>(raw.get()))
        .transpose()
        .map(|v| v.filter(|v| !v.is_null()))
        .map_err(|_| bad(format!("`{name}` is not valid JSON")))
}

/// The required `messages` array.
pub fn messages(body: &JsonBody) -> Result<Vec<Value>, Untranslatable> {
    match field(body, "messages")? {
        Some(Value::Array(messages)) => Ok(messages),
        Some(_) => Err(bad("`messages` must be an array")),
        None => Err(bad("`messages` is required")),
    }
}

/// Text of a string content or of the text parts of an array content (message `i`).
pub fn text_of(content: &Value, i: usize) -> Result<String, Untranslatable> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => Ok(parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("")),
        _ => Err(bad(format!(
            "messages[{i}].content must be a string or an array"
        ))),
    }
}
