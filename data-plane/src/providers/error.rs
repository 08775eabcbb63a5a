//! Failures talking to an upstream provider, classified for the client, metrics and retries.
//!
//! Messages are written for the caller and never include internal detail (addresses, URLs
//! that may carry credentials, library error text); that detail is logged where it happens.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use proto::Trigger;

/// Why a provider entry cannot serve as configured: the snapshot naming it is refused, with
/// this as the reason at the deployment's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A URL built from the provider's `base_url` and the model does not parse.
    #[error("`{url}` is not a valid URL: {reason}")]
    Url { url: String, reason: String },
    /// A setting the provider kind needs is missing.
    #[error("a {kind} provider needs settings {settings}")]
    MissingSettings {
        kind: &'static str,
        settings: &'static str,
    },
    /// A setting has a value the provider does not accept.
    #[error("`{value}` is not {expected}")]
    BadSetting {
        value: String,
        expected: &'static str,
    },
}

/// Why a call to a provider did not produce a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP/TLS connection failed or the connection broke before a response arrived.
    #[error("provider `{provider}` is unreachable")]
    Unreachable { provider: String },
    /// No response (or no next stream chunk) within the allowed time.
    #[error("provider `{provider}` did not answer within {}s", after.as_secs_f64())]
    Timeout { provider: String, after: Duration },
    /// The provider answered with something that is not its documented wire format.
    #[error("provider `{provider}` sent a response the gateway could not parse: {detail}")]
    BadResponse {
        provider: String,
        detail: &'static str,
    },
    /// The provider refused the request itself (4xx other than auth): passed to the client as
    /// the provider sent it.
    #[error("provider rejected the request with status {status}")]
    Rejected {
        status: StatusCode,
        body: Bytes,
        retry_after: Option<HeaderValue>,
    },
    /// The provider failed (5xx) or refused the gateway's own credentials (401/403).
    #[error("provider `{provider}` failed with status {status}: {message}")]
    Failed {
        provider: String,
        status: StatusCode,
        message: String,
        retry_after: Option<HeaderValue>,
    },
    /// The gateway holds no usable credential for this provider.
    #[error("provider `{provider}` is not configured with a credential on this proxy: {detail}")]
    Credentials { provider: String, detail: String },
    /// The stream broke after it had started.
    #[error("provider `{provider}` stream ended before completion")]
    Interrupted { provider: String },
}

impl UpstreamError {
    /// HTTP status the client receives.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Rejected { status, .. } => *status,
            Self::Unreachable { .. }
            | Self::BadResponse { .. }
            | Self::Failed { .. }
            | Self::Credentials { .. }
            | Self::Interrupted { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// OpenAI-style machine-readable `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "upstream_unreachable",
            Self::Timeout { .. } => "upstream_timeout",
            Self::BadResponse { .. } => "bad_upstream_response",
            Self::Rejected { .. } => "upstream_rejected",
            Self::Failed { .. } => "upstream_error",
            Self::Credentials { .. } => "upstream_credentials",
            Self::Interrupted { .. } => "upstream_stream_interrupted",
        }
    }

    /// Low-cardinality label for metrics.
    pub fn kind(&self) -> &'static str {
        self.code()
    }

    /// The one classifier of failures: which [`Trigger`] this failure is, if any. `None` is
    /// the client's own mistake, or an answer that may have been paid for (so it is not sent
    /// again). The attempt loop moves a request on only for a trigger its route's policy
    /// lists, and counts against the deployment's breaker every trigger but the two that are
    /// about the request (context window, content policy). A credential the gateway holds
    /// that the provider refuses is a `ServerError`: another deployment may hold a good one.
    pub fn trigger(&self) -> Option<Trigger> {
        match self {
            Self::Unreachable { .. } | Self::Interrupted { .. } => Some(Trigger::ConnectionError),
            Self::Timeout { .. } => Some(Trigger::Timeout),
            Self::Failed { status, .. } | Self::Rejected { status, .. }
                if *status == StatusCode::TOO_MANY_REQUESTS =>
            {
                Some(Trigger::RateLimited)
            }
            Self::Failed { .. } | Self::Credentials { .. } => Some(Trigger::ServerError),
            Self::Rejected { body, .. } => refusal_kind(body),
            Self::BadResponse { .. } => None,
        }
    }

    /// How long the provider asked to wait (`Retry-After`, the delta form), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        let value = match self {
            Self::Failed { retry_after, .. } | Self::Rejected { retry_after, .. } => {
                retry_after.as_ref()?
            }
            _ => return None,
        };
        let secs: f64 = value.to_str().ok()?.trim().parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
    }

    /// The same error, a rejection's body re-worded by `reword` (a provider's error object
    /// as an OpenAI one); `None` keeps the body as the provider sent it. Other errors pass
    /// unchanged.
    pub fn reword_rejection(self, reword: impl FnOnce(StatusCode, &[u8]) -> Option<Bytes>) -> Self {
        match self {
            Self::Rejected {
                status,
                body,
                retry_after,
            } => Self::Rejected {
                body: reword(status, &body).unwrap_or(body),
                status,
                retry_after,
            },
            other => other,
        }
    }

    /// A rejection with `status` and `body`, as a provider's 4xx arrives from `check_status`.
    #[cfg(test)]
    pub(crate) fn rejection(status: u16, body: &'static str) -> Self {
        Self::Rejected {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            body: Bytes::from_static(body.as_bytes()),
            retry_after: None,
        }
    }
}

/// A provider's 4xx that is about the model, not the request's form: the prompt is too long
/// for it, or it refused the content. Recognised by the providers' documented error codes and
/// messages (OpenAI `context_length_exceeded` / `content_policy_violation` /
/// `content_filter`, Anthropic "prompt is too long", Gemini "exceeds the maximum number of
/// tokens" / `content_filter` from a blocked prompt).
fn refusal_kind(body: &[u8]) -> Option<Trigger> {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    const WINDOW: [&str; 4] = [
        "context_length_exceeded",
        "maximum context length",
        "prompt is too long",
        "exceeds the maximum number of tokens",
    ];
    const POLICY: [&str; 3] = [
        "content_policy_violation",
        "content_filter",
        "content policy",
    ];
    if WINDOW.iter().any(|m| text.contains(m)) {
        Some(Trigger::ContextWindow)
    } else if POLICY.iter().any(|m| text.contains(m)) {
        Some(Trigger::ContentPolicy)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn failures_map_to_triggers_and_client_mistakes_to_none() {
        let p = || "p".to_owned();
        assert_eq!(
            UpstreamError::trigger(&UpstreamError::Unreachable { provider: p() }),
            Some(Trigger::ConnectionError)
        );
        assert_eq!(
            UpstreamError::trigger(&UpstreamError::Timeout {
                provider: p(),
                after: Duration::from_secs(1)
            }),
            Some(Trigger::Timeout)
        );
        assert_eq!(
            UpstreamError::trigger(&UpstreamError::Failed {
                provider: p(),
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: String::new(),
                retry_after: Some(HeaderValue::from_static("2")),
            }),
            Some(Trigger::ServerError)
        );
        let rejections = [
            (429, "{}", Some(Trigger::RateLimited)),
            (
                400,
                r#"{"error":{"code":"context_length_exceeded"}}"#,
                Some(Trigger::ContextWindow),
            ),
            (
                400,
                r#"{"type":"error","error":{"message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
                Some(Trigger::ContextWindow),
            ),
            (
                400,
                r#"{"error":{"code":"content_filter"}}"#,
                Some(Trigger::ContentPolicy),
            ),
            (400, r#"{"error":{"code":"bad"}}"#, None),
        ];
        for (status, body, trigger) in rejections {
            let e = UpstreamError::rejection(status, body);
            assert_eq!(e.trigger(), trigger, "{status} {body}");
        }
        assert_eq!(
            UpstreamError::trigger(&UpstreamError::BadResponse {
                provider: p(),
                detail: "x"
            }),
            None
        );
        let e = UpstreamError::Failed {
            provider: p(),
            status: StatusCode::TOO_MANY_REQUESTS,
            message: String::new(),
            retry_after: Some(HeaderValue::from_static("1.5")),
        };
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn a_refused_credential_moves_the_request_on() {
        let e = UpstreamError::Credentials {
            provider: "p".into(),
            detail: "no key".into(),
        };
        assert_eq!(e.trigger(), Some(Trigger::ServerError));
    }
}
