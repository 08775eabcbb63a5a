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
//! `cache_creation`; see `cache.rs`); `output_tokens` the reply's words. Replies:
//! - A scripted tool call (`x-mock-tool-calls` or a script's `tool_calls`; the first one) is
//!   the answer to a request that declares tools, unless its last message carries a
//!   `tool_result`: one `tool_use` with the
//!   scripted name and input, `output_tokens` one plus the words of the input's JSON.
//! - Otherwise, when the request has `tools`, `tool_choice` is not `none` and the last message carries no
//!   `tool_result`, the answer is one `tool_use` of the first tool (or the one `tool_choice`
//!   names) with input `{"<required property>": "mock", ...}`; `stop_reason` `tool_use`, and
//!   `output_tokens` the words of the input's JSON.
//! - Otherwise the text reply, cut at `max_tokens` words (`stop_reason` `max_tokens`, else
//!   `end_turn`).
//!
//! Streams send the full event sequence, each event its own write: `message_start`,
//! `content_block_start`, `ping`, one `content_block_delta` per word (or two `input_json_delta`
//! halves), `content_block_stop`, `message_delta` (stop reason, usage), `message_stop`.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::admit::{admit, Admitted, ApiRequest, Dialect, Inbound};
use super::api::non_stream_response;
use super::cache::CacheTokens;
use super::openai::json_response;
use super::script::Fault;
use super::stream::{sse_stream, Ending};
use super::tokens::{count_words, ContentWords, Reply, DEFAULT_REPLY};
use crate::mock::error::{render, ErrorShape};

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
    let admitted = match admit::<MessagesRequest>(&inbound, Dialect::Anthropic).await {
        Ok(admitted) => admitted,
        Err(rejected) => return render(rejected, &Shape),
    };
    let answer = Answer::new(&admitted);
    admitted.bill(answer.input_tokens, answer.output_tokens);
    if admitted.request.stream() {
        stream_response(&admitted, &answer)
    } else {
        let json = serde_json::to_vec(&answer.message(answer.content(), answer.output_tokens))
            .unwrap_or_default();
        non_stream_response(&admitted, json)
    }
}

/// What the mock answers one admitted request with.
struct Answer<'a> {
    id: String,
    model: &'a str,
    input_tokens: u64,
    output_tokens: u64,
    cache: CacheTokens,
    stop_reason: &'static str,
    kind: AnswerKind<'a>,
}

enum AnswerKind<'a> {
    Text(Reply<'a>),
    ToolUse {
        id: String,
        name: &'a str,
        input: String,
    },
}

impl<'a> Answer<'a> {
    fn new(admitted: &'a Admitted<MessagesRequest>) -> Self {
        let request = &admitted.request;
        let scripted = admitted
            .behaviour
            .tool_calls
            .as_deref()
            .and_then(<[_]>::first)
            .filter(|_| {
                request.tools.as_ref().is_some_and(|t| !t.is_empty()) && !request.answered()
            });
        let (kind, output_tokens, stop_reason) = match (scripted, request.tool_to_call()) {
            (Some(call), _) => (
                AnswerKind::ToolUse {
                    id: format!("toolu_mock{:08x}", admitted.seq),
                    name: &call.name,
                    input: call.arguments_json(),
                },
                call.tokens(),
                "tool_use",
            ),
            (None, Some(tool)) => {
                let input: serde_json::Map<String, Value> = tool.input_schema["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|p| (p.to_owned(), Value::from("mock")))
                    .collect();
                let input = Value::Object(input).to_string();
                let tokens = count_words(&input);
                let id = format!("toolu_mock{:08x}", admitted.seq);
                (
                    AnswerKind::ToolUse {
                        id,
                        name: &tool.name,
                        input,
                    },
                    tokens,
                    "tool_use",
                )
            }
            (None, None) => {
                let text = admitted.behaviour.reply.as_deref().unwrap_or(DEFAULT_REPLY);
                let reply = Reply::new(text, request.max_tokens);
                let stop = if reply.finish_reason == "length" {
                    "max_tokens"
                } else {
                    "end_turn"
                };
                let tokens = reply.completion_tokens();
                (AnswerKind::Text(reply), tokens, stop)
            }
        };
        Self {
            id: format!("msg_mock{:08x}", admitted.seq),
            model: &admitted.model,
            input_tokens: request.prompt_tokens(),
            output_tokens,
            cache: CacheTokens::of(&admitted.behaviour, request.prompt_tokens()),
            stop_reason,
            kind,
        }
    }

    fn content(&self) -> Value {
        match &self.kind {
            AnswerKind::Text(reply) => json!([{ "type": "text", "text": reply.text() }]),
            AnswerKind::ToolUse { id, name, input } => {
                let input: Value = serde_json::from_str(input).unwrap_or_else(|_| json!({}));
                json!([{ "type": "tool_use", "id": id, "name": name, "input": input }])
            }
        }
    }

    /// The message object; in `message_start` it has no content yet and a null stop reason.
    fn message(&self, content: Value, output_tokens: u64) -> Value {
        let streaming_start = content.as_array().is_some_and(Vec::is_empty);
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": if streaming_start { Value::Null } else { Value::from(self.stop_reason) },
            "stop_sequence": null,
            "usage": self.cache.anthropic_usage(self.input_tokens, output_tokens),
        })
    }
}

fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn stream_response(admitted: &Admitted<MessagesRequest>, answer: &Answer<'_>) -> Response {
    let fault = admitted.behaviour.fault;
    let mut pieces = vec![event(
        "message_start",
        &json!({ "type": "message_start", "message": answer.message(json!([]), 1) }),
    )];
    let mut ending = Ending::Clean;
    if fault == Some(Fault::Malformed) {
        pieces.push(Bytes::from_static(
            b"event: content_block_start\ndata: {\"type\": <malformed>\n\n",
        ));
    } else {
        let (block, deltas) = match &answer.kind {
            AnswerKind::Text(reply) => {
                let deltas: Vec<Value> = reply
                    .words
                    .iter()
                    .enumerate()
                    .map(|(i, w)| {
                        let text = if i == 0 {
                            Cow::Borrowed(*w)
                        } else {
                            Cow::Owned(format!(" {w}"))
                        };
                        json!({ "type": "text_delta", "text": text })
                    })
                    .collect();
                (json!({ "type": "text", "text": "" }), deltas)
            }
            AnswerKind::ToolUse { id, name, input } => {
                let half = input.len() / 2;
                let (a, b) = input.split_at(input.floor_char_boundary(half));
                let deltas = [a, b]
                    .iter()
                    .map(|p| json!({ "type": "input_json_delta", "partial_json": p }))
                    .collect();
                (
                    json!({ "type": "tool_use", "id": id, "name": name, "input": {} }),
                    deltas,
                )
            }
        };
        pieces.push(event(
            "content_block_start",
            &json!({ "type": "content_block_start", "index": 0, "content_block": block }),
        ));
        pieces.push(event("ping", &json!({ "type": "ping" })));
        let cut = Fault::cuts(fault);
        for delta in Fault::shown(fault, &deltas) {
            pieces.push(event(
                "content_block_delta",
                &json!({ "type": "content_block_delta", "index": 0, "delta": delta }),
            ));
        }
        if fault == Some(Fault::ResetMidStream) {
            ending = Ending::Abort;
        } else if !cut {
            pieces.push(event(
                "content_block_stop",
                &json!({ "type": "content_block_stop", "index": 0 }),
            ));
            pieces.push(event(
                "message_delta",
                &json!({
                    "type": "message_delta",
                    "delta": { "stop_reason": answer.stop_reason, "stop_sequence": null },
                    "usage": { "output_tokens": answer.output_tokens },
                }),
            ));
            pieces.push(event("message_stop", &json!({ "type": "message_stop" })));
        }
    }
    sse_stream(admitted, pieces, ending)
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
mod tests {
    use serde_json::{json, Value};

    use super::super::test_client::TestMock;

    /// Status, headers and body text of a `POST /v1/messages`.
    async fn post(
        mock: &TestMock,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let response = mock.post("/v1/messages", headers, body).await;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }

    const AUTH: &[(&str, &str)] = &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")];

    fn body(stream: bool) -> Value {
        json!({"model": "claude-x", "max_tokens": 3, "stream": stream, "system": "be brief",
               "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there you"}]}]})
    }

    #[tokio::test]
    async fn checks_key_version_and_required_fields_in_anthropic_error_shape() {
        let mock = TestMock::start(Some("k")).await;
        let (status, _, text) =
            post(&mock, &[("anthropic-version", "2023-06-01")], &body(false)).await;
        assert_eq!(status, 401);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
        let (status, _, text) = post(&mock, &[("x-api-key", "k")], &body(false)).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("anthropic-version"));
        let mut no_max = body(false);
        no_max.as_object_mut().unwrap().remove("max_tokens");
        let (status, _, text) = post(&mock, AUTH, &no_max).await;
        assert_eq!(status, 400);
        assert!(text.contains("max_tokens"), "{text}");
        let (status, _, text) = post(&mock, AUTH, &json!({"model": "m", "max_tokens": 5})).await;
        assert_eq!(status, 400);
        assert!(text.contains("messages"), "{text}");
    }

    #[tokio::test]
    async fn answers_a_message_cut_at_max_tokens_and_bills_it() {
        let mock = TestMock::start(None).await;
        let (status, _, text) = post(&mock, AUTH, &body(false)).await;
        assert_eq!(status, 200, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(
            v["content"],
            json!([{"type": "text", "text": "Hello from the"}])
        );
        assert_eq!(v["stop_reason"], "max_tokens");
        assert_eq!(v["usage"]["input_tokens"], 5);
        assert_eq!(v["usage"]["output_tokens"], 3);
        let records = mock.records().await;
        assert_eq!(
            records[0]["billed"],
            json!({"prompt_tokens": 5, "completion_tokens": 3})
        );
    }

    #[tokio::test]
    async fn streams_the_full_event_sequence() {
        let mock = TestMock::start(None).await;
        let (status, headers, text) = post(&mock, AUTH, &body(true)).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "text/event-stream");
        let names: Vec<&str> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("event: "))
            .map(|e| e.split('\n').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(text.contains(r#""stop_reason":"max_tokens""#), "{text}");
    }

    #[tokio::test]
    async fn tools_get_a_tool_use_until_a_result_comes_back() {
        let mock = TestMock::start(None).await;
        let tools = json!([{"name": "get_weather", "input_schema": {"type": "object", "required": ["location"]}}]);
        let ask = json!({"model": "m", "max_tokens": 100, "tools": tools,
                         "messages": [{"role": "user", "content": "weather?"}]});
        let (_, _, text) = post(&mock, AUTH, &ask).await;
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(v["content"][0]["input"], json!({"location": "mock"}));
        let answered = json!({"model": "m", "max_tokens": 100, "tools": tools, "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [v["content"][0].clone()]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": v["content"][0]["id"], "content": "sunny"}]}]});
        let (_, _, text) = post(&mock, AUTH, &answered).await;
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["stop_reason"], "end_turn");
    }

    #[tokio::test]
    async fn scripted_overload_uses_anthropic_error_types() {
        let mock = TestMock::start(None).await;
        let mut headers = AUTH.to_vec();
        headers.push(("x-mock-status", "529"));
        let (status, _, text) = post(&mock, &headers, &body(false)).await;
        assert_eq!(status, 529);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["type"], "overloaded_error");
    }
}
