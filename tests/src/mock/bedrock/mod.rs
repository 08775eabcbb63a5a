//! AWS Bedrock Runtime routes of the mock, in Bedrock's own wire format:
//! `POST /model/{modelId}/converse` (JSON) and `POST /model/{modelId}/converse-stream`
//! (`application/vnd.amazon.eventstream` frames). `{modelId}` arrives percent-encoded
//! (`…-v1%3A0`); the decoded id is the record's `model` and what a script's `model` matches.
//!
//! Auth: with [`super::MockOptions::api_key`] set, that value is the AWS *secret access key*:
//! the mock recomputes the SigV4 signature from the request it received (see `sigv4`) and
//! answers a missing `Authorization` with 403 `UnrecognizedClientException`, and a wrong
//! signature, wrong service in the scope or an `x-amz-date` more than 5 minutes off with 403
//! `InvalidSignatureException` (`IncompleteSignatureException` for a malformed header). Any
//! access key id and region are accepted; the record keeps the headers, so tests can check
//! them.
//!
//! Same admission as the other routes (recording, `x-mock-*` headers and scripts, latency,
//! faults), with Bedrock's checks on top, answered as `ValidationException`s: `messages` not
//! empty, starting with `user` and alternating roles, no blank text blocks (tool results
//! included), and `toolConfig` present whenever a turn holds `toolUse`/`toolResult` blocks.
//!
//! Tokens follow the mock's word rule: the prompt = words of the `text` blocks of `system`
//! and `messages` (tool results and images count zero); `inputTokens` is the prompt less the
//! scripted cache reads and writes, reported as `cacheReadInputTokens` and
//! `cacheWriteInputTokens` (see `cache.rs`); the reply is the scripted one (or
//! [`DEFAULT_REPLY`]) cut at `inferenceConfig.maxTokens` words (`stopReason` `max_tokens`,
//! else `end_turn`). A scripted tool call (the first of `x-mock-tool-calls` / a script's
//! `tool_calls`) answers a request that declares tools unless its last turn carries a
//! `toolResult`: one `toolUse` with the scripted name and input, one token plus the words of
//! the input's JSON. Otherwise, when `toolConfig.toolChoice` is `any` or `tool`, the answer is one
//! `toolUse` of the named (else first) tool with input `{"query": <text of the last user
//! turn>}`, id `tooluse_mock<seq>`, `stopReason` `tool_use` and 1 output token.
//!
//! Streams: one frame per event, each its own write: `messageStart`, then per reply word a
//! `contentBlockDelta` (words after the first with a leading space) — or, for a tool call,
//! `contentBlockStart` with the `toolUse` id and name and two `contentBlockDelta` halves of the
//! input JSON — then `contentBlockStop`, `messageStop` (stop reason) and `metadata` (usage,
//! metrics). `truncate_stream` ends the body cleanly after two deltas, `reset_mid_stream`
//! aborts it there, `malformed` sends a frame with a bad CRC.
//!
//! Errors use Bedrock's shape: body `{"message": "..."}`, error type in `x-amzn-errortype`.
//! Scripted statuses map to types: 400 `ValidationException`, 403 `AccessDeniedException`,
//! 404 `ResourceNotFoundException`, 408 `ModelTimeoutException`, 424 `ModelErrorException`,
//! 429 `ThrottlingException`, 503 `ServiceUnavailableException`, other 5xx
//! `InternalServerException`.

mod errors;
mod frames;

use errors::{bedrock_error, Shape};
mod sigv4;

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::Path;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::admit::{admit, Admitted, ApiRequest, Dialect, Inbound, Rejected};
use super::api::non_stream_response;
use super::cache::CacheTokens;
use super::script::Fault;
use super::stream::{event_stream, Ending};
use super::tokens::{count_words, Reply, DEFAULT_REPLY};
use super::Shared;
use crate::mock::error::render;

/// The bedrock routes, merged into the mock's router.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/model/{model_id}/converse", post(converse::<false>))
        .route("/model/{model_id}/converse-stream", post(converse::<true>))
}

#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: Vec<Value>,
}

impl Message {
    fn texts(&self) -> impl Iterator<Item = &str> {
        self.content
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig {
    #[serde(default)]
    max_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig {
    #[serde(default)]
    tools: Vec<Value>,
    #[serde(default)]
    tool_choice: Option<Value>,
}

/// A Converse request; `STREAM` tells which route it arrived on.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Converse<const STREAM: bool> {
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    system: Vec<Value>,
    #[serde(default)]
    inference_config: Option<InferenceConfig>,
    #[serde(default)]
    tool_config: Option<ToolConfig>,
}

impl<const STREAM: bool> Converse<STREAM> {
    /// The tool to call when the request forces one (`toolChoice` `any` or `tool`).
    fn forced_call(&self) -> Option<&str> {
        let config = self.tool_config.as_ref()?;
        let choice = config.tool_choice.as_ref()?;
        if let Some(name) = choice.pointer("/tool/name").and_then(Value::as_str) {
            return Some(name);
        }
        choice.get("any")?;
        config
            .tools
            .iter()
            .find_map(|t| t.pointer("/toolSpec/name").and_then(Value::as_str))
    }

    fn last_user_text(&self) -> String {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.texts().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    }
}

impl<const STREAM: bool> ApiRequest for Converse<STREAM> {
    /// Scripted tool calls apply: tools are declared and the last turn carries no
    /// `toolResult`.
    fn takes_tool_calls(&self) -> bool {
        self.tool_config
            .as_ref()
            .is_some_and(|c| !c.tools.is_empty())
            && !self
                .messages
                .last()
                .is_some_and(|m| m.content.iter().any(|b| b.get("toolResult").is_some()))
    }
    fn stream(&self) -> bool {
        STREAM
    }
    fn prompt_tokens(&self) -> u64 {
        let system: u64 = self
            .system
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .map(count_words)
            .sum();
        system
            + self
                .messages
                .iter()
                .flat_map(Message::texts)
                .map(count_words)
                .sum::<u64>()
    }
    fn validate(&self) -> Result<(), String> {
        check_conversation(&self.messages, self.tool_config.is_some())
    }
}

const NO_MESSAGES: &str = "A conversation must have at least one message.";
const FIRST_USER: &str = "A conversation must start with a user message. Try again with a \
                          conversation that starts with a user message.";
const ALTERNATE: &str = "A conversation must alternate between user and assistant roles. Make \
                         sure the conversation alternates between user and assistant roles and \
                         try again.";
const NO_TOOL_CONFIG: &str =
    "The toolConfig field must be defined when using toolUse and toolResult content blocks.";

/// Bedrock's rules for `messages`, with its error texts.
fn check_conversation(messages: &[Message], has_tool_config: bool) -> Result<(), String> {
    if messages.is_empty() {
        return Err(NO_MESSAGES.into());
    }
    let mut previous = "";
    let mut tool_blocks = false;
    for (i, m) in messages.iter().enumerate() {
        if i == 0 && m.role != "user" {
            return Err(FIRST_USER.into());
        }
        if m.role != "user" && m.role != "assistant" {
            return Err(format!(
                "messages.{i}.role: `{}` is not a valid role",
                m.role
            ));
        }
        if m.role == previous {
            return Err(ALTERNATE.into());
        }
        previous = &m.role;
        for (j, block) in m.content.iter().enumerate() {
            let result_texts = block
                .pointer("/toolResult/content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            if std::iter::once(block)
                .chain(result_texts)
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .any(|t| t.trim().is_empty())
            {
                return Err(format!(
                    "The text field in the ContentBlock object at messages.{i}.content.{j} is \
                     blank. Add text to the text field, and try again."
                ));
            }
            tool_blocks |= block.get("toolUse").is_some() || block.get("toolResult").is_some();
        }
    }
    if tool_blocks && !has_tool_config {
        return Err(NO_TOOL_CONFIG.into());
    }
    Ok(())
}

/// `POST /model/{modelId}/converse` (`STREAM` false) and `.../converse-stream` (true).
async fn converse<const STREAM: bool>(Path(model): Path<String>, inbound: Inbound) -> Response {
    let Inbound { uri, headers, .. } = &inbound;
    let signature = match inbound.shared.options.api_key.as_deref() {
        Some(secret) => sigv4::verify(
            secret,
            "POST",
            uri,
            headers,
            &inbound.body,
            SystemTime::now(),
        ),
        None => Ok(()),
    };
    let dialect = Dialect::Bedrock {
        model: &model,
        signed: signature.is_ok(),
    };
    match admit::<Converse<STREAM>>(&inbound, dialect).await {
        Ok(admitted) => answer(&admitted),
        Err(Rejected::Unauthorized) => {
            let (kind, message) = signature
                .err()
                .unwrap_or(sigv4::SigError::Mismatch)
                .describe();
            bedrock_error(StatusCode::FORBIDDEN, kind, &message)
        }
        Err(rejected) => render(rejected, &Shape),
    }
}

/// What one answer holds: reply words or a tool call, and the token counts.
struct Answer<'a> {
    reply: Reply<'a>,
    /// `(toolUseId, name, input JSON)`.
    call: Option<(String, &'a str, String)>,
    prompt: u64,
    completion: u64,
    cache: CacheTokens,
    stop_reason: &'static str,
}

fn answer<const STREAM: bool>(admitted: &Admitted<Converse<STREAM>>) -> Response {
    let request = &admitted.request;
    let reply_text = admitted.behaviour.reply.as_deref().unwrap_or(DEFAULT_REPLY);
    let limit = request.inference_config.as_ref().and_then(|c| c.max_tokens);
    let reply = Reply::new(reply_text, limit);
    let id = format!("tooluse_mock{:08x}", admitted.seq);
    let scripted = admitted.tool_calls().and_then(<[_]>::first);
    let call = match scripted {
        Some(c) => Some((id, c.name.as_str(), c.arguments_json())),
        None => request.forced_call().map(|name| {
            let input = json!({ "query": request.last_user_text() }).to_string();
            (id, name, input)
        }),
    };
    let call_tokens = scripted.map_or(1, super::ToolCall::tokens);
    let (completion, stop_reason) = match (&call, reply.finish_reason) {
        (Some(_), _) => (call_tokens, "tool_use"),
        (None, "length") => (reply.completion_tokens(), "max_tokens"),
        (None, _) => (reply.completion_tokens(), "end_turn"),
    };
    let answer = Answer {
        prompt: request.prompt_tokens(),
        completion,
        cache: CacheTokens::of(&admitted.behaviour, request.prompt_tokens()),
        stop_reason,
        reply,
        call,
    };
    admitted.bill(answer.prompt, answer.completion);
    if STREAM {
        return stream_response(admitted, &answer);
    }
    let content = match &answer.call {
        Some((id, name, input)) => {
            let input: Value = serde_json::from_str(input).unwrap_or_default();
            json!([{ "toolUse": { "toolUseId": id, "name": name, "input": input } }])
        }
        None => json!([{ "text": answer.reply.text() }]),
    };
    let body = json!({
        "output": { "message": { "role": "assistant", "content": content } },
        "stopReason": answer.stop_reason,
        "usage": usage(&answer),
        "metrics": { "latencyMs": admitted.behaviour.latency_ms.unwrap_or(0) },
    });
    with_request_id(non_stream_response(
        admitted,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

fn usage(answer: &Answer<'_>) -> Value {
    answer.cache.bedrock_usage(answer.prompt, answer.completion)
}

fn stream_response<const STREAM: bool>(
    admitted: &Admitted<Converse<STREAM>>,
    answer: &Answer<'_>,
) -> Response {
    let fault = admitted.behaviour.fault;
    let mut pieces = vec![frames::event(
        "messageStart",
        &json!({ "role": "assistant" }),
    )];
    let mut ending = Ending::Clean;
    if fault == Some(Fault::Malformed) {
        pieces.push(frames::corrupt(
            "contentBlockDelta",
            &json!({ "contentBlockIndex": 0, "delta": { "text": "malformed" } }),
        ));
    } else {
        let deltas: Vec<Value> = match &answer.call {
            Some((id, name, input)) => {
                pieces.push(frames::event(
                    "contentBlockStart",
                    &json!({ "contentBlockIndex": 0, "start": { "toolUse": { "toolUseId": id, "name": name } } }),
                ));
                let (a, b) = input.split_at(input.floor_char_boundary(input.len() / 2));
                [a, b]
                    .iter()
                    .map(|part| json!({ "toolUse": { "input": part } }))
                    .collect()
            }
            None => answer
                .reply
                .words
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let text = if i == 0 {
                        (*w).to_owned()
                    } else {
                        format!(" {w}")
                    };
                    json!({ "text": text })
                })
                .collect(),
        };
        let cut = Fault::cuts(fault);
        for delta in Fault::shown(fault, &deltas) {
            pieces.push(frames::event(
                "contentBlockDelta",
                &json!({ "contentBlockIndex": 0, "delta": delta }),
            ));
        }
        if fault == Some(Fault::ResetMidStream) {
            ending = Ending::Abort;
        } else if !cut {
            pieces.push(frames::event(
                "contentBlockStop",
                &json!({ "contentBlockIndex": 0 }),
            ));
            pieces.push(frames::event(
                "messageStop",
                &json!({ "stopReason": answer.stop_reason }),
            ));
            pieces.push(frames::event(
                "metadata",
                &json!({ "usage": usage(answer), "metrics": { "latencyMs": 0 } }),
            ));
        }
    }
    let mut response = event_stream(admitted, pieces, ending);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    with_request_id(response)
}

fn with_request_id(mut response: Response) -> Response {
    response.headers_mut().insert(
        "x-amzn-requestid",
        HeaderValue::from_static("00000000-0000-0000-0000-000000000000"),
    );
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
