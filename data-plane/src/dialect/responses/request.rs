//! An OpenAI Responses request → the internal OpenAI chat body.
//!
//! - `instructions` becomes the first `system` message; `input` (a string, or items) becomes
//!   the conversation: `message` items (roles `user`, `assistant`, `system`, and `developer`
//!   as `system`) with `input_text` / `output_text` / `refusal` → text parts, `input_image` →
//!   `image_url`, `input_file` → a `file` part; `function_call` items → the assistant's
//!   `tool_calls` (consecutive calls, and the assistant text before them, form one assistant
//!   message); `function_call_output` → a `tool` message. `reasoning` items are the previous
//!   turn's reasoning: only a deployment that speaks the Responses wire can use them (it is
//!   sent the client's own bytes), so a translation drops them.
//! - Function tools are re-nested under `function`, and a `namespace` contributes its
//!   functions; `tool_choice` likewise. Built-in tools (web search, file search, code
//!   interpreter, …) run only on OpenAI: offered, they are dropped (the model cannot call
//!   them; Codex offers `web_search` on every request); forced by `tool_choice`, the request
//!   is untranslatable, which rules out every deployment but one that speaks the Responses
//!   wire.
//! - `text.format` → `response_format`; `max_output_tokens` → `max_tokens`; `temperature`,
//!   `top_p`, `parallel_tool_calls`, `user`, `metadata` and `stream` carry over (a stream
//!   always asks for the usage chunk). `reasoning`, `store`, `include`, `prompt_cache_key`,
//!   `truncation`, `service_tier` and `background` have no chat counterpart every upstream
//!   takes, and are dropped (the response names them in `x-switchyard-dropped-fields`).
//! - `previous_response_id`: an id the gateway stored was already replaced by the
//!   conversation it continues (`pipeline::responses`); any other is OpenAI's "not found",
//!   unless a deployment that speaks the Responses wire (and stores responses itself) takes
//!   the body as it is. `item_reference` items likewise need such a deployment.

use serde_json::{json, Map, Value};

use crate::dialect::content_array;
use crate::error::ApiError;
use crate::providers::translate::body::renamed;
use crate::providers::JsonBody;

/// Fields a translation drops (they change no answer a chat upstream could give).
pub const DROPPED: [&str; 8] = [
    "reasoning",
    "store",
    "include",
    "prompt_cache_key",
    "truncation",
    "service_tier",
    "background",
    "safety_identifier",
];

/// Translates a parsed Responses body. Errors are 400s naming the offending field.
pub fn to_chat(body: JsonBody) -> Result<JsonBody, ApiError> {
    let field = |name: &str| super::super::field(&body, name);
    // The pipeline replaced an id the gateway stored by the conversation it continues; one
    // still here is not the gateway's (a deployment that stores responses itself may know it).
    if let Some(id) = field("previous_response_id")? {
        return Err(ApiError::PreviousResponseNotFound(
            id.as_str().unwrap_or_default().to_owned(),
        ));
    }
    let mut out = Map::new();
    if let Some(model) = field("model")? {
        out.insert("model".into(), model);
    }
    let mut messages = Vec::new();
    if let Some(instructions) = field("instructions")? {
        let Value::String(text) = instructions else {
            return Err(ApiError::invalid(
                "instructions",
                "'instructions' must be a string.",
            ));
        };
        messages.push(json!({"role": "system", "content": text}));
    }
    match field("input")? {
        Some(Value::String(text)) => messages.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(item, &format!("input[{i}]"), &mut messages)?;
            }
        }
        None => {
            return Err(ApiError::invalid(
                "input",
                "'input' is required: a string or an array of input items.",
            ))
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "input",
                "'input' must be a string or an array of input items.",
            ))
        }
    }
    out.insert("messages".into(), Value::Array(messages));
    let names = [
        ("max_output_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("user", "user"),
        ("metadata", "metadata"),
    ];
    renamed(field, &names, &mut out)?;
    let mut has_tools = false;
    if let Some(tools) = field("tools")? {
        let tools = self::tools(&tools)?;
        has_tools = !tools.as_array().is_some_and(Vec::is_empty);
        if has_tools {
            out.insert("tools".into(), tools);
        }
    }
    if let Some(choice) = field("tool_choice")? {
        let choice = tool_choice(&choice)?;
        // Chat servers refuse a tool choice without tools (all of them built in and dropped).
        if has_tools {
            out.insert("tool_choice".into(), choice);
        }
    }
    if let Some(format) = field("text")?.and_then(|t| t.get("format").cloned()) {
        if let Some(format) = response_format(&format)? {
            out.insert("response_format".into(), format);
        }
    }
    if let Some(stream) = field("stream")? {
        if stream == Value::Bool(true) {
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
        out.insert("stream".into(), stream);
    }
    super::super::into_body(out)
}

/// The fields of `body` a translation drops, for the response header: top-level names, and
/// `tools.<type>` for each built-in tool type offered.
pub fn dropped(body: &JsonBody) -> Vec<String> {
    let mut names = super::super::present(body, &DROPPED);
    let tools = body
        .get("tools")
        .and_then(|raw| serde_json::from_str::<Vec<Value>>(raw.get()).ok())
        .unwrap_or_default();
    for tool in &tools {
        if let Some(kind) = built_in(tool) {
            let name = format!("tools.{kind}");
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// One input item → chat messages appended to `out`.
fn input_item(item: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let kind = match item.get("type") {
        None | Some(Value::Null) if item.get("role").is_some() => "message",
        Some(Value::String(kind)) => kind.as_str(),
        _ => {
            return Err(ApiError::invalid(
                &format!("{at}.type"),
                format!("'{at}.type' is required (or a 'role' for a message)."),
            ))
        }
    };
    match kind {
        "message" => message(item, at, out),
        "function_call" => {
            let call = json!({
                "id": str_field(item, "call_id", at)?,
                "type": "function",
                "function": {
                    "name": str_field(item, "name", at)?,
                    "arguments": item["arguments"].as_str().unwrap_or("{}"),
                },
            });
            // Calls join the assistant message just before them (its text, or earlier calls
            // of the same turn): one assistant turn, as chat expects.
            match out.last_mut() {
                Some(last) if last["role"] == "assistant" => {
                    match last["tool_calls"].as_array_mut() {
                        Some(calls) => calls.push(call),
                        None => last["tool_calls"] = json!([call]),
                    }
                }
                _ => out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
            Ok(())
        }
        "function_call_output" => {
            let content = match &item["output"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => texts(parts, &format!("{at}.output"))?.join("\n\n"),
                _ => {
                    return Err(ApiError::invalid(
                        &format!("{at}.output"),
                        format!("'{at}.output' must be a string or an array of content parts."),
                    ))
                }
            };
            out.push(json!({
                "role": "tool",
                "tool_call_id": str_field(item, "call_id", at)?,
                "content": content,
            }));
            Ok(())
        }
        // The previous turn's reasoning: meaningful only to the model that wrote it.
        "reasoning" => Ok(()),
        "item_reference" => Err(ApiError::invalid(
            at,
            format!("'{at}' is an item reference: it needs a stored response, which only a deployment that speaks the Responses API serves."),
        )),
        other => Err(ApiError::invalid(
            &format!("{at}.type"),
            format!("Input item type '{other}' is not supported on this route: only OpenAI runs it."),
        )),
    }
}

fn message(item: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let role = match item["role"].as_str() {
        Some("developer" | "system") => "system",
        Some(r @ ("user" | "assistant")) => r,
        _ => {
            return Err(ApiError::invalid(
                &format!("{at}.role"),
                format!(
                    "'{at}.role' must be one of \"user\", \"assistant\", \"system\", \"developer\"."
                ),
            ))
        }
    };
    let Some(parts) = content_array(&item["content"], role, at, "content parts", out)? else {
        return Ok(());
    };
    if role != "user" {
        // System and assistant turns are text in chat.
        let text = texts(parts, &format!("{at}.content"))?.concat();
        out.push(json!({"role": role, "content": text}));
        return Ok(());
    }
    let mut content = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        content.push(match part["type"].as_str().unwrap_or_default() {
            "input_text" | "output_text" => json!({"type": "text", "text": str_field(part, "text", &at)?}),
            "input_image" => {
                let Some(url) = part["image_url"].as_str() else {
                    return Err(ApiError::invalid(
                        &format!("{at}.image_url"),
                        format!("'{at}.image_url' is required here (a URL or a data URL); file ids need OpenAI's file store."),
                    ));
                };
                let mut image = json!({"url": url});
                if let Some(detail) = part["detail"].as_str() {
                    image["detail"] = json!(detail);
                }
                json!({"type": "image_url", "image_url": image})
            }
            "input_file" => {
                let mut file = Map::new();
                for name in ["file_data", "file_id", "filename"] {
                    if let Some(v) = part.get(name).filter(|v| !v.is_null()) {
                        file.insert(name.into(), v.clone());
                    }
                }
                json!({"type": "file", "file": file})
            }
            other => {
                return Err(ApiError::invalid(
                    &format!("{at}.type"),
                    format!("Content part type '{other}' is not supported in a user message."),
                ))
            }
        });
    }
    out.push(json!({"role": "user", "content": content}));
    Ok(())
}

/// The texts of `input_text` / `output_text` / `refusal` parts.
fn texts<'a>(parts: &'a [Value], at: &str) -> Result<Vec<&'a str>, ApiError> {
    parts
        .iter()
        .enumerate()
        .map(|(j, part)| {
            let at = format!("{at}[{j}]");
            match part["type"].as_str() {
                Some("input_text" | "output_text" | "text") => str_field(part, "text", &at),
                Some("refusal") => str_field(part, "refusal", &at),
                _ => Err(ApiError::invalid(
                    &format!("{at}.type"),
                    format!("'{at}' must be a text part here."),
                )),
            }
        })
        .collect()
}

fn str_field<'a>(v: &'a Value, name: &str, at: &str) -> Result<&'a str, ApiError> {
    v[name].as_str().ok_or_else(|| {
        ApiError::invalid(
            &format!("{at}.{name}"),
            format!("'{at}.{name}' is a required string."),
        )
    })
}

/// Tool types that are not functions: built in to OpenAI (web search, file search, code
/// interpreter, image generation, MCP, computer use, local shell, custom grammars).
fn built_in(tool: &Value) -> Option<&str> {
    tool["type"]
        .as_str()
        .filter(|t| !matches!(*t, "function" | "namespace"))
}

/// Function tools re-nested for chat; a `namespace` (a group of tools, as Codex sends its
/// sub-agent tools) contributes its functions. A built-in tool the client merely offers is
/// dropped (see [`dropped`]): the model simply cannot call it.
fn tools(tools: &Value) -> Result<Value, ApiError> {
    let Value::Array(list) = tools else {
        return Err(ApiError::invalid("tools", "'tools' must be an array."));
    };
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        function_tools(t, &format!("tools[{i}]"), &mut out)?;
    }
    Ok(Value::Array(out))
}

fn function_tools(t: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), ApiError> {
    match t["type"].as_str() {
        Some("function") => {
            let mut function = Map::new();
            function.insert("name".into(), json!(str_field(t, "name", at)?));
            for name in ["description", "parameters", "strict"] {
                if let Some(v) = t.get(name).filter(|v| !v.is_null()) {
                    function.insert(name.into(), v.clone());
                }
            }
            out.push(json!({"type": "function", "function": function}));
        }
        Some("namespace") => {
            for (j, inner) in t["tools"].as_array().into_iter().flatten().enumerate() {
                function_tools(inner, &format!("{at}.tools[{j}]"), out)?;
            }
        }
        Some(_) => {}
        None => {
            return Err(ApiError::invalid(
                &format!("{at}.type"),
                format!("'{at}.type' is required."),
            ))
        }
    }
    Ok(())
}

fn tool_choice(choice: &Value) -> Result<Value, ApiError> {
    if let Some(kind) = built_in(choice).filter(|_| choice.is_object()) {
        return Err(ApiError::invalid(
            "tool_choice",
            format!("'tool_choice' forces the tool '{kind}', which is built in to OpenAI: it runs only on a deployment that speaks the Responses API (OpenAI, Azure OpenAI)."),
        ));
    }
    match choice {
        Value::String(mode) if matches!(mode.as_str(), "auto" | "none" | "required") => {
            Ok(choice.clone())
        }
        Value::Object(_) if choice["type"] == "function" => Ok(
            json!({"type": "function", "function": {"name": str_field(choice, "name", "tool_choice")?}}),
        ),
        _ => Err(ApiError::invalid(
            "tool_choice",
            "'tool_choice' must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"name\": ...} on this route.",
        )),
    }
}

/// `text.format` → chat's `response_format` (`None` for plain text).
fn response_format(format: &Value) -> Result<Option<Value>, ApiError> {
    match format["type"].as_str() {
        Some("text") | None => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            schema.insert(
                "name".into(),
                json!(str_field(format, "name", "text.format")?),
            );
            for name in ["schema", "strict", "description"] {
                if let Some(v) = format.get(name).filter(|v| !v.is_null()) {
                    schema.insert(name.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        Some(other) => Err(ApiError::invalid(
            "text.format.type",
            format!("'text.format.type' '{other}' is not supported."),
        )),
    }
}
