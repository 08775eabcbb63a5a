//! Sending to a provider and classifying what comes back, shared by every adapter.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{header, HeaderValue, StatusCode};
use serde::Deserialize;

use super::UpstreamError;

/// Largest error body read from a provider; the rest is dropped.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Largest successful non-streaming body accepted from a provider.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Sends the request and waits for the response head, within `timeout`.
pub async fn send(
    provider: &str,
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<reqwest::Response, UpstreamError> {
    match tokio::time::timeout(timeout, request.send()).await {
        Err(_) => Err(UpstreamError::Timeout {
            provider: provider.to_owned(),
            after: timeout,
        }),
        Ok(Err(e)) => Err(classify(provider, e, timeout)),
        Ok(Ok(response)) => Ok(response),
    }
}

fn classify(provider: &str, e: reqwest::Error, timeout: Duration) -> UpstreamError {
    // Without the URL: some providers carry credentials in the query string.
    let e = e.without_url();
    tracing::warn!(provider, error = %DisplayChain(&e), "upstream request failed");
    if e.is_timeout() {
        UpstreamError::Timeout {
            provider: provider.to_owned(),
            after: timeout,
        }
    } else {
        UpstreamError::Unreachable {
            provider: provider.to_owned(),
        }
    }
}

/// Turns a non-2xx response into the matching error; a 2xx response is returned unchanged.
pub async fn check_status(
    provider: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, UpstreamError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let body = tokio::time::timeout(
        Duration::from_secs(10),
        read_limited(response, MAX_ERROR_BODY),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default();
    let message = error_message(&body);
    tracing::info!(provider, status = status.as_u16(), message = %message, "upstream returned an error");
    Err(match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => UpstreamError::Failed {
            provider: provider.to_owned(),
            status,
            message: "the provider refused the gateway's credentials".into(),
            retry_after: None,
        },
        s if s.is_client_error() => UpstreamError::Rejected {
            status,
            body: if is_openai_error(&body) {
                body
            } else {
                crate::error::error_json(
                    &message,
                    "invalid_request_error",
                    None,
                    Some("upstream_rejected"),
                )
            },
            retry_after,
        },
        s if s.is_server_error() => UpstreamError::Failed {
            provider: provider.to_owned(),
            status,
            message,
            retry_after,
        },
        _ => UpstreamError::BadResponse {
            provider: provider.to_owned(),
            detail: "unexpected status",
        },
    })
}

/// Reads a whole successful body within `timeout`.
pub async fn read_body(
    provider: &str,
    response: reqwest::Response,
    timeout: Duration,
) -> Result<Bytes, UpstreamError> {
    match tokio::time::timeout(timeout, read_limited(response, MAX_BODY)).await {
        Err(_) => Err(UpstreamError::Timeout {
            provider: provider.to_owned(),
            after: timeout,
        }),
        Ok(Err(ReadError::TooLarge)) => Err(UpstreamError::BadResponse {
            provider: provider.to_owned(),
            detail: "body too large",
        }),
        Ok(Err(ReadError::Network(e))) => Err(classify_read(provider, e)),
        Ok(Ok(body)) => Ok(body),
    }
}

/// A body that broke off while being read: the connection dropped mid-response.
pub fn classify_read(provider: &str, e: reqwest::Error) -> UpstreamError {
    let e = e.without_url();
    tracing::warn!(provider, error = %DisplayChain(&e), "upstream body failed");
    UpstreamError::Interrupted {
        provider: provider.to_owned(),
    }
}

enum ReadError {
    TooLarge,
    Network(reqwest::Error),
}

async fn read_limited(response: reqwest::Response, limit: usize) -> Result<Bytes, ReadError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge);
    }
    // A body that arrives in one piece (most answers) is kept as it came, without a copy.
    let mut first: Option<Bytes> = None;
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(ReadError::Network)?;
        let held = first.as_ref().map_or(0, Bytes::len) + body.len();
        if held + piece.len() > limit {
            return Err(ReadError::TooLarge);
        }
        match first.take() {
            None if body.is_empty() => first = Some(piece),
            None => body.extend_from_slice(&piece),
            Some(earlier) => {
                body.extend_from_slice(&earlier);
                body.extend_from_slice(&piece);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(body)))
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorFields,
}

#[derive(Deserialize)]
struct ErrorFields {
    #[serde(default)]
    message: Option<String>,
}

fn is_openai_error(body: &[u8]) -> bool {
    serde_json::from_slice::<ErrorEnvelope>(body).is_ok()
}

/// The provider's own message: `error.message` if it sent an error object, else its text.
fn error_message(body: &[u8]) -> String {
    if let Ok(ErrorEnvelope {
        error: ErrorFields { message: Some(m) },
    }) = serde_json::from_slice(body)
    {
        return m;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "the provider returned no message".into();
    }
    text.chars().take(1000).collect()
}

/// `true` if the response declares an SSE body.
pub fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        })
}

/// Time left of `timeout` since `start` (never zero, so a timer still fires cleanly).
pub fn remaining(start: Instant, timeout: Duration) -> Duration {
    timeout
        .saturating_sub(start.elapsed())
        .max(Duration::from_millis(1))
}

/// A header value that must never be printed.
pub fn secret_header(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// Displays an error with its sources, for logs.
struct DisplayChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_messages_are_extracted() {
        assert_eq!(
            error_message(br#"{"error":{"message":"Rate limit reached"}}"#),
            "Rate limit reached"
        );
        assert_eq!(
            error_message(b"  upstream connect error  "),
            "upstream connect error"
        );
        assert_eq!(error_message(b""), "the provider returned no message");
        assert!(is_openai_error(br#"{"error":{"message":"x","type":"y"}}"#));
        assert!(!is_openai_error(br#"{"detail":"x"}"#));
    }
}
