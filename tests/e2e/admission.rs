//! Admission in the real data-plane binary over NATS, with a tiny lease responder written here
//! in place of the control plane: a request the budget cannot cover is refused in the OpenAI
//! dialect with `x-should-retry: false`, one it can is served with the `x-ratelimit-*` set, and
//! the proxy's lease requests carry its id, the pool and its `used`. (The full proofs with
//! several proxies and real control planes live in `leases.rs` and beyond.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use control_plane::outbox::publish::Publisher;
use futures_util::StreamExt;
use proto::{LeaseReply, LeaseRequest, PoolKey, Snapshot, LEASE_QUEUE, LEASE_SUBJECT};
use rust_decimal::Decimal;
use serde_json::json;
use switchyard_tests::support::{eventually, DataPlaneSpec, TestEnv};

use crate::fixture::{client, error_of, nats_and_mock, sha256_hex, UPSTREAM_KEY};

const KEY: &str = "sk-sy-admission-test-0123456789";

/// `chat` on the mock at $1000 per million output tokens (1000 tokens reserve $1), a key in
/// team `t1` limited to 100 requests a minute, and a hard daily team budget of $0.50.
fn snapshot(env: &TestEnv) -> Snapshot {
    let yaml = format!(
        r#"
version: 7
providers:
  - {{ id: mock, kind: openai_compatible, base_url: "{base}/v1", api_key: {{ env: MOCK_UPSTREAM_KEY }} }}
routes:
  - {{ alias: chat, deployments: [{{ provider: mock, model: mock-chat }}] }}
pricing:
  - {{ model: mock-chat, input_per_mtok: "0", output_per_mtok: "1000" }}
teams: [{{ id: t1 }}]
keys:
  - {{ name: k, id: key1, team: t1, sha256: "{key}", models: ["*"], rpm: 100 }}
budgets:
  - {{ id: b1, name: team-t1-daily, scope: team, target: t1, amount_usd: "0.5", period: daily, hard: true }}
"#,
        base = env.mock().base_url(),
        key = sha256_hex(KEY),
    );
    serde_yaml::from_str(&yaml).expect("test snapshot parses")
}

/// Grants from one $0.50 budget and any rate pool in full, and logs what it was asked.
fn spawn_lease_responder(nats: async_nats::Client, log: Arc<Mutex<Vec<LeaseRequest>>>) {
    tokio::spawn(async move {
        let mut sub = nats
            .queue_subscribe(LEASE_SUBJECT, LEASE_QUEUE.into())
            .await
            .unwrap();
        let mut budget_total = Decimal::ZERO;
        while let Some(msg) = sub.next().await {
            let request: LeaseRequest = serde_json::from_slice(&msg.payload).unwrap();
            let limit = match &request.pool {
                PoolKey::Budget { .. } => "0.5".parse().unwrap(),
                PoolKey::Rate { limit, .. } => Decimal::from(*limit),
            };
            let granted = match &request.pool {
                _ if request.release => Decimal::ZERO,
                PoolKey::Budget { .. } => request.want.min(limit - budget_total),
                PoolKey::Rate { .. } => request.want.min(limit),
            };
            if matches!(request.pool, PoolKey::Budget { .. }) {
                budget_total += granted;
            }
            log.lock().unwrap().push(request);
            let reply = LeaseReply {
                granted,
                total_granted: granted,
                remaining: limit - budget_total,
                limit,
                resets_at: 0,
                error: None,
            };
            if let Some(to) = msg.reply {
                nats.publish(to, serde_json::to_vec(&reply).unwrap().into())
                    .await
                    .unwrap();
            }
        }
    });
}

async fn chat(env: &TestEnv, max_tokens: u64) -> reqwest::Response {
    client()
        .post(env.data_plane().url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model": "chat", "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "say hello to me"}]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn admission_over_nats_refuses_what_the_budget_cannot_cover() {
    let mut env = nats_and_mock(UPSTREAM_KEY).await;
    let log = Arc::new(Mutex::new(Vec::new()));
    spawn_lease_responder(env.nats().client().await.unwrap(), Arc::clone(&log));
    let publisher = Publisher::connect(env.nats().client().await.unwrap())
        .await
        .unwrap();
    publisher.publish(&snapshot(&env)).await.unwrap();
    env.start_data_plane(DataPlaneSpec::nats().env("MOCK_UPSTREAM_KEY", UPSTREAM_KEY))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), || async {
        let status = chat(&env, 10).await.status().as_u16();
        anyhow::ensure!(status == 200, "status {status}");
        Ok(())
    })
    .await
    .unwrap();

    // 10 output tokens reserve $0.01: served, with the key's rate limit in the headers.
    let ok = chat(&env, 10).await;
    assert_eq!(ok.status().as_u16(), 200);
    let h = ok.headers();
    assert_eq!(h["x-ratelimit-limit-requests"], "100");
    assert!(h.contains_key("x-ratelimit-remaining-requests"));
    assert!(h.contains_key("x-ratelimit-reset-requests"));

    // 1000 output tokens reserve $1, more than the whole $0.50 budget.
    let refused = chat(&env, 1000).await;
    assert_eq!(refused.status().as_u16(), 429);
    assert_eq!(refused.headers()["x-should-retry"], "false");
    let (code, _, message) = error_of(&refused.text().await.unwrap());
    assert_eq!(code, "budget_exceeded");
    assert!(message.contains("team-t1-daily"), "{message}");

    let log = log.lock().unwrap().clone();
    let budget: Vec<_> = log
        .iter()
        .filter(|r| matches!(&r.pool, PoolKey::Budget { budget_id, scope_value, .. } if budget_id == "b1" && scope_value == "t1"))
        .collect();
    assert!(!budget.is_empty(), "{log:?}");
    let proxy = &budget[0].proxy;
    assert!(!proxy.is_empty());
    assert!(log.iter().all(|r| &r.proxy == proxy));
    assert!(log
        .iter()
        .any(|r| matches!(&r.pool, PoolKey::Rate { scope, .. } if scope == "key:key1")));
}
