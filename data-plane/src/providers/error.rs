//! Failures talking to an upstream provider, classified for the client, metrics and retries.
//!
//! Messages are written for the caller and never include internal detail (addresses, URLs
//! that may carry credentials, library error text); that detail is logged where it happens.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

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

    /// Whether another attempt (on this or another deployment) could succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } | Self::Interrupted { .. } => true,
            Self::Failed { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            Self::Rejected { status, .. } => *status == StatusCode::TOO_MANY_REQUESTS,
            Self::BadResponse { .. } | Self::Credentials { .. } => false,
        }
    }
}
