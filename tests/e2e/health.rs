//! Health shared across proxies: a deployment killed while only proxy A sends to it is skipped
//! by proxies B and C within a second (A's breaker announcement over NATS), a proxy started
//! afterwards skips it from its first request (it asks the control plane at start), and the
//! control plane reports it at `GET /admin/health`.

use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_tests::support::{
    eventually, wait_until_served, DataPlaneSpec, MockProviderOptions,
};

use crate::control_plane::{stack_with, Stack};
use crate::fixture::{all_models_key, client, UPSTREAM_KEY};

/// (status, deployment, attempts) of one chat request to `proxy`.
async fn ask(proxy: &str, secret: &str) -> (u16, String, String) {
    let answer = client()
        .post(format!("{proxy}/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let header = |n: &str| {
        answer
            .headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    (
        answer.status().as_u16(),
        header("x-switchyard-deployment"),
        header("x-switchyard-attempts"),
    )
}

#[tokio::test]
async fn a_deployment_one_proxy_saw_die_is_avoided_by_the_others_within_a_second() {
    let mock = || MockProviderOptions::new().api_key(UPSTREAM_KEY);
    let Stack { cp, mut env } = stack_with([mock(), mock()], 3).await;
    let team = cp
        .post("/admin/teams", &json!({"name": "h"}))
        .await
        .unwrap();
    for (id, mock) in [("steady", 0), ("doomed", 1)] {
        cp.post(
            "/admin/providers",
            &json!({"id": id, "kind": "openai_compatible",
                    "base_url": format!("{}/v1", env.mock_at(mock).base_url()), "api_key": UPSTREAM_KEY}),
        )
        .await
        .unwrap();
    }
    cp.post(
        "/admin/routes",
        &json!({"alias": "chat", "strategy": "ordered", "deployments": [
            {"provider": "doomed", "model": "m"}, {"provider": "steady", "model": "m", "priority": 1}]}),
    )
    .await
    .unwrap();
    let secret = all_models_key(&cp, &team).await;
    let proxies: Vec<String> = env.data_planes().iter().map(|d| d.base_url()).collect();
    for p in &proxies {
        eventually(Duration::from_secs(30), || async {
            let (status, deployment, _) = ask(p, &secret).await;
            anyhow::ensure!(
                status == 200 && deployment == "doomed/m",
                "{status} {deployment}"
            );
            Ok(())
        })
        .await
        .unwrap();
    }

    env.mock_mut(1).kill().unwrap();
    let (a, others) = (&proxies[0], &proxies[1..]);
    // Proxy A alone meets the dead deployment until its breaker opens (5 failures in a row);
    // each of its requests still succeeds on the next tier.
    let mut opened = None;
    for _ in 0..10 {
        let (status, deployment, attempts) = ask(a, &secret).await;
        assert_eq!((status, deployment.as_str()), (200, "steady/m"));
        if attempts == "1" {
            opened = Some(Instant::now());
            break;
        }
    }
    let opened = opened.expect("proxy A's breaker opened");
    // B and C, which never met the failure themselves, skip it from their very first request
    // once a moment (well under a second) has passed for A's announcement.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for p in others {
        let (status, deployment, attempts) = ask(p, &secret).await;
        assert_eq!(
            (status, deployment.as_str(), attempts.as_str()),
            (200, "steady/m", "1"),
            "{p} still tried the dead deployment"
        );
    }
    assert!(opened.elapsed() < Duration::from_secs(1));

    // A proxy that starts now learns it from the control plane, before its first request.
    env.start_data_plane(DataPlaneSpec::nats_sealed())
        .await
        .expect("a fourth data plane starts");
    let late = env.data_planes()[3].base_url();
    wait_until_served(&late, &secret, "chat").await.unwrap();
    let (status, deployment, attempts) = ask(&late, &secret).await;
    assert_eq!(
        (status, deployment.as_str(), attempts.as_str()),
        (200, "steady/m", "1"),
        "the late proxy tried the dead deployment"
    );

    let health = eventually(Duration::from_secs(10), || async {
        let report = cp.get("/admin/health").await?;
        let doomed = report["deployments"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["deployment"] == "doomed/m").cloned());
        match doomed {
            Some(d) if d["state"] == "open" => Ok(d),
            other => anyhow::bail!("{other:?}"),
        }
    })
    .await
    .unwrap();
    assert_eq!(health["provider"], "doomed");

    // A's failed-over requests are folded with their route reason and attempts.
    eventually(Duration::from_secs(20), || async {
        let events = cp.get("/admin/usage?limit=100").await?;
        let fell_back = events["data"].as_array().map_or(0, |d| {
            d.iter()
                .filter(|e| {
                    e["route_reason"] == "fallback"
                        && e["attempts"] == 2
                        && e["fallbacks"] == 1
                        && e["deployment"] == "steady/m"
                })
                .count()
        });
        anyhow::ensure!(
            fell_back >= 5,
            "{fell_back} failed-over events folded: {events}"
        );
        Ok(())
    })
    .await
    .unwrap();

    // The next snapshot the control plane publishes carries it too.
    cp.post(
        "/admin/routes",
        &json!({"alias": "another", "deployments": [{"provider": "steady", "model": "m"}]}),
    )
    .await
    .unwrap();
    let snapshot = eventually(Duration::from_secs(10), || async {
        let text = crate::fixture::published_snapshot(&env).await?;
        anyhow::ensure!(text.contains("\"another\""), "not published yet");
        Ok(text)
    })
    .await
    .unwrap();
    let snapshot: serde_json::Value = serde_json::from_str(&snapshot).unwrap();
    let reported = snapshot["health"]
        .as_array()
        .and_then(|h| h.iter().find(|e| e["deployment"] == "doomed/m"))
        .unwrap_or_else(|| panic!("{}", snapshot["health"]));
    assert_eq!(reported["state"], "open");
    assert_eq!(
        health["proxies"][0]["error"], "upstream_unreachable",
        "{health}"
    );
}
