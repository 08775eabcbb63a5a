//! Benchmark of usage folding (prints figures; not a test).
//!
//! Starts Postgres, NATS and a control plane on free ports (the test harness), stops the
//! control plane, publishes `BENCH_EVENTS` (200,000) usage events to JetStream (pipelined, every
//! publish acknowledged), starts the control plane again and measures how long it takes to fold
//! the backlog into `usage_events` and `spend_ledger`, polling `SELECT count(*)`. Events spread
//! over 100 teams, 1,000 keys, 5 models and two tags, so each batch upserts many ledger rows.
//!
//! Run through `tests/bench/fold.sh`, which builds release binaries and points the harness at
//! them. The harness's Postgres runs with `fsync=off` (it is a throwaway cluster). Knobs:
//! `BENCH_EVENTS`; `BENCH_CP_LOG` (a log filter for the control plane, whose log is then printed,
//! e.g. `warn,control_plane::usage=debug` for per-batch timings).
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use async_nats::jetstream;
use proto::{usage_subject, Outcome, TokenUsage, UsageEvent};
use rust_decimal::Decimal;
use switchyard_tests::support::{ControlPlane, TestEnv};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let env = TestEnv::builder().postgres().nats().build().await?;
    let mut cp = ControlPlane::start(
        env.dir(),
        "control-plane",
        &env.postgres().database_url(),
        Some(&env.nats().url()),
        vec![(
            "SWITCHYARD_LOG".into(),
            std::env::var("BENCH_CP_LOG").unwrap_or_else(|_| "warn".into()),
        )],
    )
    .await?;
    let nats = async_nats::connect(env.nats().url()).await?;
    let js = jetstream::new(nats);
    let started = Instant::now();
    while js.get_stream(proto::USAGE_STREAM).await.is_err() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(20),
            "the control plane never created the usage stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cp.kill()?;

    let now = unix_ms();
    let publish_started = Instant::now();
    let mut acks = Vec::with_capacity(5_000);
    for i in 0..n {
        let e = event(i, now);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", e.id.as_str());
        let body = serde_json::to_vec(&e)?;
        acks.push(
            js.publish_with_headers(usage_subject(e.team.as_deref()), headers, body.into())
                .await?,
        );
        if acks.len() == 5_000 {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in acks.drain(..) {
        ack.await?;
    }
    let publish = publish_started.elapsed();
    println!(
        "published {n} events in {:.2} s ({:.0} events/s, acknowledged)",
        publish.as_secs_f64(),
        n as f64 / publish.as_secs_f64()
    );

    let pg = env.postgres().client().await?;
    let restart = Instant::now();
    cp.restart().await?;
    let mut first: Option<Instant> = None;
    loop {
        let done: i64 = pg
            .query_one("SELECT count(*) FROM usage_events", &[])
            .await?
            .get(0);
        if done > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if done as usize >= n {
            break;
        }
        anyhow::ensure!(
            restart.elapsed() < Duration::from_secs(600),
            "only {done} of {n} events folded after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = restart.elapsed();
    let folding = first.map(|f| f.elapsed()).unwrap_or(total);
    let ledger: i64 = pg
        .query_one(
            "SELECT SUM(requests)::int8 FROM spend_ledger WHERE tag = ''",
            &[],
        )
        .await?
        .get(0);
    anyhow::ensure!(
        ledger as usize == n,
        "ledger counts {ledger} requests, not {n}"
    );
    let rows: i64 = pg
        .query_one("SELECT count(*) FROM spend_ledger", &[])
        .await?
        .get(0);
    println!(
        "folded {n} events in {:.2} s from restart ({:.0} events/s), {:.2} s from the first commit ({:.0} events/s); {rows} ledger rows",
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64(),
        folding.as_secs_f64(),
        n as f64 / folding.as_secs_f64().max(1e-9),
    );
    let metrics = reqwest::get(format!("{}/metrics", cp.base_url()))
        .await
        .context("scraping /metrics")?
        .text()
        .await?;
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("switchyard_fold_batch_seconds{quantile"))
    {
        println!("  {line}");
    }
    if std::env::var("BENCH_CP_LOG").is_ok() {
        println!("--- control plane log ---\n{}", cp.stderr()?);
    }
    Ok(())
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A UUIDv7-shaped id: time in the first 48 bits, the sequence number in the last 48.
fn id(i: usize, ms: i64) -> String {
    let ms = ms as u64;
    let i = i as u64;
    format!(
        "{:08x}-{:04x}-7000-8{:03x}-{:012x}",
        ms >> 16,
        ms & 0xffff,
        u64::from(std::process::id()) & 0xfff,
        i & 0xffff_ffff_ffff
    )
}

fn event(i: usize, now: i64) -> UsageEvent {
    let models = [
        ("gpt-4o", "openai"),
        ("gpt-4o-mini", "openai"),
        ("claude-sonnet-4-5", "anthropic"),
        ("gemini-2.5-flash", "gemini"),
        ("mistral-small-latest", "mistral"),
    ];
    let (model, provider) = models[i % models.len()];
    let time_ms = now - (i as i64 % 3_600_000);
    UsageEvent {
        id: id(i, time_ms),
        time_ms,
        proxy: format!("proxy-{}", i % 3),
        key_id: Some(format!("key-{}", i % 1000)),
        key_name: None,
        team: Some(format!("team-{}", i % 100)),
        tags: [
            (
                "env".to_owned(),
                if i.is_multiple_of(2) { "prod" } else { "dev" }.to_owned(),
            ),
            ("app".to_owned(), format!("app-{}", i % 10)),
        ]
        .into_iter()
        .collect(),
        endpoint: "chat".into(),
        alias: "chat".into(),
        provider: Some(provider.into()),
        deployment: Some(format!("{provider}/{model}")),
        model: Some(model.into()),
        usage: TokenUsage {
            prompt_tokens: 100 + (i as u64 % 2000),
            completion_tokens: 20 + (i as u64 % 700),
            cached_input_tokens: i as u64 % 50,
            reasoning_tokens: 0,
            ..TokenUsage::default()
        },
        usage_estimated: false,
        cost_usd: Decimal::new(123, 5),
        latency_ms: 300,
        ttft_ms: Some(80),
        status: 200,
        outcome: Outcome::Ok,
        refused: None,
        streamed: i.is_multiple_of(2),
        abandoned: false,
        attempts: 1,
        fallbacks: 0,
        cache_hit: false,
        saved_cost_usd: Decimal::ZERO,
        route_reason: None,
        log: proto::LogPayloads::Metadata,
        guardrail: Default::default(),
    }
}
