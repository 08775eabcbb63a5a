//! Benchmark of snapshot distribution (prints figures; not a test).
//!
//! 1. Propagation: 200 keys created through the admin API; for each, the time from the API's
//!    response until all 3 data planes accept the key. p50/p99/max.
//! 2. Big swaps: a snapshot with 100,000 keys and 1,000 routes published over NATS to a data
//!    plane under 1,000 req/s of load (oha); the data plane's own fetch and compile times, and
//!    the request p99 with and without swaps going on.
//!
//! Run through `tests/bench/control-plane.sh`, which builds release binaries and points the
//! harness at them.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use control_plane::outbox::publish::Publisher;
use serde_json::{json, Value};
use sha2::Digest;
use switchyard_tests::support::{
    ControlPlane, DataPlaneSpec, MockProviderOptions, TestEnv, SEAL_KEY,
};

const UPSTREAM_KEY: &str = "sk-bench-upstream";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let changes: usize = std::env::var("BENCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let keys: usize = std::env::var("BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    propagation(changes).await?;
    big_swaps(keys, 1_000).await?;
    Ok(())
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

async fn propagation(changes: usize) -> anyhow::Result<()> {
    let mut env = TestEnv::builder()
        .postgres()
        .nats()
        .mock_provider_with(MockProviderOptions::new().api_key(UPSTREAM_KEY))
        .build()
        .await?;
    let cp = ControlPlane::start(
        env.dir(),
        "control-plane",
        &env.postgres().database_url(),
        Some(&env.nats().url()),
        vec![],
    )
    .await?;
    for _ in 0..3 {
        env.start_data_plane(
            DataPlaneSpec::nats()
                .env("SWITCHYARD_SEAL_KEY", SEAL_KEY)
                .env("SWITCHYARD_LOG", "warn"),
        )
        .await?;
    }
    let team = cp.post("/admin/teams", &json!({"name": "bench"})).await?;
    cp.post("/admin/providers", &json!({"id": "mock", "kind": "openai_compatible", "base_url": format!("{}/v1", env.mock().base_url()), "api_key": UPSTREAM_KEY})).await?;
    cp.post(
        "/admin/routes",
        &json!({"alias": "chat", "deployments": [{"provider": "mock", "model": "m"}]}),
    )
    .await?;
    let urls: Vec<String> = env
        .data_planes()
        .iter()
        .map(|d| format!("{}/v1/models", d.base_url()))
        .collect();
    let http = reqwest::Client::new();
    let mut samples = Vec::with_capacity(changes);
    for i in 0..changes {
        let key = cp
            .post(
                "/admin/keys",
                &json!({"team_id": team["id"], "name": format!("k{i}")}),
            )
            .await?;
        let answered = Instant::now();
        let secret = key["secret"].as_str().context("no secret")?.to_owned();
        let waits = urls.iter().map(|url| {
            let (http, url, secret) = (http.clone(), url.clone(), secret.clone());
            async move {
                loop {
                    if let Ok(r) = http.get(&url).bearer_auth(&secret).send().await {
                        if r.status() == 200 {
                            return answered.elapsed();
                        }
                    }
                    if answered.elapsed() > Duration::from_secs(10) {
                        return Duration::from_secs(10);
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
        let all = futures_util::future::join_all(waits).await;
        samples.push(all.into_iter().max().unwrap_or_default());
    }
    samples.sort_unstable();
    println!(
        "propagation, admin API response -> live on all 3 data planes, {} key creations: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0)
    );
    Ok(())
}

fn big_snapshot(
    version: u64,
    keys: usize,
    routes: usize,
    mock: &str,
    bench_hash: &str,
) -> proto::Snapshot {
    let providers = vec![proto::Provider {
        id: "mock".into(),
        kind: proto::ProviderKind::OpenaiCompatible,
        base_url: Some(format!("{mock}/v1")),
        api_key: Some(proto::Credential::Env {
            env: "BENCH_UPSTREAM_KEY".into(),
        }),
        api_version: None,
        timeout_ms: None,
        stream_usage: None,
        headers: BTreeMap::new(),
        settings: BTreeMap::new(),
        health_check_ms: None,
    }];
    let routes = (0..routes)
        .map(|i| proto::Route {
            alias: if i == 0 {
                "chat".into()
            } else {
                format!("route-{i:04}")
            },
            deployments: vec![proto::Deployment {
                provider: "mock".into(),
                model: format!("model-{i}"),
                weight: None,
                priority: None,
                rpm: None,
                tpm: None,
                timeout_ms: None,
            }],
            timeout_ms: None,
            reserve_output_tokens: None,
            strategy: None,
            fallbacks: Vec::new(),
            retry: None,
            context_window: None,
            rules: Vec::new(),
        })
        .collect();
    let mut all_keys: Vec<proto::VirtualKey> = (0..keys)
        .map(|i| proto::VirtualKey {
            name: format!("key-{i}"),
            sha256: hex::encode(sha2::Sha256::digest(format!("v{version}-k{i}"))),
            team: Some(format!("team-{}", i % 100)),
            models: vec!["*".into()],
            id: Some(format!("{i}")),
            expires_at: None,
            rpm: None,
            tpm: None,
            max_request_cost_usd: None,
            budget: None,
            tags: BTreeMap::new(),
        })
        .collect();
    all_keys.push(proto::VirtualKey {
        name: "bench".into(),
        sha256: bench_hash.into(),
        team: None,
        models: vec!["*".into()],
        id: None,
        expires_at: None,
        rpm: None,
        tpm: None,
        max_request_cost_usd: None,
        budget: None,
        tags: BTreeMap::new(),
    });
    proto::Snapshot {
        schema_version: proto::SCHEMA_VERSION,
        version,
        providers,
        routes,
        keys: all_keys,
        teams: Vec::new(),
        budgets: Vec::new(),
        pricing: Vec::new(),
        health: Vec::new(),
    }
}

/// oha at 1,000 req/s for `secs`; returns p99 in ms.
async fn load_p99(url: &str, key: &str, secs: u64) -> anyhow::Result<f64> {
    let out = tokio::process::Command::new("oha")
        .args([
            "--no-tui",
            "--output-format",
            "json",
            "-z",
            &format!("{secs}s"),
            "-q",
            "1000",
            "--latency-correction",
            "-c",
            "32",
            "-m",
            "POST",
        ])
        .args([
            "-T",
            "application/json",
            "-H",
            &format!("Authorization: Bearer {key}"),
        ])
        .args([
            "-d",
            r#"{"model":"chat","messages":[{"role":"user","content":"hello there"}]}"#,
            url,
        ])
        .output()
        .await
        .context("running oha (cargo install oha)")?;
    let v: Value = serde_json::from_slice(&out.stdout).context("oha output")?;
    let ok = v["statusCodeDistribution"]["200"].as_u64().unwrap_or(0);
    anyhow::ensure!(ok > 0, "no successful requests: {v}");
    let p99 = v["latencyPercentiles"]["p99"]
        .as_f64()
        .with_context(|| format!("no p99 in oha's output: {}", v["latencyPercentiles"]))?;
    Ok(p99 * 1e3)
}

async fn metric_sum(ops: &str, name: &str, label: &str) -> anyhow::Result<(f64, f64)> {
    let text = reqwest::get(format!("{ops}/metrics")).await?.text().await?;
    let find = |suffix: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}_{suffix}")) && l.contains(label))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((find("sum"), find("count")))
}

async fn big_swaps(keys: usize, routes: usize) -> anyhow::Result<()> {
    let mut env = TestEnv::builder().nats().mock_provider().build().await?;
    let publisher = Publisher::connect(env.nats().client().await?).await?;
    let bench_key = "sk-sy-bench-swap-key";
    let bench_hash = hex::encode(sha2::Sha256::digest(bench_key));
    let mock = env.mock().base_url();
    let snapshots: Vec<proto::Snapshot> = (1..=17)
        .map(|v| big_snapshot(v, keys, routes, &mock, &bench_hash))
        .collect();
    let size = serde_json::to_vec(&snapshots[0])?.len();
    publisher.publish(&snapshots[0]).await?;
    env.start_data_plane(
        DataPlaneSpec::nats()
            .env("BENCH_UPSTREAM_KEY", "x")
            .env("SWITCHYARD_LOG", "warn"),
    )
    .await?;
    let dp = env.data_plane();
    let url = format!("{}/v1/chat/completions", dp.base_url());
    let ops = dp.ops_url();
    switchyard_tests::support::eventually(Duration::from_secs(60), || async {
        reqwest::get(format!("{ops}/readyz"))
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
    })
    .await?;

    let baseline = load_p99(&url, bench_key, 10).await?;
    let (f0, n0) = metric_sum(&ops, "switchyard_snapshot_swap_seconds", "stage=\"fetch\"").await?;
    let (c0, _) = metric_sum(
        &ops,
        "switchyard_snapshot_swap_seconds",
        "stage=\"compile\"",
    )
    .await?;
    // Bodies are uploaded before the measured window (that is the control plane's and NATS's
    // work); during it only pointers move, so the window measures the proxy's own swaps.
    let mut publish_ms = Vec::new();
    let mut staged = Vec::new();
    for s in &snapshots[1..12] {
        let t = Instant::now();
        staged.push(publisher.stage(s).await?);
        publish_ms.push(t.elapsed());
    }
    publish_ms.sort_unstable();
    let announcing = {
        let publisher = publisher.clone();
        tokio::spawn(async move {
            for pointer in staged {
                let _ = publisher.announce(pointer).await;
                tokio::time::sleep(Duration::from_millis(900)).await;
            }
        })
    };
    let swapping = load_p99(&url, bench_key, 10).await?;
    announcing.await?;
    let (f1, n1) = metric_sum(&ops, "switchyard_snapshot_swap_seconds", "stage=\"fetch\"").await?;
    let (c1, _) = metric_sum(
        &ops,
        "switchyard_snapshot_swap_seconds",
        "stage=\"compile\"",
    )
    .await?;
    let swaps = n1 - n0;
    println!(
        "big snapshot: {keys} keys + {routes} routes = {:.1} MB of JSON; control-plane upload to NATS p50 {:.0} ms",
        size as f64 / 1e6,
        percentile(&publish_ms, 0.5)
    );
    if swaps > 0.0 {
        println!(
            "data-plane swap (background work per snapshot, {swaps} swaps): fetch {:.0} ms + parse/validate/compile {:.0} ms = {:.0} ms",
            (f1 - f0) / swaps * 1e3,
            (c1 - c0) / swaps * 1e3,
            ((f1 - f0) + (c1 - c0)) / swaps * 1e3
        );
    }
    // One swap per 3-second window, five times, against five windows without a swap.
    let mut quiet = Vec::new();
    let mut single = Vec::new();
    for s in &snapshots[12..] {
        quiet.push(load_p99(&url, bench_key, 3).await?);
        let pointer = publisher.stage(s).await?;
        let publisher = publisher.clone();
        let announce = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let _ = publisher.announce(pointer).await;
        });
        single.push(load_p99(&url, bench_key, 3).await?);
        announce.await?;
    }
    let worst = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!(
        "request p99 at 1,000 req/s over 3 s windows: worst of 5 without a swap {:.3} ms, worst of 5 with one swap {:.3} ms ({:+.0}%)",
        worst(&quiet),
        worst(&single),
        (worst(&single) / worst(&quiet) - 1.0) * 100.0
    );
    println!(
        "request p99 at 1,000 req/s: {baseline:.3} ms without swaps, {swapping:.3} ms while swapping every ~1 s ({:+.0}%)",
        (swapping / baseline - 1.0) * 100.0
    );
    Ok(())
}
