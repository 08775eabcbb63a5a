//! Google Gemini API (AI Studio, API key) adapter.
//!
//! Auth and URLs live here; the translation between the OpenAI dialect and Gemini's
//! `generateContent` format is pure code in `request`, `response`, `stream` and `embeddings`,
//! so a Vertex AI adapter (same bodies, other URLs and OAuth auth) can reuse it as is.
//!
//! - Chat: `POST {base}/models/{model}:generateContent`, streams
//!   `POST {base}/models/{model}:streamGenerateContent?alt=sse`.
//! - Embeddings: `POST {base}/models/{model}:batchEmbedContents` (one request per input).
//! - Auth: `x-goog-api-key` header (never the `key=` query parameter, so URLs carry no secret).
//! - Errors: Gemini's `{"error":{"code","message","status"}}` is turned into an OpenAI error
//!   object on 4xx (Gemini's `status` lowercased as `code`); statuses are classified like the
//!   OpenAI family (429/5xx retryable). Gemini answers a bad API key with a 400 whose reason is
//!   `API_KEY_INVALID`: that is reported as the gateway's credential failure (502), not passed
//!   to the client as its own mistake. Requests the translation cannot express are 400s.
//! - Usage: from `usageMetadata` (see `response`); embeddings carry none (see `embeddings`).

mod count;
pub(super) mod embeddings;
pub(super) mod request;
pub(super) mod response;
pub(super) mod stream;

/// What Gemini and Vertex AI differ in (name, auth); their chat path is one.
pub(super) trait Google: Sync {
    /// The provider as messages name it.
    const PRODUCT: &'static str;
    fn upstream(&self) -> &Upstream;
    /// Sends an encoded JSON body with the provider's auth; error answers come back in
    /// OpenAI's shape.
    fn post(&self, call: &Call<'_>, url: Url, body: Vec<u8>) -> impl Future<Output = Sent> + Send;
}

/// What sending a request gives.
pub(super) type Sent = Result<reqwest::Response, UpstreamError>;

/// Sends `body` (a Gemini JSON body) through `g`.
async fn send<G: Google>(g: &G, call: &Call<'_>, url: Url, body: &Value) -> Sent {
    let body =
        serde_json::to_vec(body).map_err(|_| g.upstream().bad("request could not be encoded"))?;
    g.post(call, url, body).await
}

/// A chat through `generateContent` (or its stream), for Gemini and Vertex AI alike.
pub(super) async fn chat<G: Google>(g: &G, call: &Call<'_>, request: ChatRequest) -> ChatResult {
    let start = Instant::now();
    let upstream = g.upstream();
    let body =
        request::chat_request(&request.body).map_err(|e| e.upstream(&upstream.id, G::PRODUCT))?;
    let chat_url = &call.deployment.endpoints.chat;
    let url = if request.stream {
        stream_url(chat_url)
    } else {
        chat_url.clone()
    };
    let response = send(g, call, url, &body).await?;
    answer(upstream, call, start, response, request.stream, G::PRODUCT).await
}

/// Posts `body` and reads the whole answer as JSON (embeddings).
pub(super) async fn exchange<G: Google>(
    g: &G,
    call: &Call<'_>,
    url: reqwest::Url,
    body: &Value,
) -> Result<Value, UpstreamError> {
    let start = Instant::now();
    let response = send(g, call, url, body).await?;
    let bytes = g.upstream().read_body(call, start, response).await?;
    serde_json::from_slice(&bytes).map_err(|_| g.upstream().bad("response is not JSON"))
}

/// A `generateContent` answer (or stream) in the OpenAI dialect; `product` names the provider
/// in a blocked-prompt message.
async fn answer(
    upstream: &Upstream,
    call: &Call<'_>,
    start: Instant,
    response: reqwest::Response,
    stream: bool,
    product: &str,
) -> ChatResult {
    let meta = response::Meta {
        id: format!("chatcmpl-{}", uuid::Uuid::now_v7().simple()),
        model: call.deployment.model.clone(),
        created: unix_now(),
    };
    if stream {
        let response = upstream.event_stream(response)?;
        return Ok(ChatReply::Stream(stream::chunks(
            upstream.id.clone(),
            meta,
            response,
        )));
    }
    let body = upstream.read_body(call, start, response).await?;
    let parsed: Value =
        serde_json::from_slice(&body).map_err(|_| upstream.bad("response is not JSON"))?;
    let (completion, usage) =
        response::chat_response(&parsed, &meta).map_err(|e| e.upstream(&upstream.id, product))?;
    Ok(ChatReply::Json(JsonReply {
        body: Bytes::from(completion.to_string()),
        usage,
    }))
}

#[cfg(test)]
mod fixtures;

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HeaderName;
use reqwest::Url;
use serde_json::Value;

use super::common::{encode_segment, parse_url, unix_now, Auth, Upstream};
use super::{
    Call, ChatReply, ChatRequest, ChatResult, ConfigError, Endpoints, JsonBody, JsonReply,
    JsonResult, Provider, UpstreamError,
};
use crate::seal::SealKey;

/// A Gemini API provider.
#[derive(Debug)]
pub struct Gemini {
    upstream: Upstream,
}

impl Gemini {
    /// Builds the adapter; an unusable credential is kept as an error reported per request.
    pub fn new(p: &proto::Provider, seal_key: Option<&SealKey>) -> Self {
        let auth = Auth::Key(HeaderName::from_static("x-goog-api-key"));
        Self {
            upstream: Upstream::new(p, seal_key, &[], auth),
        }
    }

    pub fn id(&self) -> &str {
        &self.upstream.id
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.upstream.timeout
    }

    /// `chat` is the `generateContent` URL; the stream URL is derived from it per request.
    pub fn endpoints(&self, model: &str) -> Result<Endpoints, ConfigError> {
        let base = format!(
            "{}/models/{}",
            self.upstream.base_url,
            encode_segment(model)
        );
        Ok(Endpoints {
            chat: parse_url(&format!("{base}:generateContent"))?,
            embeddings: parse_url(&format!("{base}:batchEmbedContents"))?,
        })
    }

    fn bad(&self, detail: &'static str) -> UpstreamError {
        self.upstream.bad(detail)
    }
}

impl Google for Gemini {
    const PRODUCT: &'static str = "Gemini";

    fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    async fn post(&self, call: &Call<'_>, url: Url, body: Vec<u8>) -> Sent {
        self.upstream.post(call, url, body, openai_error).await
    }
}

impl Provider for Gemini {
    async fn chat(&self, call: &Call<'_>, request: ChatRequest) -> ChatResult {
        chat(self, call, request).await
    }

    async fn embeddings(&self, call: &Call<'_>, body: JsonBody) -> JsonResult {
        let model = &call.deployment.model;
        let (gemini_body, texts) = embeddings::embeddings_request(&body, model)
            .map_err(|e| e.upstream(self.id(), Self::PRODUCT))?;
        let url = call.deployment.endpoints.embeddings.clone();
        let parsed = exchange(self, call, url, &gemini_body).await?;
        let out = embeddings::embeddings_response(
            &parsed,
            &texts,
            model,
            embeddings::wants_base64(&body),
        )
        .ok_or_else(|| self.bad("embeddings response does not match the request"))?;
        Ok(JsonReply {
            body: Bytes::from(out.to_string()),
            // Gemini reports no tokens for embeddings; the gateway meters its own estimate.
            usage: None,
        })
    }
}

/// `…:generateContent` → `…:streamGenerateContent?alt=sse`.
pub(super) fn stream_url(chat: &reqwest::Url) -> reqwest::Url {
    let mut url = chat.clone();
    let path = chat
        .path()
        .replace(":generateContent", ":streamGenerateContent");
    url.set_path(&path);
    url.set_query(Some("alt=sse"));
    url
}

/// Gemini's 4xx error body → an OpenAI error object (same message, Gemini's `status` as code).
pub(super) fn openai_error(provider: &str, e: UpstreamError) -> UpstreamError {
    if let UpstreamError::Rejected { body, .. } = &e {
        if error_of(body).as_ref().is_some_and(key_invalid) {
            // Gemini answers a bad API key with a 400: it is the gateway's credential that
            // failed, not the client's request.
            return UpstreamError::Failed {
                provider: provider.to_owned(),
                status: http::StatusCode::UNAUTHORIZED,
                message: "the provider refused the gateway's credentials".into(),
                retry_after: None,
            };
        }
    }
    e.reword_rejection(|status, body| {
        let error = error_of(body)?;
        let message = error.get("message")?.as_str()?;
        let code = error
            .get("status")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        let kind = if status == http::StatusCode::TOO_MANY_REQUESTS {
            "rate_limit_error"
        } else {
            "invalid_request_error"
        };
        Some(crate::error::error_json(
            message,
            kind,
            None,
            code.as_deref(),
        ))
    })
}

/// The `error` object of a Google error body.
fn error_of(body: &[u8]) -> Option<Value> {
    let mut parsed: Value = serde_json::from_slice(body).ok()?;
    Some(parsed.get_mut("error")?.take())
}

/// `error.details[].reason == "API_KEY_INVALID"`.
fn key_invalid(error: &Value) -> bool {
    error
        .get("details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|d| d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::common::test_provider as provider;
    use http::header::HeaderValue;

    #[test]
    fn urls_and_auth_header() {
        let g = Gemini::new(
            &provider("{id: g, kind: gemini, api_key: {env: PATH}}"),
            None,
        );
        let e = g.endpoints("gemini-2.5-flash").unwrap();
        assert_eq!(
            e.chat.as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            stream_url(&e.chat).as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            e.embeddings.as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:batchEmbedContents"
        );
        let headers = g.upstream.headers.unwrap_or_default();
        assert!(headers
            .get("x-goog-api-key")
            .is_some_and(HeaderValue::is_sensitive));
        assert!(headers.get(http::header::AUTHORIZATION).is_none());
    }

    #[test]
    fn gemini_errors_become_openai_errors() {
        let e = openai_error(
            "g",
            UpstreamError::rejection(
                400,
                r#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}"#,
            ),
        );
        let UpstreamError::Rejected { body, .. } = e else {
            panic!("still rejected")
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["message"], "API key not valid.");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "invalid_argument");

        let e = openai_error(
            "g",
            UpstreamError::rejection(
                400,
                r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#,
            ),
        );
        assert!(
            matches!(e, UpstreamError::Failed { status, .. } if status == http::StatusCode::UNAUTHORIZED),
            "a bad gateway key is the gateway's failure, not the client's"
        );
    }
}
