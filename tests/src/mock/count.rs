//! Token counting endpoints, by the mock's word rule (one whitespace-separated word is one
//! token; see the crate docs), counted exactly as the same body's chat request would count its
//! prompt. They go through admission (auth, recording, scripted statuses, latency), but bill
//! nothing: a record's `billed` stays null.
//!
//! - `POST /v1/messages/count_tokens` (Anthropic), and Claude on Vertex AI's
//!   `…/publishers/anthropic/models/count-tokens:rawPredict` (see `vertex/`):
//!   `{"input_tokens": N}`, N the words of `system` and of every message's text; `messages`
//!   must be non-empty (`max_tokens` is not required, as upstream). Errors in Anthropic's
//!   shape.
//! - `POST /v1beta/models/{model}:countTokens` (Gemini): `{"totalTokens": N}` for either
//!   `contents` or a whole `generateContentRequest` (then `systemInstruction` counts too);
//!   exactly one of the two. Errors in Gemini's shape.

use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::admit::{admit, Admitted, ApiRequest, Dialect, Inbound};
use super::anthropic::MessagesRequest;
use super::api::non_stream_response;
use super::error::render;
use super::gemini::{Content, GenerateRequest};
use super::google_error::error_from;

/// An Anthropic count_tokens body: a Messages body without `max_tokens`.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(crate) struct CountMessages(MessagesRequest);

impl ApiRequest for CountMessages {
    fn model(&self) -> Option<&str> {
        self.0.model()
    }
    fn prompt_tokens(&self) -> u64 {
        self.0.prompt_tokens()
    }
    fn validate(&self) -> Result<(), String> {
        if self.0.has_messages() {
            Ok(())
        } else {
            Err("messages: Field required".to_owned())
        }
    }
}

/// `POST /v1/messages/count_tokens`.
pub(crate) async fn anthropic(inbound: Inbound) -> Response {
    messages(&inbound, Dialect::Anthropic).await
}

/// An Anthropic count_tokens request spoken in `dialect` (Anthropic's own, or Claude on Vertex
/// AI's `count-tokens:rawPredict`).
pub(crate) async fn messages(inbound: &Inbound, dialect: Dialect<'_>) -> Response {
    match admit::<CountMessages>(inbound, dialect).await {
        Ok(admitted) => count_reply(&admitted, "input_tokens"),
        Err(rejected) => render(rejected, &super::anthropic::Shape),
    }
}

/// A Gemini countTokens body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CountContents {
    #[serde(default)]
    contents: Option<Vec<Content>>,
    #[serde(default)]
    generate_content_request: Option<GenerateRequest>,
}

impl ApiRequest for CountContents {
    fn prompt_tokens(&self) -> u64 {
        let contents = self
            .contents
            .iter()
            .flatten()
            .map(Content::words)
            .sum::<u64>();
        contents
            + self
                .generate_content_request
                .as_ref()
                .map_or(0, ApiRequest::prompt_tokens)
    }
    fn validate(&self) -> Result<(), String> {
        match (&self.contents, &self.generate_content_request) {
            (Some(c), None) if !c.is_empty() => Ok(()),
            (None, Some(g)) => g.validate(),
            _ => Err("* CountTokensRequest: exactly one of contents and generateContentRequest must be set".into()),
        }
    }
}

/// `POST /v1beta/models/{model}:countTokens` (dispatched by `gemini::models_action`).
pub(crate) async fn gemini(inbound: &Inbound, dialect: Dialect<'_>) -> Response {
    match admit::<CountContents>(inbound, dialect).await {
        Ok(admitted) => count_reply(&admitted, "totalTokens"),
        Err(rejected) => error_from(rejected),
    }
}

/// `{field: N}`, N the request's prompt tokens; nothing billed.
fn count_reply<T: ApiRequest>(admitted: &Admitted<T>, field: &str) -> Response {
    let n = admitted.request.prompt_tokens();
    non_stream_response(admitted, json!({ field: n }).to_string().into_bytes())
}
