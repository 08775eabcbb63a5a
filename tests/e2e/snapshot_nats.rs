//! Snapshots over NATS: cold start from the bucket, hot swap by push, refusal of older or broken
//! snapshots, serving from the cache file while NATS is down, and sealed credentials and key
//! expiry in snapshots the control plane publishes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use control_plane::outbox::publish::Publisher;
use proto::{
    KeyParts, Snapshot, SnapshotPointer, SNAPSHOT_KV_BUCKET, SNAPSHOT_KV_KEY,
    SNAPSHOT_OBJECT_BUCKET, SNAPSHOT_PARTS_BUCKET, SNAPSHOT_SUBJECT,
};
use serde_json::Value;
use sha2::Digest as _;
use switchyard_tests::support::{eventually, DataPlane, DataPlaneSpec, TestEnv};

use crate::fixture::{chat_body, client, error_of, nats_and_mock, sha256_hex, UPSTREAM_KEY};

const KEY: &str = "sk-sy-nats-test-0123456789";

/// The seal test vector of `data-plane/src/seal.rs`: the control plane seals the same way.
const SEAL_KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SEALED_FOR: &str = "openai-main";
const SEALED_PLAINTEXT: &str = "sk-upstream-test-vector-0123456789";
const SEALED: &str = "v1:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7DxjUxY9d/fDiUfAS0grOvXbNNxKQQ7idvGRWlB9rTieTP6Ixa0GcdpN9AvWKZGqSf4Y=";

/// A snapshot at `version` whose `mock` provider points at the environment's first mock, with
/// the alias `chat` plus `extra_aliases`, and the key [`KEY`].
fn snapshot(env: &TestEnv, version: u64, extra_aliases: &[&str]) -> Snapshot {
    let mut routes =
        String::from("  - { alias: chat, deployments: [{ provider: mock, model: mock-chat }] }\n");
    for alias in extra_aliases {
        routes.push_str(&format!(
            "  - {{ alias: {alias}, deployments: [{{ provider: mock, model: {alias}-model }}] }}\n"
        ));
    }
    let yaml = format!(
        r#"
version: {version}
providers:
  - {{ id: mock, kind: openai_compatible, base_url: "{base}/v1", api_key: {{ env: MOCK_UPSTREAM_KEY }} }}
routes:
{routes}
keys:
  - {{ name: nats-key, sha256: "{key}", models: ["*"] }}
"#,
        base = env.mock().base_url(),
        key = sha256_hex(KEY),
    );
    serde_yaml::from_str(&yaml).expect("test snapshot parses")
}

/// A data plane following the environment's NATS.
fn nats_data_plane() -> DataPlaneSpec {
    DataPlaneSpec::nats().env("MOCK_UPSTREAM_KEY", UPSTREAM_KEY)
}

async fn publisher(env: &TestEnv) -> Publisher {
    Publisher::connect(env.nats().client().await.unwrap())
        .await
        .expect("publisher opens the buckets")
}

/// NATS, the mock and one data plane serving snapshot 5 (the alias `chat` only), published
/// before the data plane started so it comes from the bucket.
async fn env_serving_v5() -> TestEnv {
    let mut env = nats_and_mock(UPSTREAM_KEY).await;
    publisher(&env)
        .await
        .publish(&snapshot(&env, 5, &[]))
        .await
        .unwrap();
    env.start_data_plane(nats_data_plane()).await.unwrap();
    wait_for_version(env.data_plane(), 5, Duration::from_secs(10)).await;
    env
}

/// Status and body of a chat call for `model` with `key`.
async fn chat_as(dp: &DataPlane, key: &str, model: &str) -> (u16, String) {
    let response = client()
        .post(dp.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat_body(model))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("request reaches the data plane");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn chat(dp: &DataPlane, model: &str) -> u16 {
    chat_as(dp, KEY, model).await.0
}

/// `/readyz`: status and the served snapshot version, if any.
async fn readyz(dp: &DataPlane) -> (u16, Option<u64>) {
    let response = client()
        .get(format!("{}/readyz", dp.ops_url()))
        .send()
        .await
        .expect("ops listener answers");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    (status, body["snapshot_version"].as_u64())
}

async fn wait_for_version(dp: &DataPlane, version: u64, timeout: Duration) {
    eventually(timeout, || async {
        let (_, got) = readyz(dp).await;
        anyhow::ensure!(got == Some(version), "serving {got:?}, want {version}");
        Ok(())
    })
    .await
    .unwrap();
}

/// Waits until the first data plane's cache file holds snapshot `version`, then stops NATS and
/// restarts that data plane, which can only serve from the file.
async fn restart_from_the_cache_without_nats(env: &mut TestEnv, version: u64) {
    let cache = env.data_plane().snapshot_cache_path().to_owned();
    let marker = format!("\"version\":{version}");
    eventually(Duration::from_secs(5), || async {
        std::fs::read(&cache).is_ok_and(|b| String::from_utf8_lossy(&b).contains(&marker))
    })
    .await
    .unwrap();
    env.nats_mut().stop().await.unwrap();
    env.data_plane_mut(0).restart().await.unwrap();
}

async fn metrics(dp: &DataPlane) -> String {
    dp.metrics().await.unwrap()
}

/// Puts `snapshot`'s whole body, keys inline, into the object store (as control planes did
/// before key parts, and a reader must still accept), without touching the pointer; returns
/// the pointer that names it.
async fn put_body(js: &jetstream::Context, snapshot: &Snapshot) -> SnapshotPointer {
    let body = serde_json::to_vec(snapshot).unwrap();
    let pointer = SnapshotPointer {
        version: snapshot.version,
        object: SnapshotPointer::object_name(snapshot.version),
        sha256: hex::encode(sha2::Sha256::digest(&body)),
        size: body.len() as u64,
        keys: None,
        published_at_ms: None,
    };
    let objects = js.get_object_store(SNAPSHOT_OBJECT_BUCKET).await.unwrap();
    objects
        .put(pointer.object.as_str(), &mut body.as_slice())
        .await
        .unwrap();
    pointer
}

/// Pushes `pointer` on the snapshot subject only (no bucket update).
async fn push(env: &TestEnv, pointer: &SnapshotPointer) {
    let client = env.nats().client().await.unwrap();
    client
        .publish(
            SNAPSHOT_SUBJECT,
            serde_json::to_vec(pointer).unwrap().into(),
        )
        .await
        .unwrap();
    client.flush().await.unwrap();
}

#[tokio::test]
async fn snapshot_nats_cold_start_from_the_bucket_and_first_push() {
    let mut env = nats_and_mock(UPSTREAM_KEY).await;
    // Started before anything is published: up, but not ready.
    env.start_data_plane(nats_data_plane()).await.unwrap();
    assert_eq!(readyz(env.data_plane()).await, (503, None));
    assert_eq!(chat(env.data_plane(), "chat").await, 503);

    let v5 = snapshot(&env, 5, &[]);
    publisher(&env).await.publish(&v5).await.unwrap();
    wait_for_version(env.data_plane(), 5, Duration::from_secs(10)).await;
    assert_eq!(chat(env.data_plane(), "chat").await, 200);

    // A data plane started afterwards reads the pointer from the bucket.
    env.start_data_plane(nats_data_plane()).await.unwrap();
    let late = env.data_plane_at(1);
    wait_for_version(late, 5, Duration::from_secs(10)).await;
    assert_eq!(chat(late, "chat").await, 200);
    let log = late.stderr().unwrap();
    assert!(log.contains("snapshot installed from NATS"), "{log}");
    assert!(
        late.snapshot_cache_path().exists(),
        "the installed snapshot is cached"
    );
    assert!(metrics(late)
        .await
        .contains("switchyard_snapshot_reloads_total{result=\"ok\"} 1"));
}

#[tokio::test]
async fn snapshot_nats_hot_swap_reaches_three_data_planes_within_a_second() {
    let mut env = nats_and_mock(UPSTREAM_KEY).await;
    let publisher = publisher(&env).await;
    publisher.publish(&snapshot(&env, 5, &[])).await.unwrap();
    for _ in 0..3 {
        env.start_data_plane(nats_data_plane()).await.unwrap();
    }
    for dp in env.data_planes() {
        wait_for_version(dp, 5, Duration::from_secs(10)).await;
        assert_eq!(chat(dp, "fresh").await, 404);
    }

    publisher
        .publish(&snapshot(&env, 6, &["fresh"]))
        .await
        .unwrap();
    eventually(Duration::from_secs(1), || async {
        for (i, dp) in env.data_planes().iter().enumerate() {
            let status = chat(dp, "fresh").await;
            anyhow::ensure!(status == 200, "data plane {i} answered {status}");
        }
        Ok(())
    })
    .await
    .unwrap();
    let seen = env.mock().requests().await.unwrap();
    assert_eq!(seen.last().unwrap()["body"]["model"], "fresh-model");
}

#[tokio::test]
async fn snapshot_nats_older_corrupt_and_invalid_snapshots_are_refused() {
    let env = env_serving_v5().await;
    let dp = env.data_plane();
    let js = env.nats().jetstream().await.unwrap();

    // Older: pushed straight on the subject, with its body really in the store.
    let v3 = put_body(&js, &snapshot(&env, 3, &["old-route"])).await;
    push(&env, &v3).await;
    // Newer but corrupt: the digest does not match the body.
    let mut v7 = put_body(&js, &snapshot(&env, 7, &["corrupt-route"])).await;
    v7.sha256 = "00".repeat(32);
    push(&env, &v7).await;
    // Newer but invalid: a route to a provider that does not exist.
    let mut v8 = snapshot(&env, 8, &["invalid-route"]);
    v8.routes[1].deployments[0].provider = "ghost".into();
    let v8 = put_body(&js, &v8).await;
    push(&env, &v8).await;

    eventually(Duration::from_secs(10), || async {
        let text = metrics(dp).await;
        for result in ["stale", "fetch_failed", "invalid"] {
            let line = format!("switchyard_snapshot_reloads_total{{result=\"{result}\"}} 1");
            anyhow::ensure!(text.contains(&line), "no `{line}` yet");
        }
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(readyz(dp).await, (200, Some(5)));
    for alias in ["old-route", "corrupt-route", "invalid-route"] {
        assert_eq!(chat(dp, alias).await, 404, "{alias} must not be served");
    }
    assert_eq!(chat(dp, "chat").await, 200);
    let log = dp.stderr().unwrap();
    assert!(
        log.contains("older than the snapshot being served"),
        "{log}"
    );
    assert!(
        log.contains("does not match the pointer's SHA-256"),
        "{log}"
    );
    assert!(log.contains("unknown provider `ghost`"), "{log}");

    // The same invalid pointer heard again is not fetched or counted again.
    push(&env, &v8).await;
    let v9 = put_body(&js, &snapshot(&env, 9, &["good-route"])).await;
    push(&env, &v9).await;
    wait_for_version(dp, 9, Duration::from_secs(10)).await;
    assert!(metrics(dp)
        .await
        .contains("switchyard_snapshot_reloads_total{result=\"invalid\"} 1"));
}

#[tokio::test]
async fn snapshot_nats_a_lost_push_is_recovered_from_the_bucket() {
    let env = env_serving_v5().await;

    // The control plane moved the pointer but its push never arrived.
    let js = env.nats().jetstream().await.unwrap();
    let v6 = put_body(&js, &snapshot(&env, 6, &["fresh"])).await;
    let kv = js.get_key_value(SNAPSHOT_KV_BUCKET).await.unwrap();
    kv.put(SNAPSHOT_KV_KEY, serde_json::to_vec(&v6).unwrap().into())
        .await
        .unwrap();
    // The bucket is re-read every 5 s.
    wait_for_version(env.data_plane(), 6, Duration::from_secs(10)).await;
    assert_eq!(chat(env.data_plane(), "fresh").await, 200);
}

#[tokio::test]
async fn snapshot_nats_a_restart_without_nats_serves_from_the_cache() {
    let mut env = env_serving_v5().await;
    restart_from_the_cache_without_nats(&mut env, 5).await;
    let dp = env.data_plane();
    // Ready at once, from the file, with NATS still down.
    assert_eq!(readyz(dp).await, (200, Some(5)));
    assert_eq!(chat(dp, "chat").await, 200);
    let log = dp.stderr().unwrap();
    assert!(
        log.contains("serving the cached snapshot until NATS answers"),
        "{log}"
    );
    // The cache kept when the snapshot was published (the fleet dashboard's age and the
    // stale-snapshot alert read it); published before this process started, it is no
    // propagation.
    let text = metrics(dp).await;
    assert!(
        text.contains("switchyard_snapshot_published_timestamp_seconds "),
        "{text}"
    );
    assert!(
        !text.contains("switchyard_snapshot_propagation_seconds_count"),
        "{text}"
    );

    // NATS comes back: the data plane connects on its own and follows new publishes.
    env.nats_mut().restart().await.unwrap();
    publisher(&env)
        .await
        .publish(&snapshot(&env, 6, &["fresh"]))
        .await
        .unwrap();
    let dp = env.data_plane();
    wait_for_version(dp, 6, Duration::from_secs(10)).await;
    assert_eq!(chat(dp, "fresh").await, 200);
}

#[tokio::test]
async fn snapshot_nats_no_request_fails_while_nats_is_killed() {
    let mut env = env_serving_v5().await;

    let url = env.data_plane().url("/v1/chat/completions");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        tokio::spawn(async move {
            let http = client();
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let outcome = http
                    .post(&url)
                    .bearer_auth(KEY)
                    .json(&chat_body("chat"))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                sent.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => failures.push(format!("status {}", r.status())),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            failures
        })
    };
    let during = |n: u64| {
        let sent = Arc::clone(&sent);
        async move {
            eventually(Duration::from_secs(10), || async {
                sent.load(Ordering::Relaxed) >= n
            })
            .await
            .unwrap();
        }
    };
    during(20).await;
    env.nats_mut().kill().unwrap();
    let at_kill = sent.load(Ordering::Relaxed);
    during(at_kill + 50).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let failures = load.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        sent.load(Ordering::Relaxed),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(readyz(env.data_plane()).await, (200, Some(5)));
}

#[tokio::test]
async fn snapshot_nats_sealed_credentials_and_key_expiry() {
    let mut env = nats_and_mock(SEALED_PLAINTEXT).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (expired, rotating, fresh) = (
        "sk-sy-expired-0123456789",
        "sk-sy-rotating-old-0123456789",
        "sk-sy-rotating-new-0123456789",
    );
    let yaml = format!(
        r#"
version: 5
providers:
  - {{ id: {SEALED_FOR}, kind: openai_compatible, base_url: "{base}/v1", api_key: {{ sealed: "{SEALED}" }} }}
  - {{ id: other-provider, kind: openai_compatible, base_url: "{base}/v1", api_key: {{ sealed: "{SEALED}" }} }}
routes:
  - {{ alias: chat, deployments: [{{ provider: {SEALED_FOR}, model: m }}] }}
  - {{ alias: wrong-provider, deployments: [{{ provider: other-provider, model: m }}] }}
keys:
  - {{ name: expired, sha256: "{}", models: ["*"], expires_at: {} }}
  - {{ name: rotating, id: key-1, sha256: "{}", models: ["*"], expires_at: {} }}
  - {{ name: rotating, id: key-1, sha256: "{}", models: ["*"] }}
"#,
        sha256_hex(expired),
        now - 60,
        sha256_hex(rotating),
        now + 3600,
        sha256_hex(fresh),
        base = env.mock().base_url(),
    );
    let snapshot: Snapshot = serde_yaml::from_str(&yaml).unwrap();
    publisher(&env).await.publish(&snapshot).await.unwrap();
    env.start_data_plane(DataPlaneSpec::nats().env("SWITCHYARD_SEAL_KEY", SEAL_KEY_B64))
        .await
        .unwrap();
    let dp = env.data_plane();
    wait_for_version(dp, 5, Duration::from_secs(10)).await;

    // The sealed credential opens and reaches the mock as the bearer token.
    for key in [rotating, fresh] {
        let (status, body) = chat_as(dp, key, "chat").await;
        assert_eq!(status, 200, "{body}");
    }
    let seen = env.mock().requests().await.unwrap();
    assert_eq!(
        seen.last().unwrap()["headers"]["authorization"],
        format!("Bearer {SEALED_PLAINTEXT}")
    );

    // Sealed for another provider: a credential error for that provider only, no secret shown.
    let (status, body) = chat_as(dp, fresh, "wrong-provider").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(error_of(&body).0, "upstream_credentials");
    assert!(!body.contains(SEALED_PLAINTEXT));

    // An expired key is refused like an unknown one.
    let (status, body) = chat_as(dp, expired, "chat").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_of(&body).0, "invalid_api_key");

    let log = dp.stderr().unwrap();
    assert!(
        !log.contains(SEALED_PLAINTEXT) && !log.contains(SEAL_KEY_B64),
        "no secret in logs: {log}"
    );
}

/// `switchyard_snapshot_key_parts_total{source}` of a data plane.
async fn parts_count(dp: &DataPlane, source: &str) -> u64 {
    let line = format!("switchyard_snapshot_key_parts_total{{source=\"{source}\"}} ");
    metrics(dp)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A key secret of the many-keys snapshot.
fn many_key(i: usize) -> String {
    format!("sk-sy-parts-{i}")
}

fn with_keys(mut snapshot: Snapshot, secrets: impl Iterator<Item = String>) -> Snapshot {
    let template = snapshot.keys[0].clone();
    snapshot
        .keys
        .extend(secrets.map(|secret| proto::VirtualKey {
            name: secret.clone(),
            sha256: sha256_hex(&secret),
            ..template.clone()
        }));
    snapshot
}

#[tokio::test]
async fn snapshot_nats_a_change_fetches_only_the_key_parts_it_touched() {
    let mut env = nats_and_mock(UPSTREAM_KEY).await;
    let publisher = publisher(&env).await;
    // 3,000 keys travel as 4 parts.
    let v5 = with_keys(snapshot(&env, 5, &[]), (0..3000).map(many_key));
    let p5 = publisher.publish(&v5).await.unwrap();
    assert_eq!(p5.keys.as_ref().map(|k| k.parts.len()), Some(4));
    env.start_data_plane(nats_data_plane()).await.unwrap();
    let dp = env.data_plane();
    wait_for_version(dp, 5, Duration::from_secs(10)).await;
    assert_eq!(
        (
            parts_count(dp, "fetched").await,
            parts_count(dp, "reused").await
        ),
        (4, 0)
    );
    assert_eq!(chat_as(dp, &many_key(2999), "chat").await.0, 200);

    // One key added and one removed, in different parts as it happens: two parts are new.
    let mut v6 = with_keys(snapshot(&env, 6, &[]), (0..3000).map(many_key));
    v6.keys.retain(|k| k.name != many_key(17));
    let v6 = with_keys(v6, std::iter::once("sk-sy-parts-new".to_owned()));
    let p6 = publisher.publish(&v6).await.unwrap();
    let (old, new) = (p5.keys.unwrap(), p6.keys.clone().unwrap());
    let changed = (0..4).filter(|&i| old.parts[i] != new.parts[i]).count() as u64;
    assert!((1..=2).contains(&changed), "{changed} parts changed");
    wait_for_version(dp, 6, Duration::from_secs(10)).await;
    assert_eq!(
        (
            parts_count(dp, "fetched").await,
            parts_count(dp, "reused").await
        ),
        (4 + changed, 4 - changed),
        "only the changed parts were fetched"
    );
    assert_eq!(chat_as(dp, "sk-sy-parts-new", "chat").await.0, 200);
    assert_eq!(chat_as(dp, &many_key(17), "chat").await.0, 401);
    assert_eq!(chat_as(dp, &many_key(18), "chat").await.0, 200);

    // A part whose bytes do not match its digest is refused as a failed fetch (not marked
    // invalid), and the same pointer is installed once the right bytes are there.
    let v7 = with_keys(snapshot(&env, 7, &["seven"]), (0..3001).map(many_key));
    let p7 = publisher.stage(&v7).await.unwrap();
    let layout = p7.keys.clone().unwrap();
    let index = (0..4)
        .find(|&i| layout.parts[i] != new.parts[i])
        .expect("a part changed");
    let name = KeyParts::entry_name(&layout.parts[index].sha256);
    let js = env.nats().jetstream().await.unwrap();
    let parts = js.get_key_value(SNAPSHOT_PARTS_BUCKET).await.unwrap();
    let good = parts.get(&name).await.unwrap().expect("the part is stored");
    let mut bad = good.to_vec();
    bad[10] ^= 1;
    parts.put(name.as_str(), bad.into()).await.unwrap();
    push(&env, &p7).await;
    eventually(Duration::from_secs(10), || async {
        let text = metrics(dp).await;
        let line = "switchyard_snapshot_reloads_total{result=\"fetch_failed\"} 1";
        anyhow::ensure!(text.contains(line), "no `{line}` yet");
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(readyz(dp).await, (200, Some(6)));
    assert!(dp.stderr().unwrap().contains(&format!(
        "key part {index} does not match the pointer's SHA-256"
    )));
    parts.put(name.as_str(), good).await.unwrap();
    push(&env, &p7).await;
    wait_for_version(dp, 7, Duration::from_secs(10)).await;
    assert_eq!(chat_as(dp, &many_key(3000), "seven").await.0, 200);

    // A restart with NATS down serves the parts from the cache.
    restart_from_the_cache_without_nats(&mut env, 7).await;
    let dp = env.data_plane();
    assert_eq!(readyz(dp).await, (200, Some(7)));
    assert_eq!(chat_as(dp, &many_key(3000), "seven").await.0, 200);
    assert_eq!(
        chat_as(dp, &many_key(17), "chat").await.0,
        200,
        "17 is back in v7"
    );
}

/// Bodies in the object store and parts in their bucket.
async fn stored(env: &TestEnv) -> (usize, usize) {
    use futures_util::StreamExt as _;
    let js = env.nats().jetstream().await.unwrap();
    let objects = js.get_object_store(SNAPSHOT_OBJECT_BUCKET).await.unwrap();
    let mut list = objects.list().await.unwrap();
    let mut bodies = 0;
    while let Some(info) = list.next().await {
        bodies += usize::from(!info.unwrap().deleted);
    }
    let parts = js.get_key_value(SNAPSHOT_PARTS_BUCKET).await.unwrap();
    let mut keys = parts.keys().await.unwrap();
    let mut count = 0;
    while let Some(key) = keys.next().await {
        key.unwrap();
        count += 1;
    }
    (bodies, count)
}

#[tokio::test]
async fn snapshot_nats_old_bodies_and_parts_are_pruned_at_most_once_per_interval() {
    let mut env = nats_and_mock(UPSTREAM_KEY).await;
    // Each version has its own key, so its one part is new.
    let version = |env: &TestEnv, v: u64| {
        with_keys(
            snapshot(env, v, &[]),
            std::iter::once(format!("sk-sy-prune-{v}")),
        )
    };
    // The first announce prunes (there is nothing to prune yet); within the interval, none.
    let slow = publisher(&env).await.prune_every(Duration::from_secs(3600));
    for v in 1..=20 {
        slow.publish(&version(&env, v)).await.unwrap();
    }
    assert_eq!(
        stored(&env).await,
        (20, 20),
        "nothing pruned within the interval"
    );

    // A publisher pruning after every announce keeps the newest body plus three older ones,
    // and the parts of the 16 snapshots it staged last.
    let eager = publisher(&env).await.prune_every(Duration::ZERO);
    eager.publish(&version(&env, 21)).await.unwrap();
    assert_eq!(stored(&env).await, (4, 1));
    for v in 22..=40 {
        eager.publish(&version(&env, v)).await.unwrap();
    }
    assert_eq!(stored(&env).await, (4, 16));

    // What is left serves: a proxy starting now installs the latest.
    env.start_data_plane(nats_data_plane()).await.unwrap();
    let dp = env.data_plane();
    wait_for_version(dp, 40, Duration::from_secs(10)).await;
    assert_eq!(chat_as(dp, "sk-sy-prune-40", "chat").await.0, 200);
    assert_eq!(chat_as(dp, "sk-sy-prune-39", "chat").await.0, 401);
}
