//! The request's OpenTelemetry spans, after the GenAI semantic conventions.
//!
//! - **The request span** ([`RequestSpan`], kind `SERVER`): started by `pipeline::handle`
//!   before anything else, the caller's W3C `traceparent`/`tracestate` as its parent; named
//!   `{gen_ai.operation.name} {gen_ai.request.model}` once the body names the model. It carries
//!   the request id, endpoint, key id, team ([`RequestSpan::asked`]); the provider of the
//!   attempt that ended the request ([`RequestSpan::served_by`]); the model that answered and
//!   why it stopped (read from the provider's answer: [`answer`]); the usage the request was
//!   metered with and its outcome ([`RequestSpan::settled`], from the one usage event); and
//!   the HTTP status ([`RequestSpan::responded`]).
//! - **An attempt span** per upstream call ([`AttemptSpan`], kind `CLIENT`), a child of the
//!   request span: provider, deployment, upstream model, attempt number, outcome. Its context
//!   is the `traceparent` the upstream request carries (`providers::Call::trace`).
//!
//! Each attribute is set once per span (the SDK keeps repeats), and only what is worth its
//! export cost: every attribute is copied, encoded and sent for every request.
//!
//! Never in a span: a key's secret or hash, prompt or answer text, provider credentials.
//!
//! **When the request span ends.** It is shared by whoever still works on the request and
//! ends when the last of them lets go (an OpenTelemetry span ends when dropped): the handler's
//! frame for a complete answer or an error, the stream relay when the stream ends (after its
//! usage is settled). Nothing else may keep a clone beyond the request.
//!
//! **Off costs nothing.** With traces off every value here is `None` inside: no span is built,
//! each method returns at its first branch; the one thing kept is a caller's own valid
//! `traceparent`/`tracestate`, passed upstream as they came (nothing is allocated without one). Attribute values are built
//! only for a span that records (sampled).

pub mod answer;

use http::{HeaderMap, HeaderName, HeaderValue};
use telemetry::opentelemetry::trace::{
    SpanBuilder, SpanKind, Status, TraceContextExt as _, Tracer as _,
};
use telemetry::opentelemetry::{Context, KeyValue, StringValue, Value};
use telemetry::Tracer;
use uuid::Uuid;

use crate::metrics::gen_ai;
use crate::providers::{Deployment, UpstreamError};
use crate::snapshot::KeyPolicy;
use answer::Answered;

/// Attribute names (OpenTelemetry's where the conventions have one, `switchyard.*` else).
pub mod attr {
    pub const OPERATION: &str = "gen_ai.operation.name";
    pub const PROVIDER: &str = "gen_ai.provider.name";
    /// The name older conventions (and many backends) use for the provider.
    pub const SYSTEM: &str = "gen_ai.system";
    pub const REQUEST_MODEL: &str = "gen_ai.request.model";
    pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
    pub const FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
    pub const INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    pub const OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
    pub const STATUS: &str = "http.response.status_code";
    pub const ERROR: &str = "error.type";
    pub const SERVER: &str = "server.address";
    pub const REQUEST_ID: &str = "switchyard.request.id";
    pub const ENDPOINT: &str = "switchyard.endpoint";
    pub const ROUTE: &str = "switchyard.route";
    pub const KEY_ID: &str = "switchyard.key.id";
    pub const TEAM: &str = "switchyard.team";
    pub const PROVIDER_ID: &str = "switchyard.provider";
    pub const DEPLOYMENT: &str = "switchyard.deployment";
    pub const ATTEMPT: &str = "switchyard.attempt";
    pub const ATTEMPTS: &str = "switchyard.attempts";
    pub const OUTCOME: &str = "switchyard.outcome";
    pub const ESTIMATED: &str = "switchyard.usage.estimated";
    pub const COST: &str = "switchyard.cost_usd";
}

/// The request's span (see the module docs for what it carries and when it ends).
#[derive(Debug, Clone, Default)]
pub struct RequestSpan {
    cx: Option<Context>,
    /// Traces off: the caller's own `traceparent`/`tracestate`, passed upstream as they came
    /// (empty if the caller sent none), so a caller's trace still reaches the provider.
    caller: Vec<(HeaderName, HeaderValue)>,
}

impl RequestSpan {
    /// Starts the span of a request to `endpoint` (its metric label), a child of the caller's
    /// trace context if `headers` carry one.
    pub fn start(tracer: &Tracer, headers: &HeaderMap, endpoint: &'static str, id: Uuid) -> Self {
        let Some(tracer) = tracer.get() else {
            return Self {
                cx: None,
                caller: telemetry::propagate::passed_on(headers),
            };
        };
        let parent = telemetry::propagate::extract(headers);
        let operation = gen_ai::operation_name(endpoint);
        let builder = SpanBuilder::from_name(operation)
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new(attr::OPERATION, operation),
                KeyValue::new(attr::ENDPOINT, endpoint),
                KeyValue::new(attr::REQUEST_ID, id.to_string()),
            ]);
        let span = tracer.build_with_context(builder, &parent);
        Self {
            cx: Some(parent.with_span(span)),
            caller: Vec::new(),
        }
    }

    /// The span's context, if it records (is sampled and not ended).
    fn recording(&self) -> Option<&Context> {
        self.cx.as_ref().filter(|cx| cx.span().is_recording())
    }

    /// The body is read: who asks, for which model (also the span's name from now on).
    pub fn asked(&self, endpoint: &'static str, model: &str, key: &KeyPolicy) {
        let Some(cx) = self.recording() else {
            return;
        };
        let span = cx.span();
        span.update_name(format!("{} {model}", gen_ai::operation_name(endpoint)));
        let mut attributes = Vec::with_capacity(3);
        attributes.push(KeyValue::new(attr::REQUEST_MODEL, model.to_owned()));
        if let Some(id) = &key.id {
            attributes.push(KeyValue::new(attr::KEY_ID, id.clone()));
        }
        if let Some(team) = &key.team {
            attributes.push(KeyValue::new(attr::TEAM, team.clone()));
        }
        span.set_attributes(attributes);
    }

    /// The route the request reached (its name in usage events and metrics), when it is not
    /// the model the body named (a preference header chose it).
    pub fn routed(&self, model: &str, alias: &str) {
        if let Some(cx) = self.recording().filter(|_| alias != model) {
            cx.span()
                .set_attribute(KeyValue::new(attr::ROUTE, alias.to_owned()));
        }
    }

    /// The deployment whose attempt ended the request (answered it, or failed it for good).
    pub fn served_by(&self, deployment: &Deployment) {
        let Some(cx) = self.recording() else {
            return;
        };
        let provider = gen_ai::provider_name(deployment.provider.kind());
        cx.span().set_attributes([
            KeyValue::new(attr::PROVIDER, provider),
            KeyValue::new(attr::SYSTEM, provider),
            KeyValue::new(attr::PROVIDER_ID, deployment.provider.id().to_owned()),
        ]);
    }

    /// Starts the span of an attempt on `deployment`, and the headers that carry it upstream.
    pub fn attempt(
        &self,
        tracer: &Tracer,
        endpoint: &'static str,
        deployment: &Deployment,
        number: u32,
    ) -> AttemptSpan {
        let (Some(tracer), Some(cx)) = (tracer.get(), self.cx.as_ref()) else {
            return AttemptSpan {
                cx: None,
                headers: self.caller.clone(),
            };
        };
        let operation = gen_ai::operation_name(endpoint);
        let provider = gen_ai::provider_name(deployment.provider.kind());
        let recording = cx.span().is_recording();
        // A request that is not sampled still sends a context upstream (flagged unsampled),
        // from a span that costs no name and no attributes.
        let mut builder = SpanBuilder::from_name(operation).with_kind(SpanKind::Client);
        if recording {
            builder.name = format!("{operation} {}", deployment.model).into();
            let mut attributes = vec![
                KeyValue::new(attr::OPERATION, operation),
                KeyValue::new(attr::PROVIDER, provider),
                KeyValue::new(attr::SYSTEM, provider),
                KeyValue::new(attr::REQUEST_MODEL, deployment.model.clone()),
                KeyValue::new(attr::DEPLOYMENT, deployment.id.clone()),
                KeyValue::new(attr::ATTEMPT, i64::from(number)),
            ];
            if let Some(host) = deployment.endpoints.chat.host_str() {
                attributes.push(KeyValue::new(attr::SERVER, host.to_owned()));
            }
            builder = builder.with_attributes(attributes);
        }
        let span = tracer.build_with_context(builder, cx);
        let cx = cx.with_span(span);
        let headers = telemetry::propagate::headers(&cx);
        AttemptSpan {
            cx: Some(cx),
            headers,
        }
    }

    /// What the provider's answer says of itself: the model that answered, why it stopped.
    pub fn answered(&self, answered: &Answered) {
        let Some(cx) = self.recording() else {
            return;
        };
        let span = cx.span();
        if let Some(model) = &answered.model {
            span.set_attribute(KeyValue::new(attr::RESPONSE_MODEL, model.clone()));
        }
        if !answered.finish_reasons.is_empty() {
            let reasons: Vec<StringValue> = answered
                .finish_reasons
                .iter()
                .map(|r| StringValue::from(r.clone()))
                .collect();
            span.set_attribute(KeyValue::new(
                attr::FINISH_REASONS,
                Value::Array(reasons.into()),
            ));
        }
    }

    /// Reads a complete answer's body (see [`answer`]) into the span, if it records.
    pub fn answer_body(&self, body: &[u8]) {
        if self.recording().is_some() {
            self.answered(&Answered::body(body));
        }
    }

    /// An empty reader of a stream's answer if the span records, else `None` (nothing read).
    pub fn stream_reader(&self) -> Option<Answered> {
        self.recording().map(|_| Answered::default())
    }

    /// The request's one usage event: the tokens it was metered with, its outcome.
    pub fn settled(&self, event: &proto::UsageEvent) {
        let Some(cx) = self.recording() else {
            return;
        };
        let span = cx.span();
        span.set_attributes([
            KeyValue::new(attr::INPUT_TOKENS, event.usage.prompt_tokens as i64),
            KeyValue::new(attr::OUTPUT_TOKENS, event.usage.completion_tokens as i64),
            KeyValue::new(attr::OUTCOME, outcome(event.outcome)),
            KeyValue::new(attr::ATTEMPTS, i64::from(event.attempts)),
            KeyValue::new(attr::COST, event.cost_usd.to_string()),
        ]);
        if event.usage_estimated {
            span.set_attribute(KeyValue::new(attr::ESTIMATED, true));
        }
    }

    /// The status the client got, and the error kind if the request failed. A server error
    /// marks the span as failed (a 4xx is the caller's).
    pub fn responded(&self, status: u16, error: Option<&'static str>) {
        let Some(cx) = self.recording() else {
            return;
        };
        let span = cx.span();
        span.set_attribute(KeyValue::new(attr::STATUS, i64::from(status)));
        if let Some(kind) = error {
            span.set_attribute(KeyValue::new(attr::ERROR, kind));
            if status >= 500 {
                span.set_status(Status::error(kind));
            }
        }
    }

    /// A stream that broke after its head was sent (the client got 200).
    pub fn stream_failed(&self, kind: &'static str) {
        if let Some(cx) = self.recording() {
            cx.span().set_attribute(KeyValue::new(attr::ERROR, kind));
            cx.span().set_status(Status::error(kind));
        }
    }
}

/// The span of one upstream attempt; ended by [`AttemptSpan::end`] with its outcome.
#[derive(Debug, Default)]
pub struct AttemptSpan {
    cx: Option<Context>,
    /// `traceparent` (and `tracestate`) for the upstream request; with traces off, the
    /// caller's own (or none).
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl AttemptSpan {
    /// The headers that carry this attempt's context upstream.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// Ends the attempt: `Ok` (an answer, or a stream's first chunk) or why it failed.
    pub fn end(self, result: Result<(), &UpstreamError>) {
        let Some(cx) = self.cx else {
            return;
        };
        let span = cx.span();
        if span.is_recording() {
            match result {
                Ok(()) => span.set_attribute(KeyValue::new(attr::OUTCOME, "ok")),
                Err(e) => {
                    let status = match e {
                        UpstreamError::Rejected { status, .. }
                        | UpstreamError::Failed { status, .. } => Some(status.as_u16()),
                        _ => None,
                    };
                    if let Some(status) = status {
                        span.set_attribute(KeyValue::new(attr::STATUS, i64::from(status)));
                    }
                    span.set_attributes([
                        KeyValue::new(attr::OUTCOME, e.kind()),
                        KeyValue::new(attr::ERROR, e.kind()),
                    ]);
                    span.set_status(Status::error(e.kind()));
                }
            }
        }
        span.end();
    }
}

fn outcome(outcome: proto::Outcome) -> &'static str {
    match outcome {
        proto::Outcome::Ok => "ok",
        proto::Outcome::UpstreamError => "upstream_error",
        proto::Outcome::Refused => "refused",
    }
}
