//! HTTP listeners: the client-facing API and the ops listener. This module only wires paths to
//! the pipeline (`crate::pipeline`), one handler per operation and inbound dialect; the
//! request flow itself lives there.

mod models;
mod ops;
pub mod workers;

use std::sync::Arc;

use axum::extract::Request;
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::dialect::anthropic::Messages;
use crate::dialect::openai::Chat;
use crate::error::ApiError;
use crate::pipeline;
use crate::snapshot::SnapshotStore;
pub use crate::state::{App, Parts};

/// The client-facing API.
pub fn api_router(app: App) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(pipeline::chat::<Chat>))
        .route("/v1/responses", post(pipeline::responses::create))
        .route("/v1/responses/compact", post(pipeline::responses::compact))
        .route(
            "/v1/responses/input_tokens",
            post(pipeline::responses::input_tokens),
        )
        .route(
            "/v1/responses/{id}",
            get(pipeline::responses::retrieve).delete(pipeline::responses::delete),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(pipeline::responses::input_items),
        )
        .route("/v1/embeddings", post(pipeline::embeddings))
        .route("/v1/messages", post(pipeline::chat::<Messages>))
        .route("/v1/messages/count_tokens", post(pipeline::count_tokens))
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
