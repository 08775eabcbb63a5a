//! Hot reload of the snapshot file, and the ops listener.

use serde_json::json;

use crate::fixture::{chat_body, client, config, gateway, json_of, post, FULL_KEY};

#[tokio::test]
async fn a_changed_file_is_swapped_in_and_an_invalid_one_is_refused() {
    let env = gateway(&[]).await;
    let dp = env.data_plane();
    let (status, _, _) = post(
        &env,
        "/v1/chat/completions",
        FULL_KEY,
        &chat_body("new-alias"),
    )
    .await;
    assert_eq!(status, 404);

    let extra = "  - { alias: new-alias, deployments: [{ provider: mock, model: fresh-model }] }";
    dp.rewrite_config(&config(&env.mock().base_url(), extra))
        .unwrap();
    // What is asserted is that the change is picked up, not how fast: the poll runs on a
    // low-priority thread, which a loaded 2-core CI machine can starve for seconds.
    switchyard_tests::assert_eventually!(
        async {
            post(
                &env,
                "/v1/chat/completions",
                FULL_KEY,
                &chat_body("new-alias"),
            )
            .await
            .0 == 200
        }
        .await,
        std::time::Duration::from_secs(30)
    );
    let seen = env.mock().requests().await.unwrap();
    assert_eq!(seen.last().unwrap()["body"]["model"], "fresh-model");

    // A broken file (unknown provider, and an unknown field) is refused; the old snapshot serves.
    let broken = config(
        &env.mock().base_url(),
        "  - { alias: bad, deployments: [{ provider: ghost, model: x }] }",
    )
    .replace("keys:", "kees: []\nkeys:");
    dp.rewrite_config(&broken).unwrap();
    let metrics_url = format!("{}/metrics", dp.ops_url());
    switchyard_tests::assert_eventually!(
        async {
            let text = client()
                .get(&metrics_url)
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.contains("switchyard_snapshot_reloads_total{result=\"invalid\"} 1")
                .then_some(())
        }
        .await
    );
    let (status, _, body) = post(
        &env,
        "/v1/chat/completions",
        FULL_KEY,
        &chat_body("new-alias"),
    )
    .await;
    assert_eq!(status, 200, "the last good snapshot keeps serving: {body}");
    let log = dp.stderr().unwrap();
    assert!(log.contains("snapshot file refused"), "{log}");
    assert!(
        log.contains("kees"),
        "the reason names the unknown field: {log}"
    );
}

#[tokio::test]
async fn ops_endpoints_report_health_readiness_and_metrics() {
    let env = gateway(&[]).await;
    let ops = env.data_plane().ops_url();
    assert_eq!(
        client()
            .get(format!("{ops}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = json_of(client().get(format!("{ops}/readyz"))).await;
    assert_eq!(ready["ready"], json!(true));
    post(&env, "/v1/chat/completions", FULL_KEY, &chat_body("chat")).await;
    let text = env.data_plane().metrics().await.unwrap();
    for needle in [
        "switchyard_requests_total{endpoint=\"chat\",route=\"chat\",provider=\"mock\",status=\"2xx\"} 1",
        "switchyard_tokens_total{route=\"chat\",provider=\"mock\",type=\"completion\"} 5",
        "switchyard_gateway_overhead_seconds_bucket",
        "switchyard_snapshot_keys 2",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains(FULL_KEY), "no secrets in metrics");
}
