//! OpenAI's error shape, `{"error":{"message","type","param","code"}}`, and the error
//! responses the mock sends. Messages never carry internal details.

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;

use super::admit::Rejected;
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

/// How one provider's mock writes its errors: the one builder every mock's rejections go
/// through ([`render`]), with a per-dialect shape.
pub(crate) trait ErrorShape {
    /// An error response of the dialect's `kind` with `message`.
    fn error(&self, status: StatusCode, kind: &str, message: &str) -> Response;
    /// The dialect's answer to a missing or wrong credential.
    fn unauthorized(&self) -> Response;
    /// The dialect's error kind for a malformed request.
    fn bad_request(&self) -> &'static str;
    /// The dialect's error kind and default message for a scripted status.
    fn scripted(&self, status: StatusCode) -> (&'static str, &'static str);
}

/// A request the common steps turned away, in `shape`'s dialect; a scripted error carries
/// `Retry-After` when its script set one.
pub(crate) fn render(rejected: Rejected, shape: &impl ErrorShape) -> Response {
    match rejected {
        Rejected::Unauthorized => shape.unauthorized(),
        Rejected::BadRequest(message) => {
            shape.error(StatusCode::BAD_REQUEST, shape.bad_request(), &message)
        }
        Rejected::Scripted {
            status,
            message,
            retry_after,
        } => {
            let (kind, default) = shape.scripted(status);
            let mut response = shape.error(status, kind, message.as_deref().unwrap_or(default));
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
        Rejected::Reset => Response::default(),
    }
}

/// OpenAI's error shape (the OpenAI-compatible routes and Azure's).
#[derive(Debug)]
pub(crate) struct OpenAi;

impl ErrorShape for OpenAi {
    fn error(&self, status: StatusCode, kind: &str, message: &str) -> Response {
        let code = (kind == "rate_limit_exceeded").then_some(kind);
        error_response(status, message, kind, code)
    }

    fn unauthorized(&self) -> Response {
        invalid_api_key()
    }

    fn bad_request(&self) -> &'static str {
        "invalid_request_error"
    }

    fn scripted(&self, status: StatusCode) -> (&'static str, &'static str) {
        match status.as_u16() {
            429 => ("rate_limit_exceeded", "Rate limit reached (mock provider)."),
            s if s >= 500 => (
                "server_error",
                "The server had an error while processing your request (mock provider).",
            ),
            _ => (
                "invalid_request_error",
                "The request was rejected (mock provider).",
            ),
        }
    }
}
