//! Google's error shape (Gemini API and Vertex AI): `{"error":{"code","message","status"}}`,
//! and the mock's rejections in it.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::admit::Rejected;
use super::error::{render, ErrorShape};
use super::openai::json_response;

/// Gemini's status name for an HTTP status.
fn status_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        s if s >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

pub(crate) fn gemini_error(status: StatusCode, message: &str, details: Option<Value>) -> Response {
    let mut error = json!({
        "code": status.as_u16(),
        "message": message,
        "status": status_name(status),
    });
    if let (Some(d), Some(e)) = (details, error.as_object_mut()) {
        e.insert("details".into(), d);
    }
    json_response(status, json!({ "error": error }).to_string())
}

/// Gemini's (and Vertex AI's) error shape.
pub(crate) struct Shape;

impl ErrorShape for Shape {
    fn error(&self, status: StatusCode, _kind: &str, message: &str) -> Response {
        gemini_error(status, message, None)
    }

    fn unauthorized(&self) -> Response {
        gemini_error(
            StatusCode::BAD_REQUEST,
            "API key not valid. Please pass a valid API key.",
            Some(json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": { "service": "generativelanguage.googleapis.com" },
            }])),
        )
    }

    fn bad_request(&self) -> &'static str {
        "INVALID_ARGUMENT"
    }

    fn scripted(&self, status: StatusCode) -> (&'static str, &'static str) {
        let default = match status.as_u16() {
            429 => "Resource has been exhausted (e.g. check quota). (mock provider)",
            s if s >= 500 => "An internal error has occurred. (mock provider)",
            _ => "Request contains an invalid argument. (mock provider)",
        };
        (status_name(status), default)
    }
}

/// A rejection from admission, in Gemini's error format.
pub(crate) fn error_from(rejected: Rejected) -> Response {
    render(rejected, &Shape)
}
