//! One cached answer, in the dialect-neutral internal form: an OpenAI chat completion.
//!
//! Stored as JSON (the same bytes in the process's LRU and in the NATS bucket), with its own
//! expiry (the bucket's `max_age` is the longest TTL any policy may set), the team it answers
//! (checked again on read, besides being part of the key) and what the provider reported, so
//! a hit can be metered with the cost it saved.

use proto::TokenUsage;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A stored answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    /// Unix milliseconds after which the entry no longer answers.
    pub expires_ms: i64,
    /// The team it answers; `None` with `shared`: every team.
    pub team: Option<String>,
    pub shared: bool,
    /// The deployment (`provider/model`) and upstream model that made it.
    pub deployment: String,
    pub model: String,
    /// The provider's usage report for it.
    pub usage: TokenUsage,
    /// The whole answer as an internal (OpenAI chat) completion.
    pub completion: Box<RawValue>,
}

impl Entry {
    /// Whether the entry may answer `team` at `now_ms`.
    pub fn answers(&self, team: Option<&str>, now_ms: i64) -> bool {
        now_ms < self.expires_ms && (self.shared || self.team.as_deref() == team)
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}
