//! Inbound dialects: the APIs clients speak (OpenAI chat and embeddings, OpenAI Responses,
//! Anthropic Messages),
//! each a peer module that reads the client's body into the internal (OpenAI-shaped) request
//! and writes answers, stream events and errors back in the client's shape. Pure code, no I/O;
//! none calls another. The pipeline (`crate::pipeline`) drives them all the same way.
//!
//! A dialect that is not the internal one names its [`Wire`]: an adapter that speaks that wire
//! natively is sent the client's own bytes (pass-through), and the dialect then relays the
//! answer as it came instead of translating it.

pub mod anthropic;
pub mod frames;
pub mod openai;
pub mod responses;

use axum::response::Response;
use bytes::Bytes;

use crate::error::ApiError;
use crate::pipeline::body::ChatFields;
use crate::providers::{Chunk, JsonBody, UpstreamError, Wire};

/// One top-level field of a client's body, parsed; `null` counts as absent. Invalid JSON is
/// the client's 400 naming the field.
pub fn field(body: &JsonBody, name: &str) -> Result<Option<serde_json::Value>, ApiError> {
    body.get(name)
        .map(|raw| serde_json::from_str::<serde_json::Value>(raw.get()))
        .transpose()
        .map_err(|_| ApiError::invalid(name, format!("Invalid JSON in '{name}'.")))
        .map(|v| v.filter(|v| !v.is_null()))
}

/// A translated body's members as the internal request body.
pub fn into_body(
    members: serde_json::Map<String, serde_json::Value>,
) -> Result<JsonBody, ApiError> {
    members
        .into_iter()
        .map(|(k, v)| {
            serde_json::value::to_raw_value(&v)
                .map(|raw| (k, raw))
                .map_err(|_| ApiError::invalid("body", "The request body could not be translated."))
        })
        .collect()
}

/// The top-level fields in `names` that `body` sets (not `null`), for the dropped-fields
/// header.
pub fn present(body: &JsonBody, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|name| body.get(**name).is_some_and(|raw| raw.get() != "null"))
        .map(|name| (*name).to_owned())
        .collect()
}

/// A message's `content` (the message at `at`): a string is the whole turn, pushed to `out`
/// as one chat message of `role` (`None`); an array is its blocks, for the caller to
/// translate; anything else is the client's 400 (`what`: what the array holds).
pub fn content_array<'v>(
    content: &'v serde_json::Value,
    role: &str,
    at: &str,
    what: &str,
    out: &mut Vec<serde_json::Value>,
) -> Result<Option<&'v Vec<serde_json::Value>>, ApiError> {
    match content {
        serde_json::Value::String(text) => {
            out.push(serde_json::json!({"role": role, "content": text}));
            Ok(None)
        }
        serde_json::Value::Array(blocks) => Ok(Some(blocks)),
        _ => Err(ApiError::invalid(
            &format!("{at}.content"),
            format!("'{at}.content' must be a string or an array of {what}."),
        )),
    }
}

/// What an answer in the client's dialect may need to know about its request.
#[derive(Debug)]
pub struct Answer<'a> {
    /// The model (alias) the client asked for.
    pub model: &'a str,
    /// The request id.
    pub id: uuid::Uuid,
    /// The gateway's estimate of the prompt's tokens (for a dialect that reports input tokens
    /// before the provider's count is known, as Anthropic's `message_start` does).
    pub prompt_tokens: u64,
    /// The client's body as the pipeline read it (a stored conversation it continues placed
    /// in it), for a dialect whose answer repeats part of it (compaction).
    pub request: &'a [u8],
}

/// How the internal (OpenAI) stream, or a natively spoken one, is written for the client.
pub trait Frames: std::fmt::Debug + Send + 'static {
    /// The bytes for one chunk; `None` sends nothing.
    fn chunk(&mut self, chunk: &Chunk) -> Option<Bytes>;
    /// The bytes after the last chunk (may be empty).
    fn done(&mut self) -> Bytes;
    /// The bytes that end a stream which failed after it started.
    fn error(&mut self, e: &UpstreamError) -> Bytes;
    /// After [`Frames::done`]: the whole answer as a complete (non-streamed) body of the
    /// client's dialect, for a dialect whose answers are stored (Responses); `None` otherwise.
    fn finished(&mut self) -> Option<Bytes> {
        None
    }
}

/// One inbound chat dialect (`/v1/chat/completions`, `/v1/messages`).
pub trait ChatDialect: 'static {
    /// Metric and usage-event label of the endpoint.
    const ENDPOINT: &'static str;
    /// The client's wire when it is not the internal one: a deployment whose adapter speaks it
    /// natively gets the client's bytes as they are.
    const NATIVE: Option<Wire>;

    /// The client's parsed body → the internal chat body. An error is the client's 400, unless
    /// a deployment that speaks [`Self::NATIVE`] can take the body as it is.
    fn request(body: JsonBody) -> Result<JsonBody, ApiError>;
    /// The client's fields [`Self::request`] drops (no counterpart upstream, and dropping
    /// them keeps the request's meaning); the response names them when it was translated.
    fn dropped(_body: &JsonBody) -> Vec<String> {
        Vec::new()
    }
    /// The fields routing and metering need, read from the client's own body when only a
    /// deployment that speaks [`Self::NATIVE`] can take it.
    fn native_fields(body: &JsonBody) -> Result<ChatFields, ApiError> {
        crate::pipeline::body::chat(body)
    }
    /// A complete answer → the client's body; `native`: it came from a deployment speaking the
    /// client's wire. `None` if it cannot be read.
    fn reply(body: Bytes, answer: &Answer<'_>, native: bool) -> Option<Bytes>;
    /// The stream writer for one request.
    fn frames(fields: &ChatFields, answer: &Answer<'_>, native: bool) -> Box<dyn Frames>;
    /// Writes an error in the client's dialect.
    fn error(e: ApiError) -> Response;
}
