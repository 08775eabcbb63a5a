//! Usage events from the data plane: exactly one per request that reached the provider or was
//! refused by admission, with the provider's usage, tags and cost, published to JetStream and
//! spooled on disk while NATS is away (then replayed without duplicates), and flushed on a
//! clean shutdown.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_nats::jetstream;
use proto::{Outcome, UsageEvent, USAGE_STREAM};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use switchyard_tests::support::{eventually, DataPlaneSpec, MockProviderOptions, TestEnv};

use crate::fixture::{chat_body, client, sha256_hex, UPSTREAM_KEY};

const KEY: &str = "sk-sy-usage-full-0123456789";
const PLAIN_KEY: &str = "sk-sy-usage-plain-0123456789";
const WAIT: Duration = Duration::from_secs(20);

/// One mock provider, a priced chat model and an unpriced embeddings model; `KEY` belongs to
/// team `platform` and forces the tag `env=forced`.
fn config(mock_base: &str) -> String {
    format!(
        r#"
providers:
  - {{ id: mock, kind: openai_compatible, base_url: "{mock_base}/v1", api_key: {{ env: MOCK_UPSTREAM_KEY }} }}
routes:
  - {{ alias: chat, deployments: [{{ provider: mock, model: mock-chat }}] }}
  - {{ alias: embed, deployments: [{{ provider: mock, model: mock-embed }}] }}
pricing:
  - {{ model: mock-chat, input_per_mtok: "1000", output_per_mtok: "2000" }}
keys:
  - {{ name: full, id: key-full, sha256: "{full}", team: platform, models: ["*"], tags: {{ env: forced }} }}
  - {{ name: plain, sha256: "{plain}", models: ["*"] }}
"#,
        full = sha256_hex(KEY),
        plain = sha256_hex(PLAIN_KEY),
    )
}

/// A data plane with the file config; with `nats_url`, usage events go over NATS.
fn spec(nats_url: Option<String>) -> DataPlaneSpec {
    let mut spec = DataPlaneSpec::from_fn(|env| config(&env.mock().base_url()))
        .env("MOCK_UPSTREAM_KEY", UPSTREAM_KEY)
        .env("SWITCHYARD_SHUTDOWN_GRACE_SECS", "10");
    if let Some(url) = nats_url {
        spec = spec.arg("--nats").arg(url);
    }
    spec
}

/// NATS, the mock and one data plane using both.
async fn env_with_nats() -> TestEnv {
    let mut env = TestEnv::new().unwrap();
    let url = env.start_nats().await.unwrap().url();
    env.start_mock_provider(MockProviderOptions::new().api_key(UPSTREAM_KEY))
        .await
        .unwrap();
    env.start_data_plane(spec(Some(url))).await.unwrap();
    env
}

/// Every event in the usage stream, in stream order (a message carries one or more).
async fn stream_events(js: &jetstream::Context) -> anyhow::Result<Vec<UsageEvent>> {
    let stream = js.get_stream(USAGE_STREAM).await?;
    let info = stream.get_info().await?;
    let mut events = Vec::new();
    if info.state.messages == 0 {
        return Ok(events);
    }
    for seq in info.state.first_sequence..=info.state.last_sequence {
        let message = stream.get_raw_message(seq).await?;
        for item in proto::batch_items(&message.payload) {
            events.push(serde_json::from_slice(item)?);
        }
    }
    Ok(events)
}

/// Waits until the stream holds exactly `n` events and returns them by id (failing on
/// duplicates).
async fn wait_for_events(env: &TestEnv, n: usize) -> BTreeMap<String, UsageEvent> {
    let js = env.nats().jetstream().await.unwrap();
    let events = eventually(WAIT, || async {
        let events = stream_events(&js).await?;
        anyhow::ensure!(
            events.len() == n,
            "{} events in the stream, want {n}",
            events.len()
        );
        Ok(events)
    })
    .await
    .unwrap();
    let by_id: BTreeMap<String, UsageEvent> =
        events.into_iter().map(|e| (e.id.clone(), e)).collect();
    assert_eq!(by_id.len(), n, "duplicate event ids in the stream");
    by_id
}

/// POSTs `body` to `path` with `key` and extra headers; returns status, request id and body.
async fn send(
    env: &TestEnv,
    path: &str,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut request = client()
        .post(env.data_plane().url(path))
        .bearer_auth(key)
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, id, response.text().await.unwrap_or_default())
}

fn stream_body() -> Value {
    let mut body = chat_body("chat");
    body["stream"] = json!(true);
    body
}

/// Opens a streamed chat with [`KEY`] at `url`; returns its request id and the response, whose
/// body is still to be read.
async fn open_stream(url: String) -> (String, reqwest::Response) {
    let response = client()
        .post(url)
        .bearer_auth(KEY)
        .json(&stream_body())
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    (id, response)
}

/// Sends `n` chats with [`KEY`], plain and streamed by turns, each answered 200; adds their
/// request ids to `ids`.
async fn send_chats_and_streams(env: &TestEnv, n: usize, ids: &mut HashSet<String>) {
    for i in 0..n {
        let body = if i % 2 == 0 {
            chat_body("chat")
        } else {
            stream_body()
        };
        let (status, id, text) = send(env, "/v1/chat/completions", KEY, &body, &[]).await;
        assert_eq!(status, 200, "{text}");
        ids.insert(id);
    }
}

/// Cost of `prompt` and `completion` tokens of `mock-chat` at 1000/2000 USD per million.
fn chat_cost(prompt: u64, completion: u64) -> Decimal {
    Decimal::from(prompt * 1000 + completion * 2000) / Decimal::from(1_000_000)
}

#[tokio::test]
async fn usage_events_one_per_request_with_usage_tags_and_cost() {
    let env = env_with_nats().await;

    // Non-streamed, with tags from the header, the body's metadata and user, and the key.
    let mut body = chat_body("chat");
    body["metadata"] = json!({"purpose": "review", "env": "caller", "workflow": "from-body"});
    body["user"] = json!("alice");
    let (status, plain_id, text) = send(
        &env,
        "/v1/chat/completions",
        KEY,
        &body,
        &[("x-switchyard-tags", "workflow=review-123, ticket=T-9")],
    )
    .await;
    assert_eq!(status, 200, "{text}");

    let (status, stream_id, text) =
        send(&env, "/v1/chat/completions", KEY, &stream_body(), &[]).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("[DONE]"));

    let (status, embed_id, text) = send(
        &env,
        "/v1/embeddings",
        PLAIN_KEY,
        &json!({"model": "embed", "input": ["one two", "three"], "user": "bob"}),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{text}");

    env.mock().script(&json!({"status": 500})).await.unwrap();
    let (status, failed_id, _) =
        send(&env, "/v1/chat/completions", KEY, &chat_body("chat"), &[]).await;
    assert_eq!(status, 502);

    env.mock()
        .script(&json!({"fault": "truncate_stream"}))
        .await
        .unwrap();
    let (status, cut_id, text) = send(&env, "/v1/chat/completions", KEY, &stream_body(), &[]).await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("[DONE]"));

    // Refused by admission: the request may cost at most a millionth of a cent.
    let (refused_status, refused_id, text) = send(
        &env,
        "/v1/chat/completions",
        KEY,
        &chat_body("chat"),
        &[("x-switchyard-max-cost", "0.00000001")],
    )
    .await;
    assert!(
        (400..500).contains(&refused_status),
        "{refused_status} {text}"
    );

    // Refused before admission: no event.
    for (key, body, headers) in [
        ("sk-sy-unknown", chat_body("chat"), vec![]),
        (KEY, chat_body("no-such-model"), vec![]),
        (KEY, json!({"model": "chat"}), vec![]),
        (
            KEY,
            chat_body("chat"),
            vec![("x-switchyard-tags", "novalue")],
        ),
        (
            KEY,
            chat_body("chat"),
            vec![("x-switchyard-max-cost", "cheap")],
        ),
    ] {
        let (status, _, text) = send(&env, "/v1/chat/completions", key, &body, &headers).await;
        assert!((400..500).contains(&status), "{status} {text}");
    }
    let (status, _, text) = send(
        &env,
        "/v1/chat/completions",
        KEY,
        &chat_body("chat"),
        &[("x-switchyard-tags", "a=1,a=2")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("given twice"), "{text}");

    let events = wait_for_events(&env, 6).await;
    let at = |id: &str| {
        events
            .get(id)
            .unwrap_or_else(|| panic!("no event with the request id {id}: {events:?}"))
    };

    let e = at(&plain_id);
    assert_eq!(e.outcome, Outcome::Ok);
    assert_eq!((e.endpoint.as_str(), e.alias.as_str()), ("chat", "chat"));
    assert_eq!(e.key_id.as_deref(), Some("key-full"));
    assert_eq!(e.key_name.as_deref(), Some("full"));
    assert_eq!(e.team.as_deref(), Some("platform"));
    assert_eq!(e.provider.as_deref(), Some("mock"));
    assert_eq!(e.deployment.as_deref(), Some("mock/mock-chat"));
    assert_eq!(e.model.as_deref(), Some("mock-chat"));
    assert_eq!((e.usage.prompt_tokens, e.usage.completion_tokens), (4, 5));
    assert_eq!(e.cost_usd, chat_cost(4, 5));
    assert!(!e.usage_estimated && !e.streamed && !e.abandoned && !e.cache_hit);
    assert_eq!((e.status, e.attempts, e.fallbacks), (200, 1, 0));
    let expected: BTreeMap<String, String> = [
        ("env", "forced"),
        ("purpose", "review"),
        ("ticket", "T-9"),
        ("user", "alice"),
        ("workflow", "review-123"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(e.tags, expected);
    assert!(!e.proxy.is_empty());
    assert!(e.time_ms > 1_700_000_000_000);

    let e = at(&stream_id);
    assert_eq!(e.outcome, Outcome::Ok);
    assert!(e.streamed && !e.abandoned && !e.usage_estimated);
    assert_eq!((e.usage.prompt_tokens, e.usage.completion_tokens), (4, 5));
    assert_eq!(e.cost_usd, chat_cost(4, 5));
    assert!(e.ttft_ms.is_some_and(|t| t <= e.latency_ms), "{e:?}");
    assert_eq!(e.tags.get("env").map(String::as_str), Some("forced"));

    let e = at(&embed_id);
    assert_eq!(
        (e.endpoint.as_str(), e.outcome),
        ("embeddings", Outcome::Ok)
    );
    assert_eq!(e.usage.prompt_tokens, 3);
    assert_eq!(e.cost_usd, Decimal::ZERO, "mock-embed has no price");
    assert_eq!(e.team, None);
    assert_eq!(e.tags.get("user").map(String::as_str), Some("bob"));

    let e = at(&failed_id);
    assert_eq!((e.outcome, e.status), (Outcome::UpstreamError, 502));
    assert_eq!((e.usage.prompt_tokens, e.usage.completion_tokens), (0, 0));
    assert_eq!(e.cost_usd, Decimal::ZERO);

    let e = at(&cut_id);
    assert_eq!((e.outcome, e.status), (Outcome::UpstreamError, 200));
    assert!(e.streamed && e.usage_estimated, "{e:?}");
    // Two words ("Hello", " from") were streamed before the cut.
    assert!(e.usage.completion_tokens >= 2, "{e:?}");
    assert!(
        e.usage.prompt_tokens >= 4,
        "the prompt estimate is generous: {e:?}"
    );

    let e = at(&refused_id);
    assert_eq!(e.outcome, Outcome::Refused);
    assert_eq!(e.status, refused_status);
    let refusal = e.refused.as_ref().expect("a refusal");
    assert_eq!(refusal.code, "request_cost_cap");
    assert_eq!((e.attempts, e.provider.as_deref()), (0, None));
    assert_eq!(e.cost_usd, Decimal::ZERO);
}

#[tokio::test]
async fn usage_events_an_abandoned_stream_is_metered_in_full() {
    let env = env_with_nats().await;
    env.mock()
        .script(&json!({"chunk_delay_ms": 100}))
        .await
        .unwrap();
    let (id, mut response) = open_stream(env.data_plane().url("/v1/chat/completions")).await;
    let mut seen = String::new();
    while seen.matches("data: ").count() < 2 {
        let chunk = response.chunk().await.unwrap().expect("more chunks");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);

    let events = wait_for_events(&env, 1).await;
    let e = &events[&id];
    assert_eq!(e.outcome, Outcome::Ok);
    assert!(e.abandoned && e.streamed && !e.usage_estimated, "{e:?}");
    assert_eq!((e.usage.prompt_tokens, e.usage.completion_tokens), (4, 5));
    assert_eq!(e.cost_usd, chat_cost(4, 5));
    assert!(e.latency_ms >= 500, "the event waits for the drain: {e:?}");
}

#[tokio::test]
async fn usage_events_are_spooled_while_nats_is_down_and_replayed_once() {
    let mut env = TestEnv::new().unwrap();
    let url = env.start_nats().await.unwrap().url();
    env.start_mock_provider(MockProviderOptions::new().api_key(UPSTREAM_KEY))
        .await
        .unwrap();
    // NATS is down when the proxy starts: it must start and serve anyway.
    env.nats_mut().stop().await.unwrap();
    env.start_data_plane(spec(Some(url))).await.unwrap();

    let mut ids = HashSet::new();
    send_chats_and_streams(&env, 5, &mut ids).await;
    let spool = env.data_plane().spool_dir().to_owned();
    eventually(WAIT, || async { spooled_lines(&spool) == 5 })
        .await
        .unwrap();

    env.nats_mut().restart().await.unwrap();
    let events = wait_for_events(&env, 5).await;
    assert_eq!(events.keys().cloned().collect::<HashSet<_>>(), ids);
    eventually(WAIT, || async { spooled_lines(&spool) == 0 })
        .await
        .unwrap();

    // Live while connected.
    for _ in 0..3 {
        let (status, id, _) =
            send(&env, "/v1/chat/completions", KEY, &chat_body("chat"), &[]).await;
        assert_eq!(status, 200);
        ids.insert(id);
    }
    wait_for_events(&env, 8).await;

    // Killed mid-run: requests keep working, their events wait on disk.
    env.nats_mut().kill().unwrap();
    send_chats_and_streams(&env, 4, &mut ids).await;
    eventually(WAIT, || async { spooled_lines(&spool) == 4 })
        .await
        .unwrap();
    env.nats_mut().restart().await.unwrap();
    let events = wait_for_events(&env, 12).await;
    assert_eq!(events.keys().cloned().collect::<HashSet<_>>(), ids);
    let metrics = metrics_text(&env).await;
    assert!(
        metrics.contains("switchyard_usage_replayed_total 9"),
        "{metrics}"
    );
}

#[tokio::test]
async fn usage_events_sigterm_flushes_open_streams_and_the_queue() {
    let mut env = env_with_nats().await;
    // Warm up: the stream exists and the link is connected.
    let (_, first, _) = send(&env, "/v1/chat/completions", KEY, &chat_body("chat"), &[]).await;
    wait_for_events(&env, 1).await;

    env.mock()
        .script(&json!({"chunk_delay_ms": 150}))
        .await
        .unwrap();
    let url = env.data_plane().url("/v1/chat/completions");
    let reader = tokio::spawn(async move {
        let (id, response) = open_stream(url).await;
        (id, response.text().await.unwrap_or_default())
    });
    // The stream is under way (the mock has seen it) when SIGTERM arrives.
    eventually(WAIT, || async {
        env.mock()
            .requests()
            .await
            .map(|r| r.len() == 2)
            .unwrap_or(false)
    })
    .await
    .unwrap();
    terminate_cleanly(&mut env).await;
    let (stream_id, text) = reader.await.unwrap();
    assert!(text.contains("[DONE]"), "the open stream finished: {text}");

    let events = wait_for_events(&env, 2).await;
    assert!(events.contains_key(&first));
    let e = &events[&stream_id];
    assert_eq!((e.outcome, e.usage.completion_tokens), (Outcome::Ok, 5));
}

#[tokio::test]
async fn usage_events_without_nats_stay_in_the_spool_until_a_proxy_with_nats_replays_them() {
    let mut env = TestEnv::new().unwrap();
    env.start_mock_provider(MockProviderOptions::new().api_key(UPSTREAM_KEY))
        .await
        .unwrap();
    env.start_data_plane(spec(None)).await.unwrap();
    let mut ids = HashSet::new();
    for body in [chat_body("chat"), stream_body()] {
        let (status, id, _) = send(&env, "/v1/chat/completions", KEY, &body, &[]).await;
        assert_eq!(status, 200);
        ids.insert(id);
    }
    let spool = env.data_plane().spool_dir().to_owned();
    eventually(WAIT, || async { spooled_lines(&spool) == 2 })
        .await
        .unwrap();
    terminate_cleanly(&mut env).await;
    assert_eq!(spooled_ids(&spool), ids);

    // A proxy with NATS and the same spool directory publishes them.
    let url = env.start_nats().await.unwrap().url();
    env.start_data_plane(
        spec(Some(url))
            .arg("--spool-dir")
            .arg(spool.display().to_string()),
    )
    .await
    .unwrap();
    let events = wait_for_events(&env, 2).await;
    assert_eq!(events.keys().cloned().collect::<HashSet<_>>(), ids);
    eventually(WAIT, || async { spooled_lines(&spool) == 0 })
        .await
        .unwrap();
}

/// SIGTERM to the first data plane, which must exit by itself, successfully, within 20 s.
async fn terminate_cleanly(env: &mut TestEnv) {
    let status = env
        .data_plane_mut(0)
        .terminate(Duration::from_secs(20))
        .await
        .unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit: {status:?}"
    );
}

/// Event lines in the spool directory's segments.
fn spooled_lines(dir: &std::path::Path) -> usize {
    spooled_ids(dir).len()
}

fn spooled_ids(dir: &std::path::Path) -> HashSet<String> {
    spooled_events(dir).into_iter().map(|e| e.id).collect()
}

/// The usage events in the spool directory's segments.
pub(crate) fn spooled_events(dir: &std::path::Path) -> Vec<UsageEvent> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str::<UsageEvent>(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn metrics_text(env: &TestEnv) -> String {
    env.data_plane().metrics().await.unwrap()
}

/// A client that hangs up while a non-streamed answer is still being generated: the provider
/// was reached, so the request still yields its one event (abandoned, billed at the prompt
/// estimate), and the answer that arrives later adds no second one.
#[tokio::test]
async fn usage_events_a_client_that_hangs_up_on_a_slow_answer_is_metered_once() {
    let env = env_with_nats().await;
    env.mock()
        .script(&json!({"latency_ms": 1500}))
        .await
        .unwrap();
    let gave_up = client()
        .post(env.data_plane().url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat_body("chat"))
        .timeout(Duration::from_millis(400))
        .send()
        .await;
    assert!(gave_up.is_err(), "the client gave up before the answer");
    let events = wait_for_events(&env, 1).await;
    let event = events.values().next().unwrap();
    assert_eq!((event.status, event.outcome), (499, Outcome::UpstreamError));
    assert!(event.abandoned && event.usage_estimated, "{event:?}");
    assert!(event.usage.prompt_tokens > 0 && event.cost_usd > Decimal::ZERO);
    // The mock answers after 1.5 s; nothing more is emitted for this request, and the next
    // one is metered on its own.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _, _) = send(&env, "/v1/chat/completions", KEY, &chat_body("chat"), &[]).await;
    assert_eq!(status, 200);
    let events = wait_for_events(&env, 2).await;
    assert_eq!(events.values().filter(|e| e.abandoned).count(), 1);
}
