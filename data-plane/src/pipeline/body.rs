//! Request bodies: read within the size limit, parsed, and checked field by field.
//!
//! Only the top level is parsed into a map; values stay raw JSON and are type-checked by their
//! first byte, so a large `messages` array is scanned once and never rebuilt. Messages follow
//! OpenAI's wording so SDK users see familiar errors.

use axum::body::Body;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::providers::JsonBody;
use crate::usage::tags::BodyTags;

/// Reads the whole body, refusing more than `limit` bytes (413).
pub async fn read(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::BodyTooLarge { limit })
        }
        Err(_) => Err(ApiError::InvalidRequest {
            message: "The request body could not be read.".into(),
            param: None,
        }),
    }
}

/// Parses a JSON object body.
pub fn parse_object(bytes: &[u8]) -> Result<JsonBody, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidRequest {
            message: "The request body is empty; a JSON object is required.".into(),
            param: None,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::InvalidRequest {
        message: format!(
            "We could not parse the JSON body of your request ({}). The body must be a JSON object.",
            describe_json_error(&e)
        ),
        param: None,
    })
}

fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => "expected a JSON object at the top level".into(),
        _ => format!(
            "{} at line {} column {}",
            category_text(e),
            e.line(),
            e.column()
        ),
    }
}

fn category_text(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        _ => "invalid JSON",
    }
}

/// JSON kind of a raw value, from its first byte.
fn kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn wrong_type(param: &str, expected: &str, raw: &RawValue) -> ApiError {
    ApiError::invalid(
        param,
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            kind(raw)
        ),
    )
}

fn required<'a>(body: &'a JsonBody, param: &str) -> Result<&'a RawValue, ApiError> {
    body.get(param)
        .map(AsRef::as_ref)
        .ok_or_else(|| ApiError::invalid(param, format!("'{param}' is a required property.")))
}

/// A required string field.
fn string(body: &JsonBody, param: &str) -> Result<String, ApiError> {
    let raw = required(body, param)?;
    serde_json::from_str::<String>(raw.get()).map_err(|_| wrong_type(param, "a string", raw))
}

/// An optional boolean (null counts as absent).
fn opt_bool(body: &JsonBody, param: &str) -> Result<Option<bool>, ApiError> {
    match body.get(param) {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<Option<bool>>(raw.get())
            .map_err(|_| wrong_type(param, "a boolean", raw)),
    }
}

/// Optional fields that must be of one kind when present and not null.
fn opt_kind(body: &JsonBody, param: &str, expected: &'static str) -> Result<(), ApiError> {
    match body.get(param) {
        Some(raw) if kind(raw) != expected && kind(raw) != "null" => {
            Err(wrong_type(param, expected, raw))
        }
        _ => Ok(()),
    }
}

/// Optional non-negative integers.
fn opt_count(body: &JsonBody, param: &str) -> Result<(), ApiError> {
    match body.get(param) {
        Some(raw) => serde_json::from_str::<Option<u64>>(raw.get())
            .map(drop)
            .map_err(|_| {
                ApiError::invalid(
                    param,
                    format!("Invalid value for '{param}': expected a non-negative integer."),
                )
            }),
        None => Ok(()),
    }
}

/// What the gateway needs to know of a chat request.
#[derive(Debug)]
pub struct ChatFields {
    pub model: String,
    pub stream: bool,
    /// The client asked for the usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// `max_completion_tokens`, else `max_tokens` (admission reserves this much output).
    pub max_output_tokens: Option<u64>,
}

/// An optional non-negative integer's value (validated by [`opt_count`] first).
fn count_value(body: &JsonBody, param: &str) -> Option<u64> {
    body.get(param).and_then(|raw| {
        serde_json::from_str::<Option<u64>>(raw.get())
            .ok()
            .flatten()
    })
}

/// The request's own tags: `metadata` (an object of strings; null counts as absent) and
/// `user` (a string), as OpenAI defines them. Only parsed when present.
pub fn tags(body: &JsonBody) -> Result<BodyTags, ApiError> {
    let mut tags = BodyTags::default();
    if let Some(raw) = body.get("metadata") {
        let map: Option<std::collections::BTreeMap<String, &RawValue>> =
            serde_json::from_str(raw.get())
                .map_err(|_| wrong_type("metadata", "an object", raw))?;
        for (name, value) in map.unwrap_or_default() {
            let text = serde_json::from_str::<String>(value.get())
                .map_err(|_| wrong_type(&format!("metadata.{name}"), "a string", value))?;
            tags.metadata.push((name, text));
        }
    }
    if let Some(raw) = body.get("user") {
        tags.user = serde_json::from_str::<Option<String>>(raw.get())
            .map_err(|_| wrong_type("user", "a string", raw))?;
    }
    Ok(tags)
}

#[derive(Deserialize)]
struct MessageProbe<'a> {
    #[serde(borrow, default)]
    role: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StreamOptionsProbe {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// Checks the fields routing and metering need in a Responses request (for a deployment
/// that takes it as it is).
pub fn responses(body: &JsonBody) -> Result<ChatFields, ApiError> {
    let model = string(body, "model")?;
    required(body, "input")?;
    let stream = opt_bool(body, "stream")?.unwrap_or(false);
    opt_count(body, "max_output_tokens")?;
    Ok(ChatFields {
        model,
        stream,
        include_usage: false,
        max_output_tokens: count_value(body, "max_output_tokens"),
    })
}

/// Checks the fields routing and metering need in a compaction request (for a deployment
/// that takes it as it is): the model only. It never streams, and its input may be a stored
/// conversation alone (`previous_response_id`).
pub fn compaction(body: &JsonBody) -> Result<ChatFields, ApiError> {
    Ok(ChatFields {
        model: string(body, "model")?,
        stream: false,
        include_usage: false,
        max_output_tokens: None,
    })
}

/// Checks a chat completion request.
pub fn chat(body: &JsonBody) -> Result<ChatFields, ApiError> {
    let model = string(body, "model")?;
    let messages = required(body, "messages")?;
    let list: Vec<&RawValue> = serde_json::from_str(messages.get())
        .map_err(|_| wrong_type("messages", "an array", messages))?;
    if list.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "'messages' must contain at least one message.",
        ));
    }
    for (i, m) in list.iter().enumerate() {
        let param = format!("messages[{i}]");
        let probe: MessageProbe =
            serde_json::from_str(m.get()).map_err(|_| wrong_type(&param, "an object", m))?;
        match probe.role {
            None => {
                return Err(ApiError::invalid(
                    &format!("{param}.role"),
                    format!("'{param}.role' is a required property."),
                ))
            }
            Some(r) if kind(r) != "a string" => {
                return Err(wrong_type(&format!("{param}.role"), "a string", r))
            }
            Some(_) => {}
        }
    }
    let stream = opt_bool(body, "stream")?.unwrap_or(false);
    opt_kind(body, "stream_options", "an object")?;
    for p in [
        "temperature",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
    ] {
        opt_kind(body, p, "a number")?;
    }
    for p in ["max_tokens", "max_completion_tokens", "n"] {
        opt_count(body, p)?;
    }
    opt_kind(body, "tools", "an array")?;
    let include_usage = body
        .get("stream_options")
        .and_then(|raw| {
            serde_json::from_str::<Option<StreamOptionsProbe>>(raw.get())
                .ok()
                .flatten()
        })
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let max_output_tokens =
        count_value(body, "max_completion_tokens").or_else(|| count_value(body, "max_tokens"));
    Ok(ChatFields {
        model,
        stream,
        include_usage,
        max_output_tokens,
    })
}

/// Checks an embeddings request; returns the model.
pub fn embeddings(body: &JsonBody) -> Result<String, ApiError> {
    let model = string(body, "model")?;
    let input = required(body, "input")?;
    match kind(input) {
        "a string" | "an array" => {}
        _ => return Err(wrong_type("input", "a string or an array", input)),
    }
    if input.get() == "[]" || input.get() == "\"\"" {
        return Err(ApiError::invalid("input", "'input' must not be empty."));
    }
    opt_kind(body, "encoding_format", "a string")?;
    opt_count(body, "dimensions")?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<ChatFields, (Option<String>, String)> {
        let body = parse_object(json.as_bytes()).map_err(|e| (None, e.to_string()))?;
        chat(&body).map_err(|e| match e {
            ApiError::InvalidRequest { message, param } => (param, message),
            other => (None, other.to_string()),
        })
    }

    #[test]
    fn the_error_names_the_field() {
        let cases = [
            (
                r#"{"messages":[{"role":"user","content":"x"}]}"#,
                "model",
                "'model' is a required property.",
            ),
            (
                r#"{"model":3,"messages":[]}"#,
                "model",
                "Invalid type for 'model': expected a string, but got a number instead.",
            ),
            (
                r#"{"model":"m"}"#,
                "messages",
                "'messages' is a required property.",
            ),
            (
                r#"{"model":"m","messages":"hi"}"#,
                "messages",
                "Invalid type for 'messages': expected an array, but got a string instead.",
            ),
            (
                r#"{"model":"m","messages":[]}"#,
                "messages",
                "'messages' must contain at least one message.",
            ),
            (
                r#"{"model":"m","messages":[1]}"#,
                "messages[0]",
                "Invalid type for 'messages[0]': expected an object, but got a number instead.",
            ),
            (
                r#"{"model":"m","messages":[{"content":"x"}]}"#,
                "messages[0].role",
                "'messages[0].role' is a required property.",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#,
                "stream",
                "Invalid type for 'stream': expected a boolean, but got a string instead.",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":-1}"#,
                "max_tokens",
                "Invalid value for 'max_tokens': expected a non-negative integer.",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user"}],"temperature":"hot"}"#,
                "temperature",
                "Invalid type for 'temperature': expected a number, but got a string instead.",
            ),
        ];
        for (json, param, message) in cases {
            assert_eq!(
                check(json).err(),
                Some((Some(param.to_owned()), message.to_owned())),
                "{json}"
            );
        }
    }

    #[test]
    fn malformed_json_is_reported() {
        for bad in ["", "{", "[1,2]", "{\"model\": }", "nul"] {
            let err = parse_object(bad.as_bytes())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains("JSON") || err.contains("empty"),
                "{bad:?} -> {err}"
            );
        }
    }

    #[test]
    fn a_valid_request_yields_its_fields() {
        let f = check(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":null}"#)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (f.model.as_str(), f.stream, f.include_usage),
            ("m", true, true)
        );
        let f = check(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":null}"#)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!f.stream && !f.include_usage);
    }

    #[test]
    fn output_reservation_and_body_tags() {
        let f = check(r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":50,"max_completion_tokens":20}"#)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(f.max_output_tokens, Some(20));
        let f = check(r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":50}"#)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(f.max_output_tokens, Some(50));
        let f = check(r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":null}"#)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(f.max_output_tokens, None);

        let body = |j: &str| parse_object(j.as_bytes()).unwrap_or_default();
        let t = tags(&body(
            r#"{"metadata":{"workflow":"w-1","b":"x"},"user":"alice"}"#,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t.metadata,
            [("b".into(), "x".into()), ("workflow".into(), "w-1".into())]
        );
        assert_eq!(t.user.as_deref(), Some("alice"));
        assert!(tags(&body(r#"{"metadata":null,"user":null}"#))
            .is_ok_and(|t| t.metadata.is_empty() && t.user.is_none()));
        for (bad, param) in [
            (r#"{"metadata":[1]}"#, "metadata"),
            (r#"{"metadata":{"n":1}}"#, "metadata.n"),
            (r#"{"user":5}"#, "user"),
        ] {
            match tags(&body(bad)) {
                Err(ApiError::InvalidRequest { param: p, .. }) => {
                    assert_eq!(p.as_deref(), Some(param))
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn embeddings_need_input() {
        let body = |j: &str| parse_object(j.as_bytes()).unwrap_or_default();
        assert_eq!(
            embeddings(&body(r#"{"model":"e","input":"hi"}"#))
                .ok()
                .as_deref(),
            Some("e")
        );
        assert!(embeddings(&body(r#"{"model":"e","input":[[1,2]]}"#)).is_ok());
        assert!(embeddings(&body(r#"{"model":"e"}"#)).is_err());
        assert!(embeddings(&body(r#"{"model":"e","input":5}"#)).is_err());
        assert!(embeddings(&body(r#"{"model":"e","input":[]}"#)).is_err());
    }
}
