//! Reading an OpenAI chat body for a translation into another wire format: the fields as JSON
//! values, the message list, and message text, with the client's mistakes as an
//! [`Untranslatable`] (a 400 naming the field) rather than a wrong request upstream.

use serde_json::{Map, Value};

use serde_json::json;

use super::{bad, Untranslatable};
use crate::providers::JsonBody;

/// How translations read one top-level field (`null` counts as absent).
pub type Field<'a> = dyn Fn(&str) -> Result<Option<Value>, Untranslatable> + 'a;

/// Copies each `(from, to)` field the body sets (`field` reads it) into `out` under the name
/// `to`, its value as it was.
pub fn renamed<E>(
    field: impl Fn(&str) -> Result<Option<Value>, E>,
    names: &[(&str, &str)],
    out: &mut Map<String, Value>,
) -> Result<(), E> {
    for (from, to) in names {
        if let Some(v) = field(from)? {
            out.insert((*to).into(), v);
        }
    }
    Ok(())
}

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

/// One function tool of the request's `tools`.
#[derive(Debug)]
pub struct FunctionTool<'a> {
    pub name: &'a str,
    /// `function.description`, if present and not null.
    pub description: Option<&'a Value>,
    /// `function.parameters`, if present and not null.
    pub parameters: Option<&'a Value>,
    /// The tool's prompt-cache mark (`cache_control` beside `function`), if any.
    pub cache: Option<&'a Value>,
}

/// The function tools of `tools` (an array); a tool of another type is refused, naming
/// `target` ("Gemini", "this model").
pub fn function_tools<'a>(
    tools: &'a Value,
    target: &str,
) -> Result<Vec<FunctionTool<'a>>, Untranslatable> {
    let tools = tools
        .as_array()
        .ok_or_else(|| bad("`tools` must be an array"))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                return Err(bad(format!(
                    "tools[{i}]: only `function` tools are supported by {target}"
                )));
            }
            let function = tool.get("function").unwrap_or(&Value::Null);
            let present = |name: &str| function.get(name).filter(|v| !v.is_null());
            let name = present("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("tools[{i}].function.name is required")))?;
            Ok(FunctionTool {
                name,
                description: present("description"),
                parameters: present("parameters"),
                cache: super::messages::cache_mark(tool),
            })
        })
        .collect()
}

/// `stop` as a list of sequences (a string is a list of one).
pub fn stop_sequences(field: &Field<'_>) -> Result<Option<Value>, Untranslatable> {
    match field("stop")? {
        Some(Value::String(s)) => Ok(Some(json!([s]))),
        Some(v @ Value::Array(_)) => Ok(Some(v)),
        Some(_) => Err(bad("`stop` must be a string or an array of strings")),
        None => Ok(None),
    }
}

/// The empty object schema, for a function tool without `parameters`.
pub fn no_parameters() -> Value {
    json!({ "type": "object", "properties": {} })
}
