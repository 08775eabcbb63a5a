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
//! `cacheWriteInputTokens` (see `cache.rs`); `outputTokens` every output token, reasoning
//! included (as Bedrock counts it). Content blocks of the answer (built in `reply.rs`), in
//! order:
//! - Scripted reasoning: a `reasoningContent` block (`reasoningText` with `text` and a
//!   `signature`) first.
//! - Scripted tool calls answer a request that declares tools unless its last turn carries a
//!   `toolResult` (one scripted round trip): one `toolUse` block per call (ids
//!   `tooluse_mock<seq>`, then `…_1`, `…_2`) with the scripted name and input, each costing one
//!   token plus the words of its input's JSON. Otherwise, when `toolConfig.toolChoice` is `any`
//!   or `tool`, one `toolUse` of the named (else first) tool with input
//!   `{"query": <text of the last user turn>}`, id `tooluse_mock<seq>` and 1 output token.
//!   `stopReason` `tool_use` either way.
//! - Otherwise a `text` block: the scripted reply (or [`super::DEFAULT_REPLY`]) cut at
//!   `inferenceConfig.maxTokens` words (`stopReason` `max_tokens`, else `end_turn`).
//!
//! Streams: one frame per event, each its own write: `messageStart`, then per block its
//! `contentBlockDelta`s (a `reasoningContent.text` per reasoning word and one
//! `reasoningContent.signature`; a `text` per reply word, words after the first with a leading
//! space; a call's block opens with a `contentBlockStart` naming its `toolUse` id and name and
//! sends two `toolUse.input` halves) and its `contentBlockStop`, then `messageStop` (stop
//! reason) and `metadata` (usage, metrics). `truncate_stream` ends the body cleanly after two
//! deltas, `reset_mid_stream` aborts it there, `malformed` sends a frame with a bad CRC.
//!
//! Errors use Bedrock's shape: body `{"message": "..."}`, error type in `x-amzn-errortype`.
//! Scripted statuses map to types: 400 `ValidationException`, 403 `AccessDeniedException`,
//! 404 `ResourceNotFoundException`, 408 `ModelTimeoutException`, 424 `ModelErrorException`,
//! 429 `ThrottlingException`, 503 `ServiceUnavailableException`, other 5xx
//! `InternalServerException`.

mod errors;
mod frames;
mod reply;
mod sigv4;

use errors::{bedrock_error, Shape};
#[cfg(test)]
pub(crate) use frames::decode_all as decode_frames;

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::admit::{admit, ApiRequest, Dialect, Inbound, Rejected};
use super::output::Call;
use super::tokens::count_words;
use super::Shared;
use crate::mock::error::render;
use reply::answer;

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
    /// The call the answer makes unscripted, when the request forces one: of the named (else
    /// the first) tool, with the last user turn's text as `query`, costing 1 token.
    fn forced_call(&self) -> Option<Call<'_>> {
        let name = self.forced_tool()?;
        let arguments = json!({ "query": self.last_user_text() }).to_string();
        Some(Call {
            name,
            arguments,
            tokens: 1,
        })
    }

    /// The tool to call when the request forces one (`toolChoice` `any` or `tool`).
    fn forced_tool(&self) -> Option<&str> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
