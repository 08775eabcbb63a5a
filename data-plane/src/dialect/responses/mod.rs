//! OpenAI's Responses API as an inbound dialect (`POST /v1/responses`), the one Codex CLI and
//! the OpenAI Agents SDK speak.
//!
//! - [`request`]: a Responses body → the internal OpenAI chat body.
//! - [`response`]: an internal chat completion → a `response` object.
//! - [`stream`]: internal chat chunks → the Responses stream events.
//! - [`compact`]: `POST /v1/responses/compact`, its own dialect on the same translation.
//!
//! A deployment that speaks the Responses wire natively (OpenAI, Azure OpenAI:
//! `Wire::OpenAiResponses`) is sent the client's body as it is (but for `model`) and its
//! answer relayed byte for byte, so reasoning items with `encrypted_content`, built-in tools
//! and stored conversations work as on OpenAI. Every other deployment gets the translation.
//! Errors are OpenAI error objects, as on `/v1/chat/completions`.

pub mod compact;
pub mod request;
pub mod response;
pub mod stream;

#[cfg(test)]
mod fixture_tests;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::frames::{Native, Translated};
use super::{Answer, ChatDialect, Frames};
use crate::error::ApiError;
use crate::pipeline::body::ChatFields;
use crate::providers::{JsonBody, Wire};
use response::Ids;
use stream::Events;

/// `POST /v1/responses`.
#[derive(Debug)]
pub struct Responses;

impl ChatDialect for Responses {
    const ENDPOINT: &'static str = "responses";
    const NATIVE: Option<Wire> = Some(Wire::OpenAiResponses);

    fn request(body: JsonBody) -> Result<JsonBody, ApiError> {
        request::to_chat(body)
    }

    fn dropped(body: &JsonBody) -> Vec<String> {
        request::dropped(body)
    }

    fn native_fields(body: &JsonBody) -> Result<ChatFields, ApiError> {
        crate::pipeline::body::responses(body)
    }

    fn reply(body: Bytes, answer: &Answer<'_>, native: bool) -> Option<Bytes> {
        if native {
            return Some(body);
        }
        response::to_response(&body, answer.model, &Ids::new(answer.id))
    }

    fn frames(_: &ChatFields, answer: &Answer<'_>, native: bool) -> Box<dyn Frames> {
        let ids = Ids::new(answer.id);
        let model = answer.model.to_owned();
        if native {
            return Box::new(Native(Events::resumed(ids, model)));
        }
        Box::new(Translated(Events::new(ids, model)))
    }

    fn error(e: ApiError) -> Response {
        e.into_response()
    }
}
