//! W3C trace context (`traceparent`, `tracestate`) in and out of HTTP headers.
//!
//! A caller's valid `traceparent` becomes the parent of the span a plane makes for its
//! request (the trace id is kept); an invalid or missing one starts a new trace. Outgoing,
//! the context of the span that makes a call is written as the headers of that call.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry::Context;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// The caller's trace context, or an empty context (a new trace) without a valid one.
pub fn extract(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract_with_context(&Context::new(), &HeaderExtractor(headers))
}

/// The headers that carry `cx`'s span to the next hop: `traceparent`, and `tracestate` when
/// it has one. Empty when `cx` has no valid span.
pub fn headers(cx: &Context) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Pairs(Vec::with_capacity(2));
    TraceContextPropagator::new().inject_context(cx, &mut out);
    out.0
}

struct Pairs(Vec<(HeaderName, HeaderValue)>);

impl Injector for Pairs {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.push((name, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt as _;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips_and_an_invalid_one_starts_a_new_trace() {
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static(PARENT));
        h.insert("tracestate", HeaderValue::from_static("vendor=x"));
        let cx = extract(&h);
        let parent = cx.span().span_context().clone();
        assert!(parent.is_valid() && parent.is_remote() && parent.is_sampled());
        assert_eq!(
            parent.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let out = headers(&cx);
        assert_eq!(
            out,
            vec![
                (
                    HeaderName::from_static("traceparent"),
                    HeaderValue::from_static(PARENT)
                ),
                (
                    HeaderName::from_static("tracestate"),
                    HeaderValue::from_static("vendor=x")
                ),
            ]
        );

        h.insert("traceparent", HeaderValue::from_static("00-zz-00-01"));
        let cx = extract(&h);
        assert!(!cx.span().span_context().is_valid());
        assert!(headers(&cx).is_empty());
    }
}
