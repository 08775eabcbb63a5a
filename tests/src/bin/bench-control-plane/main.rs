//! Benchmark of snapshot distribution (prints figures; not a test).
//!
//! 1. Propagation: 200 keys created through the admin API; for each, the time from the API's
//!    response until all 3 data planes accept the key. p50/p99/max.
//! 2. Big swaps: a data plane holding a snapshot with 100,000 keys and 1,000 routes, under
//!    1,000 req/s of load (oha), is sent new versions over NATS; the data plane's own fetch and
//!    compile times, and the request p99 with and without swaps going on. Twice: versions that
//!    change what admin changes do (a key added, a route edited: what the control plane
//!    publishes), and versions in which every one of the 100,000 keys is different (the worst
//!    case: a proxy's cold start, or a mass re-keying).
//!
//! Run through `tests/bench/control-plane.sh`, which builds release binaries and points the
//! harness at them.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use control_plane::outbox::publish::Publisher;
use serde_json::json;
use sha2::Digest;
use switchyard_tests::support::{ControlPlane, DataPlaneSpec, MockProviderOptions, TestEnv};

mod measure;

use measure::*;

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
        env.start_data_plane(DataPlaneSpec::nats_sealed().env("SWITCHYARD_LOG", "warn"))
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

/// How successive big snapshots differ.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    /// One key added and one route's model changed per version (the same 100,000 keys).
    Edit,
    /// Every key different in every version.
    Replace,
}

fn big_snapshot(
    version: u64,
    change: Change,
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
    let edited = (version as usize) % routes;
    let routes = (0..routes)
        .map(|i| proto::Route {
            alias: if i == 0 {
                "chat".into()
            } else {
                format!("route-{i:04}")
            },
            deployments: vec![proto::Deployment {
                provider: "mock".into(),
                model: if change == Change::Edit && i == edited && i > 0 {
                    format!("model-{i}-v{version}")
                } else {
                    format!("model-{i}")
                },
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
    let key = |name: String, seed: String| proto::VirtualKey {
        team: Some("team-1".into()),
        ..proto::VirtualKey::allowing_all(name, hex::encode(sha2::Sha256::digest(seed)))
    };
    let mut all_keys: Vec<proto::VirtualKey> = match change {
        Change::Edit => (0..keys)
            .map(|i| key(format!("key-{i}"), format!("k{i}")))
            .chain((1..=version).map(|v| key(format!("added-{v}"), format!("added-{v}"))))
            .collect(),
        Change::Replace => (0..keys)
            .map(|i| key(format!("key-{i}"), format!("v{version}-k{i}")))
            .collect(),
    };
    all_keys.push(proto::VirtualKey {
        sha256: bench_hash.into(),
        ..key("bench".into(), String::new())
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
        cache_policies: Vec::new(),
        guardrails: Vec::new(),
    }
}

async fn big_swaps(keys: usize, routes: usize) -> anyhow::Result<()> {
    let mut env = TestEnv::builder().nats().mock_provider().build().await?;
    let publisher = Publisher::connect(env.nats().client().await?).await?;
    let bench_key = "sk-sy-bench-swap-key";
    let bench_hash = hex::encode(sha2::Sha256::digest(bench_key));
    let mock = env.mock().base_url();
    let first = big_snapshot(1, Change::Edit, keys, routes, &mock, &bench_hash);
    let size = serde_json::to_vec(&first)?.len();
    let t = Instant::now();
    let pointer = publisher.publish(&first).await?;
    let first_publish = t.elapsed();
    let parts = pointer.keys.as_ref().map_or(0, |k| k.parts.len());
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
    let cold = swap_totals(&ops).await?;
    println!(
        "big snapshot: {keys} keys + {routes} routes ({:.1} MB as one JSON body; {parts} key parts); first publish {:.0} ms; cold start in the data plane: fetch {:.0} ms + parse/validate/compile {:.0} ms",
        size as f64 / 1e6,
        first_publish.as_secs_f64() * 1e3,
        cold.fetch / cold.count.max(1.0) * 1e3,
        cold.compile / cold.count.max(1.0) * 1e3,
    );
    let mut version = 1;
    for change in [Change::Edit, Change::Replace] {
        let mut next = || {
            version += 1;
            big_snapshot(version, change, keys, routes, &mock, &bench_hash)
        };
        let label = match change {
            Change::Edit => "edit swaps (one key added + one route changed per version)",
            Change::Replace => "full swaps (all 100k keys different in each version)",
        };
        swap_rounds(&publisher, &url, &ops, bench_key, label, &mut next).await?;
    }
    Ok(())
}

/// Sum and count of the data plane's swap-time histogram, per stage.
struct SwapTotals {
    fetch: f64,
    compile: f64,
    count: f64,
}

async fn swap_totals(ops: &str) -> anyhow::Result<SwapTotals> {
    let name = "switchyard_snapshot_swap_seconds";
    let (fetch, count) = metric_sum(ops, name, "stage=\"fetch\"").await?;
    let (compile, _) = metric_sum(ops, name, "stage=\"compile\"").await?;
    Ok(SwapTotals {
        fetch,
        compile,
        count,
    })
}

/// Under load, windows without swaps alternate with windows with swaps, and each kind's
/// requests are pooled for one p99: 6 pairs of 3-second windows (one swap 1 s into each), then
/// 2 pairs of 10-second windows (a swap every ~0.9 s). Prints the proxy's background work per
/// swap, the p99s, and what each process spent on CPU and waiting for a CPU meanwhile.
async fn swap_rounds(
    publisher: &Publisher,
    url: &str,
    ops: &str,
    bench_key: &str,
    label: &str,
    next: &mut impl FnMut() -> proto::Snapshot,
) -> anyhow::Result<()> {
    let before = swap_totals(ops).await?;
    let mut publish_ms = Vec::new();
    let (mut quiet, mut single) = (Vec::new(), Vec::new());
    for _ in 0..6 {
        quiet.extend(load(url, bench_key, 3).await?);
        let snapshot = next();
        let t = Instant::now();
        let pointer = publisher.stage(&snapshot).await?;
        publish_ms.push(t.elapsed());
        let publisher = publisher.clone();
        let announce = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let _ = publisher.announce(pointer).await;
        });
        single.push(load(url, bench_key, 3).await?);
        announce.await?;
    }
    let mut single: Vec<f64> = single.into_iter().flatten().collect();
    let (mut calm, mut busy) = (Vec::new(), Vec::new());
    let (mut calm_cpu, mut busy_cpu) = (BTreeMap::new(), BTreeMap::new());
    let add = |total: &mut BTreeMap<String, (f64, f64)>, part: BTreeMap<String, (f64, f64)>| {
        for (k, (run, wait)) in part {
            let e = total.entry(k).or_insert((0.0, 0.0));
            e.0 += run / 2.0;
            e.1 += wait / 2.0;
        }
    };
    for _ in 0..2 {
        // Bodies are uploaded before the windows (that is the control plane's and NATS's work);
        // during them only pointers move.
        let mut staged = Vec::new();
        for _ in 0..11 {
            let snapshot = next();
            let t = Instant::now();
            staged.push(publisher.stage(&snapshot).await?);
            publish_ms.push(t.elapsed());
        }
        let t0 = sched_times();
        calm.extend(load(url, bench_key, 10).await?);
        let t1 = sched_times();
        add(&mut calm_cpu, per_second(&t0, &t1, 10.0));
        let announcing = {
            let publisher = publisher.clone();
            tokio::spawn(async move {
                for pointer in staged {
                    let _ = publisher.announce(pointer).await;
                    tokio::time::sleep(Duration::from_millis(900)).await;
                }
            })
        };
        busy.extend(load(url, bench_key, 10).await?);
        add(&mut busy_cpu, per_second(&t1, &sched_times(), 10.0));
        announcing.await?;
    }
    let after = swap_totals(ops).await?;
    let swaps = after.count - before.count;
    publish_ms.sort_unstable();
    println!(
        "{label}: control-plane stage (parts + body to NATS) p50 {:.0} ms",
        percentile(&publish_ms, 0.5)
    );
    if swaps > 0.0 {
        println!(
            "  data-plane swap (background work per snapshot, {swaps} swaps): fetch {:.1} ms + parse/validate/compile {:.1} ms = {:.1} ms",
            (after.fetch - before.fetch) / swaps * 1e3,
            (after.compile - before.compile) / swaps * 1e3,
            ((after.fetch - before.fetch) + (after.compile - before.compile)) / swaps * 1e3
        );
    }
    let change = |base: f64, with: f64| (with / base - 1.0) * 100.0;
    let (q, o) = (p99(&mut quiet), p99(&mut single));
    println!(
        "  request p99 at 1,000 req/s, 6 x 3 s windows each: {q:.3} ms without a swap, {o:.3} ms with one swap per window ({:+.0}%)",
        change(q, o)
    );
    let (c, b) = (p99(&mut calm), p99(&mut busy));
    println!(
        "  request p99 at 1,000 req/s, 2 x 10 s windows each: {c:.3} ms without swaps, {b:.3} ms swapping every ~0.9 s ({:+.0}%)",
        change(c, b)
    );
    let usage: Vec<String> = busy_cpu
        .iter()
        .map(|(name, (run, wait))| {
            let (run0, wait0) = calm_cpu.get(name).copied().unwrap_or_default();
            format!(
                "{name} {run0:.0} -> {run:.0} ms CPU, {wait0:.1} -> {wait:.1} ms waiting for a CPU"
            )
        })
        .collect();
    println!(
        "  per second, without swaps -> swapping every ~0.9 s: {}",
        usage.join("; ")
    );
    Ok(())
}
