//! A test OpenTelemetry collector: an OTLP/HTTP receiver that decodes what the planes export
//! and keeps every span for assertions.
//!
//! Guarantees: it listens on a port of its own (bound before [`OtlpReceiver::start`]
//! returns, so a plane started after it can export at once); `POST /v1/traces` with an
//! `application/x-protobuf` body is decoded as OTLP's `ExportTraceServiceRequest` (a body that
//! does not decode is a 400 and is counted in [`OtlpReceiver::rejected`]); `GET /stats` says
//! `{"exports", "spans", "rejected"}`; the server task ends when the receiver drops. A
//! counting receiver ([`Keep::Count`], the benchmarks' `otlp-receiver`) decodes everything
//! but keeps only the counts.

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
    /// Attribute keys the span carried more than once (the last value is in `attributes`).
    pub repeated: Vec<String>,
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

/// What the receiver keeps of the spans it decodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Keep {
    /// Every span, for assertions.
    #[default]
    Spans,
    /// Only how many.
    Count,
}

#[derive(Debug, Default)]
struct Received {
    keep: Keep,
    spans: Vec<ReceivedSpan>,
    span_count: usize,
    exports: usize,
    rejected: usize,
    /// The headers of the latest export.
    headers: HeaderMap,
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
    /// Binds a free port on 127.0.0.1, keeping every span, and serves until dropped.
    pub async fn start() -> anyhow::Result<Self> {
        Self::serve("127.0.0.1:0".parse()?, Keep::Spans).await
    }

    /// Binds `listen` and serves until dropped, keeping what `keep` says.
    pub async fn serve(listen: SocketAddr, keep: Keep) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Received {
            keep,
            ..Received::default()
        }));
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/stats", axum::routing::get(stats))
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

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many spans were received (kept or not).
    pub fn span_count(&self) -> usize {
        self.lock().span_count
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().spans.clone()
    }

    /// How many export requests were received (decoded or not).
    pub fn exports(&self) -> usize {
        self.lock().exports
    }

    /// A header of the latest export request.
    pub fn last_header(&self, name: &str) -> Option<String> {
        let r = self.lock();
        let value = r.headers.get(name)?;
        Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
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

async fn stats(State(received): State<Shared>) -> axum::Json<Value> {
    let r = received.lock().unwrap_or_else(PoisonError::into_inner);
    axum::Json(serde_json::json!({
        "exports": r.exports, "spans": r.span_count, "rejected": r.rejected,
    }))
}

async fn traces(
    State(received): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    let protobuf = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes() == b"application/x-protobuf");
    // Decoded before the lock: a counting receiver under load decodes on every core.
    let decoded = ExportTraceServiceRequest::decode(body.as_ref());
    let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
    received.exports += 1;
    received.headers = headers;
    let Some(request) = decoded.ok().filter(|_| protobuf) else {
        received.rejected += 1;
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    if received.keep == Keep::Count {
        let spans = request.resource_spans.iter().flat_map(|r| &r.scope_spans);
        received.span_count += spans.map(|s| s.spans.len()).sum::<usize>();
        return (
            StatusCode::OK,
            ExportTraceServiceResponse::default().encode_to_vec(),
        );
    }
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
            received.span_count += 1;
            received.spans.push(ReceivedSpan {
                service: service.clone(),
                trace_id: hex::encode(&span.trace_id),
                span_id: hex::encode(&span.span_id),
                parent_span_id: hex::encode(&span.parent_span_id),
                name: span.name,
                kind: span.kind,
                status: span.status.map_or(0, |s| s.code),
                attributes: attributes(&span.attributes),
                repeated: repeated(&span.attributes),
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

fn repeated(kvs: &[KeyValue]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    kvs.iter()
        .filter(|kv| !seen.insert(kv.key.as_str()))
        .map(|kv| kv.key.clone())
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
