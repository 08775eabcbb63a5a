//! The control plane's OpenTelemetry spans (configured like the data plane's: the `telemetry`
//! crate reads the `OTEL_*` variables; off by default).
//!
//! - **An admin request** ([`admin`], an axum middleware on the admin API's routes; health,
//!   readiness and metrics are not traced): kind `SERVER`, named `{method} {route}` with the
//!   route's template (`/admin/keys/{id}`, from the OpenAPI document: [`Routes`]), never the
//!   path's values; the caller's `traceparent` as parent; `http.request.method`, `http.route`,
//!   `http.response.status_code`; a 5xx marks it failed. A path no template matches is named
//!   by its method alone.
//! - **A fold batch** ([`FoldSpan`], around `usage::fold::Folder::fold`): kind `CONSUMER`,
//!   `fold usage`; the batch's size, how many events were new and how many duplicates, and
//!   whether the transaction committed.
//!
//! With traces off both return at their first branch.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use telemetry::opentelemetry::trace::{
    SpanBuilder, SpanKind, Status, TraceContextExt as _, Tracer as _,
};
use telemetry::opentelemetry::{Context, KeyValue};
use telemetry::Tracer;

use crate::usage::fold::Folded;

/// What the admin middleware needs: the tracer and the route templates (`None` when off).
#[derive(Debug, Clone, Default)]
pub struct AdminSpans(Option<Arc<(Tracer, Routes)>>);

impl AdminSpans {
    /// Spans of `tracer` for the routes in `templates` (`/admin/keys/{id}`).
    pub fn new<'a>(tracer: Tracer, templates: impl IntoIterator<Item = &'a str>) -> Self {
        if tracer.get().is_none() {
            return Self(None);
        }
        Self(Some(Arc::new((tracer, Routes::new(templates)))))
    }
}

/// Route templates, to name a request by its route rather than its path (whose ids would
/// make every span name different).
#[derive(Debug, Default)]
pub struct Routes(Vec<String>);

impl Routes {
    pub fn new<'a>(templates: impl IntoIterator<Item = &'a str>) -> Self {
        Self(templates.into_iter().map(str::to_owned).collect())
    }

    /// The template `path` matches (a `{name}` segment matches any one segment); the one with
    /// the most literal segments if several do.
    pub fn find(&self, path: &str) -> Option<&str> {
        let segments: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .filter_map(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                let fits = parts.len() == segments.len()
                    && parts
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t == s || is_param(t));
                fits.then(|| (parts.iter().filter(|t| !is_param(t)).count(), template))
            })
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, template)| template.as_str())
    }
}

fn is_param(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

/// Traces one admin API request (see the module docs).
pub async fn admin(State(spans): State<AdminSpans>, request: Request, next: Next) -> Response {
    let on = spans.0.as_deref();
    let Some((t, routes)) = on.and_then(|(tracer, routes)| Some((tracer.get()?, routes))) else {
        return next.run(request).await;
    };
    let method = request.method().as_str().to_owned();
    let route = routes.find(request.uri().path()).map(str::to_owned);
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.clone(),
    };
    let mut attributes = vec![KeyValue::new("http.request.method", method)];
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route));
    }
    let builder = SpanBuilder::from_name(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes);
    let parent = telemetry::propagate::extract(request.headers());
    let cx = parent.with_span(t.build_with_context(builder, &parent));
    let response = next.run(request).await;
    let status = response.status();
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if status.is_server_error() {
        span.set_status(Status::error(status.as_str().to_owned()));
    }
    span.end();
    response
}

/// The span of one fold batch; ended with what the batch did.
#[derive(Debug, Default)]
pub struct FoldSpan(Option<Context>);

impl FoldSpan {
    /// Starts the span of a batch of `events` messages.
    pub fn start(tracer: &Tracer, events: usize) -> Self {
        let Some(t) = tracer.get() else {
            return Self(None);
        };
        let builder = SpanBuilder::from_name("fold usage")
            .with_kind(SpanKind::Consumer)
            .with_attributes([
                KeyValue::new("messaging.system", "nats"),
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new("messaging.destination.name", proto::USAGE_STREAM),
                KeyValue::new("messaging.batch.message_count", events as i64),
            ]);
        Self(Some(Context::new().with_span(t.build(builder))))
    }

    /// Ends the span: what the committed batch did, or that it failed (it is delivered again).
    pub fn end(self, result: &anyhow::Result<Folded>) {
        let Some(cx) = self.0 else {
            return;
        };
        let span = cx.span();
        match result {
            Ok(folded) => span.set_attributes([
                KeyValue::new("switchyard.fold.new", folded.new as i64),
                KeyValue::new("switchyard.fold.duplicates", folded.duplicates as i64),
            ]),
            Err(_) => {
                span.set_attribute(KeyValue::new("error.type", "fold_failed"));
                span.set_status(Status::error("the batch was not committed"));
            }
        }
        span.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_named_by_their_template() {
        let routes = Routes::new([
            "/admin/keys",
            "/admin/keys/{id}",
            "/admin/keys/{id}/rotate",
            "/admin/pricing/{model}",
            "/admin/pricing/history",
        ]);
        let cases = [
            ("/admin/keys", Some("/admin/keys")),
            ("/admin/keys/0194-abc", Some("/admin/keys/{id}")),
            (
                "/admin/keys/0194-abc/rotate",
                Some("/admin/keys/{id}/rotate"),
            ),
            ("/admin/pricing/history", Some("/admin/pricing/history")),
            ("/admin/pricing/gpt-4o", Some("/admin/pricing/{model}")),
            ("/admin/nothing", None),
            ("/admin/keys/a/b/c", None),
        ];
        for (path, want) in cases {
            assert_eq!(routes.find(path), want, "{path}");
        }
    }
}
