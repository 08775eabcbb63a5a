//! An Anthropic Messages request → the internal OpenAI chat body.
//!
//! `system` becomes the first message, and a `system` message in the conversation (as Claude
//! Code sends them) a system message in its place; content blocks map to OpenAI parts (`text`,
//! `image` → `image_url`), assistant `tool_use` blocks to `tool_calls`, user `tool_result`
//! blocks to `tool` messages (placed before the rest of that user turn, as OpenAI requires them
//! right after the calls). `metadata.user_id` becomes `user`.
//!
//! Prompt-cache breakpoints (`cache_control` on system, text, image and `tool_result` blocks and
//! on tools) are kept as the same `cache_control` on the OpenAI part, tool message or tool they
//! mark (a marked system list becomes one system message per block): the Anthropic and Bedrock
//! adapters turn them back into breakpoints (Bedrock `cachePoint` blocks), every other adapter
//! drops them, as their providers cache prompts on their own.
//!
//! Dropped, because no translated upstream has them and the answer keeps its meaning without
//! them (the response lists the top-level ones in `x-switchyard-dropped-fields`): `thinking`
//! (the upstream reasons as its own model does: the budget of one model family means nothing
//! to another, and a thinking turn's signed blocks cannot be replayed to another provider),
//! `context_management`, `output_config`, `top_k`, `service_tier`, a breakpoint on a
//! `tool_use` block, thinking blocks echoed back in assistant turns, and betas. Refused with a 400 naming them,
//! because dropping them would change the request: `mcp_servers`, `container`, tools without
//! an `input_schema` (server tools) and blocks the gateway cannot express (documents).

use serde_json::{json, Map, Value};

use crate::dialect::content_array;
use crate::error::ApiError;
use crate::providers::translate::body::renamed;
use crate::providers::JsonBody;

/// Top-level fields a translation drops.
pub const DROPPED: [&str; 5] = [
    "thinking",
    "context_management",
    "output_config",
    "top_k",
    "service_tier",
];

/// Top-level fields only Anthropic can serve: a translation refuses them.
const NATIVE_ONLY: [&str; 2] = ["mcp_servers", "container"];

/// The fields of `body` a translation drops, for the response header.
pub fn dropped(body: &JsonBody) -> Vec<String> {
    super::super::present(body, &DROPPED)
}

/// Translates a parsed Anthropic body. Errors are 400s naming the offending field.
pub fn to_chat(body: JsonBody) -> Result<JsonBody, ApiError> {
    let field = |name: &str| super::super::field(&body, name);
    let mut out = Map::new();
    if let Some(model) = field("model")? {
        out.insert("model".into(), model);
    }
    let mut messages = Vec::new();
    if let Some(system) = field("system")? {
        system_messages(&system, &mut messages)?;
    }
    let Some(Value::Array(list)) = field("messages")? else {
        return Err(ApiError::invalid(
            "messages",
            "'messages' is a required property and must be an array.",
        ));
    };
    for (i, m) in list.iter().enumerate() {
        message(m, &format!("messages[{i}]"), &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));
    let names = [
        ("max_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stop_sequences", "stop"),
    ];
    renamed(field, &names, &mut out)?;
    if let Some(user) = field("metadata")?.and_then(|m| m.get("user_id").cloned()) {
        if !user.is_null() {
            out.insert("user".into(), user);
        }
    }
    if let Some(tools) = field("tools")? {
        out.insert("tools".into(), self::tools(&tools)?);
    }
    if let Some(choice) = field("tool_choice")? {
        let (choice, parallel) = tool_choice(&choice)?;
        out.insert("tool_choice".into(), choice);
        if let Some(p) = parallel {
            out.insert("parallel_tool_calls".into(), Value::Bool(p));
        }
    }
    if let Some(stream) = field("stream")? {
        if stream == Value::Bool(true) {
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
        out.insert("stream".into(), stream);
    }
    if let Some(name) = NATIVE_ONLY.into_iter().find(|name| {
        body.get(*name)
            .is_some_and(|raw| !matches!(raw.get(), "null" | "[]"))
    }) {
        return Err(ApiError::invalid(
            name,
            format!("'{name}' is only served by an Anthropic deployment; this route translates to another provider."),
        ));
    }
    super::super::into_body(out)
}

/// `system` as system messages: one joined message, or, when a block carries a cache
/// breakpoint, one message per block with the breakpoint on its part.
fn system_messages(system: &Value, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let text = text_of(system, "system")?;
    let Some(blocks) = system
        .as_array()
        .filter(|b| b.iter().any(|b| marked(b).is_some()))
    else {
        out.push(json!({"role": "system", "content": text}));
        return Ok(());
    };
    for block in blocks {
        let mut part = json!({"type": "text", "text": block["text"]});
        keep_mark(block, &mut part);
        out.push(json!({"role": "system", "content": [part]}));
    }
    Ok(())
}

/// A block's `cache_control` breakpoint, if it has one.
fn marked(block: &Value) -> Option<&Value> {
    block.get("cache_control").filter(|m| !m.is_null())
}

/// Copies `block`'s breakpoint onto `into`.
fn keep_mark(block: &Value, into: &mut Value) {
    if let Some(mark) = marked(block) {
        into["cache_control"] = mark.clone();
    }
}

/// A `system` prompt or tool result: a string, or text blocks joined by blank lines.
fn text_of(value: &Value, param: &str) -> Result<String, ApiError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut parts = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                match (b["type"].as_str(), b["text"].as_str()) {
                    (Some("text"), Some(t)) => parts.push(t),
                    _ => {
                        return Err(ApiError::invalid(
                            &format!("{param}[{i}]"),
                            format!("'{param}[{i}]' must be a text block."),
                        ))
                    }
                }
            }
            Ok(parts.join("\n\n"))
        }
        _ => Err(ApiError::invalid(
            param,
            format!("'{param}' must be a string or an array of text blocks."),
        )),
    }
}

/// One Anthropic message → one or more OpenAI messages.
fn message(m: &Value, param: &str, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let role = match m["role"].as_str() {
        Some(r @ ("user" | "assistant")) => r,
        Some("system") => {
            let text = text_of(&m["content"], &format!("{param}.content"))?;
            out.push(json!({"role": "system", "content": text}));
            return Ok(());
        }
        _ => {
            return Err(ApiError::invalid(
                &format!("{param}.role"),
                format!("'{param}.role' must be \"user\", \"assistant\" or \"system\"."),
            ))
        }
    };
    let Some(blocks) = content_array(&m["content"], role, param, "content blocks", out)? else {
        return Ok(());
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let at = format!("{param}.content[{i}]");
        match (role, block["type"].as_str().unwrap_or_default()) {
            (_, "text") => {
                let mut part = json!({"type": "text", "text": str_field(block, "text", &at)?});
                keep_mark(block, &mut part);
                parts.push(part);
            }
            ("user", "image") => {
                let mut part = image(block, &at)?;
                keep_mark(block, &mut part);
                parts.push(part);
            }
            ("user", "tool_result") => out.push(tool_result(block, &at)?),
            ("assistant", "tool_use") => calls.push(json!({
                "id": str_field(block, "id", &at)?,
                "type": "function",
                "function": {
                    "name": str_field(block, "name", &at)?,
                    "arguments": block.get("input").unwrap_or(&json!({})).to_string(),
                },
            })),
            // Reasoning the client echoes back has no place in the OpenAI dialect.
            ("assistant", "thinking" | "redacted_thinking") => {}
            (_, other) => {
                return Err(ApiError::invalid(
                    &format!("{at}.type"),
                    format!(
                        "Content block type '{other}' is not supported in a {role} message on this gateway."
                    ),
                ))
            }
        }
    }
    if role == "assistant" {
        let text: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        let mut msg = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text.concat()) }});
        if !calls.is_empty() {
            msg["tool_calls"] = Value::Array(calls);
        }
        out.push(msg);
    } else if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

fn str_field<'a>(block: &'a Value, name: &str, at: &str) -> Result<&'a str, ApiError> {
    block[name].as_str().ok_or_else(|| {
        ApiError::invalid(
            &format!("{at}.{name}"),
            format!("'{at}.{name}' is a required string."),
        )
    })
}

fn image(block: &Value, at: &str) -> Result<Value, ApiError> {
    let source = &block["source"];
    let url = match source["type"].as_str() {
        Some("base64") => format!(
            "data:{};base64,{}",
            str_field(source, "media_type", &format!("{at}.source"))?,
            str_field(source, "data", &format!("{at}.source"))?
        ),
        Some("url") => str_field(source, "url", &format!("{at}.source"))?.to_owned(),
        _ => {
            return Err(ApiError::invalid(
                &format!("{at}.source"),
                format!("'{at}.source.type' must be \"base64\" or \"url\"."),
            ))
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn tool_result(block: &Value, at: &str) -> Result<Value, ApiError> {
    let id = str_field(block, "tool_use_id", at)?;
    let mut content = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(c) => text_of(c, &format!("{at}.content"))?,
    };
    if block["is_error"] == Value::Bool(true) {
        content = format!("[tool error] {content}");
    }
    let inner = block["content"]
        .as_array()
        .and_then(|b| b.iter().rev().find_map(marked));
    if let Some(mark) = marked(block).or(inner) {
        let part = json!({"type": "text", "text": content, "cache_control": mark});
        return Ok(json!({"role": "tool", "tool_call_id": id, "content": [part]}));
    }
    Ok(json!({"role": "tool", "tool_call_id": id, "content": content}))
}

fn tools(tools: &Value) -> Result<Value, ApiError> {
    let Value::Array(list) = tools else {
        return Err(ApiError::invalid("tools", "'tools' must be an array."));
    };
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let at = format!("tools[{i}]");
            let Some(schema) = t.get("input_schema") else {
                return Err(ApiError::invalid(
                    &at,
                    format!("'{at}' has no 'input_schema': only client (custom) tools are supported on this gateway."),
                ));
            };
            let mut function = json!({"name": str_field(t, "name", &at)?, "parameters": schema});
            if let Some(d) = t.get("description").filter(|d| !d.is_null()) {
                function["description"] = d.clone();
            }
            let mut tool = json!({"type": "function", "function": function});
            keep_mark(t, &mut tool);
            Ok(tool)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// `tool_choice` and, from `disable_parallel_tool_use`, `parallel_tool_calls`.
fn tool_choice(choice: &Value) -> Result<(Value, Option<bool>), ApiError> {
    let mapped = match choice["type"].as_str() {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            json!({"type": "function", "function": {"name": str_field(choice, "name", "tool_choice")?}})
        }
        _ => {
            return Err(ApiError::invalid(
                "tool_choice",
                "'tool_choice.type' must be one of \"auto\", \"any\", \"tool\", \"none\".",
            ))
        }
    };
    let parallel = choice["disable_parallel_tool_use"].as_bool().map(|d| !d);
    Ok((mapped, parallel))
}
