//! Beyond one machine: a 3-node NATS cluster, two control-plane replicas and three proxies
//! under steady mixed load (chat and streams, a hard team budget so leases are in play), while,
//! in one run, a NATS node is killed and comes back, the control-plane leader is killed, and
//! Postgres restarts, with config changes made throughout. At the end: at least 99.9% of
//! requests succeeded, every change reached every proxy, the ledger equals what the mock billed
//! times the price to the last decimal, every answered request has exactly one usage event,
//! and every spool is empty.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use switchyard_tests::support::{
    eventually, wait_until_served, ControlPlane, DataPlaneSpec, MockProviderOptions, TestEnv,
};

use crate::fixture::{add_mock_provider, client, dec, UPSTREAM_KEY};

const PRICE: (&str, &str) = ("0.37", "1.91");
const CLIENTS: usize = 6;
const WAIT: Duration = Duration::from_secs(60);

/// What the load saw.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    ok: usize,
    /// The `x-request-id` of every answer (each metered request's usage event id).
    ids: Vec<String>,
}

/// One request: its request id if a proxy answered, and whether it succeeded. Every third one
/// streams.
async fn one(
    http: &reqwest::Client,
    proxy: &str,
    secret: &str,
    i: usize,
) -> (Option<String>, bool) {
    let stream = i.is_multiple_of(3);
    let words: Vec<String> = (0..(i % 5 + 1)).map(|w| format!("w{w}")).collect();
    let mut body =
        json!({"model": "steady", "messages": [{"role": "user", "content": words.join(" ")}]});
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    let sent = http
        .post(format!("{proxy}/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&body)
        .timeout(Duration::from_secs(20))
        .send()
        .await;
    let Ok(answer) = sent else {
        return (None, false);
    };
    let id = answer
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ok = answer.status() == 200;
    let mut bytes = answer.bytes_stream();
    let mut text = Vec::new();
    while let Some(chunk) = bytes.next().await {
        match chunk {
            Ok(c) => text.extend_from_slice(&c),
            Err(_) => return (id, false),
        }
    }
    let complete = !stream || text.ends_with(b"data: [DONE]\n\n");
    (id, ok && complete)
}

/// A gauge's value in a Prometheus text page (the first series of that name).
fn gauge(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The roles a control plane says it holds (empty while it does not answer).
async fn roles(cp: &ControlPlane) -> Vec<String> {
    let ready = client()
        .get(format!("{}/readyz", cp.base_url()))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    let Ok(ready) = ready else {
        return Vec::new();
    };
    let body: Value = ready.json().await.unwrap_or_default();
    body["roles"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Which of `cps` publishes snapshots (waits until exactly one does).
async fn publisher(cps: &[ControlPlane]) -> usize {
    eventually(WAIT, || async {
        let mut leaders = Vec::new();
        for (i, cp) in cps.iter().enumerate() {
            if roles(cp).await.iter().any(|r| r == "publisher") {
                leaders.push(i);
            }
        }
        anyhow::ensure!(leaders.len() == 1, "publishers: {leaders:?}");
        anyhow::Ok(leaders[0])
    })
    .await
    .unwrap()
}

/// A config change through `cp`, retried while Postgres or the replica is away: a new key of
/// `team` for every alias. Returns its secret.
async fn change(cp: &ControlPlane, team: &str, n: usize) -> String {
    eventually(WAIT, || async {
        let key = cp
            .post(
                "/admin/keys",
                &json!({"team_id": team, "name": format!("change-{n}"), "models": ["*"]}),
            )
            .await?;
        anyhow::Ok(key["secret"].as_str().unwrap_or_default().to_owned())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_rides_out_a_nats_node_the_leader_and_postgres_dying_under_load() {
    let mut env = TestEnv::builder()
        .postgres()
        .nats_cluster(3)
        .mock_provider_with(MockProviderOptions::new().api_key(UPSTREAM_KEY))
        .build()
        .await
        .unwrap();
    // The harness runs Postgres for speed (`synchronous_commit=off`), which an immediate
    // restart punishes by losing the last commits: a real failover target would not. Every
    // session of the planes commits durably here, as in production.
    let pg = env.postgres().client().await.unwrap();
    pg.batch_execute("ALTER ROLE CURRENT_USER SET synchronous_commit = on")
        .await
        .unwrap();
    drop(pg);
    let mut cps = vec![
        env.control_plane("cp-a").await.unwrap(),
        env.control_plane("cp-b").await.unwrap(),
    ];
    let leader = publisher(&cps).await;
    let other = 1 - leader;
    // Both replicas fold and grant leases; only the leader publishes.
    for cp in &cps {
        let held = eventually(WAIT, || async {
            let held = roles(cp).await;
            let all = ["fold", "request_log", "leases"];
            anyhow::ensure!(all.iter().all(|r| held.iter().any(|h| h == r)), "{held:?}");
            Ok(held)
        })
        .await
        .unwrap();
        assert!(held.len() >= 3, "{held:?}");
    }
    let cp = &cps[leader];
    let team = cp
        .post("/admin/teams", &json!({"name": "scale"}))
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    add_mock_provider(cp, &env).await;
    cp.post(
        "/admin/routes",
        &json!({"alias": "steady", "deployments": [{"provider": "mock", "model": "steady"}]}),
    )
    .await
    .unwrap();
    let answer = cp
        .call(
            reqwest::Method::PUT,
            "/admin/pricing/steady",
            None,
            Some(&json!({"input_per_mtok": PRICE.0, "output_per_mtok": PRICE.1})),
        )
        .await
        .unwrap();
    assert!(answer.status < 300, "{answer:?}");
    // A hard budget far above what the run spends: every request is admitted from leases.
    cp.post(
        "/admin/budgets",
        &json!({"name": "scale", "scope": "team", "target": team, "amount_usd": "1000",
                "period": "daily", "hard": true}),
    )
    .await
    .unwrap();
    let secret = change(cp, &team, 0).await;
    for _ in 0..3 {
        env.start_data_plane(DataPlaneSpec::nats_sealed())
            .await
            .unwrap();
    }
    let proxies: Vec<String> = env.data_planes().iter().map(|d| d.base_url()).collect();
    for p in &proxies {
        wait_until_served(p, &secret, "steady").await.unwrap();
    }

    // Everything the planes created is replicated on all three nodes.
    let js = env.nats().jetstream().await.unwrap();
    for stream in [
        proto::USAGE_STREAM.to_owned(),
        proto::REQUESTS_STREAM.to_owned(),
        format!("KV_{}", proto::SNAPSHOT_KV_BUCKET),
        format!("KV_{}", proto::SNAPSHOT_PARTS_BUCKET),
        format!("OBJ_{}", proto::SNAPSHOT_OBJECT_BUCKET),
    ] {
        let mut s = js.get_stream(&stream).await.unwrap();
        let info = s.info().await.unwrap();
        assert_eq!(info.config.num_replicas, 3, "{stream}");
    }

    // Steady load until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for c in 0..CLIENTS {
        let (stop, proxies, secret, http) =
            (Arc::clone(&stop), proxies.clone(), secret.clone(), client());
        load.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let (id, ok) = one(&http, &proxies[i % proxies.len()], &secret, i).await;
                tally.sent += 1;
                tally.ok += usize::from(ok);
                tally.ids.extend(id);
                i += CLIENTS;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tally
        }));
    }
    let pause = |secs| tokio::time::sleep(Duration::from_secs(secs));
    let mut secrets = vec![secret.clone()];
    pause(2).await;
    secrets.push(change(&cps[leader], &team, 1).await);

    // A NATS node dies hard, a change is made meanwhile, and it comes back.
    env.nats_node_mut(1).kill().unwrap();
    pause(3).await;
    secrets.push(change(&cps[leader], &team, 2).await);
    env.nats_node_mut(1).restart().await.unwrap();
    pause(2).await;

    // The publishing replica dies hard: the other takes over within seconds.
    cps[leader].kill().unwrap();
    let killed = Instant::now();
    eventually(Duration::from_secs(15), || async {
        let held = roles(&cps[other]).await;
        anyhow::ensure!(held.iter().any(|r| r == "publisher"), "{held:?}");
        Ok(())
    })
    .await
    .unwrap();
    let takeover = killed.elapsed();
    secrets.push(change(&cps[other], &team, 3).await);
    cps[leader].restart().await.unwrap();
    pause(2).await;

    // Postgres restarts (the stand-in for a failover): proxies keep serving from their leases.
    env.postgres_mut().restart().await.unwrap();
    secrets.push(change(&cps[other], &team, 4).await);
    pause(3).await;
    secrets.push(change(&cps[leader], &team, 5).await);
    pause(2).await;

    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for t in load {
        let t = t.await.unwrap();
        tally.sent += t.sent;
        tally.ok += t.ok;
        tally.ids.extend(t.ids);
    }
    let (sent, ok) = (tally.sent, tally.ok);
    eprintln!("load: {ok} of {sent} succeeded; publisher takeover after {takeover:?}");
    assert!(tally.sent >= 500, "the load ran: {sent} requests");
    assert!(
        tally.ok * 1000 >= tally.sent * 999,
        "{} of {} succeeded (need 99.9%)",
        tally.ok,
        tally.sent
    );
    assert!(
        takeover < Duration::from_secs(10),
        "takeover took {takeover:?}"
    );

    // Every change reached every proxy: all run the version the publisher published last.
    let published = eventually(WAIT, || async {
        let page = client()
            .get(format!("{}/metrics", cps[other].base_url()))
            .send()
            .await?
            .text()
            .await?;
        let mut best = gauge(&page, "switchyard_snapshot_published_version").unwrap_or(0.0);
        let page = client()
            .get(format!("{}/metrics", cps[leader].base_url()))
            .send()
            .await?
            .text()
            .await?;
        best = best.max(gauge(&page, "switchyard_snapshot_published_version").unwrap_or(0.0));
        anyhow::ensure!(best > 0.0, "nothing published");
        Ok(best)
    })
    .await
    .unwrap();
    for dp in env.data_planes() {
        eventually(WAIT, || async {
            let page = dp.metrics().await?;
            let version = gauge(&page, "switchyard_snapshot_version").unwrap_or(0.0);
            anyhow::ensure!(version >= published, "{version} < {published}");
            Ok(())
        })
        .await
        .unwrap();
    }

    // The ledger equals what the mock billed, times the price, with one event per answer.
    let records = env.mock().requests().await.unwrap();
    let (mut prompt, mut completion) = (0u64, 0u64);
    for r in &records {
        if let Some(b) = r.get("billed").filter(|b| !b.is_null()) {
            prompt += b["prompt_tokens"].as_u64().unwrap();
            completion += b["completion_tokens"].as_u64().unwrap();
        }
    }
    let cost = (Decimal::from(prompt) * dec(&json!(PRICE.0))
        + Decimal::from(completion) * dec(&json!(PRICE.1)))
        / Decimal::from(1_000_000u64);
    // The requests that proved each proxy serves (`wait_until_served`) are metered too.
    let spend = "/admin/spend?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
    let cp = &cps[other];
    let folded = eventually(Duration::from_secs(60), || async {
        let total = cp.get(spend).await?["total"].clone();
        let folded = total["prompt_tokens"].as_u64().unwrap_or(0);
        anyhow::ensure!(
            folded >= prompt,
            "folded {folded} of {prompt} prompt tokens"
        );
        Ok(total)
    })
    .await;
    if folded.is_err() {
        let pg = env.postgres().client().await.unwrap();
        let rows = pg
            .query("SELECT id::text FROM usage_events", &[])
            .await
            .unwrap();
        let events: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        let missing: Vec<&String> = tally
            .ids
            .iter()
            .filter(|id| !events.contains(*id))
            .collect();
        panic!("not folded: {folded:?}; missing {missing:?}");
    }
    let total = folded.unwrap();
    pause(2).await;
    let again = cp.get(spend).await.unwrap()["total"].clone();
    assert_eq!(again, total, "nothing folded twice or late");
    assert_eq!(
        (
            total["prompt_tokens"].as_u64().unwrap(),
            total["completion_tokens"].as_u64().unwrap()
        ),
        (prompt, completion),
        "{total}"
    );
    assert_eq!(dec(&total["cost_usd"]), cost, "{total}");
    // No event lost: every answer of the load has its event. None counted twice: the ledger
    // counts as many requests as there are events (ids are the table's key).
    let pg = env.postgres().client().await.unwrap();
    let rows = pg
        .query("SELECT id::text FROM usage_events", &[])
        .await
        .unwrap();
    let events: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    let missing: Vec<&String> = tally
        .ids
        .iter()
        .filter(|id| !events.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} answers have no usage event: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let distinct: HashSet<&String> = tally.ids.iter().collect();
    assert_eq!(distinct.len(), tally.ids.len(), "request ids are unique");
    assert_eq!(
        total["requests"].as_u64().unwrap() as usize,
        events.len(),
        "the ledger counts each event once: {total}"
    );
    // Beyond the load's, the only events are the few requests that proved each proxy serves.
    assert!(
        events.len() - tally.ids.len() <= 100,
        "{} extra events",
        events.len() - tally.ids.len()
    );

    // Nothing waits in any spool.
    for dp in env.data_planes() {
        eventually(WAIT, || async {
            let page = dp.metrics().await?;
            let bytes = gauge(&page, "switchyard_usage_spool_bytes").unwrap_or(0.0);
            anyhow::ensure!(bytes == 0.0, "{bytes} bytes spooled");
            Ok(())
        })
        .await
        .unwrap();
    }

    // And every key made during the faults works on every proxy.
    for p in &proxies {
        for s in &secrets {
            wait_until_served(p, s, "steady").await.unwrap();
        }
    }
}
