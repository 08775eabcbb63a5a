//! OTLP trace export requests (`ExportTraceServiceRequest`, protobuf), encoded straight from
//! the SDK's [`SpanData`].
//!
//! `opentelemetry-otlp` first converts every span into the generated protobuf structs (an
//! owned `String` per attribute key and value, a `Vec` per list) and then encodes those: most
//! of the exporting thread's cost per span, measured with callgrind. Here each span is written
//! once into one growing buffer. The field numbers are those of
//! `opentelemetry/proto/trace/v1/trace.proto`, `common/v1/common.proto` and
//! `resource/v1/resource.proto`; the tests decode what this writes with the generated types of
//! `opentelemetry-proto`, so a wrong number or wire type fails there.
//!
//! The resource is encoded once, when the SDK hands it over ([`Encoder::new`]), and copied
//! into each request as bytes.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;

/// Protobuf wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// `Span.flags`: the W3C trace flags in the low byte, plus whether the parent's remoteness is
/// known (always, here) and whether it is remote.
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/// Encodes export requests for one resource.
#[derive(Debug, Clone, Default)]
pub struct Encoder {
    /// The `Resource` message, encoded once.
    resource: Vec<u8>,
    resource_schema_url: Option<String>,
}

impl Encoder {
    pub fn new(resource: &Resource) -> Self {
        let mut w = Writer::default();
        for (key, value) in resource.iter() {
            w.message(1, |w| {
                w.string(1, key.as_str());
                w.message(2, |w| any_value(w, value));
            });
        }
        Self {
            resource: w.buf,
            resource_schema_url: resource.schema_url().map(str::to_owned),
        }
    }

    /// The `ExportTraceServiceRequest` carrying `spans`, grouped by instrumentation scope.
    pub fn request(&self, spans: &[SpanData]) -> Vec<u8> {
        // A plane has one or two scopes; spans are grouped under them in order of appearance.
        let mut scopes: Vec<(&InstrumentationScope, Vec<&SpanData>)> = Vec::new();
        for span in spans {
            let scope = &span.instrumentation_scope;
            match scopes.iter_mut().find(|(s, _)| *s == scope) {
                Some((_, group)) => group.push(span),
                None => scopes.push((scope, vec![span])),
            }
        }
        let mut w = Writer::with_capacity(256 + spans.len() * 400);
        // ExportTraceServiceRequest.resource_spans = 1
        w.message(1, |w| {
            // ResourceSpans.resource = 1
            w.bytes(1, &self.resource);
            for (scope, spans) in &scopes {
                // ResourceSpans.scope_spans = 2
                w.message(2, |w| scope_spans(w, scope, spans));
            }
            if let Some(url) = &self.resource_schema_url {
                w.string(3, url);
            }
        });
        w.buf
    }
}

fn scope_spans(w: &mut Writer, scope: &InstrumentationScope, spans: &[&SpanData]) {
    // ScopeSpans.scope = 1 (InstrumentationScope: name 1, version 2, attributes 3)
    w.message(1, |w| {
        w.string(1, scope.name());
        if let Some(version) = scope.version() {
            w.string(2, version);
        }
        attributes(w, 3, scope.attributes());
    });
    for span in spans {
        // ScopeSpans.spans = 2
        w.message(2, |w| self::span(w, span));
    }
    if let Some(url) = scope.schema_url() {
        w.string(3, url);
    }
}

fn span(w: &mut Writer, span: &SpanData) {
    let cx = &span.span_context;
    w.bytes(1, &cx.trace_id().to_bytes());
    w.bytes(2, &cx.span_id().to_bytes());
    let state = cx.trace_state().header();
    if !state.is_empty() {
        w.string(3, &state);
    }
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        w.bytes(4, &span.parent_span_id.to_bytes());
    }
    w.string(5, &span.name);
    w.varint_field(6, kind(&span.span_kind));
    w.fixed64(7, nanos(span.start_time));
    w.fixed64(8, nanos(span.end_time));
    attributes(w, 9, span.attributes.iter());
    w.varint_field(10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        // Span.events = 11 (Event: time 1, name 2, attributes 3, dropped 4)
        w.message(11, |w| {
            w.fixed64(1, nanos(event.timestamp));
            w.string(2, &event.name);
            attributes(w, 3, event.attributes.iter());
            w.varint_field(4, u64::from(event.dropped_attributes_count));
        });
    }
    w.varint_field(12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        // Span.links = 13 (Link: trace id 1, span id 2, state 3, attributes 4, dropped 5,
        // flags 6)
        w.message(13, |w| {
            let lcx = &link.span_context;
            w.bytes(1, &lcx.trace_id().to_bytes());
            w.bytes(2, &lcx.span_id().to_bytes());
            let state = lcx.trace_state().header();
            if !state.is_empty() {
                w.string(3, &state);
            }
            attributes(w, 4, link.attributes.iter());
            w.varint_field(5, u64::from(link.dropped_attributes_count));
            let remote = if lcx.is_remote() { FLAG_IS_REMOTE } else { 0 };
            w.fixed32(
                6,
                u32::from(lcx.trace_flags().to_u8()) | FLAG_HAS_IS_REMOTE | remote,
            );
        });
    }
    w.varint_field(14, u64::from(span.links.dropped_count));
    // Span.status = 15 (Status: message 2, code 3; UNSET 0, OK 1, ERROR 2)
    match &span.status {
        Status::Unset => {}
        Status::Ok => w.message(15, |w| w.varint_field(3, 1)),
        Status::Error { description } => w.message(15, |w| {
            w.string(2, description);
            w.varint_field(3, 2);
        }),
    }
    let remote = if span.parent_span_is_remote {
        FLAG_IS_REMOTE
    } else {
        0
    };
    w.fixed32(
        16,
        u32::from(cx.trace_flags().to_u8()) | FLAG_HAS_IS_REMOTE | remote,
    );
}

/// `Span.SpanKind`.
fn kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn attributes<'a>(w: &mut Writer, field: u32, attributes: impl Iterator<Item = &'a KeyValue>) {
    for kv in attributes {
        // KeyValue: key 1, value 2
        w.message(field, |w| {
            w.string(1, kv.key.as_str());
            w.message(2, |w| any_value(w, &kv.value));
        });
    }
}

/// The fields of an `AnyValue` (string 1, bool 2, int 3, double 4, array 5).
fn any_value(w: &mut Writer, value: &Value) {
    match value {
        Value::String(s) => w.string_always(1, s.as_str()),
        Value::Bool(b) => w.key_varint(2, u64::from(*b)),
        // int64 is a two's-complement varint.
        Value::I64(i) => w.key_varint(3, u64::from_ne_bytes(i.to_ne_bytes())),
        Value::F64(f) => {
            w.key(4, FIXED64);
            w.buf.extend_from_slice(&f.to_le_bytes());
        }
        Value::Array(array) => w.message(5, |w| match array {
            // ArrayValue.values = 1
            Array::Bool(v) => v
                .iter()
                .for_each(|b| w.message(1, |w| w.key_varint(2, u64::from(*b)))),
            Array::I64(v) => v.iter().for_each(|i| {
                w.message(1, |w| w.key_varint(3, u64::from_ne_bytes(i.to_ne_bytes())))
            }),
            Array::F64(v) => v.iter().for_each(|f| {
                w.message(1, |w| {
                    w.key(4, FIXED64);
                    w.buf.extend_from_slice(&f.to_le_bytes());
                })
            }),
            Array::String(v) => v
                .iter()
                .for_each(|s| w.message(1, |w| w.string_always(1, s.as_str()))),
            // A kind of array a later SDK adds is sent empty rather than wrong.
            _ => {}
        }),
        // A kind of value a later SDK adds is sent as its text.
        other => w.string_always(1, &other.to_string()),
    }
}

/// A protobuf writer into one buffer. Fields at their default value are left out, as proto3
/// does, except where a oneof needs them present (`*_always`, `key_varint`).
#[derive(Debug, Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from((field << 3) | wire));
    }

    fn key_varint(&mut self, field: u32, v: u64) {
        self.key(field, VARINT);
        self.varint(v);
    }

    fn varint_field(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.key_varint(field, v);
        }
    }

    fn fixed64(&mut self, field: u32, v: u64) {
        self.key(field, FIXED64);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn fixed32(&mut self, field: u32, v: u32) {
        self.key(field, FIXED32);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.bytes_always(field, bytes);
        }
    }

    fn bytes_always(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, LEN);
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    fn string_always(&mut self, field: u32, s: &str) {
        self.bytes_always(field, s.as_bytes());
    }

    /// A nested message: its length is known only once written, so one byte is kept for it
    /// and the rest shifted up when the length needs more (messages of 128 bytes or more).
    fn message(&mut self, field: u32, write: impl FnOnce(&mut Self)) {
        self.key(field, LEN);
        let at = self.buf.len();
        self.buf.push(0);
        write(self);
        let len = self.buf.len() - at - 1;
        if len < 0x80 {
            self.buf[at] = len as u8;
            return;
        }
        let mut prefix = [0u8; 10];
        let mut n = 0;
        let mut v = len as u64;
        while v >= 0x80 {
            prefix[n] = (v as u8) | 0x80;
            v >>= 7;
            n += 1;
        }
        prefix[n] = v as u8;
        self.buf.splice(at..=at, prefix[..=n].iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use opentelemetry::trace::{Event, Link, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message as _;

    use super::*;

    fn span(name: &'static str, scope: &InstrumentationScope, parent: u64) -> SpanData {
        let cx = SpanContext::new(
            TraceId::from(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10u128),
            SpanId::from(0x1112_1314_1516_1718u64 + parent),
            TraceFlags::SAMPLED,
            false,
            TraceState::from_key_value([("vendor", "x")]).unwrap_or_default(),
        );
        let long = "y".repeat(300);
        let mut events = SpanEvents::default();
        events.events.push(Event::new(
            "retry",
            UNIX_EPOCH + Duration::from_secs(5),
            vec![KeyValue::new("n", 1i64)],
            0,
        ));
        let mut links = SpanLinks::default();
        links.links.push(Link::with_context(cx.clone()));
        links.dropped_count = 1;
        SpanData {
            span_context: cx.clone(),
            parent_span_id: SpanId::from(parent),
            parent_span_is_remote: parent == 7,
            span_kind: SpanKind::Client,
            name: Cow::Borrowed(name),
            start_time: UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789),
            end_time: UNIX_EPOCH + Duration::from_nanos(1_700_000_000_223_456_789),
            attributes: vec![
                KeyValue::new("gen_ai.system", "openai"),
                KeyValue::new("gen_ai.usage.input_tokens", 1234i64),
                KeyValue::new("negative", -5i64),
                KeyValue::new("ratio", 0.25f64),
                KeyValue::new("stream", true),
                KeyValue::new("long", long.clone()),
                KeyValue::new(
                    "gen_ai.response.finish_reasons",
                    Value::Array(Array::String(vec!["stop".into(), "length".into()])),
                ),
            ],
            dropped_attributes_count: 2,
            events,
            links,
            status: Status::Error {
                description: "upstream 503".into(),
            },
            instrumentation_scope: scope.clone(),
        }
    }

    #[test]
    fn requests_decode_with_the_generated_types() {
        let resource = Resource::builder_empty()
            .with_attribute(KeyValue::new("service.name", "switchyard-data-plane"))
            .build();
        let a = InstrumentationScope::builder("a")
            .with_version("1.0")
            .build();
        let b = InstrumentationScope::builder("b").build();
        let spans = vec![span("one", &a, 7), span("two", &b, 0), span("three", &a, 9)];
        let bytes = Encoder::new(&resource).request(&spans);
        let decoded =
            ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap_or_else(|e| panic!("{e}"));

        assert_eq!(decoded.resource_spans.len(), 1);
        let rs = &decoded.resource_spans[0];
        let attrs = &rs
            .resource
            .as_ref()
            .map(|r| r.attributes.clone())
            .unwrap_or_default();
        assert_eq!(attrs.len(), 1);
        assert_eq!(attrs[0].key, "service.name");
        assert_eq!(rs.scope_spans.len(), 2, "grouped by scope");
        let first = &rs.scope_spans[0];
        let scope = first.scope.as_ref().unwrap_or_else(|| panic!("no scope"));
        assert_eq!((scope.name.as_str(), scope.version.as_str()), ("a", "1.0"));
        let names: Vec<&str> = first.spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["one", "three"]);
        assert_eq!(rs.scope_spans[1].spans[0].name, "two");

        let s = &first.spans[0];
        assert_eq!(
            s.trace_id,
            0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10u128.to_be_bytes()
        );
        assert_eq!(s.span_id, (0x1112_1314_1516_1718u64 + 7).to_be_bytes());
        assert_eq!(s.parent_span_id, 7u64.to_be_bytes());
        assert_eq!(s.trace_state, "vendor=x");
        assert_eq!(s.kind, 3);
        assert_eq!(s.start_time_unix_nano, 1_700_000_000_123_456_789);
        assert_eq!(s.end_time_unix_nano, 1_700_000_000_223_456_789);
        assert_eq!(s.flags, 0x01 | 0x100 | 0x200, "sampled, parent remote");
        assert_eq!(rs.scope_spans[1].spans[0].flags, 0x01 | 0x100);
        assert!(
            rs.scope_spans[1].spans[0].parent_span_id.is_empty(),
            "a root"
        );
        assert_eq!(s.dropped_attributes_count, 2);
        assert_eq!(s.dropped_links_count, 1);
        let status = s.status.as_ref().unwrap_or_else(|| panic!("no status"));
        assert_eq!((status.code, status.message.as_str()), (2, "upstream 503"));
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.events[0].name, "retry");
        assert_eq!(s.events[0].time_unix_nano, 5_000_000_000);
        assert_eq!(s.links.len(), 1);
        assert_eq!(s.links[0].span_id, s.span_id);

        let value = |key: &str| {
            s.attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.clone())
                .and_then(|v| v.value)
                .unwrap_or_else(|| panic!("no {key}"))
        };
        assert_eq!(value("gen_ai.system"), Any::StringValue("openai".into()));
        assert_eq!(value("gen_ai.usage.input_tokens"), Any::IntValue(1234));
        assert_eq!(value("negative"), Any::IntValue(-5));
        assert_eq!(value("ratio"), Any::DoubleValue(0.25));
        assert_eq!(value("stream"), Any::BoolValue(true));
        assert_eq!(value("long"), Any::StringValue("y".repeat(300)));
        let Any::ArrayValue(reasons) = value("gen_ai.response.finish_reasons") else {
            panic!("not an array");
        };
        let reasons: Vec<_> = reasons.values.into_iter().filter_map(|v| v.value).collect();
        assert_eq!(
            reasons,
            [
                Any::StringValue("stop".into()),
                Any::StringValue("length".into())
            ]
        );
    }

    #[test]
    fn long_messages_get_multi_byte_lengths() {
        for len in [0usize, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let mut w = Writer::default();
            w.message(1, |w| w.buf.extend(std::iter::repeat_n(7u8, len)));
            let mut expected = Writer::default();
            expected.bytes_always(1, &vec![7u8; len]);
            assert_eq!(w.buf, expected.buf, "length {len}");
        }
    }
}
