//! `POST /v1/responses`: the mock in OpenAI's Responses wire format (from OpenAI's API
//! reference), for tests of pass-through to an OpenAI deployment.
//!
//! Same admission, auth, scripting, `reset` fault, error statuses and recording as the chat
//! route. Tokens follow the mock's word rule: `input_tokens` counts the words of
//! `instructions` and of every text in `input` (a string; message contents, as a string or
//! `input_text`/`output_text` parts; `function_call_output` outputs); `output_tokens` every
//! output token: the reasoning's words (also `output_tokens_details.reasoning_tokens`) and the
//! reply's, cut at `max_output_tokens` (status `incomplete`), or the calls';
//! `input_tokens_details.cached_tokens` the scripted cache reads (part of `input_tokens`, see
//! `cache.rs`). Output items, in order: scripted reasoning as a `reasoning` item with one
//! `summary_text` part; then the reply as a `message`, or scripted tool calls as one
//! `function_call` item each, for a request that declares tools unless its last input item is
//! a `function_call_output`.
//!
//! Streams send `response.created`, `response.in_progress`, per item
//! `response.output_item.added`, its part and deltas (`response.reasoning_summary_part.added`
//! and a `response.reasoning_summary_text.delta` per word; `response.content_part.added` and
//! a `response.output_text.delta` per word; or one `response.function_call_arguments.delta`)
//! and closing events, then `response.completed`
//! (or `response.incomplete`) with the usage; every event carries `type` and
//! `sequence_number`. There is no `[DONE]`.
//!
//! `POST /v1/responses/compact` (never streamed; `input` may be absent, as with a stored
//! `previous_response_id`) answers OpenAI's `response.compaction`: `output` is the input's user
//! messages as sent, then one `compaction` item whose `encrypted_content` is opaque base64 (of
//! the reply); `usage` counts the input as above and the reply's words (the scripted
//! reasoning's included) as `output_tokens`, which is what it bills.

use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::admit::{admit, Admitted, ApiRequest, Dialect, Inbound};
use super::api::non_stream_response;
use super::cache::CacheTokens;
use super::output::{Content, Output};
use super::record::now_ms;
use super::stream::{sse_stream, Ending};
use super::tokens::{count_words, Reply};

/// The Responses request fields the mock reads.
#[derive(Debug, Deserialize)]
pub(crate) struct ResponsesRequest {
    model: Option<String>,
    #[serde(default)]
    instructions: Option<String>,
    input: Value,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    tools: Option<Vec<serde::de::IgnoredAny>>,
}

fn words_of(v: &Value) -> u64 {
    match v {
        Value::String(s) => count_words(s),
        Value::Array(items) => items.iter().map(words_of).sum(),
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text") => o.get("text").map_or(0, words_of),
            Some("function_call_output") => o.get("output").map_or(0, words_of),
            Some("message") | None => o.get("content").map_or(0, words_of),
            _ => 0,
        },
        _ => 0,
    }
}

/// The compaction request fields the mock reads.
#[derive(Debug, Deserialize)]
pub(crate) struct CompactRequest {
    model: Option<String>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    input: Value,
}

impl ApiRequest for CompactRequest {
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
    fn prompt_tokens(&self) -> u64 {
        self.instructions.as_deref().map_or(0, count_words) + words_of(&self.input)
    }
    fn validate(&self) -> Result<(), String> {
        match self.input {
            Value::Null | Value::String(_) | Value::Array(_) => Ok(()),
            _ => Err("'input' must be a string or an array of input items.".to_owned()),
        }
    }
}

impl ApiRequest for ResponsesRequest {
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
    fn stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }
    fn prompt_tokens(&self) -> u64 {
        self.instructions.as_deref().map_or(0, count_words) + words_of(&self.input)
    }
    /// Scripted tool calls apply: tools are declared and the last input item is not a
    /// `function_call_output`.
    fn takes_tool_calls(&self) -> bool {
        self.tools.as_ref().is_some_and(|t| !t.is_empty())
            && !self
                .input
                .as_array()
                .and_then(|items| items.last())
                .is_some_and(|i| i["type"] == "function_call_output")
    }
    fn validate(&self) -> Result<(), String> {
        match self.input {
            Value::String(_) | Value::Array(_) => Ok(()),
            _ => Err("'input' must be a string or an array of input items.".to_owned()),
        }
    }
}

/// `POST /v1/responses`.
pub(crate) async fn create(inbound: Inbound) -> Response {
    let admitted = match admit::<ResponsesRequest>(&inbound, Dialect::OpenAi).await {
        Ok(admitted) => admitted,
        Err(rejected) => return rejected.into_response(),
    };
    let answer = Answer::new(&admitted);
    admitted.bill(answer.input_tokens, answer.output.completion_tokens());
    if admitted.request.stream() {
        return answer.stream(&admitted);
    }
    let body = answer.response("completed_or_incomplete", answer.items(true));
    non_stream_response(&admitted, body.to_string().into_bytes())
}

/// `POST /v1/responses/compact`.
pub(crate) async fn compact(inbound: Inbound) -> Response {
    let admitted = match admit::<CompactRequest>(&inbound, Dialect::OpenAi).await {
        Ok(admitted) => admitted,
        Err(rejected) => return rejected.into_response(),
    };
    let (request, seq) = (&admitted.request, admitted.seq);
    let output = Output::new(&admitted.behaviour, None, None);
    let input_tokens = request.prompt_tokens();
    let cached = CacheTokens::of(&admitted.behaviour, input_tokens).read;
    admitted.bill(input_tokens, output.completion_tokens());
    let mut items: Vec<Value> = match &request.input {
        Value::String(text) => vec![json!({"type": "message", "role": "user", "content": text})],
        Value::Array(items) => items
            .iter()
            .filter(|i| i["role"] == "user" && i["type"].as_str().is_none_or(|t| t == "message"))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    let summary = match &output.content {
        Content::Text(reply) => reply.text(),
        Content::Calls(_) => String::new(),
    };
    let sealed = format!("switchyard mock compaction {seq:08x}: {summary}");
    items.push(json!({"id": format!("cmp_mock{seq:08x}"), "type": "compaction", "encrypted_content": STANDARD.encode(sealed)}));
    let body = json!({
        "id": format!("resp_mock{seq:08x}"), "object": "response.compaction",
        "created_at": now_ms() / 1000, "output": items,
        "usage": usage(input_tokens, cached, &output),
    });
    non_stream_response(&admitted, body.to_string().into_bytes())
}

/// A Responses `usage`: `input` tokens (`cached` of them read from the cache) and every output
/// token, reasoning included.
fn usage(input: u64, cached: u64, output: &Output<'_>) -> Value {
    let output_tokens = output.completion_tokens();
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": output.reasoning_tokens()},
        "total_tokens": input + output_tokens,
    })
}

/// What one request is answered with.
struct Answer<'a> {
    id: String,
    model: &'a str,
    input_tokens: u64,
    /// Scripted cache reads (part of `input_tokens`).
    cached_tokens: u64,
    output: Output<'a>,
    created_at: u64,
}

impl<'a> Answer<'a> {
    fn new(admitted: &'a Admitted<ResponsesRequest>) -> Self {
        let request = &admitted.request;
        let calls = Output::scripted(admitted.tool_calls());
        Self {
            id: format!("resp_mock{:08x}", admitted.seq),
            model: &admitted.model,
            input_tokens: request.prompt_tokens(),
            cached_tokens: CacheTokens::of(&admitted.behaviour, request.prompt_tokens()).read,
            output: Output::new(&admitted.behaviour, calls, request.max_output_tokens),
            created_at: now_ms() / 1000,
        }
    }

    /// The output items, finished (`done`) or as first announced: the reasoning, then the
    /// message or the function calls.
    fn items(&self, done: bool) -> Vec<Value> {
        let status = if done { "completed" } else { "in_progress" };
        let mut items = Vec::new();
        if let Some(text) = self.output.reasoning_text() {
            let summary = if done {
                json!([{"type": "summary_text", "text": text}])
            } else {
                json!([])
            };
            items.push(
                json!({"id": format!("rs_{}", self.id), "type": "reasoning", "summary": summary}),
            );
        }
        match &self.output.content {
            Content::Text(reply) => {
                let content = if done {
                    json!([{"type": "output_text", "text": reply.text(), "annotations": []}])
                } else {
                    json!([])
                };
                items.push(json!({"id": format!("msg_{}", self.id), "type": "message", "status": status, "role": "assistant", "content": content}));
            }
            Content::Calls(calls) => {
                for (i, c) in calls.iter().enumerate() {
                    let arguments = if done { c.arguments.as_str() } else { "" };
                    items.push(json!({"id": format!("fc_{}_{i}", self.id), "type": "function_call", "status": status, "call_id": format!("call_{}_{i}", self.id), "name": c.name, "arguments": arguments}));
                }
            }
        }
        items
    }

    /// The `response` object; `status` `completed_or_incomplete` is decided by the reply.
    fn response(&self, status: &str, output: Vec<Value>) -> Value {
        let (status, details) = match status {
            "completed_or_incomplete" if self.output.cut() => {
                ("incomplete", json!({"reason": "max_output_tokens"}))
            }
            "completed_or_incomplete" => ("completed", Value::Null),
            other => (other, Value::Null),
        };
        let usage = (status != "in_progress")
            .then(|| usage(self.input_tokens, self.cached_tokens, &self.output));
        json!({
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "error": null, "incomplete_details": details, "model": self.model, "output": output,
            "parallel_tool_calls": true, "tool_choice": "auto", "tools": [], "usage": usage,
            "metadata": {},
        })
    }

    fn stream(&self, admitted: &Admitted<ResponsesRequest>) -> Response {
        let mut events = Events::default();
        let start = self.response("in_progress", Vec::new());
        events.push("response.created", json!({"response": start}));
        events.push("response.in_progress", json!({"response": start}));
        let announced = self.items(false);
        let finished = self.items(true);
        for (at, (added, done)) in announced.iter().zip(&finished).enumerate() {
            events.push(
                "response.output_item.added",
                json!({"output_index": at, "item": added}),
            );
            let id = &done["id"];
            match done["type"].as_str() {
                Some("reasoning") => {
                    let part = &done["summary"][0];
                    let at = json!({"item_id": id, "output_index": at, "summary_index": 0});
                    events.push_with(
                        "response.reasoning_summary_part.added",
                        &at,
                        json!({"part": {"type": "summary_text", "text": ""}}),
                    );
                    for delta in self.output.reasoning.iter().flat_map(Reply::deltas) {
                        events.push_with(
                            "response.reasoning_summary_text.delta",
                            &at,
                            json!({"delta": delta}),
                        );
                    }
                    events.push_with(
                        "response.reasoning_summary_text.done",
                        &at,
                        json!({"text": part["text"]}),
                    );
                    events.push_with(
                        "response.reasoning_summary_part.done",
                        &at,
                        json!({"part": part}),
                    );
                }
                Some("message") => {
                    let part = &done["content"][0];
                    let at = json!({"item_id": id, "output_index": at, "content_index": 0});
                    events.push_with(
                        "response.content_part.added",
                        &at,
                        json!({"part": {"type": "output_text", "text": "", "annotations": []}}),
                    );
                    if let Content::Text(reply) = &self.output.content {
                        for delta in reply.deltas() {
                            events.push_with(
                                "response.output_text.delta",
                                &at,
                                json!({"delta": delta, "logprobs": []}),
                            );
                        }
                    }
                    events.push_with(
                        "response.output_text.done",
                        &at,
                        json!({"text": part["text"], "logprobs": []}),
                    );
                    events.push_with("response.content_part.done", &at, json!({"part": part}));
                }
                _ => {
                    let arguments = &done["arguments"];
                    let at = json!({"item_id": id, "output_index": at});
                    events.push_with(
                        "response.function_call_arguments.delta",
                        &at,
                        json!({"delta": arguments}),
                    );
                    events.push_with(
                        "response.function_call_arguments.done",
                        &at,
                        json!({"arguments": arguments}),
                    );
                }
            }
            events.push(
                "response.output_item.done",
                json!({"output_index": at, "item": done}),
            );
        }
        let end = self.response("completed_or_incomplete", finished);
        let kind = if self.output.cut() {
            "response.incomplete"
        } else {
            "response.completed"
        };
        events.push(kind, json!({"response": end}));
        sse_stream(admitted, events.pieces, Ending::Clean)
    }
}

/// SSE frames with their sequence numbers.
#[derive(Default)]
struct Events {
    pieces: Vec<Bytes>,
}

impl Events {
    /// An event about one part of an item: `at` (its item id, output index and part index)
    /// and `data`'s fields.
    fn push_with(&mut self, kind: &str, at: &Value, mut data: Value) {
        if let (Some(fields), Some(at)) = (data.as_object_mut(), at.as_object()) {
            fields.extend(at.clone());
        }
        self.push(kind, data);
    }

    fn push(&mut self, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.pieces.len());
        self.pieces
            .push(Bytes::from(format!("event: {kind}\ndata: {data}\n\n")));
    }
}
