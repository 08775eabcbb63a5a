//! Anthropic's Messages API as an inbound dialect (`POST /v1/messages`).
//!
//! - [`request`]: an Anthropic Messages body → the internal OpenAI chat body.
//! - [`response`]: an internal OpenAI completion → an Anthropic message.
//! - [`stream`]: internal OpenAI chunks → Anthropic's SSE events (`message_start` …
//!   `message_stop`).
//! - [`error`]: the gateway's errors in Anthropic's error shape.
//! - [`models`]: the Models API's list and model objects (`GET /v1/models` with
//!   `anthropic-version`).
//!
//! Translation goes through the OpenAI dialect for every provider except one that speaks the
//! Messages wire natively (`Wire::AnthropicMessages`): that deployment is sent the client's body
//! as it is and its answer relayed byte for byte. Translated, fields with no OpenAI
//! counterpart are dropped or refused by the table in [`request`].

pub mod error;
pub mod models;
pub mod request;
pub mod response;
pub mod stream;

use axum::response::Response;
use bytes::Bytes;

use super::frames::{Native, Translated};
use super::{Answer, ChatDialect, Frames};
use crate::error::ApiError;
use crate::pipeline::body::ChatFields;
use crate::providers::{JsonBody, Wire};

/// `POST /v1/messages`.
#[derive(Debug)]
pub struct Messages;

impl ChatDialect for Messages {
    const ENDPOINT: &'static str = "messages";
    const NATIVE: Option<Wire> = Some(Wire::AnthropicMessages);

    fn request(body: JsonBody) -> Result<JsonBody, ApiError> {
        request::to_chat(body)
    }

    fn dropped(body: &JsonBody) -> Vec<String> {
        request::dropped(body)
    }

    fn reply(body: Bytes, answer: &Answer<'_>, native: bool) -> Option<Bytes> {
        if native {
            return Some(body);
        }
        response::to_message(&body, answer.model, &message_id(answer))
    }

    fn frames(_: &ChatFields, answer: &Answer<'_>, native: bool) -> Box<dyn Frames> {
        let model = answer.model.to_owned();
        let events = stream::Events::new(message_id(answer), model, answer.prompt_tokens);
        if native {
            return Box::new(Native(events));
        }
        Box::new(Translated(events))
    }

    fn error(e: ApiError) -> Response {
        error::into_response(e)
    }
}

/// The id of a translated message: the request id in Anthropic's `msg_` form.
fn message_id(answer: &Answer<'_>) -> String {
    format!("msg_{}", answer.id.simple())
}

#[cfg(test)]
mod fixture_tests;

/// Anthropic `stop_reason` for an OpenAI `finish_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}
