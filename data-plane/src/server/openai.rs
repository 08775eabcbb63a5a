//! The OpenAI inbound dialect: `/v1/chat/completions` and `/v1/embeddings`.
//!
//! Per request: authenticate, read and check the body, resolve the route, work out the
//! effective tags and the cost cap, admit (budgets, rate limits), call the provider, and emit
//! exactly one usage event (refused, served or failed upstream) and settle the admission
//! exactly once; for streams the relay does both when the stream really ends. Requests refused
//! before admission (bad key, bad body, unknown model, bad tags) produce no event.
//!
//! The chat pipeline is shared with the other inbound chat dialects (`/v1/messages`): a
//! [`ChatDialect`] says how the client's body becomes the internal one and how answers, stream
//! frames and errors are written back; everything else (admission, metering) is this code.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use rust_decimal::Decimal;

use super::relay::{self, Frames, OpenAiFrames, Relay};
use super::respond::{add_headers, Trace};
use super::App;
use crate::admission::{AdmitRequest, Admitted};
use crate::error::ApiError;
use crate::metrics::{self, RequestLabels};
use crate::pipeline::body::ChatFields;
use crate::pipeline::{self, auth, body};
use crate::providers::anthropic::forward::{Forward, FORWARDED};
use crate::providers::{
    Call, ChatReply, ChatRequest, Deployment, JsonBody, JsonReply, Provider, UpstreamError,
};
use crate::routing::attempts::{Attempt, Attempts};
use crate::snapshot::{CompiledSnapshot, KeyPolicy, Route};
use crate::usage::event::total_tokens;
use crate::usage::{estimate, tags, End, Meter, Start, Tags};

/// Header with the most (USD, decimal) the caller allows this request to cost.
pub const MAX_COST: HeaderName = HeaderName::from_static("x-switchyard-max-cost");

/// How one inbound chat dialect differs from the internal (OpenAI) one.
pub(super) struct ChatDialect {
    /// Metric and usage-event label.
    pub endpoint: &'static str,
    /// The client's parsed body → the internal chat body.
    pub request: fn(JsonBody) -> Result<JsonBody, ApiError>,
    /// A complete internal answer → the client's body (`None` if it cannot be read); the
    /// answer goes as it is without one.
    pub reply: Option<ReplyFn>,
    /// The stream writer for one request.
    pub frames: fn(&ChatFields, &Answer<'_>) -> Box<dyn Frames>,
    /// Writes an error in the client's dialect.
    pub error: fn(ApiError) -> Response,
    /// Set for Anthropic's own dialect: an Anthropic deployment is sent the client's body as
    /// it is and its answer relayed as it is (stream frames written by this).
    pub native_anthropic: Option<fn() -> Box<dyn Frames>>,
}

/// See [`ChatDialect::reply`].
pub(super) type ReplyFn = fn(&[u8], &Answer<'_>) -> Option<bytes::Bytes>;

/// What an answer in the client's dialect may need to know about its request.
pub(super) struct Answer<'a> {
    /// The model (alias) the client asked for.
    pub model: &'a str,
    /// The request id.
    pub id: uuid::Uuid,
}

const OPENAI: ChatDialect = ChatDialect {
    endpoint: "chat",
    request: Ok,
    reply: None,
    frames: |fields, _| {
        Box::new(OpenAiFrames {
            include_usage: fields.include_usage,
        })
    },
    error: <ApiError as IntoResponse>::into_response,
    native_anthropic: None,
};

/// `POST /v1/chat/completions`, streaming or not.
pub async fn chat_completions(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let trace = Trace::start();
    let result = chat(&app, &headers, body, &trace, &OPENAI).await;
    finish("chat", &trace, result, OPENAI.error)
}

/// `POST /v1/embeddings`.
pub async fn embeddings(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let trace = Trace::start();
    let result = embed(&app, &headers, body, &trace).await;
    finish("embeddings", &trace, result, OPENAI.error)
}

/// Counts a failure and writes it (in the client's dialect); tags the response with its id.
pub(super) fn finish(
    endpoint: &'static str,
    trace: &Trace,
    result: Result<Response, ApiError>,
    render: fn(ApiError) -> Response,
) -> Response {
    let mut response = result.unwrap_or_else(|e| {
        metrics::error(endpoint, e.kind());
        render(e)
    });
    trace.tag(&mut response);
    response
}

/// The deployment's timeout, else the route's, else the provider's, else the process default.
fn timeout_for(app: &App, route: &Route, deployment: &Deployment) -> Duration {
    deployment
        .timeout
        .or(route.timeout)
        .or(deployment.provider.timeout())
        .unwrap_or(app.inner.default_timeout)
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

/// The effective tags of a request (header, body, key).
fn request_tags(
    headers: &HeaderMap,
    json: &crate::providers::JsonBody,
    key: &KeyPolicy,
) -> Result<Tags, ApiError> {
    tags::effective(tags::from_headers(headers)?, body::tags(json)?, &key.tags)
}

/// What admission is asked besides the tags (which the meter holds).
struct Ask<'a> {
    snapshot: &'a CompiledSnapshot,
    key: &'a KeyPolicy,
    route: &'a Route,
    deployment: &'a Deployment,
    prompt_tokens: u64,
    max_output_tokens: Option<u64>,
    cost_cap: Option<Decimal>,
}

/// What admission decided for one attempt.
enum Admit {
    Admitted(Meter, Admitted),
    /// The deployment's own rate limit is reached and another deployment may serve: not
    /// metered, the refusal kept in case no other deployment can.
    DeploymentFull(ApiError),
}

/// Admits one attempt; a refusal is metered (one refused event) and becomes the client's
/// error, unless it is the deployment's own limit and `may_skip` (another deployment could
/// serve).
async fn admit(app: &App, ask: Ask<'_>, meter: Meter, may_skip: bool) -> Result<Admit, ApiError> {
    let decision = app
        .inner
        .admission
        .admit(&AdmitRequest {
            snapshot: ask.snapshot,
            key: ask.key,
            route: ask.route,
            deployment: ask.deployment,
            tags: meter.tags(),
            prompt_tokens: ask.prompt_tokens,
            max_output_tokens: ask.max_output_tokens,
            cost_cap: ask.cost_cap,
        })
        .await;
    match decision {
        Ok(admitted) => Ok(Admit::Admitted(meter, admitted)),
        Err(refused) if may_skip && refused.deployment_scoped() => {
            Ok(Admit::DeploymentFull(refused.into()))
        }
        Err(refused) => {
            app.inner.usage.emit(meter.refused(&refused));
            Err(refused.into())
        }
    }
}

/// A non-streamed end: meter, settle, emit.
fn settle_and_emit(app: &App, meter: Meter, admitted: Admitted, end: End) {
    let event = meter.finish(end);
    admitted.settle(event.cost_usd, total_tokens(&event.usage));
    app.inner.usage.emit(event);
}

fn failed(status: StatusCode) -> End {
    End {
        status: status.as_u16(),
        ok: false,
        usage: None,
        estimated_completion: None,
        ttft: None,
        abandoned: false,
    }
}

/// The chat pipeline, for any inbound chat dialect.
pub(super) async fn chat(
    app: &App,
    headers: &HeaderMap,
    raw: Body,
    trace: &Trace,
    dialect: &ChatDialect,
) -> Result<Response, ApiError> {
    let snapshot = app.inner.snapshots.get().ok_or(ApiError::NotReady)?;
    let key = auth::authenticate(&snapshot, headers)?;
    let bytes = body::read(raw, headers, app.inner.max_body).await?;
    // The client's own bytes, kept (a reference count, not a copy) in case the deployment
    // speaks the client's dialect and gets them as they are.
    let original = dialect.native_anthropic.map(|_| bytes.clone());
    // A body the translation cannot express (a block type only the provider knows) still
    // reaches a deployment of the client's own dialect; for any other it is the client's 400.
    let (json, untranslatable) = match (dialect.request)(body::parse_object(&bytes)?) {
        Ok(json) => (json, None),
        Err(e) if original.is_some() => (body::parse_object(&bytes)?, Some(e)),
        Err(e) => return Err(e),
    };
    let fields = body::chat(&json)?;
    let (route, preferred) = pipeline::resolve_preferred(&snapshot, &key, &fields.model, headers)?;
    let tags = request_tags(headers, &json, &key)?;
    let cost_cap = cost_cap(headers)?;
    let prompt_tokens = estimate::prompt_tokens(bytes.len());
    drop(bytes);
    let answer = Answer {
        model: &fields.model,
        id: trace.id,
    };
    let ruled = pipeline::apply_rules(&snapshot, &route, &key, &tags, prompt_tokens);
    let origin = match (ruled, preferred) {
        (Some(_), _) => Some("rule"),
        (None, true) => Some("preference"),
        (None, false) => None,
    };
    let Some(mut attempts) = Attempts::new(
        chain(&snapshot, ruled.unwrap_or(&route)),
        trace.started,
        origin,
    ) else {
        return Err(ApiError::ModelNotFound(fields.model.clone()));
    };
    if untranslatable.is_some() {
        // Only a deployment of the client's own dialect can take the body as it is.
        attempts.rule_out(|d| d.provider.as_anthropic().is_none());
    }
    let mut last: Option<ApiError> = untranslatable;
    let mut json = Some(json);
    loop {
        let Some(attempt) = attempts.next_attempt() else {
            return Err(last.unwrap_or_else(|| ApiError::ModelNotFound(fields.model.clone())));
        };
        let deployment = attempt.deployment;
        let request = Attempting {
            trace,
            snapshot: &snapshot,
            key: &key,
            tags: &tags,
            endpoint: dialect.endpoint,
            alias: &route.alias,
            streamed: fields.stream,
            prompt_tokens,
            max_output_tokens: fields.max_output_tokens,
            cost_cap,
        };
        let (meter, admitted) = match begin(app, &request, &attempt, attempts.more()).await? {
            Admit::Admitted(meter, admitted) => (meter, admitted),
            Admit::DeploymentFull(refusal) => {
                last = Some(refusal);
                continue;
            }
        };
        let call = Call {
            http: &app.inner.http,
            deployment,
            timeout: attempts.cap(timeout_for(app, attempt.route, deployment)),
        };
        let labels = RequestLabels {
            endpoint: dialect.endpoint,
            route: &route.alias,
            provider: deployment.provider.id(),
        };
        // The body goes to this attempt; a copy stays only while another could follow.
        let body = if attempts.more() {
            json.clone()
        } else {
            json.take()
        };
        let Some(body) = body else {
            return Err(last.unwrap_or_else(|| ApiError::ModelNotFound(fields.model.clone())));
        };
        let inflight = deployment.stats.start();
        let sent = Instant::now();
        let (reply, passed_through) =
            send(&call, body, original.clone(), headers, fields.stream).await;
        // A stream counts as started only with its first chunk: until then another deployment
        // can still take the request.
        let reply = match reply {
            Ok(ChatReply::Stream(chunks)) => first_chunk(chunks, &call, sent).await,
            other => other,
        };
        let upstream = attempts.spent(sent.elapsed());
        match reply {
            Err(e) => {
                let goes_on = attempts.failed(&attempt, &e);
                last = Some(attempt_failed(
                    app, trace, labels, meter, admitted, e, goes_on,
                )?);
            }
            Ok(ChatReply::Json(reply)) => {
                attempts.succeeded(deployment, sent.elapsed());
                drop(inflight);
                let translate = dialect.reply.filter(|_| !passed_through);
                return match translated(reply, translate, &answer) {
                    Ok(reply) => {
                        let mut response = served(
                            app, trace, labels, deployment, upstream, reply, meter, admitted,
                        );
                        attempts.tag(response.headers_mut(), &attempt);
                        Ok(response)
                    }
                    Err(usage) => {
                        // The provider was paid for an answer the client cannot be given:
                        // metered with its usage, reported as a bad upstream response.
                        let e = UpstreamError::BadResponse {
                            provider: deployment.provider.id().to_owned(),
                            detail: "the answer could not be translated for this endpoint",
                        };
                        metrics::request_done(labels, 502, trace.started.elapsed());
                        let mut end = failed(e.status());
                        end.usage = usage;
                        settle_and_emit(app, meter, admitted, end);
                        Err(e.into())
                    }
                };
            }
            Ok(ChatReply::Stream(chunks)) => {
                attempts.succeeded(deployment, sent.elapsed());
                metrics::upstream_first_byte(deployment.provider.id(), sent.elapsed());
                let frames = match dialect.native_anthropic {
                    Some(raw) if passed_through => raw(),
                    _ => (dialect.frames)(&fields, &answer),
                };
                let relay = Relay {
                    request_id: trace.id,
                    route: Arc::clone(&route),
                    provider: deployment.provider.id().to_owned(),
                    endpoint: dialect.endpoint,
                    frames,
                    idle: call.timeout,
                    started: trace.started,
                    meter,
                    admitted,
                    usage: app.inner.usage.clone(),
                    inflight: Some(inflight),
                };
                let mut response = streamed(app, trace, deployment, upstream, chunks, relay);
                attempts.tag(response.headers_mut(), &attempt);
                return Ok(response);
            }
        }
    }
}

/// What every attempt of one request shares.
struct Attempting<'a> {
    trace: &'a Trace,
    snapshot: &'a CompiledSnapshot,
    key: &'a Arc<KeyPolicy>,
    tags: &'a Tags,
    endpoint: &'static str,
    alias: &'a str,
    streamed: bool,
    prompt_tokens: u64,
    max_output_tokens: Option<u64>,
    cost_cap: Option<Decimal>,
}

/// Starts one attempt: waits out its backoff, then meters and admits it on its deployment.
async fn begin(
    app: &App,
    r: &Attempting<'_>,
    attempt: &Attempt<'_>,
    may_skip: bool,
) -> Result<Admit, ApiError> {
    if !attempt.wait.is_zero() {
        tokio::time::sleep(attempt.wait).await;
    }
    let deployment = attempt.deployment;
    let meter = Meter::new(Start {
        id: r.trace.id,
        started: r.trace.started,
        proxy: &app.inner.proxy_id,
        key: r.key,
        tags: r.tags.clone(),
        endpoint: r.endpoint,
        alias: r.alias,
        deployment,
        streamed: r.streamed,
        prompt_estimate: r.prompt_tokens,
    });
    let ask = Ask {
        snapshot: r.snapshot,
        key: r.key,
        route: attempt.route,
        deployment,
        prompt_tokens: r.prompt_tokens,
        max_output_tokens: r.max_output_tokens,
        cost_cap: r.cost_cap,
    };
    Ok(match admit(app, ask, meter, may_skip).await? {
        Admit::Admitted(mut meter, admitted) => {
            meter.routed(attempt.number, attempt.reason());
            Admit::Admitted(meter, admitted)
        }
        skip => skip,
    })
}

/// A failed attempt: if the request `goes_on` to another, its reservation is released and it
/// emits nothing (the request's one event comes from the attempt that ends it), and the error
/// is kept as the request's latest; otherwise it is metered and becomes the client's error.
fn attempt_failed(
    app: &App,
    trace: &Trace,
    labels: RequestLabels<'_>,
    meter: Meter,
    admitted: Admitted,
    e: UpstreamError,
    goes_on: bool,
) -> Result<ApiError, ApiError> {
    if goes_on {
        admitted.settle(Decimal::ZERO, 0);
        drop(meter);
        metrics::fallback(labels.route, labels.provider, e.kind());
        tracing::info!(route = labels.route, provider = labels.provider, error = %e, "attempt failed; trying another deployment");
        return Ok(e.into());
    }
    let status = e.status();
    settle_and_emit(app, meter, admitted, failed(status));
    metrics::request_done(labels, status.as_u16(), trace.started.elapsed());
    Err(e.into())
}

/// The requested route followed by its fallback routes (each once, unknown ones skipped).
fn chain<'s>(snapshot: &'s CompiledSnapshot, route: &'s Route) -> Vec<&'s Route> {
    let mut chain = vec![route];
    for alias in &route.fallbacks {
        if let Some(r) = snapshot.route(alias) {
            if !chain.iter().any(|c| std::ptr::eq(*c, &**r)) {
                chain.push(r);
            }
        }
    }
    chain
}

/// Waits for a stream's first chunk within what is left of the call's timeout; the stream is
/// given back whole (that chunk first). An error, an early end or no chunk in time is the
/// attempt's failure.
async fn first_chunk(
    mut chunks: crate::providers::ChunkStream,
    call: &Call<'_>,
    sent: Instant,
) -> Result<ChatReply, UpstreamError> {
    use futures_util::StreamExt as _;
    let provider = call.deployment.provider.id().to_owned();
    let left = call.timeout.saturating_sub(sent.elapsed());
    match tokio::time::timeout(left, chunks.next()).await {
        Ok(Some(Ok(first))) => Ok(ChatReply::Stream(Box::pin(
            futures_util::stream::once(async move { Ok(first) }).chain(chunks),
        ))),
        Ok(Some(Err(e))) => Err(e),
        Ok(None) => Err(UpstreamError::Interrupted { provider }),
        Err(_) => Err(UpstreamError::Timeout {
            provider,
            after: call.timeout,
        }),
    }
}

/// The answer in the client's dialect; `Err` (with the usage) if it cannot be translated.
fn translated(
    reply: JsonReply,
    translate: Option<ReplyFn>,
    answer: &Answer<'_>,
) -> Result<JsonReply, Option<crate::providers::Usage>> {
    match translate {
        None => Ok(reply),
        Some(f) => match f(&reply.body, answer) {
            Some(body) => Ok(JsonReply { body, ..reply }),
            None => Err(reply.usage),
        },
    }
}

/// A stream's response: the relay's body with the admission, SSE and timing headers.
fn streamed(
    app: &App,
    trace: &Trace,
    deployment: &Deployment,
    upstream: Duration,
    chunks: crate::providers::ChunkStream,
    relay: Relay,
) -> Response {
    let mut head = HeaderMap::new();
    add_headers(&mut head, relay.admitted.headers());
    let endpoint = relay.endpoint;
    let mut response = Response::new(relay::start(app, chunks, relay));
    let h = response.headers_mut();
    h.extend(head);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    let gateway = trace.served(h, deployment, upstream);
    metrics::overhead(endpoint, gateway);
    response
}

async fn embed(
    app: &App,
    headers: &HeaderMap,
    raw: Body,
    trace: &Trace,
) -> Result<Response, ApiError> {
    let snapshot = app.inner.snapshots.get().ok_or(ApiError::NotReady)?;
    let key = auth::authenticate(&snapshot, headers)?;
    let bytes = body::read(raw, headers, app.inner.max_body).await?;
    let json = body::parse_object(&bytes)?;
    let model = body::embeddings(&json)?;
    let (route, preferred) = pipeline::resolve_preferred(&snapshot, &key, &model, headers)?;
    let tags = request_tags(headers, &json, &key)?;
    let cost_cap = cost_cap(headers)?;
    let prompt_tokens = estimate::prompt_tokens(bytes.len());
    drop(bytes);
    let ruled = pipeline::apply_rules(&snapshot, &route, &key, &tags, prompt_tokens);
    let origin = match (ruled, preferred) {
        (Some(_), _) => Some("rule"),
        (None, true) => Some("preference"),
        (None, false) => None,
    };
    let Some(mut attempts) = Attempts::new(
        chain(&snapshot, ruled.unwrap_or(&route)),
        trace.started,
        origin,
    ) else {
        return Err(ApiError::ModelNotFound(model));
    };
    let mut last: Option<ApiError> = None;
    let mut json = Some(json);
    loop {
        let Some(attempt) = attempts.next_attempt() else {
            return Err(last.unwrap_or(ApiError::ModelNotFound(model)));
        };
        let deployment = attempt.deployment;
        let request = Attempting {
            trace,
            snapshot: &snapshot,
            key: &key,
            tags: &tags,
            endpoint: "embeddings",
            alias: &route.alias,
            streamed: false,
            prompt_tokens,
            max_output_tokens: Some(0),
            cost_cap,
        };
        let (meter, admitted) = match begin(app, &request, &attempt, attempts.more()).await? {
            Admit::Admitted(meter, admitted) => (meter, admitted),
            Admit::DeploymentFull(refusal) => {
                last = Some(refusal);
                continue;
            }
        };
        let call = Call {
            http: &app.inner.http,
            deployment,
            timeout: attempts.cap(timeout_for(app, attempt.route, deployment)),
        };
        let labels = RequestLabels {
            endpoint: "embeddings",
            route: &route.alias,
            provider: deployment.provider.id(),
        };
        let body = if attempts.more() {
            json.clone()
        } else {
            json.take()
        };
        let Some(body) = body else {
            return Err(last.unwrap_or(ApiError::ModelNotFound(model)));
        };
        let inflight = deployment.stats.start();
        let sent = Instant::now();
        let reply = deployment.provider.embeddings(&call, body).await;
        drop(inflight);
        let upstream = attempts.spent(sent.elapsed());
        match reply {
            Err(e) => {
                let goes_on = attempts.failed(&attempt, &e);
                last = Some(attempt_failed(
                    app, trace, labels, meter, admitted, e, goes_on,
                )?);
            }
            Ok(reply) => {
                attempts.succeeded(deployment, sent.elapsed());
                let mut response = served(
                    app, trace, labels, deployment, upstream, reply, meter, admitted,
                );
                attempts.tag(response.headers_mut(), &attempt);
                return Ok(response);
            }
        }
    }
}

/// Calls the provider: with the client's own body (`original`) if the deployment speaks the
/// client's dialect, else with the internal body. Also says which it was.
async fn send(
    call: &Call<'_>,
    json: JsonBody,
    original: Option<Bytes>,
    headers: &HeaderMap,
    stream: bool,
) -> (Result<ChatReply, UpstreamError>, bool) {
    let provider = &call.deployment.provider;
    match (original, provider.as_anthropic()) {
        (Some(body), Some(adapter)) => {
            let request = forwarded(body, headers, stream);
            (adapter.forward(call, request).await, true)
        }
        _ => {
            let request = ChatRequest { body: json, stream };
            (provider.chat(call, request).await, false)
        }
    }
}

/// The client's own Messages request for an Anthropic deployment, with its version headers.
fn forwarded(body: Bytes, headers: &HeaderMap, stream: bool) -> Forward {
    let headers = FORWARDED
        .iter()
        .filter_map(|name| Some((name.clone(), headers.get(name)?.clone())))
        .collect();
    Forward {
        body,
        headers,
        stream,
    }
}

/// A complete JSON answer: metered, settled and sent with the admission headers.
#[allow(clippy::too_many_arguments)]
fn served(
    app: &App,
    trace: &Trace,
    labels: RequestLabels<'_>,
    deployment: &Deployment,
    upstream: Duration,
    reply: JsonReply,
    meter: Meter,
    admitted: Admitted,
) -> Response {
    let usage = reply.usage;
    if let Some(u) = usage {
        metrics::tokens(labels, u.prompt_tokens, u.completion_tokens);
    }
    let mut response = (StatusCode::OK, reply.body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    add_headers(h, admitted.headers());
    let gateway = trace.served(h, deployment, upstream);
    metrics::overhead(labels.endpoint, gateway);
    metrics::request_done(labels, 200, trace.started.elapsed());
    let end = End {
        status: 200,
        ok: true,
        usage,
        estimated_completion: None,
        ttft: None,
        abandoned: false,
    };
    settle_and_emit(app, meter, admitted, end);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

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
