//! `POST /v1/messages`: the mock in Anthropic's Messages wire format.
//!
//! Same admission, scripting, faults and recording as the OpenAI routes (see [`super::admit`]),
//! with Anthropic's rules on top: `x-api-key` auth, `anthropic-version` header, `max_tokens`
//! and a non-empty `messages` required. Errors use Anthropic's
//! `{"type":"error","error":{"type","message"}}`.
//!
//! Tokens follow the mock's word rule: the prompt is the words of `system` and of every
//! message's text; `input_tokens` is the prompt less the scripted cache reads and writes, which
//! come as `cache_read_input_tokens` and `cache_creation_input_tokens` (split by lifetime in
//! `cache_creation`; see `cache.rs`); `output_tokens` every output token, thinking included (as
//! Anthropic counts it). Content blocks, in order (see `reply.rs` for the stream):
//! - Scripted reasoning (`x-mock-reasoning` or a script's `reasoning`): a `thinking` block
//!   with a `signature`, first; its words are output tokens.
//! - Scripted tool calls (`x-mock-tool-calls` or a script's `tool_calls`) answer a request
//!   that declares tools, unless its last message carries a `tool_result` (one scripted round
//!   trip): one `tool_use` block per call (ids `toolu_mock<seq>`, then `…_1`, `…_2`), with the
//!   scripted name and input, each costing one token plus the words of its input's JSON;
//!   `stop_reason` `tool_use`.
//! - Otherwise, when the request has `tools`, `tool_choice` is not `none` and the last message
//!   carries no `tool_result`, one `tool_use` of the first tool (or the one `tool_choice`
//!   names) with input `{"<required property>": "mock", ...}`, costing the words of the
//!   input's JSON; `stop_reason` `tool_use`.
//! - Otherwise a `text` block: the reply cut at `max_tokens` words (`stop_reason`
//!   `max_tokens`, else `end_turn`).

mod reply;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::admit::{admit, ApiRequest, Dialect, Inbound};
use super::api::non_stream_response;
use super::openai::json_response;
use super::output::Call;
use super::tokens::{count_words, ContentWords};
use crate::mock::error::{render, ErrorShape};
use reply::Answer;
/// The Messages request fields the mock reads.
#[derive(Debug, Deserialize)]
pub(crate) struct MessagesRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    system: Option<ContentWords>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    content: Value,
}

#[derive(Debug, Deserialize)]
struct Tool {
    name: String,
    #[serde(default)]
    input_schema: Value,
}

impl MessagesRequest {
    fn messages(&self) -> &[Message] {
        self.messages.as_deref().unwrap_or_default()
    }

    /// `messages` is there and not empty.
    pub(crate) fn has_messages(&self) -> bool {
        !self.messages().is_empty()
    }

    /// The last message carries a tool result (the answer to a tool call).
    fn answered(&self) -> bool {
        self.messages().last().is_some_and(|m| {
            m.content.as_array().is_some_and(|blocks| {
                blocks
                    .iter()
                    .any(|b| b["type"].as_str() == Some("tool_result"))
            })
        })
    }

    /// The call the answer makes unscripted: of the tool `tool_choice` names, else of the
    /// first tool, with `"mock"` for each required property of its input.
    fn forced_call(&self) -> Option<Call<'_>> {
        let tool = self.tool_to_call()?;
        let input: serde_json::Map<String, Value> = tool.input_schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|p| (p.to_owned(), Value::from("mock")))
            .collect();
        let arguments = Value::Object(input).to_string();
        Some(Call {
            name: &tool.name,
            tokens: count_words(&arguments),
            arguments,
        })
    }

    /// The tool the answer calls, if it calls one.
    fn tool_to_call(&self) -> Option<&Tool> {
        let tools = self.tools.as_deref().unwrap_or_default();
        let choice = self.tool_choice.as_ref();
        if tools.is_empty() || choice.and_then(|c| c["type"].as_str()) == Some("none") {
            return None;
        }
        if self.answered() {
            return None;
        }
        match choice.and_then(|c| c["name"].as_str()) {
            Some(name) => tools.iter().find(|t| t.name == name),
            None => tools.first(),
        }
    }
}

impl ApiRequest for MessagesRequest {
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
    fn stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }
    fn prompt_tokens(&self) -> u64 {
        let words = |v: &Value| ContentWords::deserialize(v).map_or(0, |w| w.0);
        self.system.unwrap_or_default().0
            + self
                .messages()
                .iter()
                .map(|m| words(&m.content))
                .sum::<u64>()
    }
    /// Scripted tool calls apply: tools are declared and the last message carries no
    /// `tool_result`.
    fn takes_tool_calls(&self) -> bool {
        self.tools.as_ref().is_some_and(|t| !t.is_empty()) && !self.answered()
    }
    fn validate(&self) -> Result<(), String> {
        if self.max_tokens.is_none() {
            return Err("max_tokens: Field required".to_owned());
        }
        if self.messages().is_empty() {
            return Err("messages: Field required".to_owned());
        }
        Ok(())
    }
}

/// `POST /v1/messages`.
pub(crate) async fn messages(inbound: Inbound) -> Response {
    answer(&inbound, Dialect::Anthropic).await
}

/// Admits a Messages request spoken in `dialect` (Anthropic's own, or Claude on Vertex AI's)
/// and answers it; the dialect's path may say whether it streams.
pub(crate) async fn answer(inbound: &Inbound, dialect: Dialect<'_>) -> Response {
    let admitted = match admit::<MessagesRequest>(inbound, dialect).await {
        Ok(admitted) => admitted,
        Err(rejected) => return render(rejected, &Shape),
    };
    let answer = Answer::new(&admitted);
    admitted.bill(answer.input_tokens, answer.output.completion_tokens());
    let stream = dialect
        .stream()
        .unwrap_or_else(|| admitted.request.stream());
    if stream {
        answer.stream(&admitted)
    } else {
        let json = serde_json::to_vec(&answer.message()).unwrap_or_default();
        non_stream_response(&admitted, json)
    }
}

/// An Anthropic error response.
fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({ "type": "error", "error": { "type": kind, "message": message } });
    json_response(status, body.to_string())
}

/// Anthropic's error shape.
pub(crate) struct Shape;

impl ErrorShape for Shape {
    fn error(&self, status: StatusCode, kind: &str, message: &str) -> Response {
        error_response(status, kind, message)
    }

    fn unauthorized(&self) -> Response {
        error_response(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        )
    }

    fn bad_request(&self) -> &'static str {
        "invalid_request_error"
    }

    fn scripted(&self, status: StatusCode) -> (&'static str, &'static str) {
        match status.as_u16() {
            429 => ("rate_limit_error", "Rate limited (mock provider)."),
            529 => ("overloaded_error", "Overloaded (mock provider)."),
            s if s >= 500 => ("api_error", "Internal server error (mock provider)."),
            _ => (
                "invalid_request_error",
                "The request was rejected (mock provider).",
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
