//! The translation kit the adapters of non-OpenAI wire formats share (Anthropic, Gemini,
//! Vertex AI, Bedrock):
//!
//! - [`body`]: reading an OpenAI chat body's fields as JSON values.
//! - [`messages`]: one walker over OpenAI-shaped messages (system hoisting, roles, text and
//!   image parts, tool calls and results, merging consecutive turns); each target supplies
//!   only its block builders ([`messages::Target`]).
//! - [`Untranslatable`]: the one error of a translation in either direction.
//! - [`StreamedCalls`]: a stream's tool calls, numbered as OpenAI's chunks number them.
//!
//! Stream translation has its own shared driver, `providers::sse::translated`.

pub mod body;
pub mod messages;

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::providers::UpstreamError;

/// An OpenAI assistant message from a translated answer: `content` is null when the answer is
/// only tool calls, and `tool_calls` is present only when there are some.
pub fn assistant_message(text: &str, tool_calls: Vec<Value>) -> Map<String, Value> {
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        json!(text)
    };
    message.insert("content".into(), content);
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    message.insert("refusal".into(), Value::Null);
    message
}

/// The tool calls of one translated stream: each provider content block that opens a tool
/// call gets the next OpenAI call `index`, and the argument pieces of that block carry it.
#[derive(Debug, Default)]
pub struct StreamedCalls(HashMap<u64, u64>);

impl StreamedCalls {
    /// The chunk delta that opens a call in the provider's content block `block`, with the
    /// provider's call id and function name.
    pub fn open(&mut self, block: u64, id: Option<&Value>, name: Option<&Value>) -> Value {
        let call = self.0.len() as u64;
        self.0.insert(block, call);
        json!({"tool_calls": [{
            "index": call,
            "id": id.cloned().unwrap_or(Value::Null),
            "type": "function",
            "function": {
                "name": name.cloned().unwrap_or(Value::Null),
                "arguments": "",
            },
        }]})
    }

    /// The chunk delta with a piece of the arguments of the call in block `block`; `None` if
    /// no call was opened there.
    pub fn arguments(&self, block: u64, piece: &str) -> Option<Value> {
        let call = self.0.get(&block)?;
        Some(json!({"tool_calls": [{"index": call, "function": {"arguments": piece}}]}))
    }
}

/// Why a translation could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untranslatable {
    /// The client's request cannot be expressed for the provider; the message is for the
    /// client (a 400 in its dialect), never a silently wrong request upstream.
    #[error("{0}")]
    Request(String),
    /// The provider blocked the prompt (its reason, e.g. Gemini's `blockReason`).
    #[error("the prompt was blocked ({0})")]
    Blocked(String),
    /// The provider's answer is not its documented wire format.
    #[error("{0}")]
    Malformed(&'static str),
}

/// A request the translation refuses, with a message for the client.
pub fn bad(message: impl Into<String>) -> Untranslatable {
    Untranslatable::Request(message.into())
}

impl Untranslatable {
    /// The failure as the pipeline sees it: a refused request or a blocked prompt is the
    /// client's 400 (in the OpenAI dialect, as adapters answer); a malformed answer is the
    /// provider's fault. `product` names the provider in messages ("Gemini", "Vertex AI").
    pub fn upstream(self, provider: &str, product: &str) -> UpstreamError {
        let (message, code) = match self {
            Self::Request(message) => (message, None),
            Self::Blocked(reason) => (
                format!("{product} blocked the prompt (blockReason {reason})"),
                Some("content_filter"),
            ),
            Self::Malformed(detail) => {
                return UpstreamError::BadResponse {
                    provider: provider.to_owned(),
                    detail,
                }
            }
        };
        rejected_with(&message, code)
    }
}

/// A request the provider cannot take, refused before it is sent: the client's 400 in the
/// OpenAI dialect, as adapters answer.
pub fn rejected(message: &str) -> UpstreamError {
    rejected_with(message, None)
}

/// [`rejected`] with an OpenAI error `code`.
fn rejected_with(message: &str, code: Option<&str>) -> UpstreamError {
    UpstreamError::Rejected {
        status: http::StatusCode::BAD_REQUEST,
        body: crate::error::error_json(message, "invalid_request_error", None, code),
        retry_after: None,
    }
}
