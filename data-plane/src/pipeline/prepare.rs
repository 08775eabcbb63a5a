//! Stages 1–4 of every request, ending in one [`Prepared`] value: who is calling, what they
//! asked for, the route, the effective tags, the caller's cost cap and the prompt estimate.
//! Chat, Messages, embeddings and count_tokens build it the same way; nothing after it
//! re-reads the headers or the snapshot.

use std::str::FromStr as _;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use rust_decimal::Decimal;

use super::respond::Trace;
use super::route::{Requested, Resolved};
use super::{auth, body};
use crate::error::ApiError;
use crate::metrics::RequestLabels;
use crate::providers::{Deployment, JsonBody};
use crate::routing::attempts::Attempts;
use crate::routing::Health;
use crate::snapshot::{CompiledSnapshot, KeyPolicy};
use crate::state::App;
use crate::usage::payload::LoggedRequest;
use crate::usage::{estimate, tags, Tags};

/// Header with the most (USD, decimal) the caller allows this request to cost.
pub const MAX_COST: HeaderName = HeaderName::from_static("x-switchyard-max-cost");

/// A request as it arrived.
#[derive(Debug)]
pub struct Arrived<'a> {
    pub headers: &'a HeaderMap,
    pub body: Body,
    /// Its id and arrival time.
    pub trace: &'a Trace,
}

/// Stages 1 and 2 up to the dialect: the snapshot view, the caller's key, the raw body.
#[derive(Debug)]
pub struct Inbound {
    pub snapshot: Arc<CompiledSnapshot>,
    pub key: Arc<KeyPolicy>,
    /// The body as the client sent it (kept, as a reference count, for a deployment that
    /// speaks the client's wire).
    pub bytes: Bytes,
}

impl Inbound {
    /// Loads the snapshot once, authenticates, and reads the body within the size limit.
    pub async fn read(app: &App, arrived: Arrived<'_>) -> Result<Self, ApiError> {
        let parts = app.parts();
        let headers = arrived.headers;
        let snapshot = parts.snapshots.get().ok_or(ApiError::NotReady)?;
        let key = auth::authenticate(&snapshot, headers)?;
        let bytes = body::read(arrived.body, headers, parts.max_body).await?;
        Ok(Self {
            snapshot,
            key,
            bytes,
        })
    }
}

/// What the operation asks for, as its dialect read it.
#[derive(Debug)]
pub struct Ask {
    /// Metric and usage-event label of the endpoint.
    pub endpoint: &'static str,
    /// The model (alias) the body names.
    pub model: String,
    pub streamed: bool,
    /// Output tokens admission reserves (`None`: the route's default).
    pub max_output_tokens: Option<u64>,
}

/// Everything decided about a request before its first attempt.
#[derive(Debug)]
pub struct Prepared {
    pub trace: Trace,
    /// The one snapshot view this request uses to its end.
    pub snapshot: Arc<CompiledSnapshot>,
    pub key: Arc<KeyPolicy>,
    pub ask: Ask,
    pub route: Resolved,
    pub tags: Tags,
    /// `x-switchyard-max-cost`, if sent.
    pub cost_cap: Option<Decimal>,
    /// Estimated prompt tokens (from the body's size).
    pub prompt_tokens: u64,
    /// What the request log keeps of it (the key's, else the team's policy).
    pub log: proto::LogPayloads,
    /// The request as sent, when the log keeps bodies (`full`); after stage 6, as redacted.
    pub logged: Option<Arc<LoggedRequest>>,
    /// Guardrail detections per class (stage 6), for the usage event.
    pub guardrail: std::collections::BTreeMap<String, u64>,
}

impl Prepared {
    /// Stages 3 and 4 for a request whose internal body is `json`.
    pub fn new(
        inbound: &Inbound,
        headers: &HeaderMap,
        json: &JsonBody,
        ask: Ask,
        trace: &Trace,
    ) -> Result<Self, ApiError> {
        let (snapshot, key) = (&inbound.snapshot, &inbound.key);
        trace.span.asked(ask.endpoint, &ask.model, key);
        let requested = Requested::new(snapshot, key, &ask.model, headers)?;
        let tags = tags::effective(tags::from_headers(headers)?, body::tags(json)?, &key.tags)?;
        let cost_cap = cost_cap(headers)?;
        let prompt_tokens = estimate::prompt_tokens(inbound.bytes.len());
        let log = snapshot.log_payloads(key);
        let logged = (log == proto::LogPayloads::Full)
            .then(|| Arc::new(LoggedRequest::new(headers, &inbound.bytes)));
        let route = requested.with_rules(snapshot, key, &tags, prompt_tokens);
        trace.span.routed(&ask.model, &route.requested.alias);
        Ok(Self {
            trace: trace.clone(),
            route,
            snapshot: Arc::clone(snapshot),
            key: Arc::clone(key),
            ask,
            tags,
            cost_cap,
            prompt_tokens,
            log,
            logged,
            guardrail: Default::default(),
        })
    }

    /// A chat request (OpenAI chat, Messages, count_tokens) from its checked fields.
    pub fn chat(
        endpoint: &'static str,
        inbound: &Inbound,
        headers: &HeaderMap,
        json: &JsonBody,
        fields: &body::ChatFields,
        trace: &Trace,
    ) -> Result<Self, ApiError> {
        let ask = Ask {
            endpoint,
            model: fields.model.clone(),
            streamed: fields.stream,
            max_output_tokens: fields.max_output_tokens,
        };
        Self::new(inbound, headers, json, ask, trace)
    }

    /// The attempt plan over the serving route's chain, recording outcomes in `health`;
    /// `None` if the chain is empty.
    pub fn attempts<'p>(&'p self, health: &'p Health) -> Option<Attempts<'p>> {
        let chain = self.route.chain(&self.snapshot);
        Attempts::new(chain, self.trace.started, self.route.origin, health)
    }

    /// The error when no attempt could be made at all.
    pub fn not_found(&self) -> ApiError {
        ApiError::ModelNotFound(self.ask.model.clone())
    }

    /// Metric labels of this request on `deployment`.
    pub fn labels<'a>(&'a self, deployment: &'a Deployment) -> RequestLabels<'a> {
        RequestLabels {
            endpoint: self.ask.endpoint,
            route: &self.route.requested.alias,
            provider: deployment.provider.id(),
        }
    }
}

/// `x-switchyard-max-cost`: a non-negative decimal amount of USD.
fn cost_cap(headers: &HeaderMap) -> Result<Option<Decimal>, ApiError> {
    let Some(value) = headers.get(MAX_COST) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::InvalidRequest {
        message: format!(
            "Invalid '{MAX_COST}' header: expected a non-negative decimal amount of USD, e.g. `0.25`."
        ),
        param: Some(MAX_COST.as_str().to_owned()),
    }
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    match Decimal::from_str(text) {
        Ok(d) if !d.is_sign_negative() => Ok(Some(d)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, StatusCode};

    #[test]
    fn the_cost_cap_header_is_a_non_negative_decimal() {
        let mut h = HeaderMap::new();
        assert!(matches!(cost_cap(&h), Ok(None)));
        h.insert(MAX_COST, HeaderValue::from_static(" 0.25 "));
        assert_eq!(cost_cap(&h).ok().flatten(), Some(Decimal::new(25, 2)));
        for bad in ["-1", "abc", "", "1e3x"] {
            h.insert(MAX_COST, HeaderValue::from_static(bad));
            let e = cost_cap(&h).err().map(|e| (e.status(), e.to_string()));
            assert!(
                e.as_ref()
                    .is_some_and(|(s, m)| *s == StatusCode::BAD_REQUEST
                        && m.contains("x-switchyard-max-cost")),
                "{bad}: {e:?}"
            );
        }
    }
}
