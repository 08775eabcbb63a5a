//! The ops listener: liveness, readiness (a snapshot is loaded) and Prometheus metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{header, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::snapshot::SnapshotStore;

#[derive(Clone)]
struct Ops {
    snapshots: Arc<SnapshotStore>,
    metrics: PrometheusHandle,
}

pub fn router(snapshots: Arc<SnapshotStore>, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Ops { snapshots, metrics })
}

async fn readyz(State(ops): State<Ops>) -> Response {
    match ops.snapshots.get() {
        Some(s) => {
            Json(serde_json::json!({"ready": true, "snapshot_version": s.version})).into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "reason": "no snapshot loaded"})),
        )
            .into_response(),
    }
}

async fn metrics_text(State(ops): State<Ops>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ops.metrics.render(),
    )
        .into_response()
}
