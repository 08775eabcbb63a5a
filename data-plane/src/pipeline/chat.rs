//! Chat in any inbound dialect (`/v1/chat/completions`, `/v1/messages`): stages 2–4 in the
//! dialect, the attempt loop with [`ChatOp`], and the success path (a complete answer, or a
//! stream handed to the relay).
//!
//! Pass-through is one rule, in [`ChatOp::send`]: a deployment whose adapter speaks the
//! client's wire natively for the deployment's model (`Adapter::speaks`) is sent the client's
//! own bytes and its answer is relayed as it came; every other deployment gets the internal
//! body.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{header, HeaderMap, HeaderValue, StatusCode};

use super::attempt::{self, Operation, Won};
use super::billing;
use super::body;
use super::cached;
use super::guard;
use super::prepare::{Arrived, Inbound, Prepared};
use super::relay::{self, Relay};
use super::respond::add_headers;
use crate::cache::Pending;
use crate::dialect::{Answer, ChatDialect};
use crate::error::ApiError;
use crate::guard::restore::Restorer;
use crate::metrics;
use crate::providers::{
    Call, ChatReply, ChatRequest, ChunkStream, JsonBody, JsonReply, NativeRequest, Provider,
    UpstreamError, Wire,
};
use crate::routing::attempts::Attempts;
use crate::state::App;
use crate::usage::End;

/// What becomes of a finished answer, as the client got it (complete, in its dialect), when
/// it was translated: a stored Responses turn.
pub struct Keep(Box<dyn FnOnce(Bytes) + Send>);

impl Keep {
    pub fn new(f: impl FnOnce(Bytes) + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    /// Hands over the answer.
    pub fn run(self, answer: Bytes) {
        (self.0)(answer)
    }
}

impl std::fmt::Debug for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keep(..)")
    }
}

/// Serves one chat request in dialect `D`.
pub async fn serve<D: ChatDialect>(app: &App, arrived: Arrived<'_>) -> Result<Response, ApiError> {
    let Arrived { headers, trace, .. } = arrived;
    let inbound = Inbound::read(app, arrived).await?;
    serve_read::<D>(app, headers, trace, inbound, None).await
}

/// Serves a chat request in dialect `D` whose body was already read (and perhaps rewritten:
/// a Responses turn that continues a stored one); `keep` takes the translated answer.
pub async fn serve_read<D: ChatDialect>(
    app: &App,
    headers: &HeaderMap,
    trace: &super::respond::Trace,
    inbound: Inbound,
    keep: Option<Keep>,
) -> Result<Response, ApiError> {
    // A body the translation cannot express (a block type only the provider knows) still
    // reaches a deployment of the client's own wire; for any other it is the client's 400.
    let client = body::parse_object(&inbound.bytes)?;
    let dropped = D::dropped(&client);
    let (json, untranslatable) = translate::<D>(client, &inbound.bytes)?;
    let fields = match untranslatable {
        None => body::chat(&json)?,
        Some(_) => D::native_fields(&json)?,
    };
    let mut prepared = Prepared::chat(D::ENDPOINT, &inbound, headers, &json, &fields, trace)?;
    // Stage 6: a body the guardrails rewrote is read again, so no attempt sends the original.
    let guarded = guard::request(&mut prepared, headers, &inbound.bytes)?;
    let (json, untranslatable, client) = match guarded.body {
        Some(redacted) => {
            let (json, untranslatable) = translate::<D>(body::parse_object(&redacted)?, &redacted)?;
            (json, untranslatable, redacted)
        }
        None => (json, untranslatable, inbound.bytes.clone()),
    };
    let Some(mut attempts) = prepared.attempts(&app.parts().health) else {
        return Err(prepared.not_found());
    };
    if untranslatable.is_some() {
        attempts.rule_out(|d| !D::NATIVE.is_some_and(|wire| d.provider.speaks(&d.model, wire)));
    }
    // Stage 6b: the cache keys the redacted body. An answer whose placeholders are put back,
    // or that is checked, is neither looked up nor stored: it belongs to this request's values.
    let cacheable = untranslatable.is_none() && guarded.restorer.is_none();
    let mut cache = cached::Plan::new(app, &prepared, headers, &json, cacheable);
    if let Some(entry) = cache.lookup(app, &prepared).await {
        let hit = cached::serve::<D>(app, &prepared, &fields, &client, &entry, keep);
        if let Some(mut response) = hit {
            cache.tag(&mut response);
            return Ok(response);
        }
        // An entry this dialect cannot be answered from: the request goes on past the cache.
        return Box::pin(serve_read::<D>(
            app,
            &no_store(headers),
            trace,
            inbound,
            None,
        ))
        .await;
    }
    let mut op = ChatOp {
        body: json,
        wire: D::NATIVE,
        client,
        headers,
        stream: fields.stream,
        passed_through: false,
    };
    let won = attempt::run(app, &prepared, &mut attempts, &mut op, untranslatable).await?;
    let passed_through = op.passed_through;
    let keep = keep.filter(|_| !passed_through);
    // A translated answer is in the internal form the cache keeps; a passed-through one is
    // translated for it (`Pending::store_native`).
    let after = After {
        keep,
        store: cache.pending.take(),
        restorer: guarded.restorer,
    };
    let mut response = answer::<D>(app, &prepared, &fields, &op, &attempts, won, after)?;
    if !passed_through && !dropped.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&dropped.join(", ")) {
            response.headers_mut().insert(DROPPED_FIELDS, value);
        }
    }
    cache.tag(&mut response);
    Ok(response)
}

/// `headers` with `Cache-Control: no-store` added: the same request again, past the cache.
fn no_store(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers
}

/// The internal body of the client's `body` (its bytes `raw`), or, when the translation
/// cannot express it and the dialect has a native wire, the client's body itself with the
/// translation's error (only a deployment of that wire can take it).
fn translate<D: ChatDialect>(
    client: crate::providers::JsonBody,
    raw: &Bytes,
) -> Result<(crate::providers::JsonBody, Option<ApiError>), ApiError> {
    match D::request(client) {
        Ok(json) => Ok((json, None)),
        Err(e) if D::NATIVE.is_some() => Ok((body::parse_object(raw)?, Some(e))),
        Err(e) => Err(e),
    }
}

/// Lists the client's fields a translation dropped (see each dialect's table).
pub const DROPPED_FIELDS: &str = "x-switchyard-dropped-fields";

/// Stages 8 and 9 of a chat that got an answer from `op`'s attempt: a complete answer in the
/// client's dialect, or the stream handed to the relay, with what `after` asks of the answer.
fn answer<D: ChatDialect>(
    app: &App,
    prepared: &Prepared,
    fields: &body::ChatFields,
    op: &ChatOp<'_>,
    attempts: &Attempts<'_>,
    won: Won<'_, ChatReply>,
    after: After,
) -> Result<Response, ApiError> {
    let After {
        keep,
        store,
        mut restorer,
    } = after;
    let Won {
        reply,
        mut billing,
        attempt,
        timeout,
        upstream,
        first_byte,
        inflight,
    } = won;
    let trace = &prepared.trace;
    let native = op.passed_through;
    let wire = op.wire.filter(|_| native);
    let answer = Answer {
        model: &fields.model,
        id: trace.id,
        prompt_tokens: prepared.prompt_tokens,
        request: &op.client,
    };
    let deployment = attempt.deployment;
    let mut response = match reply {
        ChatReply::Json(JsonReply { body, usage }) => {
            drop(inflight);
            trace.span.answer_body(&body);
            let internal = body.clone();
            let Some(body) = D::reply(body, &answer, native) else {
                // The provider was paid for an answer the client cannot be given: metered
                // with its usage, reported as a bad upstream response.
                let e = UpstreamError::BadResponse {
                    provider: deployment.provider.id().to_owned(),
                    detail: "the answer could not be translated for this endpoint",
                };
                let labels = prepared.labels(deployment);
                metrics::request_done(labels, 502, trace.started.elapsed());
                billing.settle(End {
                    usage,
                    ..billing::failed(e.status())
                });
                return Err(e.into());
            };
            if let Some(keep) = keep {
                keep.run(body.clone());
            }
            match (store, wire) {
                (Some(store), Some(wire)) => {
                    store.store_native(wire, &internal, &deployment.id, &deployment.model);
                }
                (Some(store), None) => {
                    store.store(&internal, usage, &deployment.id, &deployment.model);
                }
                (None, _) => {}
            }
            // The log and a stored turn keep the answer with its placeholders.
            let (body, logged) = match restorer.as_mut() {
                Some(r) => {
                    let restored = r.body(body.clone());
                    output_checked(r, &mut billing);
                    (restored, Some(body))
                }
                None => (body, None),
            };
            let reply = JsonReply { body, usage };
            served_logged(prepared, deployment, upstream, reply, billing, logged)
        }
        ChatReply::Stream(chunks) => {
            metrics::upstream_first_byte(deployment.provider.id(), first_byte);
            let relay = Relay {
                request_id: trace.id,
                route: Arc::clone(&prepared.route.requested),
                provider: deployment.provider.id().to_owned(),
                endpoint: D::ENDPOINT,
                frames: D::frames(fields, &answer, native),
                idle: timeout,
                started: trace.started,
                billing,
                inflight: Some(inflight),
                keep,
                cache: store.map(|s| s.streamed(&deployment.id, &deployment.model, wire)),
                span: trace.span.clone(),
                restorer,
            };
            streamed(app, prepared, deployment, upstream, chunks, relay)
        }
    };
    attempts.tag(response.headers_mut(), &attempt);
    Ok(response)
}

/// What becomes of an answer besides reaching the client: `keep` takes it translated (a
/// stored Responses turn); `store` takes it for the cache (complete, or assembled by the relay
/// once the stream ended well); `restorer` puts reversible placeholders back (and checks the
/// output) on the way.
struct After {
    keep: Option<Keep>,
    store: Option<Pending>,
    restorer: Option<Restorer>,
}

/// One chat attempt: the client's own bytes to a deployment that speaks its wire, else the
/// internal body.
struct ChatOp<'h> {
    /// The internal (OpenAI) body; copied per attempt only while another could follow.
    body: JsonBody,
    /// The client's wire, when it is not the internal dialect.
    wire: Option<Wire>,
    /// The client's body: sent as it is to a deployment that speaks its wire, and read by
    /// dialects whose answer repeats part of it.
    client: Bytes,
    headers: &'h HeaderMap,
    stream: bool,
    /// The attempt that answered was sent the client's own bytes.
    passed_through: bool,
}

impl Operation for ChatOp<'_> {
    type Reply = ChatReply;

    async fn send(&mut self, call: &Call<'_>, last: bool) -> Result<ChatReply, UpstreamError> {
        let sent = std::time::Instant::now();
        let provider = &call.deployment.provider;
        let model = &call.deployment.model;
        let native = self.wire.filter(|wire| provider.speaks(model, *wire));
        self.passed_through = native.is_some();
        let reply = match native {
            Some(wire) => {
                let request = NativeRequest {
                    wire,
                    body: self.client.clone(),
                    headers: self.headers,
                    stream: self.stream,
                };
                provider.forward(call, request).await
            }
            None => {
                let body = if last {
                    std::mem::take(&mut self.body)
                } else {
                    self.body.clone()
                };
                let request = ChatRequest {
                    body,
                    stream: self.stream,
                    cache_marks: self.wire == Some(Wire::AnthropicMessages),
                };
                provider.chat(call, request).await
            }
        };
        match reply? {
            ChatReply::Stream(chunks) => first_chunk(chunks, call, sent).await,
            json => Ok(json),
        }
    }
}

/// Waits for a stream's first chunk within what is left of the call's timeout; the stream is
/// given back whole (that chunk first). An error, an early end or no chunk in time is the
/// attempt's failure: a stream counts as started only with its first chunk.
async fn first_chunk(
    mut chunks: ChunkStream,
    call: &Call<'_>,
    sent: std::time::Instant,
) -> Result<ChatReply, UpstreamError> {
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

/// Counts the detections of a restorer's output checks (metrics and the usage event).
pub(super) fn output_checked(r: &Restorer, billing: &mut billing::Billing) {
    let counts: std::collections::BTreeMap<String, u64> =
        r.output_detections()
            .fold(Default::default(), |mut all, ((class, action), n)| {
                metrics::guardrail(class, action, "output", *n);
                *all.entry(class.clone()).or_default() += n;
                all
            });
    billing.guarded(&counts);
}

/// A complete JSON answer: metered, settled and sent with the admission headers.
pub(super) fn served(
    p: &Prepared,
    deployment: &crate::providers::Deployment,
    upstream: std::time::Duration,
    reply: JsonReply,
    billing: billing::Billing,
) -> Response {
    served_logged(p, deployment, upstream, reply, billing, None)
}

/// [`served`], with what the request log keeps of the answer when it is not what the client
/// gets (`logged`: the answer before reversible placeholders were put back).
fn served_logged(
    p: &Prepared,
    deployment: &crate::providers::Deployment,
    upstream: std::time::Duration,
    reply: JsonReply,
    mut billing: billing::Billing,
    logged: Option<Bytes>,
) -> Response {
    let labels = p.labels(deployment);
    billing.capture_response(logged.as_deref().unwrap_or(&reply.body));
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
    add_headers(h, billing.headers());
    let gateway = p.trace.served(h, deployment, upstream);
    metrics::overhead(labels.endpoint, gateway);
    metrics::request_done(labels, 200, p.trace.started.elapsed());
    billing.settle(End {
        status: 200,
        ok: true,
        usage,
        estimated_completion: None,
        ttft: None,
        abandoned: false,
    });
    response
}

/// A stream's response: the relay's body with the admission, SSE and timing headers.
fn streamed(
    app: &App,
    p: &Prepared,
    deployment: &crate::providers::Deployment,
    upstream: std::time::Duration,
    chunks: ChunkStream,
    relay: Relay,
) -> Response {
    let mut head = HeaderMap::new();
    add_headers(&mut head, relay.billing.headers());
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
    let gateway = p.trace.served(h, deployment, upstream);
    metrics::overhead(endpoint, gateway);
    response
}
