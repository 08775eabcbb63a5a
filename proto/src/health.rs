//! Deployment health as proxies see it: each proxy announces its circuit breaker's transitions
//! for a deployment, every other proxy opens its own breaker for that deployment on an `open`,
//! and the control plane keeps the latest state per deployment and proxy (`GET /admin/health`).

use serde::{Deserialize, Serialize};

/// Proxies publish on `switchyard.health.<proxy>`.
pub const HEALTH_SUBJECT_PREFIX: &str = "switchyard.health";
/// Everything proxies announce.
pub const HEALTH_SUBJECTS: &str = "switchyard.health.>";
/// Request/reply: a starting proxy asks the control plane which deployments some proxy
/// recently saw open; the reply is a JSON array of [`HealthEvent`]s.
pub const HEALTH_QUERY_SUBJECT: &str = "switchyard.health-query";
/// Queue group of the control-plane replicas answering [`HEALTH_QUERY_SUBJECT`].
pub const HEALTH_QUERY_QUEUE: &str = "switchyard-health";

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    HalfOpen,
    Open,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

/// One proxy's breaker for one deployment changed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthEvent {
    /// The proxy that saw it.
    pub proxy: String,
    /// Deployment id (`provider/model`).
    pub deployment: String,
    pub state: BreakerState,
    /// When (Unix milliseconds).
    pub time_ms: i64,
    /// The kind of the failure that opened it (`upstream_timeout`, `upstream_error`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The subject a proxy announces on: its id with characters NATS gives meaning to replaced.
pub fn health_subject(proxy: &str) -> String {
    let token: String = proxy
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{HEALTH_SUBJECT_PREFIX}.{token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_shape() {
        assert_eq!(health_subject("a.b*c>d e"), "switchyard.health.a_b_c_d_e");
        let e = HealthEvent {
            proxy: "p1".into(),
            deployment: "mock/m".into(),
            state: BreakerState::Open,
            time_ms: 5,
            error: Some("upstream_error".into()),
        };
        let text = serde_json::to_string(&e).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"proxy":"p1","deployment":"mock/m","state":"open","time_ms":5,"error":"upstream_error"}"#
        );
    }
}
