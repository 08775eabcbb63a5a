//! The request log: what a team or key asks to be kept of its requests, and the payload
//! entries proxies publish for `full` requests.
//!
//! Every request's metadata is its usage event (`usage_events`); a `full` request's bodies
//! travel apart, on their own JetStream stream, so usage metering stays small. An entry's id
//! is the request's usage event id (the `Nats-Msg-Id` too): a replayed entry is dropped by the
//! stream's duplicate window and, past it, by the table's key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// JetStream stream holding request payloads.
pub const REQUESTS_STREAM: &str = "SWITCHYARD_REQUESTS";
/// Subjects of [`REQUESTS_STREAM`]: `switchyard.requests.<team id or "none">`.
pub const REQUESTS_SUBJECTS: &str = "switchyard.requests.>";
/// Durable pull consumer shared by the control-plane replicas that store payloads.
pub const REQUESTS_FOLD_CONSUMER: &str = "switchyard-request-log";

/// The subject a payload entry is published on.
pub fn requests_subject(team: Option<&str>) -> String {
    format!("switchyard.requests.{}", team.unwrap_or("none"))
}

/// How much of a request the request log keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogPayloads {
    /// Not listed in the request log (still metered: the ledgers and `/admin/usage` count it).
    Off,
    /// Listed with its metadata (caller, model, tokens, latency, cost, status), no bodies.
    #[default]
    Metadata,
    /// Listed with the request and response bodies (each up to the proxy's size cap).
    Full,
}

impl LogPayloads {
    /// The snake_case name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Metadata => "metadata",
            Self::Full => "full",
        }
    }

    /// The policy a request follows: its key's, else its team's, else `metadata`.
    pub fn effective(key: Option<Self>, team: Option<Self>) -> Self {
        key.or(team).unwrap_or_default()
    }

    pub fn is_metadata(&self) -> bool {
        *self == Self::Metadata
    }
}

/// One body as the request log keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedBody {
    /// The bytes kept: UTF-8 text as it is, anything else base64 (see `base64`).
    pub body: String,
    /// `body` is base64 (the bytes were not UTF-8).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub base64: bool,
    /// The body's whole length in bytes.
    pub bytes: u64,
    /// Only the first bytes (the proxy's cap) were kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// The bodies of one `full` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPayload {
    /// The request's usage event id (UUIDv7).
    pub id: String,
    /// When the request arrived (Unix milliseconds, UTC): the day its entry is stored under.
    pub time_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The request's headers, without any that can carry a credential.
    #[serde(default)]
    pub request_headers: BTreeMap<String, String>,
    /// The body as the client sent it.
    pub request: LoggedBody,
    /// The HTTP status the client got.
    pub status: u16,
    /// What the client received: the whole body, or a stream's bytes in order (its events as
    /// sent). `None` when the gateway answered with its own error before any upstream bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<LoggedBody>,
    #[serde(default)]
    pub streamed: bool,
}

/// Whether a request header may be kept: never one that can carry a credential or a session
/// (`authorization`, `x-api-key`, cookies, anything naming a key, token, secret, password,
/// signature, credential or session).
pub fn loggable_header(name: &str) -> bool {
    const DENIED: [&str; 10] = [
        "auth",
        "key",
        "token",
        "secret",
        "password",
        "signature",
        "credential",
        "cookie",
        "session",
        "security",
    ];
    let name = name.to_ascii_lowercase();
    !DENIED.iter().any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_policy_wins_over_team_and_metadata_is_the_default() {
        use LogPayloads::*;
        assert_eq!(LogPayloads::effective(None, None), Metadata);
        assert_eq!(LogPayloads::effective(None, Some(Full)), Full);
        assert_eq!(LogPayloads::effective(Some(Off), Some(Full)), Off);
        assert_eq!(serde_json::to_string(&Full).unwrap_or_default(), "\"full\"");
    }

    #[test]
    fn credential_headers_are_never_loggable() {
        for name in [
            "Authorization",
            "x-api-key",
            "api-key",
            "x-goog-api-key",
            "Proxy-Authorization",
            "cookie",
            "x-amz-security-token",
            "x-session-id",
            "anthropic-auth-token",
        ] {
            assert!(!loggable_header(name), "{name}");
        }
        for name in [
            "content-type",
            "user-agent",
            "anthropic-version",
            "x-switchyard-tags",
        ] {
            assert!(loggable_header(name), "{name}");
        }
    }
}
