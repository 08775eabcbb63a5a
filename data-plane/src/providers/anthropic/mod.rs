//! Anthropic's Messages API behind the OpenAI dialect.
//!
//! Requests are translated (`request`), sent to `POST {base}/v1/messages` with `x-api-key` and
//! `anthropic-version: 2023-06-01`, and answers translated back (`response`, `stream`, `error`).
//! Anthropic has no embeddings API: an embeddings call is a 400 in the OpenAI dialect and never
//! reaches the provider. Translation is pure code, covered by the wire samples in `fixtures/`.
//!
//! The translation, the answers' decoding ([`answer`]), the pass-through wire and the token
//! count's reading are shared with Claude on Vertex AI (`vertex::claude`), which speaks the
//! same bodies at other URLs with other auth.

pub(super) mod count;
pub(super) mod error;
pub mod forward;
pub(super) mod request;
pub(crate) mod response;
pub(crate) mod stream;

#[cfg(test)]
mod fixture_tests;

use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue};

use super::common::{parse_url, unix_now, Auth, Upstream};
use super::{
    Call, ChatReply, ChatRequest, ChatResult, ConfigError, Endpoints, JsonBody, JsonResult,
    Provider, UpstreamError,
};
use crate::providers::translate::rejected;
use crate::seal::SealKey;

pub use request::DEFAULT_MAX_TOKENS;

/// The API version every request declares.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A provider speaking Anthropic's Messages API.
#[derive(Debug)]
pub struct Anthropic {
    /// Static headers carry auth, version, content type and operator extras.
    upstream: Upstream,
}

impl Anthropic {
    /// Builds the adapter; an unusable credential is kept as an error reported per request.
    pub fn new(p: &proto::Provider, seal_key: Option<&SealKey>) -> Self {
        let version = (
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        let auth = Auth::Key(HeaderName::from_static("x-api-key"));
        Self {
            upstream: Upstream::new(p, seal_key, &[version], auth),
        }
    }

    pub fn id(&self) -> &str {
        &self.upstream.id
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.upstream.timeout
    }

    /// Chat goes to `{base}/v1/messages`; embeddings are answered locally, so their URL is
    /// never used.
    pub fn endpoints(&self, _model: &str) -> Result<Endpoints, ConfigError> {
        let chat = parse_url(&format!("{}/v1/messages", self.upstream.base_url))?;
        Ok(Endpoints {
            embeddings: chat.clone(),
            chat,
        })
    }
}

impl Provider for Anthropic {
    async fn chat(&self, call: &Call<'_>, request: ChatRequest) -> ChatResult {
        let start = Instant::now();
        let up = &self.upstream;
        let stream = request.stream;
        let body = request::messages_body(&request.body, &call.deployment.model, stream)
            .map_err(|e| rejected(&e.to_string()))?;
        let body = serde_json::to_vec(&body).map_err(|_| up.bad("request could not be encoded"))?;
        let url = call.deployment.endpoints.chat.clone();
        let response = up.post(call, url, body, error::adapt).await?;
        answer(up, call, start, response, stream).await
    }

    async fn embeddings(&self, _call: &Call<'_>, _body: JsonBody) -> JsonResult {
        Err(no_embeddings())
    }
}

/// A Messages answer (or its stream) in the OpenAI dialect; `start`: when the call began.
pub(super) async fn answer(
    up: &Upstream,
    call: &Call<'_>,
    start: Instant,
    response: reqwest::Response,
    stream: bool,
) -> ChatResult {
    if stream {
        let response = up.event_stream(response)?;
        return Ok(ChatReply::Stream(stream::chunks(
            up.id.clone(),
            unix_now(),
            response,
        )));
    }
    let body = up.read_body(call, start, response).await?;
    response::chat(&up.id, &body, unix_now()).map(ChatReply::Json)
}

/// Claude has no embeddings: the client's 400, never sent upstream.
pub(super) fn no_embeddings() -> UpstreamError {
    rejected("model does not support embeddings")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::common::test_provider as provider;

    #[test]
    fn url_version_and_key_header() {
        let p = Anthropic::new(
            &provider("{id: a, kind: anthropic, api_key: {env: PATH}}"),
            None,
        );
        let e = p.endpoints("claude").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.chat.as_str(), "https://api.anthropic.com/v1/messages");
        let headers = p.upstream.headers.unwrap_or_default();
        assert_eq!(
            headers.get("anthropic-version").map(HeaderValue::as_bytes),
            Some(&b"2023-06-01"[..])
        );
        assert!(headers
            .get("x-api-key")
            .is_some_and(HeaderValue::is_sensitive));
        assert!(headers.get(http::header::AUTHORIZATION).is_none());

        let p = Anthropic::new(
            &provider("{id: a, kind: anthropic, base_url: 'http://127.0.0.1:9/'}"),
            None,
        );
        let e = p.endpoints("m").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.chat.as_str(), "http://127.0.0.1:9/v1/messages");
    }
}
