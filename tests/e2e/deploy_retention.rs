//! The sizing advice of docs/SCALING.md, proven: an operator who creates `SWITCHYARD_USAGE`
//! with interest retention before the planes start (they use an existing stream as it is)
//! still gets every event folded exactly once, and the stream keeps only what the fold has not
//! acknowledged, instead of 7 days of events.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, stream};
use proto::{usage_subject, Outcome, TokenUsage, UsageEvent};
use switchyard_tests::support::{eventually, TestEnv};

fn event(i: u64, team: &str) -> UsageEvent {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    UsageEvent {
        // UUIDv7-shaped and unique per test process.
        id: format!(
            "{:08x}-{:04x}-7000-8{:03x}-{:012x}",
            ms >> 16,
            ms & 0xffff,
            std::process::id() & 0xfff,
            i
        ),
        time_ms: ms as i64,
        proxy: "retention-proxy".into(),
        key_id: Some("key-1".into()),
        key_name: Some("key-1-name".into()),
        team: Some(team.into()),
        tags: [("env".to_owned(), "prod".to_owned())]
            .into_iter()
            .collect(),
        endpoint: "chat".into(),
        alias: "chat".into(),
        provider: Some("openai".into()),
        deployment: Some("openai/gpt-4o-mini".into()),
        model: Some("gpt-4o-mini".into()),
        usage: TokenUsage {
            prompt_tokens: 10,
            completion_tokens: 5,
            ..TokenUsage::default()
        },
        usage_estimated: false,
        cost_usd: rust_decimal::Decimal::new(1, 4),
        saved_cost_usd: Default::default(),
        guardrail: Default::default(),
        latency_ms: 100,
        ttft_ms: None,
        status: 200,
        outcome: Outcome::Ok,
        refused: None,
        streamed: false,
        abandoned: false,
        attempts: 1,
        fallbacks: 0,
        cache_hit: false,
        route_reason: None,
        log: proto::LogPayloads::Metadata,
    }
}

/// Publishes `events` as a data plane does: NDJSON lines, `per_message` a message, the batch
/// id as `Nats-Msg-Id`.
async fn publish(js: &jetstream::Context, events: &[UsageEvent], per_message: usize) {
    let mut acks = Vec::new();
    for batch in events.chunks(per_message) {
        let lines: Vec<String> = batch
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            proto::batch_id(&batch[0].id, batch.len()).as_str(),
        );
        let subject = usage_subject(batch[0].team.as_deref());
        acks.push(
            js.publish_with_headers(subject, headers, lines.join("\n").into())
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

#[tokio::test]
async fn deploy_interest_retention_usage_stream_folds_everything_once_and_empties() {
    let env = TestEnv::builder()
        .postgres()
        .nats()
        .build()
        .await
        .expect("services start");
    let nats = async_nats::connect(env.nats().url()).await.unwrap();
    let js = jetstream::new(nats);
    // What docs/SCALING.md tells an operator to run before any plane starts.
    js.create_stream(stream::Config {
        name: proto::USAGE_STREAM.to_owned(),
        subjects: vec![proto::USAGE_SUBJECTS.to_owned()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Interest,
        duplicate_window: Duration::from_secs(120),
        max_age: Duration::from_secs(7 * 24 * 3600),
        ..Default::default()
    })
    .await
    .unwrap();
    let _cp = env
        .control_plane("control-plane")
        .await
        .expect("control plane starts");
    // Interest retention drops messages nobody is interested in: publish once the fold's
    // consumer exists.
    eventually(Duration::from_secs(20), || async {
        let s = js.get_stream(proto::USAGE_STREAM).await?;
        s.consumer_info(proto::USAGE_FOLD_CONSUMER).await?;
        Ok::<_, anyhow::Error>(())
    })
    .await
    .expect("the control plane opens its consumer on the operator's stream");

    let events: Vec<UsageEvent> = (0..3_000)
        .map(|i| event(i, if i % 2 == 0 { "team-a" } else { "team-b" }))
        .collect();
    let (a, b): (Vec<UsageEvent>, Vec<UsageEvent>) = events
        .iter()
        .cloned()
        .partition(|e| e.team.as_deref() == Some("team-a"));
    publish(&js, &a, 100).await;
    publish(&js, &b, 100).await;
    // A proxy replaying its spool: the same events again, batched differently.
    publish(&js, &a[..250], 50).await;

    let db = env.postgres().client().await.unwrap();
    let counts = eventually(Duration::from_secs(60), || async {
        let folded: i64 = db
            .query_one("SELECT count(*) FROM usage_events", &[])
            .await?
            .get(0);
        let ledger: i64 = db
            .query_one(
                "SELECT COALESCE(SUM(requests), 0)::bigint FROM spend_ledger WHERE tag = ''",
                &[],
            )
            .await?
            .get(0);
        let left = js
            .get_stream(proto::USAGE_STREAM)
            .await?
            .info()
            .await?
            .state
            .messages;
        anyhow::ensure!(
            folded == 3_000 && left == 0,
            "folded {folded}, ledger {ledger}, {left} messages left in the stream"
        );
        Ok::<_, anyhow::Error>((folded, ledger))
    })
    .await
    .expect("every event folded and the stream emptied");
    assert_eq!(counts, (3_000, 3_000), "each event counted exactly once");
    let info = js
        .get_stream(proto::USAGE_STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(
        info.config.retention,
        stream::RetentionPolicy::Interest,
        "the planes kept the operator's stream"
    );
}
