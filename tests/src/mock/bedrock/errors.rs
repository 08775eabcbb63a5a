//! Bedrock's error shape: the message in a JSON body, the type in `x-amzn-errortype`, and the
//! mock's rejections in it.

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::reply::with_request_id;
use crate::mock::error::ErrorShape;
use crate::mock::openai::json_response;

/// Bedrock's error answer: `{"message"}` and the type in `x-amzn-errortype`.
pub(super) fn bedrock_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut response = json_response(status, json!({ "message": message }).to_string());
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    )) {
        response.headers_mut().insert("x-amzn-errortype", v);
    }
    with_request_id(response)
}

/// Bedrock's error shape: the message in the body, the type in `x-amzn-errortype`.
pub(super) struct Shape;

impl ErrorShape for Shape {
    fn error(&self, status: StatusCode, kind: &str, message: &str) -> Response {
        bedrock_error(status, kind, message)
    }

    fn unauthorized(&self) -> Response {
        bedrock_error(
            StatusCode::FORBIDDEN,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    }

    fn bad_request(&self) -> &'static str {
        "ValidationException"
    }

    fn scripted(&self, status: StatusCode) -> (&'static str, &'static str) {
        match status.as_u16() {
            400 => (
                "ValidationException",
                "Malformed input request (mock provider).",
            ),
            403 => (
                "AccessDeniedException",
                "You don't have access to the model with the specified model ID. (mock provider)",
            ),
            404 => (
                "ResourceNotFoundException",
                "The requested resource could not be found. (mock provider)",
            ),
            408 => (
                "ModelTimeoutException",
                "The model took too long to respond. (mock provider)",
            ),
            424 => (
                "ModelErrorException",
                "The model failed to process the request. (mock provider)",
            ),
            429 => (
                "ThrottlingException",
                "Too many requests, please wait before trying again. (mock provider)",
            ),
            503 => (
                "ServiceUnavailableException",
                "The service is temporarily unavailable. (mock provider)",
            ),
            s if s >= 500 => (
                "InternalServerException",
                "An internal server error occurred. (mock provider)",
            ),
            _ => (
                "ValidationException",
                "The request was rejected. (mock provider)",
            ),
        }
    }
}
