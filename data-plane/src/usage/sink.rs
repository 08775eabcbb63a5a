//! What handlers hand events to: the [`Channel`] each kind of event travels on (its JetStream
//! stream, subjects and metrics), the [`Item`]s a channel carries, and the never-blocking
//! [`Sink`] (a bounded queue to the publisher, the spool when it is full).

use std::sync::Arc;

use bytes::Bytes;
use proto::{RequestPayload, UsageEvent};
use serde::Serialize;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::spool::Spool;
use crate::metrics::{self, Published};

/// A JetStream stream the proxy publishes to with acknowledgement, spooling what NATS does
/// not take.
#[derive(Debug)]
pub struct Channel {
    pub stream: &'static str,
    pub subjects: &'static str,
    pub description: &'static str,
    /// The subject of an item of `team`.
    pub subject: fn(Option<&str>) -> String,
    /// What one item is called in log lines.
    pub item: &'static str,
    pub metrics: &'static Published,
}

/// Usage events: one per request, folded into the ledgers.
pub static USAGE: Channel = Channel {
    stream: proto::USAGE_STREAM,
    subjects: proto::USAGE_SUBJECTS,
    description: "Switchyard: usage events from the data planes",
    subject: proto::usage_subject,
    item: "usage event",
    metrics: &metrics::USAGE_STREAM,
};

/// Request-log payloads: the bodies of `full` requests.
pub static REQUESTS: Channel = Channel {
    stream: proto::REQUESTS_STREAM,
    subjects: proto::REQUESTS_SUBJECTS,
    description: "Switchyard: request and response bodies for the request log",
    subject: proto::requests_subject,
    item: "request-log entry",
    metrics: &metrics::REQUEST_LOG_STREAM,
};

/// What a channel carries: JSON with an id (the `Nats-Msg-Id`) and a team (the subject).
pub trait Item: Serialize + Send + Sync + 'static {
    fn id(&self) -> &str;
    fn team(&self) -> Option<&str>;
}

impl Item for UsageEvent {
    fn id(&self) -> &str {
        &self.id
    }
    fn team(&self) -> Option<&str> {
        self.team.as_deref()
    }
}

impl Item for RequestPayload {
    fn id(&self) -> &str {
        &self.id
    }
    fn team(&self) -> Option<&str> {
        self.team.as_deref()
    }
}

/// The handlers' side: cheap to clone, never blocks.
#[derive(Debug)]
pub struct Sink<T> {
    pub(super) tx: mpsc::Sender<T>,
    pub(super) spool: Arc<Spool>,
}

impl<T> Clone for Sink<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            spool: Arc::clone(&self.spool),
        }
    }
}

/// Where handlers emit usage events.
pub type UsageSink = Sink<UsageEvent>;
/// Where handlers emit request-log payloads.
pub type LogSink = Sink<RequestPayload>;

impl<T: Item> Sink<T> {
    /// A sink whose events arrive on the returned receiver, for tests of what a request emits.
    #[cfg(test)]
    pub fn channel(spool: Spool) -> (Self, mpsc::Receiver<T>) {
        let (tx, rx) = mpsc::channel(64);
        let sink = Self {
            tx,
            spool: Arc::new(spool),
        };
        (sink, rx)
    }

    /// Hands an event to the publisher; if its queue is full, writes it to the spool.
    pub fn emit(&self, event: T) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event) | TrySendError::Closed(event)) => {
                self.spool.metrics().queue_full();
                if let Some(json) = encoded(&self.spool, &event) {
                    self.spool.append(&json);
                }
            }
        }
    }
}

/// Largest item published: NATS refuses messages over its `max_payload` (1 MiB by default),
/// and one refused message would block its spool segment's replay for good.
pub const MAX_ITEM_BYTES: usize = 1_000_000;

/// The item's JSON; one that cannot be encoded, or is too large for NATS, is counted as
/// dropped and logged.
pub(super) fn encoded<T: Item>(spool: &Spool, event: &T) -> Option<Bytes> {
    match serde_json::to_vec(event) {
        Ok(json) if json.len() > MAX_ITEM_BYTES => {
            spool.metrics().spool_dropped("too_large");
            tracing::error!(id = %event.id(), bytes = json.len(), "event LOST: larger than a NATS message may be");
            None
        }
        Ok(json) => Some(Bytes::from(json)),
        Err(e) => {
            spool.metrics().spool_dropped("encode");
            tracing::error!(id = %event.id(), error = %e, "event LOST: it cannot be encoded");
            None
        }
    }
}
