//! OpenTelemetry traces, end to end: both planes export over OTLP (HTTP/protobuf) to a test
//! receiver that decodes what it gets (`support::OtlpReceiver`).
//! - Every request to the data plane is one trace: one request span (`SERVER`) with the
//!   gen_ai attributes, the token counts the client saw, and one child span (`CLIENT`) per
//!   upstream attempt (two for a fallback); a caller's `traceparent` is kept, and the
//!   upstream receives the attempt's context as its `traceparent`.
//! - The control plane traces admin requests (named by route template) and fold batches.
//! - A dead or stalled collector neither slows nor fails requests; without `OTEL_*` settings
//!   nothing is traced and nothing is sent upstream.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use switchyard_tests::support::{
    eventually, free_port, DataPlaneSpec, MockProviderOptions, OtlpReceiver, ReceivedSpan, TestEnv,
};

use crate::fixture::{client, sha256_hex, sse_data, UPSTREAM_KEY};

const KEY: &str = "sk-sy-traces-secret-0123456789";
/// Words no span may carry (prompts are not traced).
const PROMPT: &str = "whisper the tracing passphrase";
const DATA_PLANE: &str = "switchyard-data-plane";
const CONTROL_PLANE: &str = "switchyard-control-plane";
const WAIT: Duration = Duration::from_secs(30);

fn config(mock: &str) -> String {
    format!(
        r#"
providers:
  - {{ id: mock, kind: openai_compatible, base_url: "{mock}/v1", api_key: {{ env: MOCK_UPSTREAM_KEY }} }}
  - {{ id: claude, kind: anthropic, base_url: "{mock}", api_key: {{ env: MOCK_UPSTREAM_KEY }} }}
routes:
  - {{ alias: chat, deployments: [{{ provider: mock, model: mock-chat }}] }}
  - {{ alias: chain, strategy: ordered, deployments: [{{ provider: mock, model: first }}, {{ provider: mock, model: second, priority: 1 }}] }}
  - {{ alias: claude, deployments: [{{ provider: claude, model: claude-mock-1 }}] }}
keys:
  - {{ name: tracer, id: key-traces, team: platform, sha256: "{hash}", models: ["*"] }}
"#,
        hash = sha256_hex(KEY)
    )
}

/// The variables that turn traces on, every span sampled, exported every 100 ms with a
/// collector credential (percent-encoded, as the specification writes header values).
fn otel(endpoint: &str) -> Vec<(String, String)> {
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_TRACES_SAMPLER", "always_on"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-collector-key=team%20a,x-tenant=t1",
        ),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into()
}

fn with_otel(mut spec: DataPlaneSpec, vars: Vec<(String, String)>) -> DataPlaneSpec {
    for (k, v) in vars {
        spec = spec.env(k, v);
    }
    spec
}

/// What the client saw of one request.
#[derive(Debug)]
struct Seen {
    request_id: String,
    /// Input and output tokens of the usage in the answer.
    usage: (i64, i64),
}

/// POSTs `body` to `path`; returns the request id and the usage the answer reported (for a
/// stream, from its events).
async fn send(env: &TestEnv, path: &str, body: Value, headers: &[(&str, &str)]) -> Seen {
    let mut request = client()
        .post(env.data_plane().url(path))
        .bearer_auth(KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{path} {body}");
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = response.text().await.unwrap();
    let events: Vec<Value> = if body["stream"] == json!(true) {
        sse_data(&text)
            .iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    } else {
        vec![serde_json::from_str(&text).unwrap()]
    };
    let mut usage = (0, 0);
    for e in &events {
        let u = if e["message"]["usage"].is_object() {
            &e["message"]["usage"]
        } else {
            &e["usage"]
        };
        let count = |names: [&str; 2]| names.iter().find_map(|n| u[n].as_i64());
        if let Some(n) = count(["prompt_tokens", "input_tokens"]) {
            usage.0 = n;
        }
        if let Some(n) = count(["completion_tokens", "output_tokens"]) {
            usage.1 = n;
        }
    }
    assert!(usage.0 > 0 && usage.1 > 0, "no usage in {text}");
    Seen { request_id, usage }
}

fn chat(model: &str, stream: bool) -> Value {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": PROMPT}]});
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn messages(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 50, "stream": stream,
           "messages": [{"role": "user", "content": PROMPT}]})
}

/// The spans of one trace, split into its request span and its attempt spans (by attempt).
fn trace_of<'s>(
    spans: &'s [ReceivedSpan],
    request_id: &str,
) -> (&'s ReceivedSpan, Vec<&'s ReceivedSpan>) {
    let servers: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.service == DATA_PLANE && s.str("switchyard.request.id") == request_id)
        .collect();
    assert_eq!(servers.len(), 1, "one request span for {request_id}");
    let server = servers[0];
    let in_trace: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == server.trace_id && s.span_id != server.span_id)
        .collect();
    let mut attempts: Vec<&ReceivedSpan> = in_trace
        .iter()
        .copied()
        .filter(|s| s.kind == ReceivedSpan::CLIENT)
        .collect();
    assert_eq!(
        attempts.len(),
        in_trace.len(),
        "only attempts besides the request span"
    );
    attempts.sort_by_key(|s| s.attr("switchyard.attempt").as_i64());
    (server, attempts)
}

/// What a request span must say about a request that succeeded.
#[derive(Clone, Copy)]
struct Expect<'a> {
    name: &'a str,
    provider: &'a str,
    request_model: &'a str,
    response_model: &'a str,
    finish: &'a str,
}

fn check_request_span(span: &ReceivedSpan, seen: &Seen, want: &Expect<'_>) {
    let id = &seen.request_id;
    assert_eq!(span.kind, ReceivedSpan::SERVER, "{id}");
    assert_eq!(span.name, want.name, "{id}");
    for (name, value) in [
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.provider.name", json!(want.provider)),
        ("gen_ai.system", json!(want.provider)),
        ("gen_ai.request.model", json!(want.request_model)),
        ("gen_ai.response.model", json!(want.response_model)),
        ("gen_ai.response.finish_reasons", json!([want.finish])),
        ("gen_ai.usage.input_tokens", json!(seen.usage.0)),
        ("gen_ai.usage.output_tokens", json!(seen.usage.1)),
        ("http.response.status_code", json!(200)),
        ("switchyard.key.id", json!("key-traces")),
        ("switchyard.team", json!("platform")),
        ("switchyard.outcome", json!("ok")),
    ] {
        assert_eq!(span.attr(name), &value, "{name} of {id}: {span:#?}");
    }
    assert!(span.end_unix_nanos >= span.start_unix_nanos);
}

/// The upstream's `traceparent` as (trace id, parent span id).
fn traceparent(record: &Value) -> (String, String) {
    let header = record["headers"]["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("no traceparent upstream: {record}"));
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!(
        (parts.len(), parts[0], parts[3]),
        (4, "00", "01"),
        "{header}"
    );
    (parts[1].to_owned(), parts[2].to_owned())
}

#[tokio::test]
async fn every_request_is_one_trace_with_its_attempts_and_the_gen_ai_attributes() {
    let mut env = TestEnv::builder()
        .postgres()
        .nats()
        .mock_provider_with(MockProviderOptions::new().api_key(UPSTREAM_KEY))
        .build()
        .await
        .unwrap();
    let receiver = OtlpReceiver::start().await.unwrap();
    let nats = env.nats().url();
    let cp = env
        .control_plane_with("control-plane", otel(&receiver.endpoint()))
        .await
        .unwrap();
    // The control plane creates the usage stream the data plane publishes to.
    let js = env.nats().jetstream().await.unwrap();
    eventually(WAIT, || async {
        js.get_stream(proto::USAGE_STREAM).await.map(drop)
    })
    .await
    .unwrap();
    let spec = DataPlaneSpec::from_fn(|env| config(&env.mock().base_url()))
        .env("MOCK_UPSTREAM_KEY", UPSTREAM_KEY)
        .arg("--nats")
        .arg(nats);
    env.start_data_plane(with_otel(spec, otel(&receiver.endpoint())))
        .await
        .unwrap();

    let plain = send(&env, "/v1/chat/completions", chat("chat", false), &[]).await;
    let streamed = send(&env, "/v1/chat/completions", chat("chat", true), &[]).await;
    let native = send(&env, "/v1/messages", messages("claude", false), &[]).await;
    let native_stream = send(&env, "/v1/messages", messages("claude", true), &[]).await;
    env.mock()
        .script(&json!({"model": "first", "status": 500}))
        .await
        .unwrap();
    let fallback = send(&env, "/v1/chat/completions", chat("chain", false), &[]).await;
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let parent = format!("00-{caller_trace}-{caller_span}-01");
    let parented = send(
        &env,
        "/v1/chat/completions",
        chat("chat", false),
        &[("traceparent", &parent), ("tracestate", "vendor=kept")],
    )
    .await;
    let requests = [
        &plain,
        &streamed,
        &native,
        &native_stream,
        &fallback,
        &parented,
    ];
    assert_eq!(
        cp.call(Method::GET, "/admin/teams", None, None)
            .await
            .unwrap()
            .status,
        200
    );
    let missing = "/admin/teams/0194e1a2-0000-7000-8000-000000000000";
    assert_eq!(
        cp.call(Method::GET, missing, None, None)
            .await
            .unwrap()
            .status,
        404
    );

    // Everything arrives: a span per request and per attempt (7), the two admin requests,
    // and fold batches that folded the six usage events.
    let spans = eventually(WAIT, || async {
        let spans = receiver.spans();
        let count = |service: &str, kind: i32| {
            spans
                .iter()
                .filter(|s| s.service == service && s.kind == kind)
                .count()
        };
        let folded: i64 = spans
            .iter()
            .filter(|s| s.name == "fold usage")
            .filter_map(|s| s.attr("switchyard.fold.new").as_i64())
            .sum();
        let seen = (
            count(DATA_PLANE, ReceivedSpan::SERVER),
            count(DATA_PLANE, ReceivedSpan::CLIENT),
            count(CONTROL_PLANE, ReceivedSpan::SERVER),
            folded,
        );
        anyhow::ensure!(
            seen == (6, 7, 2, 6),
            "so far (requests, attempts, admin, folded): {seen:?}"
        );
        Ok(spans)
    })
    .await
    .unwrap();
    assert_eq!(
        receiver.rejected(),
        0,
        "every export decodes as OTLP protobuf"
    );
    assert_eq!(
        receiver.last_header("x-collector-key").as_deref(),
        Some("team a"),
        "OTEL_EXPORTER_OTLP_HEADERS go with every export"
    );
    assert_eq!(receiver.last_header("x-tenant").as_deref(), Some("t1"));

    // One trace per request.
    let traces: HashSet<&str> = spans
        .iter()
        .filter(|s| s.service == DATA_PLANE)
        .map(|s| s.trace_id.as_str())
        .collect();
    assert_eq!(traces.len(), requests.len(), "one trace per request");

    let openai = |name: &'static str, model: &'static str, response: &'static str| Expect {
        name,
        provider: "openai_compatible",
        request_model: model,
        response_model: response,
        finish: "stop",
    };
    let anthropic = Expect {
        name: "chat claude",
        provider: "anthropic",
        request_model: "claude",
        response_model: "claude-mock-1",
        finish: "end_turn",
    };
    let cases = [
        (&plain, openai("chat chat", "chat", "mock-chat"), 1),
        (&streamed, openai("chat chat", "chat", "mock-chat"), 1),
        (&native, anthropic, 1),
        (&native_stream, anthropic, 1),
        (&fallback, openai("chat chain", "chain", "second"), 2),
        (&parented, openai("chat chat", "chat", "mock-chat"), 1),
    ];
    let mut attempt_ids = BTreeMap::new();
    for (seen, want, n) in &cases {
        let (server, attempts) = trace_of(&spans, &seen.request_id);
        check_request_span(server, seen, want);
        assert_eq!(attempts.len(), *n, "attempts of {}", seen.request_id);
        for (i, attempt) in attempts.iter().enumerate() {
            assert_eq!(
                attempt.parent_span_id, server.span_id,
                "attempts are children"
            );
            assert_eq!(attempt.attr("switchyard.attempt"), &json!(i + 1));
            assert_eq!(attempt.str("gen_ai.provider.name"), want.provider);
            attempt_ids.insert(attempt.span_id.clone(), attempt.trace_id.clone());
        }
    }
    // The fallback's first attempt failed at `first`; the second answered at `second`.
    let (server, attempts) = trace_of(&spans, &fallback.request_id);
    let models: Vec<&str> = attempts
        .iter()
        .map(|a| a.str("gen_ai.request.model"))
        .collect();
    assert_eq!(models, ["first", "second"]);
    assert_eq!(attempts[0].status, ReceivedSpan::ERROR);
    assert_eq!(attempts[0].attr("http.response.status_code"), &json!(500));
    assert_eq!(attempts[0].str("error.type"), "upstream_error");
    assert_eq!(attempts[1].str("switchyard.outcome"), "ok");
    assert_eq!(server.attr("switchyard.attempts"), &json!(2));
    // The caller's trace is kept: its span is the request span's parent.
    let (server, _) = trace_of(&spans, &parented.request_id);
    assert_eq!(
        (server.trace_id.as_str(), server.parent_span_id.as_str()),
        (caller_trace, caller_span)
    );
    let (root, _) = trace_of(&spans, &plain.request_id);
    assert_eq!(
        root.parent_span_id, "",
        "without a caller trace the request span is a root"
    );

    // Every upstream request carried the context of the attempt that sent it.
    let records = env.mock().requests().await.unwrap();
    assert_eq!(records.len(), 7);
    for record in &records {
        let (trace, parent) = traceparent(record);
        assert_eq!(attempt_ids.remove(&parent), Some(trace), "{record}");
    }
    assert!(attempt_ids.is_empty());
    let parented_upstream = records.last().map(traceparent).unwrap();
    assert_eq!(parented_upstream.0, caller_trace);
    assert_eq!(
        records.last().unwrap()["headers"]["tracestate"],
        "vendor=kept"
    );

    // Never a key's secret nor the prompt in a span; no attribute set twice.
    for span in &spans {
        assert!(span.repeated.is_empty(), "{span:#?}");
        let text = serde_json::to_string(&span.attributes).unwrap();
        assert!(
            !text.contains(KEY) && !text.contains(&sha256_hex(KEY)),
            "{text}"
        );
        assert!(!text.contains("passphrase"), "{text}");
    }

    // The control plane: admin requests by route template, fold batches.
    let admin: Vec<(&str, &Value, &Value)> = spans
        .iter()
        .filter(|s| s.service == CONTROL_PLANE && s.kind == ReceivedSpan::SERVER)
        .map(|s| {
            (
                s.name.as_str(),
                s.attr("http.route"),
                s.attr("http.response.status_code"),
            )
        })
        .collect();
    assert_eq!(
        admin,
        [
            ("GET /admin/teams", &json!("/admin/teams"), &json!(200)),
            (
                "GET /admin/teams/{id}",
                &json!("/admin/teams/{id}"),
                &json!(404)
            ),
        ]
    );
    for batch in spans.iter().filter(|s| s.name == "fold usage") {
        assert_eq!(
            (batch.service.as_str(), batch.kind),
            (CONTROL_PLANE, ReceivedSpan::CONSUMER)
        );
        assert!(batch.attr("messaging.batch.message_count").as_i64() >= Some(1));
    }
}

/// A TCP listener that accepts connections and never answers: a collector that hangs.
async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn a_dead_or_stalled_collector_neither_slows_nor_fails_requests() {
    let mut env = TestEnv::builder()
        .mock_provider_with(MockProviderOptions::new().api_key(UPSTREAM_KEY))
        .build()
        .await
        .unwrap();
    let (stalled, _hole) = black_hole().await;
    let closed = format!("http://127.0.0.1:{}", free_port().unwrap());
    for endpoint in [&stalled, &closed] {
        let mut vars = otel(endpoint);
        // A small queue, soon full: spans beyond it are dropped, never waited for.
        vars.push(("OTEL_BSP_MAX_QUEUE_SIZE".into(), "16".into()));
        vars.push(("OTEL_BSP_MAX_EXPORT_BATCH_SIZE".into(), "8".into()));
        let spec = DataPlaneSpec::from_fn(|env| config(&env.mock().base_url()))
            .env("MOCK_UPSTREAM_KEY", UPSTREAM_KEY);
        env.start_data_plane(with_otel(spec, vars)).await.unwrap();
    }
    for (i, dp) in env.data_planes().iter().enumerate() {
        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        for _ in 0..100 {
            let one = Instant::now();
            let response = client()
                .post(dp.url("/v1/chat/completions"))
                .bearer_auth(KEY)
                .json(&chat("chat", false))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "data plane {i}");
            slowest = slowest.max(one.elapsed());
        }
        // An export waits up to 10 s for this collector; requests never wait for exports.
        assert!(
            slowest < Duration::from_secs(2),
            "data plane {i}: slowest request {slowest:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    // Traces were on: every upstream request carried a context.
    let records = env.mock().requests().await.unwrap();
    assert_eq!(records.len(), 200);
    assert!(records
        .iter()
        .all(|r| r["headers"]["traceparent"].is_string()));
}

#[tokio::test]
async fn with_traces_off_the_callers_context_goes_upstream_as_it_came_and_nothing_else() {
    let spec = DataPlaneSpec::from_fn(|env| config(&env.mock().base_url()))
        .env("MOCK_UPSTREAM_KEY", UPSTREAM_KEY);
    let env = crate::fixture::gateway_with(spec).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let state = "vendor=x";
    let traced = send(
        &env,
        "/v1/chat/completions",
        chat("chat", false),
        &[("traceparent", parent), ("tracestate", state)],
    )
    .await;
    assert!(!traced.request_id.is_empty());
    let streamed = [("traceparent", parent)];
    send(&env, "/v1/messages", messages("claude", true), &streamed).await;
    let untraced = send(&env, "/v1/chat/completions", chat("chat", false), &[]).await;
    assert!(!untraced.request_id.is_empty());
    let bad = [("traceparent", "00-zz-00-01")];
    send(&env, "/v1/chat/completions", chat("chat", false), &bad).await;

    let records = env.mock().requests().await.unwrap();
    assert_eq!(records.len(), 4);
    let header = |i: usize, name: &str| records[i]["headers"][name].as_str().map(str::to_owned);
    assert_eq!(
        header(0, "traceparent").as_deref(),
        Some(parent),
        "{}",
        records[0]
    );
    assert_eq!(header(0, "tracestate").as_deref(), Some(state));
    assert_eq!(
        header(1, "traceparent").as_deref(),
        Some(parent),
        "{}",
        records[1]
    );
    assert_eq!(header(1, "tracestate"), None);
    for i in [2, 3] {
        assert_eq!(header(i, "traceparent"), None, "{}", records[i]);
    }
}
