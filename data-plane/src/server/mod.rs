//! HTTP listeners: the client-facing API (one module per inbound dialect) and the ops listener.

mod anthropic;
mod models;
mod openai;
mod ops;
mod relay;
mod respond;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::task::TaskTracker;

use crate::admission::Admission;
use crate::error::ApiError;
use crate::snapshot::SnapshotStore;
use crate::usage::UsageSink;

/// State shared by all handlers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct App {
    inner: Arc<Shared>,
}

/// Everything the handlers share, built once at start.
#[derive(Debug)]
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
    /// This proxy's id in usage events.
    pub proxy_id: Arc<str>,
}

type Shared = Parts;

impl App {
    pub fn new(parts: Parts) -> Self {
        Self {
            inner: Arc::new(parts),
        }
    }
}

/// The client-facing API.
pub fn api_router(app: App) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*model}", get(models::retrieve))
        .fallback(unknown_path)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

/// Health, readiness and metrics, on their own listener.
pub fn ops_router(snapshots: Arc<SnapshotStore>, metrics: PrometheusHandle) -> Router {
    ops::router(snapshots, metrics)
}

async fn unknown_path(request: Request) -> ApiError {
    ApiError::UnknownPath {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    }
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    }
}
