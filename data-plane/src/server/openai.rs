//! The OpenAI inbound dialect: `/v1/chat/completions` and `/v1/embeddings`.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};

use super::relay::{self, Relay};
use super::respond::Trace;
use super::App;
use crate::error::ApiError;
use crate::metrics::{self, RequestLabels};
use crate::pipeline::{self, auth, body};
use crate::providers::{Call, ChatReply, ChatRequest, Deployment, JsonReply, Provider};
use crate::snapshot::Route;

/// `POST /v1/chat/completions`, streaming or not.
pub async fn chat_completions(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let trace = Trace::start();
    let result = chat(&app, &headers, body, &trace).await;
    finish("chat", &trace, result)
}

/// `POST /v1/embeddings`.
pub async fn embeddings(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let trace = Trace::start();
    let result = embed(&app, &headers, body, &trace).await;
    finish("embeddings", &trace, result)
}

fn finish(endpoint: &'static str, trace: &Trace, result: Result<Response, ApiError>) -> Response {
    let mut response = result.unwrap_or_else(|e| {
        metrics::error(endpoint, e.kind());
        e.into_response()
    });
    trace.tag(&mut response);
    response
}

/// The route's timeout, else the provider's, else the process default.
fn timeout_for(app: &App, route: &Route, deployment: &Deployment) -> Duration {
    route
        .timeout
        .or(deployment.provider.timeout())
        .unwrap_or(app.inner.default_timeout)
}

async fn chat(
    app: &App,
    headers: &HeaderMap,
    raw: Body,
    trace: &Trace,
) -> Result<Response, ApiError> {
    let snapshot = app.inner.snapshots.get().ok_or(ApiError::NotReady)?;
    let key = auth::authenticate(&snapshot, headers)?;
    let bytes = body::read(raw, headers, app.inner.max_body).await?;
    let json = body::parse_object(&bytes)?;
    let fields = body::chat(&json)?;
    let route = pipeline::resolve(&snapshot, &key, &fields.model)?;
    let deployment = route
        .primary()
        .ok_or_else(|| ApiError::ModelNotFound(fields.model.clone()))?;
    let call = Call {
        http: &app.inner.http,
        deployment,
        timeout: timeout_for(app, &route, deployment),
    };
    let labels = RequestLabels {
        endpoint: "chat",
        route: &route.alias,
        provider: deployment.provider.id(),
    };

    let sent = Instant::now();
    let reply = deployment
        .provider
        .chat(
            &call,
            ChatRequest {
                body: json,
                stream: fields.stream,
            },
        )
        .await;
    let upstream = sent.elapsed();
    match reply {
        Err(e) => {
            metrics::request_done(labels, e.status().as_u16(), trace.started.elapsed());
            Err(e.into())
        }
        Ok(ChatReply::Json(reply)) => Ok(json_response(trace, labels, deployment, upstream, reply)),
        Ok(ChatReply::Stream(chunks)) => {
            metrics::upstream_first_byte(deployment.provider.id(), upstream);
            let relay = Relay {
                request_id: trace.id,
                route: route.clone(),
                provider: deployment.provider.id().to_owned(),
                include_usage: fields.include_usage,
                idle: call.timeout,
                started: trace.started,
            };
            let mut response = Response::new(relay::start(app, chunks, relay));
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            let gateway = trace.served(h, deployment, upstream);
            metrics::overhead("chat", gateway);
            Ok(response)
        }
    }
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
    let route = pipeline::resolve(&snapshot, &key, &model)?;
    let deployment = route.primary().ok_or(ApiError::ModelNotFound(model))?;
    let call = Call {
        http: &app.inner.http,
        deployment,
        timeout: timeout_for(app, &route, deployment),
    };
    let labels = RequestLabels {
        endpoint: "embeddings",
        route: &route.alias,
        provider: deployment.provider.id(),
    };

    let sent = Instant::now();
    let reply = deployment.provider.embeddings(&call, json).await;
    let upstream = sent.elapsed();
    match reply {
        Err(e) => {
            metrics::request_done(labels, e.status().as_u16(), trace.started.elapsed());
            Err(e.into())
        }
        Ok(reply) => Ok(json_response(trace, labels, deployment, upstream, reply)),
    }
}

fn json_response(
    trace: &Trace,
    labels: RequestLabels<'_>,
    deployment: &Deployment,
    upstream: Duration,
    reply: JsonReply,
) -> Response {
    if let Some(u) = reply.usage {
        metrics::tokens(labels, u.prompt_tokens, u.completion_tokens);
    }
    let mut response = (StatusCode::OK, reply.body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let gateway = trace.served(h, deployment, upstream);
    metrics::overhead(labels.endpoint, gateway);
    metrics::request_done(labels, 200, trace.started.elapsed());
    response
}
