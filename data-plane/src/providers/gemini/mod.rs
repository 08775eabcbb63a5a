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

mod embeddings;
mod request;
mod response;
mod stream;

#[cfg(test)]
mod fixtures;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use proto::Credential;
use serde_json::Value;

use super::http::{check_status, is_event_stream, read_body, remaining, secret_header, send};
use super::{
    Call, ChatReply, ChatRequest, Endpoints, JsonBody, JsonReply, Provider, UpstreamError,
};
use crate::seal::{self, SealKey};

pub use request::BadRequest;

/// A Gemini API provider.
#[derive(Debug)]
pub struct Gemini {
    id: String,
    base_url: String,
    /// Static headers for every request: auth, content type, operator-configured extras.
    headers: Result<HeaderMap, String>,
    timeout: Option<Duration>,
}

impl Gemini {
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

    /// `chat` is the `generateContent` URL; the stream URL is derived from it per request.
    pub fn endpoints(&self, model: &str) -> Result<Endpoints, String> {
        let base = format!("{}/models/{}", self.base_url, encode_segment(model));
        Ok(Endpoints {
            chat: parse_url(&format!("{base}:generateContent"))?,
            embeddings: parse_url(&format!("{base}:batchEmbedContents"))?,
        })
    }

    fn post(
        &self,
        call: &Call<'_>,
        url: reqwest::Url,
        body: &Value,
    ) -> Result<reqwest::RequestBuilder, UpstreamError> {
        let headers = self
            .headers
            .as_ref()
            .map_err(|detail| UpstreamError::Credentials {
                provider: self.id.clone(),
                detail: detail.clone(),
            })?;
        let body = serde_json::to_vec(body).map_err(|_| UpstreamError::BadResponse {
            provider: self.id.clone(),
            detail: "request could not be encoded",
        })?;
        Ok(call.http.post(url).headers(headers.clone()).body(body))
    }

    fn bad(&self, detail: &'static str) -> UpstreamError {
        UpstreamError::BadResponse {
            provider: self.id.clone(),
            detail,
        }
    }
}

impl Provider for Gemini {
    async fn chat(
        &self,
        call: &Call<'_>,
        request: ChatRequest,
    ) -> Result<ChatReply, UpstreamError> {
        let start = Instant::now();
        let body = request::chat_request(&request.body).map_err(rejected)?;
        let chat_url = &call.deployment.endpoints.chat;
        let url = if request.stream {
            stream_url(chat_url)
        } else {
            chat_url.clone()
        };
        let builder = self.post(call, url, &body)?;
        let response = send(&self.id, builder, call.timeout).await?;
        let response = check_status(&self.id, response)
            .await
            .map_err(|e| openai_error(&self.id, e))?;
        let meta = response::Meta {
            id: format!("chatcmpl-{}", uuid::Uuid::now_v7().simple()),
            model: call.deployment.model.clone(),
            created: unix_now(),
        };
        if request.stream {
            if !is_event_stream(&response) {
                return Err(self.bad("expected an event stream"));
            }
            return Ok(ChatReply::Stream(stream::chunks(
                self.id.clone(),
                meta,
                response,
            )));
        }
        let body = read_body(&self.id, response, remaining(start, call.timeout)).await?;
        let parsed: Value =
            serde_json::from_slice(&body).map_err(|_| self.bad("response is not JSON"))?;
        match response::chat_response(&parsed, &meta) {
            Ok((completion, usage)) => Ok(ChatReply::Json(JsonReply {
                body: Bytes::from(completion.to_string()),
                usage,
            })),
            Err(response::Untranslatable::Malformed(detail)) => Err(self.bad(detail)),
            Err(response::Untranslatable::Blocked(reason)) => Err(UpstreamError::Rejected {
                status: http::StatusCode::BAD_REQUEST,
                body: crate::error::error_json(
                    &format!("Gemini blocked the prompt (blockReason {reason})"),
                    "invalid_request_error",
                    None,
                    Some("content_filter"),
                ),
                retry_after: None,
            }),
        }
    }

    async fn embeddings(
        &self,
        call: &Call<'_>,
        body: JsonBody,
    ) -> Result<JsonReply, UpstreamError> {
        let start = Instant::now();
        let model = &call.deployment.model;
        let (gemini_body, texts) =
            embeddings::embeddings_request(&body, model).map_err(rejected)?;
        let builder = self.post(
            call,
            call.deployment.endpoints.embeddings.clone(),
            &gemini_body,
        )?;
        let response = send(&self.id, builder, call.timeout).await?;
        let response = check_status(&self.id, response)
            .await
            .map_err(|e| openai_error(&self.id, e))?;
        let bytes = read_body(&self.id, response, remaining(start, call.timeout)).await?;
        let parsed: Value =
            serde_json::from_slice(&bytes).map_err(|_| self.bad("response is not JSON"))?;
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
fn stream_url(chat: &reqwest::Url) -> reqwest::Url {
    let mut url = chat.clone();
    let path = chat
        .path()
        .replace(":generateContent", ":streamGenerateContent");
    url.set_path(&path);
    url.set_query(Some("alt=sse"));
    url
}

/// A request the translation refused: a 400 in the OpenAI dialect.
fn rejected(e: BadRequest) -> UpstreamError {
    UpstreamError::Rejected {
        status: http::StatusCode::BAD_REQUEST,
        body: crate::error::error_json(&e.0, "invalid_request_error", None, None),
        retry_after: None,
    }
}

/// Gemini's 4xx error body → an OpenAI error object (same message, Gemini's `status` as code).
fn openai_error(provider: &str, e: UpstreamError) -> UpstreamError {
    match e {
        UpstreamError::Rejected {
            status,
            body,
            retry_after,
        } => {
            let parsed: Option<Value> = serde_json::from_slice(&body).ok();
            let error = parsed.as_ref().and_then(|v| v.get("error"));
            if error.is_some_and(key_invalid) {
                // Gemini answers a bad API key with a 400: it is the gateway's credential that
                // failed, not the client's request.
                return UpstreamError::Failed {
                    provider: provider.to_owned(),
                    status: http::StatusCode::UNAUTHORIZED,
                    message: "the provider refused the gateway's credentials".into(),
                    retry_after: None,
                };
            }
            let body = match error.and_then(|e| e.get("message")).and_then(Value::as_str) {
                Some(message) => {
                    let code = error
                        .and_then(|e| e.get("status"))
                        .and_then(Value::as_str)
                        .map(str::to_ascii_lowercase);
                    let kind = if status == http::StatusCode::TOO_MANY_REQUESTS {
                        "rate_limit_error"
                    } else {
                        "invalid_request_error"
                    };
                    crate::error::error_json(message, kind, None, code.as_deref())
                }
                None => body,
            };
            UpstreamError::Rejected {
                status,
                body,
                retry_after,
            }
        }
        other => other,
    }
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn static_headers(p: &proto::Provider, seal_key: Option<&SealKey>) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
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
    headers.insert(HeaderName::from_static("x-goog-api-key"), value);
    Ok(headers)
}

fn parse_url(s: &str) -> Result<reqwest::Url, String> {
    reqwest::Url::parse(s).map_err(|e| format!("`{s}` is not a valid URL: {e}"))
}

/// Percent-encodes a URL path segment (model names like `gemini-2.5-flash` pass unchanged).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(yaml: &str) -> proto::Provider {
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("bad fixture: {e}"))
    }

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
        let headers = g.headers.unwrap_or_default();
        assert!(headers
            .get("x-goog-api-key")
            .is_some_and(HeaderValue::is_sensitive));
        assert!(headers.get(http::header::AUTHORIZATION).is_none());
    }

    #[test]
    fn gemini_errors_become_openai_errors() {
        let e = openai_error("g", UpstreamError::Rejected {
            status: http::StatusCode::BAD_REQUEST,
            body: Bytes::from_static(br#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}"#),
            retry_after: None,
        });
        let UpstreamError::Rejected { body, .. } = e else {
            panic!("still rejected")
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["message"], "API key not valid.");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "invalid_argument");

        let e = openai_error("g", UpstreamError::Rejected {
            status: http::StatusCode::BAD_REQUEST,
            body: Bytes::from_static(br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#),
            retry_after: None,
        });
        assert!(
            matches!(e, UpstreamError::Failed { status, .. } if status == http::StatusCode::UNAUTHORIZED),
            "a bad gateway key is the gateway's failure, not the client's"
        );
    }
}
