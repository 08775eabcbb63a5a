//! OpenAI chat requests translated into Anthropic Messages requests.
//!
//! Pure code: a body in, a body (or the reason it cannot be translated) out. What maps:
//! - `system`/`developer` messages, wherever they appear, are hoisted in order into `system`.
//! - `max_tokens` is required upstream: `max_completion_tokens`, else `max_tokens`, else
//!   [`DEFAULT_MAX_TOKENS`].
//! - User and assistant content (text, images as base64 or URL sources), assistant
//!   `tool_calls` as `tool_use` blocks, `tool` messages as `tool_result` blocks in a user turn.
//!   Consecutive turns of one role are merged, as Anthropic wants alternating turns.
//! - `tools`, `tool_choice` (`parallel_tool_calls: false` sets `disable_parallel_tool_use`),
//!   `stop` → `stop_sequences`, `temperature`, `top_p`, `user` → `metadata.user_id`.
//! - `response_format` `json_object`/`json_schema` has no Anthropic equivalent: best effort, an
//!   instruction (with the schema) appended to `system`. The answer is not validated.
//! - Prompt-cache marks (`cache_control` on parts, messages or tools, as the Messages dialect
//!   and OpenAI-compatible clients send them) stay `cache_control` on the block they mark; a
//!   marked system text makes `system` a list of text blocks (else it is one string).
//!
//! Fields with no Anthropic meaning (`seed`, penalties, `logprobs`, `stream_options`, ...) are
//! dropped; `n` above 1 is refused because a single Anthropic call yields one choice.

use serde_json::{json, Map, Value};

use crate::providers::translate::messages::{
    required_id, walk, At, SystemText, Target, ToolCall, ToolResult,
};
use crate::providers::translate::{self, bad, Untranslatable};
use crate::providers::JsonBody;

/// `max_tokens` sent when the client set no limit (Anthropic requires one). Large enough for
/// ordinary answers and accepted by every current Claude model.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The Anthropic Messages body for an OpenAI chat body.
pub fn messages_body(body: &JsonBody, model: &str, stream: bool) -> Result<Value, Untranslatable> {
    let field = |name: &str| translate::body::field(body, name);
    let mut out = Map::new();
    out.insert("model".into(), Value::from(model));
    let messages = translate::body::messages(body)?;
    let (mut system, turns) = translate_messages(&messages)?;
    let max_tokens = match (field("max_completion_tokens")?, field("max_tokens")?) {
        (Some(v), _) | (None, Some(v)) => v
            .as_u64()
            .ok_or_else(|| bad("`max_tokens` must be a positive integer"))?,
        (None, None) => DEFAULT_MAX_TOKENS,
    };
    out.insert("max_tokens".into(), Value::from(max_tokens));
    out.insert("messages".into(), Value::Array(turns));
    if let Some(n) = field("n")?.and_then(|n| n.as_u64()) {
        if n > 1 {
            return Err(bad("`n` greater than 1 is not supported by this model"));
        }
    }
    for name in ["temperature", "top_p"] {
        if let Some(v) = field(name)? {
            out.insert(name.into(), v);
        }
    }
    if let Some(stop) = translate::body::stop_sequences(&field)? {
        out.insert("stop_sequences".into(), stop);
    }
    if let Some(Value::String(user)) = field("user")? {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    if let Some(tools) = field("tools")? {
        out.insert("tools".into(), translate_tools(&tools)?);
    }
    let parallel = field("parallel_tool_calls")?.and_then(|v| v.as_bool());
    if let Some(choice) = translate_tool_choice(field("tool_choice")?.as_ref(), parallel)? {
        out.insert("tool_choice".into(), choice);
    }
    if let Some(format) = field("response_format")? {
        if let Some(text) = format_instruction(&format)? {
            system.push(SystemText { text, cache: None });
        }
    }
    if !system.is_empty() {
        out.insert("system".into(), system_field(system));
    }
    if stream {
        out.insert("stream".into(), Value::Bool(true));
    }
    Ok(Value::Object(out))
}

/// `system`: one string, or text blocks when one carries a cache mark.
fn system_field(system: Vec<SystemText>) -> Value {
    if system.iter().all(|s| s.cache.is_none()) {
        let texts: Vec<String> = system.into_iter().map(|s| s.text).collect();
        return Value::from(texts.join("\n\n"));
    }
    let blocks = system.into_iter().map(|s| {
        let mut block = json!({ "type": "text", "text": s.text });
        if let Some(mark) = s.cache {
            block["cache_control"] = mark;
        }
        block
    });
    Value::Array(blocks.collect())
}

/// System texts and Anthropic turns (each `{role, content: [blocks]}`).
fn translate_messages(messages: &[Value]) -> Result<(Vec<SystemText>, Vec<Value>), Untranslatable> {
    let mut conversation = walk(messages, &mut Blocks)?;
    if conversation.turns.is_empty() {
        return Err(bad(
            "`messages` must contain at least one user or assistant message",
        ));
    }
    let turns = conversation.turns_json(["user", "assistant"], "content");
    Ok((conversation.system, turns))
}

/// Anthropic's content blocks.
struct Blocks;

impl Target for Blocks {
    type Block = Value;
    const NAME: &'static str = "this model";

    fn text(&mut self, text: &str) -> Value {
        json!({ "type": "text", "text": text })
    }

    /// `data:` URLs become base64 sources, http(s) URLs URL sources.
    fn image(&mut self, url: &str, at: At) -> Result<Value, Untranslatable> {
        if let Some(rest) = url.strip_prefix("data:") {
            let (media_type, data) = rest
                .split_once(";base64,")
                .ok_or_else(|| bad(format!("{at}: image data URLs must be base64")))?;
            return Ok(json!({
                "type": "image",
                "source": { "type": "base64", "media_type": media_type, "data": data },
            }));
        }
        if url.starts_with("https://") || url.starts_with("http://") {
            return Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }));
        }
        Err(bad(format!(
            "{at}: image URLs must be data:, http:// or https:// URLs"
        )))
    }

    fn tool_call(&mut self, call: ToolCall<'_>, at: At) -> Result<Value, Untranslatable> {
        let id = required_id(call.id, "each tool call's `id`", at)?;
        Ok(json!({ "type": "tool_use", "id": id, "name": call.name, "input": call.arguments }))
    }

    fn tool_result(&mut self, result: ToolResult<'_>, at: At) -> Result<Value, Untranslatable> {
        let id = required_id(result.id, "a tool message's `tool_call_id`", at)?;
        Ok(json!({ "type": "tool_result", "tool_use_id": id, "content": result.text }))
    }

    fn refusal(&mut self, text: &str, _: At) -> Result<Option<Value>, Untranslatable> {
        Ok(Some(self.text(text)))
    }

    fn cache(&mut self, block: &mut Value, mark: &Value) -> Option<Value> {
        block["cache_control"] = mark.clone();
        None
    }
}

fn translate_tools(tools: &Value) -> Result<Value, Untranslatable> {
    let tools = translate::body::function_tools(tools, Blocks::NAME)?;
    let out = tools
        .into_iter()
        .map(|f| {
            let mut t = Map::new();
            t.insert("name".into(), Value::from(f.name));
            if let Some(d) = f.description.filter(|d| d.is_string()) {
                t.insert("description".into(), d.clone());
            }
            let schema = f.parameters.filter(|p| p.is_object()).cloned();
            t.insert(
                "input_schema".into(),
                schema.unwrap_or_else(translate::body::no_parameters),
            );
            if let Some(mark) = f.cache {
                t.insert("cache_control".into(), mark.clone());
            }
            Value::Object(t)
        })
        .collect();
    Ok(Value::Array(out))
}

fn translate_tool_choice(
    choice: Option<&Value>,
    parallel: Option<bool>,
) -> Result<Option<Value>, Untranslatable> {
    let mut out = match choice {
        None => {
            if parallel != Some(false) {
                return Ok(None);
            }
            json!({ "type": "auto" })
        }
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({ "type": "auto" }),
            "none" => json!({ "type": "none" }),
            "required" => json!({ "type": "any" }),
            other => return Err(bad(format!("`tool_choice` `{other}` is not supported"))),
        },
        Some(v) => {
            let name = v
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad("`tool_choice` must name a function"))?;
            json!({ "type": "tool", "name": name })
        }
    };
    if parallel == Some(false) && out["type"] != "none" {
        out["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Ok(Some(out))
}

/// The system instruction standing in for `response_format`.
fn format_instruction(format: &Value) -> Result<Option<String>, Untranslatable> {
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(
            "Respond with a single valid JSON object and nothing else.".to_owned(),
        )),
        Some("json_schema") => {
            let schema = format
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .cloned()
                .unwrap_or_else(|| json!({}));
            Ok(Some(format!(
                "Respond with a single valid JSON value and nothing else. It must conform to \
                 this JSON Schema: {schema}"
            )))
        }
        Some(other) => Err(bad(format!(
            "`response_format` type `{other}` is not supported"
        ))),
    }
}
