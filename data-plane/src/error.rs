//! The one place where a failed request becomes an HTTP response.
//!
//! Every handler returns [`ApiError`]; its `IntoResponse` writes the OpenAI error object
//! (`{"error":{"message","type","param","code"}}`) with the status an official SDK maps to the
//! right exception. Nothing here sends a 500: internal faults that are not the client's are
//! reported as 502/503/504 with a message that names no internals.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

use crate::admission::Refused;
use crate::providers::UpstreamError;

/// A request that cannot be served, in terms the client can act on.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("You didn't provide an API key. Send it as `Authorization: Bearer <key>`, `x-api-key` or `api-key`.")]
    MissingKey,
    #[error("Incorrect API key provided.")]
    InvalidKey,
    #[error("This API key has expired.")]
    ExpiredKey,
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    #[error("This API key is not allowed to use the model `{0}`.")]
    ModelNotAllowed(String),
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    #[error("Request body is larger than the limit of {limit} bytes.")]
    BodyTooLarge { limit: usize },
    #[error("The gateway has no configuration loaded yet; try again shortly.")]
    NotReady,
    #[error("Unknown request URL: {method} {path}.")]
    UnknownPath { method: String, path: String },
    #[error("Method {method} is not allowed for {path}.")]
    MethodNotAllowed { method: String, path: String },
    #[error("Response with id '{0}' not found.")]
    ResponseNotFound(String),
    #[error("Previous response with id '{0}' not found.")]
    PreviousResponseNotFound(String),
    #[error("Stored responses cannot be reached right now; try again shortly.")]
    StoreUnavailable,
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A guardrail policy blocks what the request carries (the classes, never the values).
    #[error("The request was blocked by a guardrail policy: it contains {0}.")]
    Guardrail(String),
    /// Admission refused the request (budget, rate limit or per-request cost cap).
    #[error("{}", .0.message)]
    Refused(Refused),
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        Self::Refused(refused)
    }
}

impl ApiError {
    /// Shorthand for a 400 about one field.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: Some(param.to_owned()),
        }
    }

    /// HTTP status the client receives.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingKey | Self::InvalidKey | Self::ExpiredKey => StatusCode::UNAUTHORIZED,
            Self::ModelNotAllowed(_) => StatusCode::FORBIDDEN,
            Self::ModelNotFound(_) | Self::UnknownPath { .. } | Self::ResponseNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Self::InvalidRequest { .. }
            | Self::PreviousResponseNotFound(_)
            | Self::Guardrail(_) => StatusCode::BAD_REQUEST,
            Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream(e) => e.status(),
            Self::Refused(r) => r.status,
        }
    }

    /// OpenAI `error.type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::MissingKey
            | Self::InvalidKey
            | Self::ExpiredKey
            | Self::ModelNotFound(_)
            | Self::InvalidRequest { .. }
            | Self::BodyTooLarge { .. }
            | Self::UnknownPath { .. }
            | Self::ResponseNotFound(_)
            | Self::PreviousResponseNotFound(_)
            | Self::Guardrail(_)
            | Self::MethodNotAllowed { .. } => "invalid_request_error",
            Self::ModelNotAllowed(_) => "permission_error",
            Self::NotReady | Self::StoreUnavailable => "service_unavailable",
            Self::Upstream(_) => "upstream_error",
            Self::Refused(r) => r.error_type(),
        }
    }

    /// OpenAI `error.code`.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::MissingKey => Some("missing_api_key"),
            Self::InvalidKey | Self::ExpiredKey => Some("invalid_api_key"),
            Self::ModelNotFound(_) => Some("model_not_found"),
            Self::ModelNotAllowed(_) => Some("model_not_allowed"),
            Self::InvalidRequest { .. } => Some("invalid_request"),
            Self::BodyTooLarge { .. } => Some("request_too_large"),
            Self::NotReady => Some("not_ready"),
            Self::UnknownPath { .. } => Some("unknown_url"),
            Self::MethodNotAllowed { .. } => Some("method_not_allowed"),
            Self::ResponseNotFound(_) => Some("response_not_found"),
            Self::PreviousResponseNotFound(_) => Some("previous_response_not_found"),
            Self::StoreUnavailable => Some("store_unavailable"),
            Self::Guardrail(_) => Some("guardrail_blocked"),
            Self::Upstream(e) => Some(e.code()),
            Self::Refused(r) => Some(r.code),
        }
    }

    /// Low-cardinality label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Upstream(e) => e.kind(),
            other => other.code().unwrap_or("error"),
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            Self::InvalidRequest { param, .. } => param.as_deref(),
            Self::ModelNotFound(_) | Self::ModelNotAllowed(_) => Some("model"),
            Self::PreviousResponseNotFound(_) => Some("previous_response_id"),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorObject<'a>,
}

/// OpenAI's error object, also used for errors inside SSE streams.
#[derive(Serialize)]
pub struct ErrorObject<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

/// Serialises an OpenAI error body.
pub fn error_json(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Bytes {
    let body = ErrorBody {
        error: ErrorObject {
            message,
            kind,
            param,
            code,
        },
    };
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        let status = self.status();
        let refused = match &mut self {
            Self::Refused(r) => Some((std::mem::take(&mut r.headers), r.retry_after)),
            _ => None,
        };
        let (body, retry_after) = match self {
            Self::Upstream(UpstreamError::Rejected {
                body, retry_after, ..
            }) => (body, retry_after),
            ref other => {
                let retry_after = match other {
                    Self::Upstream(UpstreamError::Failed { retry_after, .. }) => {
                        retry_after.clone()
                    }
                    _ => None,
                };
                let message = other.to_string();
                (
                    error_json(&message, other.error_type(), other.param(), other.code()),
                    retry_after,
                )
            }
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        if let Some((extra, retry)) = refused {
            for (name, value) in extra {
                headers.insert(name, value);
            }
            if let Some(after) = retry {
                // Whole seconds, rounded up (the header's unit); the OpenAI SDK also reads
                // the exact `retry-after-ms`.
                let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(ms.div_ceil(1000).max(1)),
                );
                headers.insert(
                    http::HeaderName::from_static("retry-after-ms"),
                    HeaderValue::from(ms),
                );
            }
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(value) = retry_after {
            headers.insert(header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(e: ApiError) -> (StatusCode, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn errors_use_the_openai_shape() {
        let (status, body) = body_of(ApiError::invalid(
            "messages",
            "'messages' is a required property",
        ))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            serde_json::json!({"error": {"message": "'messages' is a required property",
                "type": "invalid_request_error", "param": "messages", "code": "invalid_request"}})
        );
        let (status, body) = body_of(ApiError::ModelNotAllowed("gpt-4o".into())).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"]["code"], "model_not_allowed");
        assert_eq!(body["error"]["param"], "model");
    }

    #[tokio::test]
    async fn upstream_rejections_pass_through_verbatim() {
        let raw = br#"{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":null}}"#;
        let e = ApiError::Upstream(UpstreamError::Rejected {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: Bytes::from_static(raw),
            retry_after: None,
        });
        let (status, body) = body_of(e).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["message"], "bad temperature");
    }

    #[tokio::test]
    async fn refusals_carry_their_code_limit_and_retry_headers() {
        let budget = Refused {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "budget_exceeded",
            limit: "team-a".into(),
            message: "Budget 'team-a' is exhausted for this period.".into(),
            retry_after: None,
            headers: vec![(
                http::HeaderName::from_static("x-should-retry"),
                HeaderValue::from_static("false"),
            )],
        };
        let response = ApiError::from(budget.clone()).into_response();
        assert_eq!(response.headers().get("x-should-retry").unwrap(), "false");
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        let (status, body) = body_of(ApiError::from(budget)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            body,
            serde_json::json!({"error": {"message": "Budget 'team-a' is exhausted for this period.",
                "type": "insufficient_quota", "param": null, "code": "budget_exceeded"}})
        );

        let rate = Refused {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limit_exceeded",
            limit: "key:k1 requests_per_minute".into(),
            message: "Rate limit reached.".into(),
            retry_after: Some(std::time::Duration::from_millis(12_300)),
            headers: vec![(
                http::HeaderName::from_static("x-ratelimit-limit-requests"),
                HeaderValue::from(60u64),
            )],
        };
        let e = ApiError::from(rate);
        assert_eq!(e.kind(), "rate_limit_exceeded");
        let response = e.into_response();
        let h = response.headers();
        assert_eq!(h.get(header::RETRY_AFTER).unwrap(), "13");
        assert_eq!(h.get("retry-after-ms").unwrap(), "12300");
        assert_eq!(h.get("x-ratelimit-limit-requests").unwrap(), "60");
    }

    #[tokio::test]
    async fn upstream_failures_never_leak_as_500() {
        let e = ApiError::Upstream(UpstreamError::Failed {
            provider: "p".into(),
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "boom".into(),
            retry_after: Some(HeaderValue::from_static("3")),
        });
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static("3"))
        );
    }
}
