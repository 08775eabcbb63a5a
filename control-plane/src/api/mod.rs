//! The admin REST API: thin axum handlers over the store, one module per resource.
//!
//! Every mutation is a command on one event stream; responses carry the stream version as
//! `ETag`, and `If-Match` on an update makes a concurrent change a 409 instead of a lost update.
//! Lists are paginated with `?limit=&after=` and return `{"data": [...], "next": cursor|null}`.

pub mod audit;
pub mod auth;
pub mod budget_usage;
pub mod budgets;
pub mod cache_policies;
pub mod common;
pub mod config;
pub mod crud;
pub mod error;
pub mod extract;
pub mod guardrails;
pub mod health;
pub mod keys;
pub mod openapi;
pub mod pricing;
pub mod providers;
pub mod requests;
pub mod routes;
pub mod secrets;
pub mod spend;
pub mod teams;
pub mod tokens;
pub mod usage;

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{HeaderValue, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::seal::SealKey;
use crate::store::Store;
pub use auth::Principal;
pub use error::ApiError;

/// Shared state of the admin API.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    /// SHA-256 of the bootstrap token.
    bootstrap: [u8; 32],
    seal: Option<SealKey>,
    metrics: Option<PrometheusHandle>,
}

impl AppState {
    pub fn new(
        store: Store,
        bootstrap_token: &str,
        seal: Option<SealKey>,
        metrics: Option<PrometheusHandle>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                bootstrap: Sha256::digest(bootstrap_token.as_bytes()).into(),
                seal,
                metrics,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn seal(&self) -> Option<&SealKey> {
        self.inner.seal.as_ref()
    }
}

/// The whole admin API plus health, readiness, metrics, the OpenAPI document and the web
/// console (`crate::console`, which reads this API from the browser); the admin API's
/// requests are traced with `tracer` (`crate::spans::admin`).
pub fn router(state: AppState, tracer: telemetry::Tracer) -> Router {
    #[rustfmt::skip]
    let resources = [
        teams::routes(), keys::routes(), tokens::routes(), providers::routes(), routes::routes(),
        budgets::routes(), budget_usage::routes(), pricing::routes(), audit::routes(), spend::routes(), usage::routes(), requests::routes(),
        guardrails::routes(),
        health::routes(), config::routes(), cache_policies::routes(),
    ];
    resources
        .into_iter()
        .fold(Router::new(), Router::merge)
        .route("/openapi.json", get(openapi::serve))
        // Declarative configs with many keys are large; JsonBody and the config endpoint
        // enforce their own limits.
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
        .fallback(|| async { ApiError::NotFound("route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::BadRequest("method not allowed for this path".into())
        })
        // Everything above is traced; the probes, the scrape and the console's static files
        // below are not.
        .layer(axum::middleware::from_fn_with_state(
            admin_spans(tracer),
            crate::spans::admin,
        ))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .merge(crate::console::routes())
        .with_state(state)
}

/// The admin API's spans, named after the OpenAPI document's route templates.
fn admin_spans(tracer: telemetry::Tracer) -> crate::spans::AdminSpans {
    use utoipa::OpenApi as _;
    if tracer.get().is_none() {
        return crate::spans::AdminSpans::default();
    }
    let doc = openapi::ApiDoc::openapi();
    crate::spans::AdminSpans::new(tracer, doc.paths.paths.keys().map(String::as_str))
}

async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    match state.store().head().await {
        Ok(position) => Json(serde_json::json!({
            "ready": true,
            "position": position,
            "roles": crate::roles::held(),
        }))
        .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false})),
        )
            .into_response(),
    }
}

async fn metrics_text(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let text = state
        .inner
        .metrics
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

/// One page of a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    /// Pass as `after` to get the next page; `null` on the last page.
    pub next: Option<String>,
}

impl<T> List<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only says there is more.
    pub fn page(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Self {
        let more = rows.len() as i64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let next = if more { rows.last().map(cursor) } else { None };
        Self { data: rows, next }
    }
}

/// A JSON response with the stream version as `ETag`.
pub fn with_etag<T: Serialize>(status: StatusCode, version: i32, body: &T) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(http::header::ETAG, v);
    }
    response
}
