//! The pure core of the control plane: `decide(state, command) -> events` and
//! `evolve(state, event) -> state` per aggregate, with no I/O.
//!
//! Every admin change is a command on one stream (one team, one key, one provider...). The
//! store loads the stream's events, folds them with `evolve`, asks `decide` for new events,
//! appends them with the expected version and projects the new state in the same transaction.
//! A command that changes nothing decides no events, so applying the same change twice records
//! nothing (declarative config relies on this).

pub mod budget;
pub mod cache_policy;
pub mod guardrail;
pub mod key;
pub mod log_payloads;
pub mod pricing;
pub mod provider;
pub mod resource;
pub mod route;
pub mod team;
pub mod token;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The merge of a partial update: each named field of `$target` whose new value is `Some` takes
/// it; `None` keeps the current value. `assign_present!(spec, patch; a, b)` reads `patch.a`;
/// `assign_present!(spec; a = expr)` reads `expr`.
macro_rules! assign_present {
    ($target:expr, $patch:expr; $($field:ident),+ $(,)?) => {
        $( if let Some(v) = $patch.$field { $target.$field = v; } )+
    };
    ($target:expr; $($field:ident = $value:expr),+ $(,)?) => {
        $( if let Some(v) = $value { $target.$field = v; } )+
    };
}
pub(crate) use assign_present;

/// The other half of a patch's merge: each named field of `$patch` whose new value equals the
/// current one in `$current` becomes `None`, so that only real changes are recorded.
macro_rules! drop_unchanged {
    ($patch:expr, $current:expr; $($field:ident),+ $(,)?) => {
        $( if $patch.$field.as_ref() == Some(&$current.$field) { $patch.$field = None; } )+
    };
}
pub(crate) use drop_unchanged;

/// Facts a decision may depend on besides state and command (kept explicit so `decide` stays
/// pure and testable).
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub now: DateTime<Utc>,
}

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON path of the field, e.g. `deployments[0].weight`.
    pub path: String,
    /// Why it was refused.
    pub reason: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Why a command was refused: a business rule, not a storage failure.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("validation failed")]
    Invalid(Vec<FieldError>),
}

impl DomainError {
    pub fn invalid(path: &str, reason: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(path, reason)])
    }

    /// `NotFound(what)` unless the stream holds a live resource: a command that changes or
    /// ends a resource needs one.
    pub fn unless_live(live: bool, what: &'static str) -> Result<(), Self> {
        if live {
            Ok(())
        } else {
            Err(Self::NotFound(what))
        }
    }
}

/// Collects validation problems and turns them into one error.
#[derive(Debug, Default)]
pub struct Check(Vec<FieldError>);

impl Check {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail(&mut self, path: &str, reason: impl Into<String>) {
        self.0.push(FieldError::new(path, reason));
    }

    /// A name: 1-128 characters, no control characters.
    pub fn name(&mut self, path: &str, value: &str) {
        if value.trim().is_empty()
            || value.chars().count() > 128
            || value.chars().any(char::is_control)
        {
            self.fail(path, "must be 1-128 characters without control characters");
        }
    }

    /// An identifier usable in URLs and headers: letters, digits, `-`, `_`, `.`.
    pub fn ident(&mut self, path: &str, value: &str) {
        if value.is_empty()
            || value.len() > 128
            || !value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            self.fail(
                path,
                "must be 1-128 characters of letters, digits, `-`, `_` or `.`",
            );
        }
    }

    /// An upstream model name (a price's key): 1-256 characters, no whitespace or control
    /// characters.
    pub fn model(&mut self, path: &str, value: &str) {
        if value.is_empty()
            || value.len() > 256
            || value.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            self.fail(path, "must be 1-256 characters without whitespace");
        }
    }

    /// Adds failures found elsewhere (a spec's own validation), after those found so far.
    pub fn extend(&mut self, errors: impl IntoIterator<Item = FieldError>) {
        self.0.extend(errors);
    }

    pub fn done(self) -> Result<(), DomainError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Invalid(self.0))
        }
    }
}

/// A stream's state type and how commands and events act on it.
pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// Stream id prefix, e.g. `team`.
    const KIND: &'static str;
    type Command: Send;
    type Event: Serialize + DeserializeOwned + EventName + Send + Sync;

    /// Pure decision: the events this command produces on this state.
    fn decide(&self, command: Self::Command, ctx: &Ctx) -> Result<Vec<Self::Event>, DomainError>;

    /// Pure state transition; `at` is when the event was recorded.
    fn evolve(&mut self, event: &Self::Event, at: DateTime<Utc>);

    /// Whether the stream currently holds a live resource.
    fn exists(&self) -> bool;
}

/// The stored `event_type` of an event (its serde tag).
pub trait EventName {
    fn name(&self) -> &'static str;
}

/// Folds a list of events into a state.
pub fn fold<A: Aggregate>(events: &[(A::Event, DateTime<Utc>)]) -> A {
    let mut state = A::default();
    for (e, at) in events {
        state.evolve(e, *at);
    }
    state
}
