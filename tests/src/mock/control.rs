//! The `/__mock/*` control endpoints: scripts, recorded requests and health.
//!
//! These never need the API key and are never recorded.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;

use super::error::{error_response, invalid_request};
use super::openai::json_response;
use super::script::Script;
use super::Shared;

/// `POST /__mock/script`: enqueue one [`Script`]; answers `{"queued": <scripts pending>}`.
pub(crate) async fn push_script(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let script: Script = match serde_json::from_slice(&body) {
        Ok(script) => script,
        Err(e) => return invalid_request(&format!("invalid script: {e}")),
    };
    match shared.scripts.push(script) {
        Ok(queued) => json_response(StatusCode::OK, json!({ "queued": queued }).to_string()),
        Err(message) => invalid_request(&format!("invalid script: {message}")),
    }
}

/// `GET /__mock/script`: the pending scripts, `times` being the uses left.
pub(crate) async fn list_scripts(State(shared): State<Arc<Shared>>) -> Response {
    match serde_json::to_vec(&shared.scripts.pending()) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(_) => internal(),
    }
}

/// `DELETE /__mock/script`: drop all pending scripts; answers `{"cleared": n}`.
pub(crate) async fn clear_scripts(State(shared): State<Arc<Shared>>) -> Response {
    let cleared = shared.scripts.clear();
    json_response(StatusCode::OK, json!({ "cleared": cleared }).to_string())
}

/// `GET /__mock/requests`: the recorded requests, oldest first.
pub(crate) async fn list_requests(State(shared): State<Arc<Shared>>) -> Response {
    match shared.records.to_json() {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(_) => internal(),
    }
}

/// `DELETE /__mock/requests`: forget the recorded requests; answers `{"cleared": n}`.
pub(crate) async fn clear_requests(State(shared): State<Arc<Shared>>) -> Response {
    let cleared = shared.records.clear();
    json_response(StatusCode::OK, json!({ "cleared": cleared }).to_string())
}

/// `GET /__mock/healthz`.
pub(crate) async fn healthz() -> Response {
    json_response(StatusCode::OK, r#"{"status":"ok"}"#)
}

fn internal() -> Response {
    let message = "The mock provider failed to serialize its state.";
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        message,
        "server_error",
        None,
    )
}
