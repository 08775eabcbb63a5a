//! OpenAI's error shape, `{"error":{"message","type","param","code"}}`, and the error
//! responses the mock sends. Messages never carry internal details.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;

use super::openai::json_response;

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// An OpenAI-shaped error response.
pub(crate) fn error_response(
    status: StatusCode,
    message: &str,
    kind: &str,
    code: Option<&str>,
) -> Response {
    let body = serde_json::to_vec(&ErrorEnvelope {
        error: ErrorObject {
            message,
            kind,
            param: None,
            code,
        },
    })
    .unwrap_or_default();
    json_response(status, body)
}

/// 400 `invalid_request_error`.
pub(crate) fn invalid_request(message: &str) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        None,
    )
}

/// 401 `invalid_api_key`.
pub(crate) fn invalid_api_key() -> Response {
    error_response(
        StatusCode::UNAUTHORIZED,
        "Incorrect API key provided",
        "invalid_request_error",
        Some("invalid_api_key"),
    )
}

/// The error a scripted status answers with; `Retry-After` when `retry_after` is set.
pub(crate) fn scripted_error(
    status: StatusCode,
    message: Option<&str>,
    retry_after: Option<u64>,
) -> Response {
    let (kind, code, default_message) = match status.as_u16() {
        429 => (
            "rate_limit_exceeded",
            Some("rate_limit_exceeded"),
            "Rate limit reached (mock provider).",
        ),
        s if s >= 500 => (
            "server_error",
            None,
            "The server had an error while processing your request (mock provider).",
        ),
        _ => (
            "invalid_request_error",
            None,
            "The request was rejected (mock provider).",
        ),
    };
    let mut response = error_response(status, message.unwrap_or(default_message), kind, code);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
