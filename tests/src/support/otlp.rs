//! A test OpenTelemetry collector: an OTLP/HTTP receiver that decodes what the planes export
//! and keeps every span for assertions.
//!
//! Guarantees: it listens on a port of its own (bound before [`OtlpReceiver::start`]
//! returns, so a plane started after it can export at once); `POST /v1/traces` with an
//! `application/x-protobuf` body is decoded as OTLP's `ExportTraceServiceRequest` (a body that
//! does not decode is a 400 and is counted in [`OtlpReceiver::rejected`]); the server task
//! ends when the receiver drops.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message as _;
use serde_json::Value;

/// One span as received.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the resource that exported it.
    pub service: String,
    /// Hex, as in `traceparent`.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// OTLP's `SpanKind` (`SERVER` = 2, `CLIENT` = 3, `CONSUMER` = 5).
    pub kind: i32,
    /// OTLP's status code (`ERROR` = 2).
    pub status: i32,
    /// Attribute values as JSON (strings, integers, booleans, doubles, arrays).
    pub attributes: BTreeMap<String, Value>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
}

impl ReceivedSpan {
    pub const SERVER: i32 = 2;
    pub const CLIENT: i32 = 3;
    pub const CONSUMER: i32 = 5;
    pub const ERROR: i32 = 2;

    /// An attribute, `Value::Null` when the span lacks it.
    pub fn attr(&self, name: &str) -> &Value {
        self.attributes.get(name).unwrap_or(&Value::Null)
    }

    /// A string attribute, `""` when the span lacks it.
    pub fn str(&self, name: &str) -> &str {
        self.attr(name).as_str().unwrap_or_default()
    }
}

#[derive(Debug, Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    exports: usize,
    rejected: usize,
}

type Shared = Arc<Mutex<Received>>;

/// A running receiver.
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    /// Binds a free port on 127.0.0.1 and serves until dropped.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received = Shared::default();
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .with_state(Arc::clone(&received));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            received,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`, the value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().spans.clone()
    }

    /// How many export requests were received (decoded or not).
    pub fn exports(&self) -> usize {
        self.lock().exports
    }

    /// How many export requests did not decode.
    pub fn rejected(&self) -> usize {
        self.lock().rejected
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn traces(
    State(received): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
    received.exports += 1;
    let protobuf = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes() == b"application/x-protobuf");
    let decoded = ExportTraceServiceRequest::decode(body.as_ref());
    let Some(request) = decoded.ok().filter(|_| protobuf) else {
        received.rejected += 1;
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| json(kv.value.as_ref()))
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            received.spans.push(ReceivedSpan {
                service: service.clone(),
                trace_id: hex::encode(&span.trace_id),
                span_id: hex::encode(&span.span_id),
                parent_span_id: hex::encode(&span.parent_span_id),
                name: span.name,
                kind: span.kind,
                status: span.status.map_or(0, |s| s.code),
                attributes: attributes(&span.attributes),
                start_unix_nanos: span.start_time_unix_nano,
                end_unix_nanos: span.end_time_unix_nano,
            });
        }
    }
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    (StatusCode::OK, answer)
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, Value> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), json(kv.value.as_ref())))
        .collect()
}

fn json(value: Option<&AnyValue>) -> Value {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Value::from(s.as_str()),
        Some(any_value::Value::BoolValue(b)) => Value::from(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| json(Some(v))).collect())
        }
        _ => Value::Null,
    }
}
