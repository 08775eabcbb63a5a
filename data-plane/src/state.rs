//! What every request handler shares, built once when the proxy starts.
//!
//! [`App`] is the axum state: a cheap handle (one `Arc`) over [`Parts`]. Each request loads
//! the current snapshot from it exactly once and uses that one view to its end.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use crate::admission::Admission;
use crate::routing::Health;
use crate::snapshot::SnapshotStore;
use crate::usage::{LogSink, UsageSink};

/// State shared by all handlers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct App {
    inner: Arc<Parts>,
}

/// Everything the handlers share, built once at start (each request worker holds a copy with
/// its own upstream client: see `server::workers`).
#[derive(Clone, Debug)]
pub struct Parts {
    pub snapshots: Arc<SnapshotStore>,
    pub http: reqwest::Client,
    pub max_body: usize,
    pub default_timeout: Duration,
    /// Owns stream relays so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Budgets and rate limits.
    pub admission: Arc<Admission>,
    /// Where each request's usage event goes.
    pub usage: UsageSink,
    /// Where the bodies of `full` request-log entries go, and each body's cap in bytes.
    pub request_log: LogSink,
    pub log_payload_max_bytes: usize,
    /// This proxy's id in usage events.
    pub proxy_id: Arc<str>,
    /// What this proxy knows of every deployment's health (breakers, latency), kept across
    /// snapshots.
    pub health: Arc<Health>,
    /// Stored Responses API responses (NATS key-value, or memory without NATS).
    pub stored: Arc<crate::stored::StoredResponses>,
    /// The response cache (NATS key-value behind a bounded memory, or the memory alone).
    pub cache: Arc<crate::cache::Cache>,
    /// The semantic cache's embedder and index, when an embedding model is configured.
    pub semantic: Arc<crate::cache::semantic::Semantic>,
    /// OpenTelemetry traces (`None` inside when off: see `crate::spans`).
    pub tracer: telemetry::Tracer,
}

impl App {
    pub fn new(parts: Parts) -> Self {
        Self {
            inner: Arc::new(parts),
        }
    }

    /// The shared parts.
    pub fn parts(&self) -> &Parts {
        &self.inner
    }
}
