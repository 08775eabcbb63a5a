//! Admission: budgets (by lease), per-request cost caps and rate limits, checked before a
//! request reaches a provider.
//!
//! CONTRACT (stub; the implementation fills this in without changing these signatures):
//! - `Admission::new(nats, proxy_id)` is built once at start-up and kept in `App`.
//! - A handler calls `admit(&AdmitRequest)` after it has resolved the route and deployment;
//!   `Err(Refused)` becomes the client's error (and a refused usage event); `Ok(Admitted)`
//!   travels with the request to its end.
//! - At the end the handler (or the stream relay) calls `Admitted::settle(cost, tokens)` with
//!   the real cost and total tokens. Dropping an `Admitted` without settling returns the whole
//!   reservation (nothing was spent, e.g. the upstream refused before generating).
//! - `Admitted::headers()` are added to the response (the `x-ratelimit-*` set).

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};
use rust_decimal::Decimal;

use crate::providers::Deployment;
use crate::snapshot::{CompiledSnapshot, KeyPolicy, Route};

/// Budgets and rate limits of this proxy, shared by all requests.
#[derive(Debug)]
pub struct Admission {
    proxy: String,
    nats: Option<async_nats::Client>,
}

/// What admission needs to know about one request.
#[derive(Debug)]
pub struct AdmitRequest<'a> {
    pub snapshot: &'a CompiledSnapshot,
    pub key: &'a KeyPolicy,
    pub route: &'a Route,
    pub deployment: &'a Deployment,
    /// Effective tags (caller's, with the key's forced tags on top).
    pub tags: &'a BTreeMap<String, String>,
    /// Estimated prompt tokens.
    pub prompt_tokens: u64,
    /// `max_tokens` / `max_completion_tokens` of the request, if set.
    pub max_output_tokens: Option<u64>,
    /// `x-switchyard-max-cost` header, if sent.
    pub cost_cap: Option<Decimal>,
}

/// A request admitted with its reservations.
#[derive(Debug)]
pub struct Admitted {
    /// Reserved cost (USD) at the deployment's price.
    pub reserved_cost: Decimal,
    /// Reserved tokens (prompt estimate + output reservation).
    pub reserved_tokens: u64,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Why a request was refused.
#[derive(Debug, Clone)]
pub struct Refused {
    pub status: StatusCode,
    /// `budget_exceeded`, `budget_unavailable`, `rate_limit_exceeded` or `request_cost_cap`.
    pub code: &'static str,
    /// The budget or limit that refused it, for the client and the usage event.
    pub limit: String,
    pub message: String,
    /// Sent as `Retry-After` (rate limits); `None` with `x-should-retry: false` (budgets).
    pub retry_after: Option<Duration>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Admission {
    pub fn new(nats: Option<async_nats::Client>, proxy: String) -> Self {
        Self { proxy, nats }
    }

    /// This proxy's id, as it appears in leases and usage events.
    pub fn proxy_id(&self) -> &str {
        &self.proxy
    }

    /// Admits the request or says why not.
    pub async fn admit(&self, request: &AdmitRequest<'_>) -> Result<Admitted, Refused> {
        let _ = &self.nats;
        Ok(Admitted {
            reserved_cost: Decimal::ZERO,
            reserved_tokens: request.prompt_tokens + request.max_output_tokens.unwrap_or(0),
            headers: Vec::new(),
        })
    }

    /// Gives every lease back to the control plane (clean shutdown).
    pub async fn release_all(&self) {}
}

impl Admitted {
    /// The `x-ratelimit-*` headers for the response.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// Settles the request's real cost and tokens against its reservations.
    pub fn settle(self, cost: Decimal, tokens: u64) {
        let _ = (cost, tokens);
    }
}
