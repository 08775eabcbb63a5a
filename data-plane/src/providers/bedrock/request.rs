//! OpenAI chat request → Bedrock `Converse` request body (pure). The same body goes to
//! `converse` and `converse-stream`; the model is in the URL, not the body.
//!
//! Mapping:
//! - `system`/`developer` messages → `system: [{text}]` (text parts only, empty ones dropped);
//! - `user`/`assistant` text → `{text}` blocks (empty text dropped: Bedrock refuses blank
//!   blocks); image parts → `{image: {format, source: {bytes}}}` from base64 `data:` URLs only —
//!   Bedrock cannot fetch a URL, so an `http(s)` image is a 400, as is a format other than
//!   png, jpeg, gif or webp;
//! - assistant `tool_calls` → `{toolUse: {toolUseId, name, input}}` (arguments parsed as JSON);
//! - `tool` messages → `{toolResult: {toolUseId, content: [{text}]}}` blocks in a `user` turn.
//!   Consecutive turns of one role are merged, so parallel results answer in one turn; an
//!   empty result is sent as the text `(no output)` (Bedrock refuses blank text blocks);
//! - `max_completion_tokens` (else `max_tokens`), `temperature`, `top_p`, `stop` (string or
//!   list) → `inferenceConfig`; `n` above 1 is a 400 (Converse returns one answer);
//! - `tools` → `toolConfig.tools[].toolSpec` (`inputSchema.json` = the parameters, an empty
//!   object schema when absent); `tool_choice` `auto` → `{auto:{}}`, `required` → `{any:{}}`,
//!   a named function → `{tool:{name}}`. Converse has no `none`: with `none` the tools are
//!   left out, unless the conversation already holds tool calls — Bedrock then requires the
//!   tools to be declared, so they are sent without a `toolChoice` (best effort: the model is
//!   not forbidden to call one);
//! - `response_format` `json_object`/`json_schema` is a 400: Converse has no JSON mode, and a
//!   prompt instruction would promise what the gateway cannot guarantee. `text` is accepted.
//! - prompt-cache marks (`cache_control` on parts, messages or tools, as the Messages dialect
//!   and OpenAI-compatible clients send them) → a `{cachePoint: {type: "default"}}` block
//!   right after the marked block, system text or tool spec, with the mark's `ttl` (`5m`,
//!   `1h`) when it names one;
//! - Fields Converse has no equivalent for (`user`, `seed`, penalties, `logprobs`,
//!   `parallel_tool_calls`, `stream_options`, ...) are dropped.
//!
//! Input the translation cannot express is an [`Untranslatable`] (a 400 to the client), never a
//! silently wrong request.

use serde_json::{json, Map, Value};

use crate::providers::translate::body::{self as openai, Field, FunctionTool};
use crate::providers::translate::messages::{required_id, walk, At, Target, ToolCall, ToolResult};
use crate::providers::translate::{bad, Untranslatable};
use crate::providers::JsonBody;

/// What an empty tool result is sent as (Bedrock refuses blank text blocks).
pub const EMPTY_TOOL_RESULT: &str = "(no output)";

/// Translates the OpenAI chat body into a Converse request body.
pub fn converse_request(body: &JsonBody) -> Result<Value, Untranslatable> {
    let field = |name: &str| openai::field(body, name);
    let messages = openai::messages(body)?;
    let (system, turns, has_tool_blocks) = translate_messages(&messages)?;
    let mut out = Map::new();
    out.insert("messages".into(), Value::Array(turns));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let config = inference_config(&field)?;
    if !config.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(config));
    }
    if let Some(tool_config) = tool_config(
        field("tools")?.as_ref(),
        field("tool_choice")?.as_ref(),
        has_tool_blocks,
    )? {
        out.insert("toolConfig".into(), tool_config);
    }
    if let Some(format) = field("response_format")? {
        match format.get("type").and_then(Value::as_str) {
            Some("text") | None => {}
            Some(other) => {
                return Err(bad(format!(
                    "response_format `{other}` is not supported for Bedrock providers: the \
                     Converse API has no JSON mode"
                )))
            }
        }
    }
    Ok(Value::Object(out))
}

fn inference_config(field: &Field<'_>) -> Result<Map<String, Value>, Untranslatable> {
    let mut config = Map::new();
    if let Some(n) = field("n")? {
        if n.as_u64().is_some_and(|n| n > 1) {
            return Err(bad("`n` above 1 is not supported for Bedrock providers"));
        }
    }
    // `max_completion_tokens` supersedes the deprecated `max_tokens`.
    if let Some(v) = field("max_completion_tokens")?.or(field("max_tokens")?) {
        config.insert("maxTokens".into(), v);
    }
    if let Some(v) = field("temperature")? {
        config.insert("temperature".into(), v);
    }
    if let Some(v) = field("top_p")? {
        config.insert("topP".into(), v);
    }
    if let Some(stop) = openai::stop_sequences(field)? {
        config.insert("stopSequences".into(), stop);
    }
    Ok(config)
}

/// System blocks, the merged turns, and whether any turn holds tool blocks.
type Translated = (Vec<Value>, Vec<Value>, bool);

fn translate_messages(messages: &[Value]) -> Result<Translated, Untranslatable> {
    let mut conversation = walk(messages, &mut Blocks)?;
    let turns = conversation.turns_json(["user", "assistant"], "content");
    let mut system = Vec::with_capacity(conversation.system.len());
    for s in &conversation.system {
        system.push(json!({ "text": s.text }));
        system.extend(s.cache.as_ref().map(cache_point));
    }
    Ok((system, turns, conversation.uses_tools))
}

/// The Converse block standing for an Anthropic-style cache mark.
fn cache_point(mark: &Value) -> Value {
    let mut point = json!({ "type": "default" });
    if let Some(ttl) = mark.get("ttl").filter(|t| t.is_string()) {
        point["ttl"] = ttl.clone();
    }
    json!({ "cachePoint": point })
}

/// Converse's content blocks.
struct Blocks;

impl Target for Blocks {
    type Block = Value;
    const NAME: &'static str = "Bedrock";

    fn text(&mut self, text: &str) -> Value {
        json!({ "text": text })
    }

    fn image(&mut self, url: &str, at: At) -> Result<Value, Untranslatable> {
        image_block(url, &at.to_string())
    }

    fn tool_call(&mut self, call: ToolCall<'_>, at: At) -> Result<Value, Untranslatable> {
        let id = required_id(call.id, "each tool call's `id`", at)?;
        Ok(json!({ "toolUse": { "toolUseId": id, "name": call.name, "input": call.arguments } }))
    }

    fn tool_result(&mut self, result: ToolResult<'_>, at: At) -> Result<Value, Untranslatable> {
        let id = required_id(result.id, "a tool message's `tool_call_id`", at)?;
        // Bedrock refuses blank text blocks, and a refused turn would wedge the conversation.
        let text = if result.text.trim().is_empty() {
            EMPTY_TOOL_RESULT.to_owned()
        } else {
            result.text
        };
        Ok(json!({ "toolResult": { "toolUseId": id, "content": [{ "text": text }] } }))
    }

    fn cache(&mut self, _: &mut Value, mark: &Value) -> Option<Value> {
        Some(cache_point(mark))
    }
}

/// `data:image/{png,jpeg,gif,webp};base64,DATA` → a Converse image block.
fn image_block(url: &str, at: &str) -> Result<Value, Untranslatable> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(bad(format!(
            "{at}: Bedrock cannot fetch image URLs; send the image inline as a base64 data: URL"
        )));
    };
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| bad(format!("{at}: malformed data: URL")))?;
    let mime = meta
        .strip_suffix(";base64")
        .ok_or_else(|| bad(format!("{at}: only base64 data: URLs are supported")))?;
    let format = match mime.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(bad(format!(
                "{at}: image type `{other}` is not supported for Bedrock (png, jpeg, gif, webp)"
            )))
        }
    };
    Ok(json!({ "image": { "format": format, "source": { "bytes": data } } }))
}

fn tool_config(
    tools: Option<&Value>,
    choice: Option<&Value>,
    has_tool_blocks: bool,
) -> Result<Option<Value>, Untranslatable> {
    let Some(tools) = tools else {
        return Ok(None);
    };
    let tools = openai::function_tools(tools, Blocks::NAME)?;
    if tools.is_empty() {
        return Ok(None);
    }
    let mut specs = Vec::with_capacity(tools.len());
    for tool in tools {
        let mark = tool.cache;
        specs.push(tool_spec(tool));
        specs.extend(mark.map(cache_point));
    }
    let choice = match choice {
        None => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({ "auto": {} })),
            "required" => Some(json!({ "any": {} })),
            "none" if has_tool_blocks => None,
            "none" => return Ok(None),
            other => return Err(bad(format!("unsupported tool_choice `{other}`"))),
        },
        Some(object @ Value::Object(_)) => {
            let name = object
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("tool_choice.function.name is required"))?;
            Some(json!({ "tool": { "name": name } }))
        }
        Some(_) => return Err(bad("tool_choice must be a string or an object")),
    };
    let mut config = Map::new();
    config.insert("tools".into(), Value::Array(specs));
    if let Some(c) = choice {
        config.insert("toolChoice".into(), c);
    }
    Ok(Some(Value::Object(config)))
}

fn tool_spec(f: FunctionTool<'_>) -> Value {
    let mut spec = Map::new();
    spec.insert("name".into(), json!(f.name));
    if let Some(d) = f
        .description
        .filter(|d| d.as_str().is_some_and(|d| !d.is_empty()))
    {
        spec.insert("description".into(), d.clone());
    }
    let schema = f.parameters.cloned().unwrap_or_else(openai::no_parameters);
    spec.insert("inputSchema".into(), json!({ "json": schema }));
    json!({ "toolSpec": spec })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> JsonBody {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn untranslatable_input_is_a_bad_request() {
        for (input, message) in [
            (json!({}), "`messages` is required"),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
                "messages[0].content[0]: Bedrock cannot fetch image URLs; send the image inline as a base64 data: URL",
            ),
            (
                json!({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}),
                "response_format `json_object` is not supported for Bedrock providers: the Converse API has no JSON mode",
            ),
            (
                json!({"messages": [{"role": "tool", "content": "1"}]}),
                "messages[0]: a tool message's `tool_call_id` is required",
            ),
            (
                json!({"messages": [{"role": "user", "content": "hi"}], "n": 2}),
                "`n` above 1 is not supported for Bedrock providers",
            ),
        ] {
            assert_eq!(converse_request(&body(input)), Err(Untranslatable::Request(message.into())));
        }
    }

    #[test]
    fn tool_choice_none_drops_tools_unless_the_history_needs_them() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let plain = converse_request(&body(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "tools": tools, "tool_choice": "none",
        })))
        .unwrap_or_default();
        assert!(plain.get("toolConfig").is_none());
        let with_history = converse_request(&body(json!({
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            ],
            "tools": tools, "tool_choice": "none",
        })))
        .unwrap_or_default();
        assert_eq!(
            with_history["toolConfig"],
            json!({"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object", "properties": {}}}}}]})
        );
    }
}
