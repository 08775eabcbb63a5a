//! OpenAI chat request → Gemini `GenerateContentRequest` (pure; shared with a future Vertex AI
//! adapter, which speaks the same body format).
//!
//! Mapping:
//! - `system`/`developer` messages → `systemInstruction.parts` (text only);
//! - `user` → `{role: "user"}`, `assistant` → `{role: "model"}`; text parts stay text, image
//!   `data:` URLs become `inlineData`, `http(s)` image URLs become `fileData` (best effort: the
//!   Gemini API fetches only some URLs, e.g. its Files API);
//! - assistant `tool_calls` → `functionCall` parts (arguments parsed as JSON);
//! - `tool` messages → `functionResponse` parts in a `user` turn, named after the matching
//!   `tool_call` earlier in the conversation; content that is not a JSON object is wrapped as
//!   `{"result": content}`. Consecutive turns of one role are merged (parallel calls answer in
//!   one turn, as Gemini expects);
//! - `tools` → one `functionDeclarations` list, schemas cleaned by [`clean_schema`];
//! - `tool_choice` → `toolConfig.functionCallingConfig` (`AUTO`/`NONE`/`ANY`);
//! - sampling fields → `generationConfig`. Fields Gemini has no equivalent for (`user`,
//!   `logit_bias`, `logprobs`, `parallel_tool_calls`, `reasoning_effort`, ...) are dropped.
//!
//! Input the translation cannot express is an [`Untranslatable`] (a 400 to the client), never a
//! silently wrong request.

use serde_json::{json, Map, Value};

use crate::providers::translate::body::{self as openai, Field};
use crate::providers::translate::messages::{walk, At, Target, ToolCall, ToolResult};
use crate::providers::translate::{bad, Untranslatable};
use crate::providers::JsonBody;

/// JSON-schema keywords Gemini's `Schema` (an OpenAPI 3.0 subset) rejects; removed from tool
/// parameters and response schemas. `additionalProperties: false` (added by `strict` tools and
/// most schema generators) and `$schema` are the common ones.
const UNSUPPORTED_SCHEMA_KEYS: &[&str] = &[
    "additionalProperties",
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "definitions",
    "strict",
    "examples",
    "const",
    "patternProperties",
    "unevaluatedProperties",
    "dependentRequired",
    "dependentSchemas",
    "if",
    "then",
    "else",
    "not",
];

/// Translates the OpenAI chat body into a Gemini request body.
pub fn chat_request(body: &JsonBody) -> Result<Value, Untranslatable> {
    let field = |name: &str| openai::field(body, name);
    let messages = openai::messages(body)?;
    let (system, contents) = translate_messages(&messages)?;
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    if let Some(tools) = field("tools")? {
        let declarations = function_declarations(&tools)?;
        if !declarations.is_empty() {
            out.insert(
                "tools".into(),
                json!([{ "functionDeclarations": declarations }]),
            );
        }
    }
    if let Some(choice) = field("tool_choice")? {
        out.insert(
            "toolConfig".into(),
            json!({ "functionCallingConfig": calling_config(&choice)? }),
        );
    }
    let config = generation_config(&field)?;
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(out))
}

fn generation_config(field: &Field<'_>) -> Result<Map<String, Value>, Untranslatable> {
    let mut config = Map::new();
    let names = [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("n", "candidateCount"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
    ];
    openai::renamed(field, &names, &mut config)?;
    // `max_completion_tokens` supersedes the deprecated `max_tokens`.
    if let Some(v) = field("max_completion_tokens")?.or(field("max_tokens")?) {
        config.insert("maxOutputTokens".into(), v);
    }
    if let Some(stop) = openai::stop_sequences(field)? {
        config.insert("stopSequences".into(), stop);
    }
    if let Some(format) = field("response_format")? {
        match format.get("type").and_then(Value::as_str) {
            Some("text") | None => {}
            Some("json_object") => {
                config.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                config.insert("responseMimeType".into(), json!("application/json"));
                if let Some(schema) = format.pointer("/json_schema/schema") {
                    config.insert("responseSchema".into(), clean_schema(schema));
                }
            }
            Some(other) => return Err(bad(format!("unsupported response_format type `{other}`"))),
        }
    }
    Ok(config)
}

fn translate_messages(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), Untranslatable> {
    let mut conversation = walk(messages, &mut Parts)?;
    let contents = conversation.turns_json(["user", "model"], "parts");
    Ok((conversation.system_blocks(), contents))
}

/// Gemini's content parts.
struct Parts;

impl Target for Parts {
    type Block = Value;
    const NAME: &'static str = "Gemini";

    fn text(&mut self, text: &str) -> Value {
        json!({ "text": text })
    }

    fn image(&mut self, url: &str, at: At) -> Result<Value, Untranslatable> {
        media_part(url).ok_or_else(|| {
            bad(format!(
                "{at}: only data: and http(s) image URLs are supported"
            ))
        })
    }

    fn tool_call(&mut self, call: ToolCall<'_>, _: At) -> Result<Value, Untranslatable> {
        Ok(json!({ "functionCall": { "name": call.name, "args": call.arguments } }))
    }

    /// Named after the call it answers; content that is not a JSON object is wrapped as
    /// `{"result": content}`.
    fn tool_result(&mut self, result: ToolResult<'_>, at: At) -> Result<Value, Untranslatable> {
        let name = result.name.ok_or_else(|| {
            bad(format!(
                "{at}.tool_call_id does not match a tool call earlier in the conversation"
            ))
        })?;
        let response = match serde_json::from_str::<Value>(&result.text) {
            Ok(object @ Value::Object(_)) => object,
            _ => json!({ "result": result.text }),
        };
        Ok(json!({ "functionResponse": { "name": name, "response": response } }))
    }
}

/// `data:MIME;base64,DATA` → `inlineData`; `http(s)://` → `fileData` with a MIME type guessed
/// from the extension.
fn media_part(url: &str) -> Option<Value> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',')?;
        let mime = meta.strip_suffix(";base64")?;
        return Some(json!({ "inlineData": { "mimeType": mime, "data": data } }));
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return None;
    }
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    let mime = [
        (".png", "image/png"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".webp", "image/webp"),
        (".gif", "image/gif"),
        (".heic", "image/heic"),
        (".heif", "image/heif"),
        (".pdf", "application/pdf"),
    ]
    .into_iter()
    .find(|(ext, _)| path.ends_with(ext))
    .map(|(_, mime)| mime);
    Some(match mime {
        Some(mime) => json!({ "fileData": { "mimeType": mime, "fileUri": url } }),
        None => json!({ "fileData": { "fileUri": url } }),
    })
}

fn function_declarations(tools: &Value) -> Result<Vec<Value>, Untranslatable> {
    let tools = openai::function_tools(tools, Parts::NAME)?;
    let declarations = tools.into_iter().map(|f| {
        let mut declaration = Map::new();
        declaration.insert("name".into(), json!(f.name));
        if let Some(d) = f.description {
            declaration.insert("description".into(), d.clone());
        }
        if let Some(p) = f.parameters.filter(|p| !is_empty_object(p)) {
            declaration.insert("parameters".into(), clean_schema(p));
        }
        Value::Object(declaration)
    });
    Ok(declarations.collect())
}

/// An object schema without properties: Gemini rejects it, and omitting `parameters` means the
/// same (a function without arguments).
fn is_empty_object(schema: &Value) -> bool {
    schema.is_null()
        || schema.as_object().is_some_and(|o| {
            o.get("properties")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
                && o.get("type")
                    .and_then(Value::as_str)
                    .is_none_or(|t| t == "object")
                && !o.contains_key("anyOf")
        })
}

/// A JSON schema reduced to what Gemini's `Schema` accepts: [`UNSUPPORTED_SCHEMA_KEYS`] are
/// removed and `type: [T, "null"]` becomes `type: T, nullable: true`. Property names are never
/// touched, only keywords.
pub fn clean_schema(schema: &Value) -> Value {
    let Some(object) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in object {
        if UNSUPPORTED_SCHEMA_KEYS.contains(&key.as_str()) {
            continue;
        }
        let value = match key.as_str() {
            "properties" => match value.as_object() {
                Some(props) => Value::Object(
                    props
                        .iter()
                        .map(|(name, s)| (name.clone(), clean_schema(s)))
                        .collect(),
                ),
                None => value.clone(),
            },
            "items" => clean_schema(value),
            "anyOf" | "oneOf" | "allOf" => match value.as_array() {
                Some(list) => Value::Array(list.iter().map(clean_schema).collect()),
                None => value.clone(),
            },
            "type" => match value.as_array() {
                Some(types) => {
                    let non_null: Vec<&Value> = types
                        .iter()
                        .filter(|t| t.as_str() != Some("null"))
                        .collect();
                    if non_null.len() < types.len() {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                    non_null.first().map_or(json!("string"), |t| (*t).clone())
                }
                None => value.clone(),
            },
            _ => value.clone(),
        };
        // Gemini knows `anyOf` only.
        let key = if key == "oneOf" {
            "anyOf"
        } else {
            key.as_str()
        };
        out.insert(key.to_owned(), value);
    }
    Value::Object(out)
}

fn calling_config(choice: &Value) -> Result<Value, Untranslatable> {
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(json!({ "mode": "AUTO" })),
            "none" => Ok(json!({ "mode": "NONE" })),
            "required" => Ok(json!({ "mode": "ANY" })),
            other => Err(bad(format!("unsupported tool_choice `{other}`"))),
        },
        Value::Object(_) => {
            let name = choice
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("tool_choice.function.name is required"))?;
            Ok(json!({ "mode": "ANY", "allowedFunctionNames": [name] }))
        }
        _ => Err(bad("tool_choice must be a string or an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> JsonBody {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn schema_keywords_go_but_property_names_stay() {
        let cleaned = clean_schema(&json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "additionalProperties": {"type": ["string", "null"]},
                "list": {"type": "array", "items": {"type": "object", "additionalProperties": false}}
            }
        }));
        assert_eq!(
            cleaned,
            json!({
                "type": "object",
                "properties": {
                    "additionalProperties": {"type": "string", "nullable": true},
                    "list": {"type": "array", "items": {"type": "object"}}
                }
            })
        );
    }

    #[test]
    fn untranslatable_input_is_a_bad_request() {
        for (input, message) in [
            (json!({}), "`messages` is required"),
            (
                json!({"messages": [{"role": "tool", "tool_call_id": "x", "content": "1"}]}),
                "messages[0].tool_call_id does not match a tool call earlier in the conversation",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
                "messages[0].content[0]: content part type `input_audio` is not supported by Gemini",
            ),
        ] {
            assert_eq!(chat_request(&body(input)), Err(Untranslatable::Request(message.into())));
        }
    }
}
