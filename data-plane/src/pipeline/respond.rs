//! Response headers that say what happened to a request.
//!
//! `x-request-id` on every response; on served requests also the provider and deployment used
//! and the gateway's own share of the time (`x-switchyard-gateway-us`, plus `server-timing`
//! with the gateway and upstream durations in milliseconds).

use std::time::{Duration, Instant};

use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue};
use uuid::Uuid;

use crate::providers::Deployment;
use crate::spans::RequestSpan;
use telemetry::Tracer;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const PROVIDER: HeaderName = HeaderName::from_static("x-switchyard-provider");
pub const DEPLOYMENT: HeaderName = HeaderName::from_static("x-switchyard-deployment");
pub const GATEWAY_US: HeaderName = HeaderName::from_static("x-switchyard-gateway-us");
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// Adds `(name, value)` pairs (e.g. admission's `x-ratelimit-*` set), replacing same names.
pub fn add_headers(headers: &mut HeaderMap, pairs: &[(HeaderName, HeaderValue)]) {
    for (name, value) in pairs {
        headers.insert(name.clone(), value.clone());
    }
}

/// Timing and identity of one request, and its span.
#[derive(Debug, Clone)]
pub struct Trace {
    /// UUIDv7; also the id of the request's usage event.
    pub id: Uuid,
    pub started: Instant,
    /// The request's OpenTelemetry span (nothing inside when traces are off). Every clone
    /// shares it; it ends when the last is dropped (see `crate::spans`).
    pub span: RequestSpan,
}

impl Trace {
    /// A request that is not traced (one that makes no upstream call, e.g. `/v1/models`).
    pub fn start() -> Self {
        Self {
            id: Uuid::now_v7(),
            started: Instant::now(),
            span: RequestSpan::default(),
        }
    }

    /// A request to `endpoint`, traced if `tracer` is on (the caller's trace context from
    /// `headers`).
    pub fn traced(tracer: &Tracer, headers: &HeaderMap, endpoint: &'static str) -> Self {
        let started = Instant::now();
        let id = Uuid::now_v7();
        Self {
            id,
            started,
            span: RequestSpan::start(tracer, headers, endpoint, id),
        }
    }

    /// Adds the request id.
    pub fn tag(&self, response: &mut Response) {
        if let Ok(v) = HeaderValue::from_str(&self.id.to_string()) {
            response.headers_mut().insert(REQUEST_ID, v);
        }
    }

    /// Adds deployment and timing headers; `upstream` is the time spent waiting on the
    /// provider so far. Returns the gateway's own time.
    pub fn served(
        &self,
        headers: &mut HeaderMap,
        deployment: &Deployment,
        upstream: Duration,
    ) -> Duration {
        let total = self.started.elapsed();
        let gateway = total.saturating_sub(upstream);
        if let Ok(v) = HeaderValue::from_str(deployment.provider.id()) {
            headers.insert(PROVIDER, v);
        }
        if let Ok(v) = HeaderValue::from_str(&deployment.id) {
            headers.insert(DEPLOYMENT, v);
        }
        headers.insert(GATEWAY_US, HeaderValue::from(gateway.as_micros() as u64));
        let timing = format!(
            "gateway;dur={:.3}, upstream;dur={:.3}",
            gateway.as_secs_f64() * 1e3,
            upstream.as_secs_f64() * 1e3
        );
        if let Ok(v) = HeaderValue::from_str(&timing) {
            headers.insert(SERVER_TIMING, v);
        }
        gateway
    }
}
