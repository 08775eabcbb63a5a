//! OpenAI-dialect request bodies on their way upstream.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::providers::JsonBody;

/// The chat body with the upstream model and, when `ask_usage`, `include_usage` switched on
/// (keeping any other `stream_options` the client set).
pub fn chat_body(
    mut body: JsonBody,
    model: &RawValue,
    ask_usage: bool,
) -> serde_json::Result<Vec<u8>> {
    body.insert("model".into(), model.to_owned());
    if ask_usage {
        let mut options: Map<String, Value> = match body.get("stream_options") {
            Some(raw) => {
                serde_json::from_str::<Option<Map<String, Value>>>(raw.get())?.unwrap_or_default()
            }
            None => Map::new(),
        };
        options.insert("include_usage".into(), Value::Bool(true));
        body.insert(
            "stream_options".into(),
            serde_json::value::to_raw_value(&options)?,
        );
    }
    serde_json::to_vec(&body)
}

/// Removes the `cache_control` marks of `messages` (messages and their parts) and `tools`;
/// fields without one are left as they were.
pub fn drop_cache_marks(body: &mut JsonBody) -> serde_json::Result<()> {
    for name in ["messages", "tools"] {
        let Some(raw) = body
            .get(name)
            .filter(|r| r.get().contains("\"cache_control\""))
        else {
            continue;
        };
        let mut list: Value = serde_json::from_str(raw.get())?;
        for item in list.as_array_mut().into_iter().flatten() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            item.remove("cache_control");
            let parts = item.get_mut("content").and_then(Value::as_array_mut);
            for part in parts.into_iter().flatten().filter_map(Value::as_object_mut) {
                part.remove("cache_control");
            }
        }
        body.insert(name.into(), serde_json::value::to_raw_value(&list)?);
    }
    Ok(())
}

/// The embeddings body with the upstream model.
pub fn embeddings_body(mut body: JsonBody, model: &RawValue) -> serde_json::Result<Vec<u8>> {
    body.insert("model".into(), model.to_owned());
    serde_json::to_vec(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> JsonBody {
        serde_json::from_str(json).unwrap_or_default()
    }

    fn model(name: &str) -> Box<RawValue> {
        serde_json::value::to_raw_value(name).unwrap_or_else(|_| RawValue::NULL.to_owned())
    }

    #[test]
    fn model_is_replaced_and_other_fields_kept_verbatim() {
        let out = chat_body(body(r#"{"model":"alias","messages":[{"role":"user","content":"hi  there"}],"x_vendor":{"a":[1,2.50]}}"#), &model("gpt-4o-mini"), false)
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(v["model"], "gpt-4o-mini");
        assert_eq!(v["messages"][0]["content"], "hi  there");
        assert!(
            String::from_utf8_lossy(&out).contains(r#""x_vendor":{"a":[1,2.50]}"#),
            "unknown fields pass through untouched"
        );
        assert!(v.get("stream_options").is_none());
    }

    #[test]
    fn cache_marks_are_dropped_from_messages_parts_and_tools_only() {
        let mut b = body(
            r#"{"messages":[{"role":"system","content":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}]},{"role":"tool","tool_call_id":"t","content":"r","cache_control":{"type":"ephemeral","ttl":"1h"}}],"tools":[{"type":"function","function":{"name":"f"},"cache_control":{"type":"ephemeral"}}],"metadata":{"cache_control":1}}"#,
        );
        drop_cache_marks(&mut b).unwrap_or_default();
        let out = serde_json::to_string(&b).unwrap_or_default();
        assert_eq!(out.matches("cache_control").count(), 1, "{out}");
        let v: Value = serde_json::from_str(&out).unwrap_or_default();
        assert_eq!(v["messages"][0]["content"][0]["text"], "s");
        assert_eq!(v["tools"][0]["function"]["name"], "f");
        assert_eq!(v["metadata"]["cache_control"], 1);
    }

    #[test]
    fn usage_is_requested_without_losing_client_stream_options() {
        for (sent, want) in [
            (
                r#"{"x":1}"#,
                serde_json::json!({"x": 1, "include_usage": true}),
            ),
            ("null", serde_json::json!({"include_usage": true})),
        ] {
            let request = format!(r#"{{"model":"a","stream":true,"stream_options":{sent}}}"#);
            let out = chat_body(body(&request), &model("m"), true).unwrap_or_default();
            let v: Value = serde_json::from_slice(&out).unwrap_or_default();
            assert_eq!(v["stream_options"], want, "{sent}");
        }
    }
}
