//! Bedrock error answers mapped onto the gateway's upstream errors.
//!
//! Bedrock answers an error with `{"message": "..."}` and names it in the `x-amzn-errortype`
//! header (`ValidationException:http://internal.amazon.com/...`; the part before `:` counts).
//! The shared classification of `providers::http` runs first; then:
//! - 401/403 (`InvalidSignatureException`, `UnrecognizedClientException`,
//!   `ExpiredTokenException`, `AccessDeniedException`) stay the gateway's credential failure
//!   (a 502, never the client's fault), with the AWS error type in the message;
//! - other 4xx are passed to the client as an OpenAI error object with Bedrock's message and
//!   the error type as `code` (429 `ThrottlingException`/`ModelNotReadyException` stay 429 and
//!   retryable);
//! - `ModelTimeoutException` (408) becomes a retryable 504 and `ModelErrorException` (424) a
//!   502: both are the model failing, not the request being wrong;
//! - 5xx keep their status and become retryable failures with Bedrock's message.

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use crate::providers::UpstreamError;

/// `x-amzn-errortype` without its namespace suffix.
pub fn error_type(value: Option<&http::HeaderValue>) -> Option<String> {
    let v = value?.to_str().ok()?;
    let name = v.split(':').next().unwrap_or(v).trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// The error type a body names in `__type` (AWS's JSON protocols), when the header is absent.
fn body_type(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let t = v.get("__type")?.as_str()?;
    let t = t.rsplit('#').next().unwrap_or(t);
    error_type(http::HeaderValue::from_str(t).ok().as_ref())
}

/// Bedrock's `message` (or `Message`) from an error body.
fn message_of(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("message")
        .or(v.get("Message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Re-shapes an error from `check_status` for Bedrock; `kind` is the `x-amzn-errortype`.
pub fn adapt(provider: &str, e: UpstreamError, kind: Option<&str>) -> UpstreamError {
    match e {
        UpstreamError::Failed { status, .. }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN =>
        {
            let kind = kind.unwrap_or("AccessDeniedException");
            let message = if kind == "AccessDeniedException" {
                format!("the gateway's AWS credentials are not allowed to make this call ({kind})")
            } else {
                format!("the provider refused the gateway's AWS credentials ({kind})")
            };
            UpstreamError::Failed {
                provider: provider.to_owned(),
                status,
                message,
                retry_after: None,
            }
        }
        UpstreamError::Failed {
            status,
            message,
            retry_after,
            ..
        } => UpstreamError::Failed {
            provider: provider.to_owned(),
            status,
            message: message_of(message.as_bytes()).unwrap_or(message),
            retry_after,
        },
        UpstreamError::Rejected {
            status,
            ref body,
            ref retry_after,
        } => {
            let named = kind.map(str::to_owned).or_else(|| body_type(body));
            let kind = named.as_deref();
            // The model failing is not the request being wrong.
            let model_failed = |status, otherwise: &str| UpstreamError::Failed {
                provider: provider.to_owned(),
                status,
                message: message_of(body).unwrap_or_else(|| otherwise.into()),
                retry_after: retry_after.clone(),
            };
            match (status.as_u16(), kind) {
                (408, _) | (_, Some("ModelTimeoutException")) => {
                    model_failed(StatusCode::GATEWAY_TIMEOUT, "the model timed out")
                }
                (424, _) | (_, Some("ModelErrorException")) => {
                    model_failed(StatusCode::BAD_GATEWAY, "the model failed")
                }
                _ => e.reword_rejection(|status, body| {
                    Some(openai_error(status, &message_of(body)?, kind))
                }),
            }
        }
        other => other,
    }
}

fn openai_error(status: StatusCode, message: &str, kind: Option<&str>) -> Bytes {
    let openai_type = match status.as_u16() {
        429 => "rate_limit_error",
        404 => "not_found_error",
        _ => "invalid_request_error",
    };
    crate::error::error_json(
        message,
        openai_type,
        None,
        kind.or(Some("upstream_rejected")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bedrock_errors_become_openai_errors() {
        let kind = error_type(Some(&http::HeaderValue::from_static(
            "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
        )));
        assert_eq!(kind.as_deref(), Some("ValidationException"));
        let e = adapt(
            "b",
            UpstreamError::rejection(
                400,
                r#"{"message":"The provided model identifier is invalid."}"#,
            ),
            kind.as_deref(),
        );
        let UpstreamError::Rejected { status, body, .. } = e else {
            panic!("still a rejection")
        };
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(
            v["error"]["message"],
            "The provided model identifier is invalid."
        );
        assert_eq!(v["error"]["code"], "ValidationException");

        let throttled = adapt(
            "b",
            UpstreamError::rejection(429, r#"{"message":"Too many requests"}"#),
            Some("ThrottlingException"),
        );
        assert_eq!(throttled.trigger(), Some(proto::Trigger::RateLimited));
        assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);

        let typed = adapt(
            "b",
            UpstreamError::rejection(
                400,
                r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"bad"}"#,
            ),
            None,
        );
        let UpstreamError::Rejected { body, .. } = typed else {
            panic!("still a rejection")
        };
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(v["error"]["code"], "ValidationException");

        let timeout = adapt(
            "b",
            UpstreamError::rejection(408, r#"{"message":"slow"}"#),
            None,
        );
        assert_eq!(timeout.trigger(), Some(proto::Trigger::ServerError));
    }

    #[test]
    fn a_refused_signature_is_the_gateways_credential_failure() {
        let e = adapt(
            "b",
            UpstreamError::Failed {
                provider: "b".into(),
                status: StatusCode::FORBIDDEN,
                message: "x".into(),
                retry_after: None,
            },
            Some("InvalidSignatureException"),
        );
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        // The loop tries another deployment (it may hold a good credential).
        assert_eq!(e.trigger(), Some(proto::Trigger::ServerError));
        assert!(e.to_string().contains("InvalidSignatureException"), "{e}");

        let unavailable = adapt(
            "b",
            UpstreamError::Failed {
                provider: "b".into(),
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: r#"{"message":"Service unavailable"}"#.into(),
                retry_after: None,
            },
            Some("ServiceUnavailableException"),
        );
        assert_eq!(unavailable.trigger(), Some(proto::Trigger::ServerError));
        assert!(unavailable.to_string().ends_with(": Service unavailable"));
    }
}
