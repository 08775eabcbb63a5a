//! The Anthropic inbound dialect: `/v1/messages` and `/v1/messages/count_tokens`.
//!
//! `/v1/messages` runs the shared chat pipeline (`openai::chat`) with Anthropic's translations
//! (`crate::dialect::anthropic`): same auth, admission, metering and relay as
//! `/v1/chat/completions`; only the body going in, the answer and stream coming out and the
//! error shape differ. Every provider is reached through the internal OpenAI dialect, except
//! Anthropic deployments: they get the client's body as it is (only `model` replaced, with the
//! client's `anthropic-version` / `anthropic-beta`) and their answer is relayed byte for byte,
//! metered from its own usage (`providers::anthropic::forward`).

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::HeaderMap;

use super::openai::{self, Answer, ChatDialect};
use super::relay::Frames;
use super::respond::Trace;
use super::App;
use crate::dialect::anthropic::stream::{error_event, Events};
use crate::dialect::anthropic::{error, request, response};
use crate::error::ApiError;
use crate::pipeline::body::ChatFields;
use crate::pipeline::{self, auth, body};
use crate::providers::{Chunk, UpstreamError};
use crate::usage::estimate;

const MESSAGES: ChatDialect = ChatDialect {
    endpoint: "messages",
    request: request::to_chat,
    reply: Some(|body, answer| response::to_message(body, answer.model, &message_id(answer))),
    frames: anthropic_frames,
    error: error::into_response,
    native_anthropic: Some(|| Box::new(PassThrough)),
};

fn message_id(answer: &Answer<'_>) -> String {
    format!("msg_{}", answer.id.simple())
}

fn anthropic_frames(_: &ChatFields, answer: &Answer<'_>) -> Box<dyn Frames> {
    Box::new(AnthropicFrames(Events::new(
        message_id(answer),
        answer.model.to_owned(),
    )))
}

/// The relay's frame writer for Anthropic streams.
#[derive(Debug)]
struct AnthropicFrames(Events);

impl Frames for AnthropicFrames {
    fn chunk(&mut self, chunk: &Chunk) -> Option<Bytes> {
        Some(self.0.chunk(&chunk.data)).filter(|b| !b.is_empty())
    }

    fn done(&mut self) -> Bytes {
        self.0.done()
    }

    fn error(&mut self, e: &UpstreamError) -> Bytes {
        let kind = error::error_type(e.status());
        self.0.error(kind, &e.to_string())
    }
}

/// The relay's frame writer for streams an Anthropic deployment sends: its events as they are.
#[derive(Debug)]
struct PassThrough;

impl Frames for PassThrough {
    fn chunk(&mut self, chunk: &Chunk) -> Option<Bytes> {
        Some(chunk.data.clone())
    }

    fn done(&mut self) -> Bytes {
        Bytes::new()
    }

    fn error(&mut self, e: &UpstreamError) -> Bytes {
        error_event(error::error_type(e.status()), &e.to_string())
    }
}

/// `POST /v1/messages`, streaming or not.
pub async fn messages(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let trace = Trace::start();
    let result = openai::chat(&app, &headers, body, &trace, &MESSAGES).await;
    openai::finish(MESSAGES.endpoint, &trace, result, MESSAGES.error)
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": N}`.
///
/// N is the gateway's own estimate (the same generous body-size estimate admission reserves
/// with, see `usage::estimate`), not the provider's tokenizer count: it errs high. No provider
/// is called and nothing is metered.
pub async fn count_tokens(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let trace = Trace::start();
    let result = count(&app, &headers, body).await;
    openai::finish("count_tokens", &trace, result, MESSAGES.error)
}

async fn count(app: &App, headers: &HeaderMap, raw: Body) -> Result<Response, ApiError> {
    let snapshot = app.inner.snapshots.get().ok_or(ApiError::NotReady)?;
    let key = auth::authenticate(&snapshot, headers)?;
    let bytes = body::read(raw, headers, app.inner.max_body).await?;
    let json = request::to_chat(body::parse_object(&bytes)?)?;
    let fields = body::chat(&json)?;
    pipeline::resolve(&snapshot, &key, &fields.model)?;
    let n = estimate::prompt_tokens(bytes.len());
    Ok(axum::Json(serde_json::json!({ "input_tokens": n })).into_response())
}
