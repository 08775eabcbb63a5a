//! W3C trace context (`traceparent`, `tracestate`) in and out of HTTP headers.
//!
//! A caller's valid `traceparent` becomes the parent of the span a plane makes for its
//! request (the trace id is kept); an invalid or missing one starts a new trace. Outgoing,
//! the context of the span that makes a call is written as the headers of that call.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::Context;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// The caller's trace context, or an empty context (a new trace) without a valid one.
pub fn extract(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract_with_context(&Context::new(), &HeaderExtractor(headers))
}

/// The caller's `traceparent` and `tracestate` as they came, for a plane that does not trace
/// but still passes the caller's trace on (empty without a valid `traceparent`).
pub fn passed_on(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let Some(parent) = headers.get(&TRACEPARENT) else {
        return Vec::new();
    };
    if !extract(headers).span().span_context().is_valid() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(2);
    out.push((TRACEPARENT, parent.clone()));
    if let Some(state) = headers.get(&TRACESTATE) {
        out.push((TRACESTATE, state.clone()));
    }
    out
}

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The headers that carry `cx`'s span to the next hop: `traceparent`, and `tracestate` when
/// it has one. Empty when `cx` has no valid span. Written by hand (what the W3C propagator
/// writes, without its formatting machinery: this runs once per upstream call).
pub fn headers(cx: &Context) -> Vec<(HeaderName, HeaderValue)> {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return Vec::new();
    }
    // `00-{trace id}-{span id}-{flags}`
    let mut parent = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let hex = |bytes: &[u8], out: &mut [u8]| hex::encode_to_slice(bytes, out).is_ok();
    let written = hex(&sc.trace_id().to_bytes(), &mut parent[3..35])
        && hex(&sc.span_id().to_bytes(), &mut parent[36..52])
        && hex(&[sc.trace_flags().to_u8()], &mut parent[53..55]);
    let mut out = Vec::with_capacity(2);
    if let Some(value) = written
        .then(|| HeaderValue::from_bytes(&parent).ok())
        .flatten()
    {
        out.push((TRACEPARENT, value));
    }
    let state = sc.trace_state().header();
    if let Some(value) = (!state.is_empty())
        .then(|| HeaderValue::from_str(&state).ok())
        .flatten()
    {
        out.push((TRACESTATE, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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

        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        h.insert("traceparent", HeaderValue::from_static(unsampled));
        h.remove("tracestate");
        let out = headers(&extract(&h));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1, unsampled);

        h.insert("traceparent", HeaderValue::from_static("00-zz-00-01"));
        let cx = extract(&h);
        assert!(!cx.span().span_context().is_valid());
        assert!(headers(&cx).is_empty());
        assert!(
            passed_on(&h).is_empty(),
            "an invalid traceparent is not passed on"
        );
    }

    #[test]
    fn without_tracing_the_callers_context_is_passed_on_as_it_came() {
        let mut h = HeaderMap::new();
        assert!(passed_on(&h).is_empty());
        h.insert("traceparent", HeaderValue::from_static(PARENT));
        assert_eq!(
            passed_on(&h),
            vec![(TRACEPARENT, HeaderValue::from_static(PARENT))]
        );
        h.insert("tracestate", HeaderValue::from_static("vendor=x,other=y"));
        assert_eq!(passed_on(&h)[1].1, "vendor=x,other=y");
    }
}
