//! Anthropic error answers mapped onto the gateway's upstream errors.
//!
//! Anthropic's error body is `{"type":"error","error":{"type","message"}}`. A 4xx is passed to
//! the client re-shaped as an OpenAI error object (same status, same message); 529
//! `overloaded_error` is not a standard status, so it becomes a retryable 503 with a clear
//! message; other statuses keep the shared classification of `providers::http`.

use http::StatusCode;
use serde::Deserialize;

use crate::providers::UpstreamError;

/// Anthropic's non-standard "overloaded" status.
const OVERLOADED: u16 = 529;

#[derive(Deserialize)]
struct Envelope {
    error: Fields,
}

#[derive(Deserialize)]
struct Fields {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Re-shapes an error from `check_status` for a provider speaking Anthropic's format.
pub fn adapt(provider: &str, e: UpstreamError) -> UpstreamError {
    match e {
        UpstreamError::Failed {
            status,
            retry_after,
            ..
        } if status.as_u16() == OVERLOADED => UpstreamError::Failed {
            provider: provider.to_owned(),
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the provider is overloaded (Anthropic 529); try again later".into(),
            retry_after,
        },
        UpstreamError::Rejected {
            status,
            body,
            retry_after,
        } => {
            let body = match serde_json::from_slice::<Envelope>(&body) {
                Ok(Envelope { error }) => crate::error::error_json(
                    error
                        .message
                        .as_deref()
                        .unwrap_or("the provider rejected the request"),
                    openai_type(error.kind.as_deref()),
                    None,
                    Some("upstream_rejected"),
                ),
                Err(_) => body,
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

/// OpenAI's error `type` for Anthropic's.
fn openai_type(kind: Option<&str>) -> &'static str {
    match kind {
        Some("rate_limit_error") => "rate_limit_exceeded",
        Some("not_found_error") => "not_found_error",
        Some("permission_error") => "permission_error",
        Some("authentication_error") => "authentication_error",
        _ => "invalid_request_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn overloaded_is_a_retryable_503() {
        let e = adapt(
            "a",
            UpstreamError::Failed {
                provider: "a".into(),
                status: StatusCode::from_u16(529).unwrap_or(StatusCode::OK),
                message: "Overloaded".into(),
                retry_after: None,
            },
        );
        assert_eq!(e.trigger(), Some(proto::Trigger::ServerError));
        assert!(
            matches!(&e, UpstreamError::Failed { status, message, .. } if *status == StatusCode::SERVICE_UNAVAILABLE && message.contains("overloaded"))
        );
    }

    #[test]
    fn rejections_become_openai_error_objects() {
        let e = adapt(
            "a",
            UpstreamError::Rejected {
                status: StatusCode::BAD_REQUEST,
                body: Bytes::from_static(br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#),
                retry_after: None,
            },
        );
        let UpstreamError::Rejected { status, body, .. } = e else {
            panic!("still a rejection");
        };
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(v["error"]["message"], "max_tokens: Field required");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v.get("type").is_none());
    }
}
