//! Admission over a real NATS server (started here when `nats-server` is installed; the test
//! is skipped otherwise) with a tiny lease responder standing in for the control plane: proves
//! the wire (`LEASE_SUBJECT`, JSON both ways) and the no-responders path.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use proto::{LeaseReply, LeaseRequest};
use rust_decimal::Decimal;

use super::*;
use crate::snapshot::compile;

struct NatsServer {
    _child: tokio::process::Child,
    url: String,
}

async fn start_nats() -> Option<NatsServer> {
    let program = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = tokio::process::Command::new(program)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let url = format!("nats://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(NatsServer { _child: child, url });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Answers lease requests from one pool of `amount`, like the control plane would.
fn spawn_responder(
    client: async_nats::Client,
    amount: Decimal,
    log: Arc<Mutex<Vec<LeaseRequest>>>,
) {
    tokio::spawn(async move {
        let Ok(mut sub) = client
            .queue_subscribe(proto::LEASE_SUBJECT, proto::LEASE_QUEUE.into())
            .await
        else {
            return;
        };
        let mut total = Decimal::ZERO;
        while let Some(msg) = sub.next().await {
            let Ok(request) = serde_json::from_slice::<LeaseRequest>(&msg.payload) else {
                continue;
            };
            let granted = if request.release {
                total = request.used;
                Decimal::ZERO
            } else {
                request.want.min(amount - total).max(Decimal::ZERO)
            };
            total += granted;
            log.lock().unwrap().push(request);
            let reply = LeaseReply {
                granted,
                total_granted: total,
                remaining: amount - total,
                limit: amount,
                resets_at: 0,
                error: None,
            };
            if let Some(to) = msg.reply {
                let body = serde_json::to_vec(&reply).unwrap();
                let _ = client.publish(to, body.into()).await;
                let _ = client.flush().await;
            }
        }
    });
}

#[tokio::test]
async fn leases_travel_over_nats() {
    let Some(server) = start_nats().await else {
        eprintln!("nats-server not installed: skipping");
        return;
    };
    let yaml = format!(
        r#"
providers: [{{id: p, kind: vllm, base_url: "http://127.0.0.1:1/v1"}}]
routes: [{{alias: chat, deployments: [{{provider: p, model: m}}]}}]
pricing: [{{model: m, input_per_mtok: "1", output_per_mtok: "2"}}]
teams: [{{id: t1}}]
keys: [{{name: k1, id: key1, team: t1, sha256: "{:064x}", models: ["*"]}}]
budgets: [{{id: b1, name: team-t1, scope: team, target: t1, amount_usd: "0.01", period: daily, hard: true}}]
"#,
        1
    );
    let s = compile(
        serde_yaml::from_str(&yaml).unwrap(),
        &crate::snapshot::Context::default(),
    )
    .unwrap();
    let mut digest = [0u8; 32];
    digest[31] = 1;
    let route = s.route("chat").unwrap();
    let tags = std::collections::BTreeMap::new();
    let request = AdmitRequest {
        snapshot: &s,
        key: s.key(&digest).unwrap(),
        route,
        deployment: route.primary().unwrap(),
        tags: &tags,
        prompt_tokens: 1000,
        max_output_tokens: Some(1000),
        cost_cap: None,
    };
    let proxy = async_nats::connect(&server.url).await.unwrap();
    let a = Admission::new(Some(proxy), "proxy-a".into());

    // Nobody answers yet: NATS says "no responders" at once.
    let refused = a.admit(&request).await.unwrap_err();
    assert_eq!(refused.code, "budget_unavailable");

    let log = Arc::new(Mutex::new(Vec::new()));
    let cp = async_nats::connect(&server.url).await.unwrap();
    spawn_responder(cp, Decimal::from_str("0.01").unwrap(), Arc::clone(&log));
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the backoff
    let mut admitted = 0;
    loop {
        match a.admit(&request).await {
            Ok(ok) => {
                admitted += 1;
                ok.settle(Decimal::from_str("0.003").unwrap(), 2000);
            }
            Err(refused) => {
                assert_eq!(refused.code, "budget_exceeded");
                break;
            }
        }
    }
    assert_eq!(admitted, 3, "$0.003 requests from a $0.01 budget");
    let requests = log.lock().unwrap().clone();
    assert!(requests.iter().all(|r| r.proxy == "proxy-a"));
    assert_eq!(
        requests.last().map(|r| r.used),
        Some(Decimal::from_str("0.009").unwrap())
    );
    a.release_all().await;
    let last = log.lock().unwrap().last().cloned().unwrap();
    assert!(last.release);
    assert_eq!(last.used, Decimal::from_str("0.009").unwrap());
}
