//! The request pipeline: one flow for every inbound operation (OpenAI chat, Anthropic
//! Messages, embeddings, count_tokens). `server/` only routes paths here; inbound dialects
//! (`crate::dialect`) and provider adapters (`crate::providers`) are peers this code drives.
//! See `docs/ARCHITECTURE.md` for the whole picture.
//!
//! Stages, in order (module that owns each, and what it adds):
//!
//! 1. **authenticate** ([`auth`]): the snapshot is loaded once (one view for the whole
//!    request); the bearer key's hash → the key's policy (401 otherwise).
//! 2. **read the body in its dialect** ([`body`], `crate::dialect`): read within the size
//!    limit, parsed at the top level only, translated to the internal (OpenAI) request by the
//!    dialect; the few fields routing and metering need are checked ([`body::ChatFields`]).
//! 3. **resolve the route** ([`route`]): the caller's preference header, then the body's model,
//!    the key's allow-list, the route's rules, and the fallback chain, in one place.
//! 4. **tags, cost cap, estimate** ([`prepare`]): the effective tags, `x-switchyard-max-cost`,
//!    the prompt estimate. Stages 1–4 end in one [`prepare::Prepared`] value: everything
//!    decided before the first attempt, built the same way for every operation.
//! 5. **admit** ([`billing`]): per attempt, budgets and rate limits reserve the request's cost
//!    on its deployment; the meter and the reservation become one [`billing::Billing`], moved
//!    to whoever ends the request and consumed exactly once.
//! 6. **guardrails** ([`guard`], `crate::guard`): the policies of the key, its team and its
//!    route, merged; the client's body rewritten in its own dialect (placeholders, masks) and
//!    translated again, or refused (`block`); the request log keeps the rewritten body. The
//!    answer's reversible placeholders are put back by the success path and the relay.
//!    Then the **cache lookup** ([`cached`]), on the rewritten body: the request's cache
//!    policy and the client's headers decide whether to look up and whether to store; a hit is
//!    answered here in the client's dialect (streamed or not) and metered as a `cache_hit`
//!    event; a miss carries where its answer is to be stored into stages 7–8. A request whose
//!    answer the guardrails restore or check bypasses the cache.
//! 7. **attempt loop** ([`attempt`]): one loop for every operation, generic over what an
//!    attempt sends ([`attempt::Operation`]): backoff, choose a deployment, admit, send (the
//!    client's own bytes when the adapter speaks the client's wire, else the internal body),
//!    breaker and latency feedback, fallback on a failure the route's policy retries.
//! 8. **relay** ([`chat`], [`relay`]): a complete answer is written in the client's dialect; a
//!    stream is forwarded chunk by chunk by a task the app owns (never buffered, drained for
//!    its usage if the client leaves).
//! 9. **settle and emit** ([`billing`]): the request's one usage event is emitted and its
//!    reservation settled at the real cost, by the success, failure or refusal that ends it.
//!
//! Refusals before admission (bad key, bad body, unknown model, bad tags) produce no event.
//!
//! Traces (`crate::spans`, when on): [`handle`] starts the request's span before stage 1
//! (the caller's `traceparent` its parent) and puts the status on it; stage 4 names it after
//! the model; stage 7 makes a child span per attempt, whose context goes upstream as
//! `traceparent`; stage 9 puts the metered usage on it; the span ends when the handler, or a
//! stream's relay, lets go of it.

pub mod attempt;
pub mod auth;
pub mod billing;
pub mod body;
pub mod cached;
pub mod chat;
pub mod count;
pub mod embed;
pub mod guard;
pub mod prepare;
pub mod relay;
pub mod respond;
pub mod responses;
pub mod route;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;

use crate::dialect::anthropic::Messages;
use crate::dialect::ChatDialect;
use crate::error::ApiError;
use crate::metrics;
use crate::state::App;
use prepare::Arrived;
use respond::Trace;

pub use route::resolve;

/// `POST /v1/chat/completions` and `POST /v1/messages`: a chat in dialect `D`.
pub async fn chat<D: ChatDialect>(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let serve = async |arrived: Arrived<'_>| chat::serve::<D>(&app, arrived).await;
    handle(&app, &headers, body, D::ENDPOINT, D::error, serve).await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let serve = async |arrived: Arrived<'_>| embed::serve(&app, arrived).await;
    let render = IntoResponse::into_response;
    handle(&app, &headers, body, embed::ENDPOINT, render, serve).await
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": N}`, the provider's count where the
/// chosen deployment's provider has one, else the gateway's estimate (see [`count`]).
pub async fn count_tokens(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let serve = async |arrived: Arrived<'_>| count::serve(&app, arrived).await;
    handle(
        &app,
        &headers,
        body,
        count::ENDPOINT,
        Messages::error,
        serve,
    )
    .await
}

/// One request through `serve`: its trace (id, arrival time, span) started first; a failure
/// counted under `endpoint` and written by `render` (in the client's dialect); the response
/// tagged with the request id and its status put on the span. The span ends when this frame
/// lets go of it, unless a stream's relay still holds it (`crate::spans`).
pub(crate) async fn handle(
    app: &App,
    headers: &HeaderMap,
    body: Body,
    endpoint: &'static str,
    render: fn(ApiError) -> Response,
    serve: impl AsyncFnOnce(Arrived<'_>) -> Result<Response, ApiError>,
) -> Response {
    let trace = Trace::traced(&app.parts().tracer, headers, endpoint);
    let arrived = Arrived {
        headers,
        body,
        trace: &trace,
    };
    let (mut response, error) = match serve(arrived).await {
        Ok(response) => (response, None),
        Err(e) => {
            let kind = e.kind();
            metrics::error(endpoint, kind);
            (render(e), Some(kind))
        }
    };
    let status = response.status().as_u16();
    metrics::response(endpoint, status);
    trace.span.responded(status, error);
    trace.tag(&mut response);
    response
}
