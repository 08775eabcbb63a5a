//! The gateway's errors in Anthropic's shape: `{"type":"error","error":{"type","message"}}`.
//!
//! Status and headers (`Retry-After`, `x-should-retry`, rate-limit headers) are exactly those
//! of [`ApiError`]'s own response: only the body is rewritten, so the status logic lives in one
//! place. The Anthropic error type follows from the status, as Anthropic's SDK maps it back.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::providers::UpstreamError;

/// Anthropic `error.type` for an HTTP status.
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 | 503 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

/// The message the client sees: the gateway's own, or for a request the provider rejected,
/// the provider's message (OpenAI and Anthropic both put it at `error.message`).
fn message(e: &ApiError) -> String {
    if let ApiError::Upstream(UpstreamError::Rejected { body, .. }) = e {
        let upstream = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
        if let Some(m) = upstream {
            return m;
        }
    }
    e.to_string()
}

/// Anthropic's error body.
pub fn body(kind: &str, message: &str) -> Bytes {
    Bytes::from(json!({"type": "error", "error": {"type": kind, "message": message}}).to_string())
}

/// Writes `e` as Anthropic's error response.
pub fn into_response(e: ApiError) -> Response {
    let message = message(&e);
    let (mut parts, _) = e.into_response().into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let kind = error_type(parts.status);
    Response::from_parts(parts, Body::from(body(kind, &message)))
}

#[cfg(test)]
mod tests {
    use http::{header, HeaderValue};
    use serde_json::Value;

    use super::*;
    use crate::admission::Refused;

    async fn body_of(response: Response) -> Value {
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    #[tokio::test]
    async fn errors_keep_their_status_and_take_anthropics_shape() {
        let cases = [
            (ApiError::InvalidKey, 401, "authentication_error"),
            (
                ApiError::ModelNotAllowed("m".into()),
                403,
                "permission_error",
            ),
            (ApiError::ModelNotFound("m".into()), 404, "not_found_error"),
            (
                ApiError::invalid("messages", "bad"),
                400,
                "invalid_request_error",
            ),
            (
                ApiError::BodyTooLarge { limit: 1 },
                413,
                "invalid_request_error",
            ),
            (ApiError::NotReady, 503, "overloaded_error"),
        ];
        for (e, status, kind) in cases {
            let text = e.to_string();
            let response = into_response(e);
            assert_eq!(response.status().as_u16(), status, "{text}");
            assert_eq!(
                body_of(response).await,
                serde_json::json!({"type": "error", "error": {"type": kind, "message": text}})
            );
        }
    }

    #[tokio::test]
    async fn refusals_keep_retry_headers_and_upstream_messages_pass_on() {
        let refused = Refused {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limit_exceeded",
            limit: "key:k1 requests_per_minute".into(),
            message: "Rate limit reached.".into(),
            retry_after: Some(std::time::Duration::from_millis(1_500)),
            headers: vec![(
                http::HeaderName::from_static("x-should-retry"),
                HeaderValue::from_static("true"),
            )],
        };
        let response = into_response(ApiError::from(refused));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"2"[..])
        );
        assert!(response.headers().get("x-should-retry").is_some());
        let body = body_of(response).await;
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(body["error"]["message"], "Rate limit reached.");

        let upstream = ApiError::Upstream(UpstreamError::Rejected {
            status: StatusCode::BAD_REQUEST,
            body: Bytes::from_static(br#"{"error":{"message":"bad temperature","type":"x"}}"#),
            retry_after: None,
        });
        let body = body_of(into_response(upstream)).await;
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["message"], "bad temperature");

        let failed = ApiError::Upstream(UpstreamError::Unreachable {
            provider: "p".into(),
        });
        let response = into_response(failed);
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(body_of(response).await["error"]["type"], "api_error");
    }
}
