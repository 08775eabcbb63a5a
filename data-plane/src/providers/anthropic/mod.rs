//! Anthropic's Messages API behind the OpenAI dialect.
//!
//! Requests are translated (`request`), sent to `POST {base}/v1/messages` with `x-api-key` and
//! `anthropic-version: 2023-06-01`, and answers translated back (`response`, `stream`, `error`).
//! Anthropic has no embeddings API: an embeddings call is a 400 in the OpenAI dialect and never
//! reaches the provider. Translation is pure code, covered by the wire samples in `fixtures/`.

mod error;
mod request;
mod response;
mod stream;

#[cfg(test)]
mod fixture_tests;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::StatusCode;
use proto::Credential;

use super::http::{check_status, is_event_stream, read_body, remaining, secret_header, send};
use super::{
    Call, ChatReply, ChatRequest, Endpoints, JsonBody, JsonReply, Provider, UpstreamError,
};
use crate::seal::{self, SealKey};

pub use request::DEFAULT_MAX_TOKENS;

/// The API version every request declares.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A provider speaking Anthropic's Messages API.
#[derive(Debug)]
pub struct Anthropic {
    id: String,
    base_url: String,
    /// Static headers for every request: auth, version, content type, operator extras.
    headers: Result<HeaderMap, String>,
    timeout: Option<Duration>,
}

impl Anthropic {
    /// Builds the adapter; an unusable credential is kept as an error reported per request.
    pub fn new(p: &proto::Provider, seal_key: Option<&SealKey>) -> Self {
        let base_url = p
            .base_url
            .as_deref()
            .or(p.kind.default_base_url())
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        Self {
            id: p.id.clone(),
            base_url,
            headers: static_headers(p, seal_key),
            timeout: p.timeout_ms.map(Duration::from_millis),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Chat goes to `{base}/v1/messages`; embeddings are answered locally, so their URL is
    /// never used.
    pub fn endpoints(&self, _model: &str) -> Result<Endpoints, String> {
        let url = format!("{}/v1/messages", self.base_url);
        let chat =
            reqwest::Url::parse(&url).map_err(|e| format!("`{url}` is not a valid URL: {e}"))?;
        Ok(Endpoints {
            embeddings: chat.clone(),
            chat,
        })
    }

    fn rejected(message: &str) -> UpstreamError {
        UpstreamError::Rejected {
            status: StatusCode::BAD_REQUEST,
            body: crate::error::error_json(message, "invalid_request_error", None, None),
            retry_after: None,
        }
    }
}

impl Provider for Anthropic {
    async fn chat(
        &self,
        call: &Call<'_>,
        request: ChatRequest,
    ) -> Result<ChatReply, UpstreamError> {
        let start = Instant::now();
        let stream = request.stream;
        let body = request::messages_body(&request.body, &call.deployment.model, stream)
            .map_err(|e| Self::rejected(&e.0))?;
        let body = serde_json::to_vec(&body).map_err(|_| UpstreamError::BadResponse {
            provider: self.id.clone(),
            detail: "request could not be encoded",
        })?;
        let headers = self
            .headers
            .as_ref()
            .map_err(|detail| UpstreamError::Credentials {
                provider: self.id.clone(),
                detail: detail.clone(),
            })?;
        let builder = call
            .http
            .post(call.deployment.endpoints.chat.clone())
            .headers(headers.clone())
            .body(body);
        let response = send(&self.id, builder, call.timeout).await?;
        let response = check_status(&self.id, response)
            .await
            .map_err(|e| error::adapt(&self.id, e))?;
        if stream {
            if !is_event_stream(&response) {
                return Err(UpstreamError::BadResponse {
                    provider: self.id.clone(),
                    detail: "expected an event stream",
                });
            }
            return Ok(ChatReply::Stream(stream::chunks(
                self.id.clone(),
                unix_now(),
                response,
            )));
        }
        let body = read_body(&self.id, response, remaining(start, call.timeout)).await?;
        response::chat(&self.id, &body, unix_now()).map(ChatReply::Json)
    }

    async fn embeddings(
        &self,
        _call: &Call<'_>,
        _body: JsonBody,
    ) -> Result<JsonReply, UpstreamError> {
        Err(Self::rejected("model does not support embeddings"))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn static_headers(p: &proto::Provider, seal_key: Option<&SealKey>) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        HeaderName::from_static("anthropic-version"),
        HeaderValue::from_static(ANTHROPIC_VERSION),
    );
    for (name, value) in &p.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{name}`"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header `{name}`"))?;
        headers.insert(name, value);
    }
    let Some(credential) = &p.api_key else {
        return Ok(headers);
    };
    // Error texts name where the secret comes from, never the secret.
    let (secret, source) = match credential {
        Credential::Env { env: var } => (
            std::env::var(var).map_err(|_| format!("environment variable `{var}` is not set"))?,
            format!("environment variable `{var}`"),
        ),
        Credential::Sealed { sealed } => (
            seal::open(seal_key, p.id.as_bytes(), sealed)
                .map_err(|e| format!("sealed credential: {e}"))?,
            "the sealed credential".to_owned(),
        ),
    };
    let value = secret_header(&secret)
        .ok_or_else(|| format!("{source} holds characters not allowed in a header"))?;
    headers.insert(HeaderName::from_static("x-api-key"), value);
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(yaml: &str) -> proto::Provider {
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("bad fixture: {e}"))
    }

    #[test]
    fn url_version_and_key_header() {
        let p = Anthropic::new(
            &provider("{id: a, kind: anthropic, api_key: {env: PATH}}"),
            None,
        );
        let e = p.endpoints("claude").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.chat.as_str(), "https://api.anthropic.com/v1/messages");
        let headers = p.headers.unwrap_or_default();
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
