//! Chaos: three deployments behind one alias, two of them failing at random about 30% of the
//! time (429, 500, connection resets, stalls past the timeout), 10,000 requests over three
//! proxies. At least 99.9% must succeed, none may outlive the route's deadline, and the ledger
//! must still equal what the mock billed, to the last decimal, with one event per request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde_json::json;
use switchyard_tests::support::{eventually, wait_until_served};

use crate::fixture::{add_mock_provider, all_models_key, client, dec};

const REQUESTS: usize = 10_000;
const CLIENTS: usize = 32;
const DEADLINE: Duration = Duration::from_millis(4_000);
const PRICE: (&str, &str) = ("0.61", "2.39");

/// One request: (succeeded, took). Every third one streams.
async fn one(http: &reqwest::Client, proxy: &str, secret: &str, i: usize) -> (bool, Duration) {
    let started = Instant::now();
    let stream = i.is_multiple_of(3);
    let words: Vec<String> = (0..(i % 7 + 1)).map(|w| format!("w{w}")).collect();
    let mut body =
        json!({"model": "chaos", "messages": [{"role": "user", "content": words.join(" ")}]});
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    let sent = http
        .post(format!("{proxy}/v1/chat/completions"))
        .bearer_auth(secret)
        .json(&body)
        .timeout(DEADLINE * 3)
        .send()
        .await;
    let Ok(answer) = sent else {
        return (false, started.elapsed());
    };
    let ok = answer.status() == 200;
    let mut bytes = answer.bytes_stream();
    let mut text = Vec::new();
    while let Some(chunk) = bytes.next().await {
        match chunk {
            Ok(c) => text.extend_from_slice(&c),
            Err(_) => return (false, started.elapsed()),
        }
    }
    let complete = !stream || text.ends_with(b"data: [DONE]\n\n");
    (ok && complete, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_flaky_deployments_of_three_cost_no_requests_no_deadline_and_no_ledger_error() {
    let crate::control_plane::Stack { cp, env } = crate::control_plane::stack(3).await;
    let team = cp
        .post("/admin/teams", &json!({"name": "chaos"}))
        .await
        .unwrap();
    add_mock_provider(&cp, &env).await;
    cp.post(
        "/admin/routes",
        &json!({"alias": "chaos", "timeout_ms": 1000,
                "retry": {"max_attempts": 3, "deadline_ms": DEADLINE.as_millis() as u64},
                "deployments": [{"provider": "mock", "model": "steady"},
                                {"provider": "mock", "model": "flaky-a"},
                                {"provider": "mock", "model": "flaky-b"}]}),
    )
    .await
    .unwrap();
    for model in ["steady", "flaky-a", "flaky-b"] {
        let answer = cp
            .call(
                reqwest::Method::PUT,
                &format!("/admin/pricing/{model}"),
                None,
                Some(&json!({"input_per_mtok": PRICE.0, "output_per_mtok": PRICE.1})),
            )
            .await
            .unwrap();
        assert!(answer.status < 300, "{answer:?}");
    }
    let secret = all_models_key(&cp, &team).await;
    let proxies: Vec<String> = env.data_planes().iter().map(|d| d.base_url()).collect();
    for p in &proxies {
        wait_until_served(p, &secret, "chaos").await.unwrap();
    }
    // Each flaky deployment: four faults of 9% each, about 31% of its requests in all.
    for model in ["flaky-a", "flaky-b"] {
        for fault in [
            json!({"status": 429, "retry_after": 1}),
            json!({"status": 500}),
            json!({"fault": "reset"}),
            json!({"latency_ms": 3000}),
        ] {
            let mut script = fault;
            script["model"] = json!(model);
            script["times"] = json!(1_000_000);
            script["percent"] = json!(9);
            env.mock().script(&script).await.unwrap();
        }
    }

    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (next, proxies, secret, http) =
            (Arc::clone(&next), proxies.clone(), secret.clone(), client());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut slowest) = (0usize, Duration::ZERO);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= REQUESTS {
                    return (ok, slowest);
                }
                let (good, took) = one(&http, &proxies[i % proxies.len()], &secret, i).await;
                ok += usize::from(good);
                slowest = slowest.max(took);
            }
        }));
    }
    let (mut ok, mut slowest) = (0, Duration::ZERO);
    for t in tasks {
        let (o, s) = t.await.unwrap();
        ok += o;
        slowest = slowest.max(s);
    }
    assert!(
        ok * 1000 >= REQUESTS * 999,
        "{ok} of {REQUESTS} succeeded (need 99.9%)"
    );
    // The deadline plus the time to read an answer that started in time.
    assert!(
        slowest < DEADLINE + Duration::from_millis(1500),
        "slowest request took {slowest:?}"
    );

    // The mock's own record: how many attempts failed, and what it billed.
    let records = env.mock().requests().await.unwrap();
    let failed_attempts = records.iter().filter(|r| r["billed"].is_null()).count();
    assert!(
        failed_attempts >= 50,
        "the flaky deployments really failed: {failed_attempts}"
    );
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

    let spend = "/admin/spend?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";
    let total = eventually(Duration::from_secs(120), || async {
        let total = cp.get(spend).await?["total"].clone();
        let folded = total["requests"].as_u64().unwrap_or(0) as usize;
        anyhow::ensure!(folded >= REQUESTS, "folded {folded} of {REQUESTS}");
        Ok(total)
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let total = {
        let again = cp.get(spend).await.unwrap()["total"].clone();
        assert_eq!(again, total, "nothing folded twice or late");
        again
    };
    assert_eq!(
        total["requests"].as_u64().unwrap() as usize,
        REQUESTS,
        "one event per request, whatever its attempts: {total}"
    );
    assert_eq!(
        (
            total["prompt_tokens"].as_u64().unwrap(),
            total["completion_tokens"].as_u64().unwrap()
        ),
        (prompt, completion),
        "{total}"
    );
    assert_eq!(dec(&total["cost_usd"]), cost, "{total}");

    // A stream cut after its first chunk cannot fall back any more: it ends with an error
    // event (never `[DONE]`), and is counted in the proxy's metrics and in the ledger.
    env.mock()
        .script(&json!({"model": "cut", "fault": "reset_mid_stream"}))
        .await
        .unwrap();
    cp.post(
        "/admin/routes",
        &json!({"alias": "cut", "deployments": [{"provider": "mock", "model": "cut"}]}),
    )
    .await
    .unwrap();
    let proxy = &proxies[0];
    let text = eventually(Duration::from_secs(30), || async {
        let answer = client()
            .post(format!("{proxy}/v1/chat/completions"))
            .bearer_auth(&secret)
            .json(&json!({"model": "cut", "stream": true,
                          "messages": [{"role": "user", "content": "cut me off"}]}))
            .send()
            .await?;
        anyhow::ensure!(answer.status() == 200, "{}", answer.status());
        Ok(answer.text().await?)
    })
    .await
    .unwrap();
    assert!(text.contains(r#""error""#), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    let metrics = env.data_planes()[0].metrics().await.unwrap();
    assert!(
        metrics.contains(
            r#"switchyard_errors_total{endpoint="chat",kind="upstream_stream_interrupted"}"#
        ),
        "{metrics}"
    );
    let cut = eventually(Duration::from_secs(30), || async {
        let events = cp
            .get("/admin/usage?outcome=upstream_error&limit=10")
            .await?;
        let cut = events["data"]
            .as_array()
            .and_then(|d| d.iter().find(|e| e["alias"] == "cut").cloned());
        cut.ok_or_else(|| anyhow::anyhow!("not folded yet: {events}"))
    })
    .await
    .unwrap();
    assert_eq!(cut["status"], 200, "{cut}");
    assert_eq!(cut["usage_estimated"], true, "{cut}");
    assert!(cut["completion_tokens"].as_i64().unwrap() > 0, "{cut}");
}
