//! Routing and fallback on one proxy: each failure trigger moves the request to the next
//! deployment (and the client sees success), the client's own mistakes do not, the breaker
//! opens → half-opens → closes, and each strategy picks as it says. Deployments are distinct
//! models on the mock, so scripts (matched by model) fail one deployment and not the other.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use switchyard_tests::support::{eventually, DataPlaneSpec, TestEnv};

use crate::fixture::{client, config, gateway_with, FULL_KEY, UPSTREAM_KEY};
use crate::usage_events::spooled_events;

const ROUTES: &str = r#"
  - { alias: chain, strategy: ordered, timeout_ms: 800, deployments: [{ provider: mock, model: first }, { provider: mock, model: second, priority: 1 }] }
  - { alias: chain-s, strategy: ordered, timeout_ms: 800, deployments: [{ provider: mock, model: first-s }, { provider: mock, model: second, priority: 1 }] }
  - { alias: to-dead, deployments: [{ provider: dead, model: m }, { provider: mock, model: second, priority: 1 }] }
  - { alias: breaker, strategy: ordered, deployments: [{ provider: mock, model: flaky }, { provider: mock, model: steady, priority: 1 }] }
  - { alias: weighted, deployments: [{ provider: mock, model: w1, weight: 1 }, { provider: mock, model: w3, weight: 3 }] }
  - { alias: cheapest, strategy: cheapest, deployments: [{ provider: mock, model: dear }, { provider: mock, model: cheap }] }
  - { alias: fastest, strategy: lowest_latency, deployments: [{ provider: mock, model: slow-one }, { provider: mock, model: quick }] }
  - { alias: least-busy, strategy: least_inflight, deployments: [{ provider: mock, model: busy }, { provider: mock, model: idle }] }
  - { alias: small, context_window: 8000, fallbacks: [unsized, large], deployments: [{ provider: mock, model: small-m }] }
  - { alias: unsized, deployments: [{ provider: mock, model: mid-m }] }
  - { alias: large, context_window: 200000, deployments: [{ provider: mock, model: large-m }] }
  - { alias: dep-timeout, timeout_ms: 5000, strategy: ordered, deployments: [{ provider: mock, model: slowdep, timeout_ms: 300 }, { provider: mock, model: second, priority: 1 }] }
  - { alias: sized, rules: [{ min_prompt_tokens: 200, route: long }], deployments: [{ provider: mock, model: short-m }] }
  - { alias: tagged, rules: [{ tags: { tier: gold }, route: long }, { team: platform, key: nobody, route: unsized }], deployments: [{ provider: mock, model: short-m }] }
  - { alias: teamed, rules: [{ team: platform, route: long }], deployments: [{ provider: mock, model: short-m }] }
  - { alias: long, deployments: [{ provider: mock, model: long-m }] }
  - { alias: retrying, retry: { retries: 2, backoff_ms: 50 }, deployments: [{ provider: mock, model: once }] }
  - { alias: bounded, timeout_ms: 5000, retry: { retries: 3, backoff_ms: 10, deadline_ms: 700 }, deployments: [{ provider: mock, model: stall }] }
pricing:
  - { model: dear, input_per_mtok: "5", output_per_mtok: "15" }
  - { model: cheap, input_per_mtok: "0.1", output_per_mtok: "0.4" }
"#;

async fn gateway() -> TestEnv {
    let spec = DataPlaneSpec::from_fn(|env| config(&env.mock().base_url(), ROUTES))
        .env("MOCK_UPSTREAM_KEY", UPSTREAM_KEY);
    gateway_with(spec).await
}

/// What the client saw of one chat request.
#[derive(Debug)]
struct Seen {
    status: u16,
    deployment: String,
    reason: String,
    attempts: String,
    body: String,
}

async fn chat(env: &TestEnv, alias: &str, stream: bool) -> Seen {
    chat_with(env, alias, stream, "route me please", &[]).await
}

async fn chat_with(
    env: &TestEnv,
    alias: &str,
    stream: bool,
    content: &str,
    headers: &[(&str, &str)],
) -> Seen {
    let body = json!({"model": alias, "stream": stream,
                      "messages": [{"role": "user", "content": content}]});
    let mut request = client()
        .post(format!(
            "{}/v1/chat/completions",
            env.data_plane().base_url()
        ))
        .bearer_auth(FULL_KEY);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = request
        .json(&body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (deployment, reason, attempts) = (
        header("x-switchyard-deployment"),
        header("x-switchyard-route-reason"),
        header("x-switchyard-attempts"),
    );
    let status = answer.status().as_u16();
    Seen {
        status,
        deployment,
        reason,
        attempts,
        body: answer.text().await.unwrap(),
    }
}

/// The upstream models the mock was asked for, in order, since the last call.
async fn upstream_models(env: &TestEnv) -> Vec<String> {
    let seen = env.mock().requests().await.unwrap();
    env.mock().clear().await.unwrap();
    seen.iter()
        .map(|r| r["model"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn every_trigger_falls_back_and_the_clients_own_errors_do_not() {
    let env = gateway().await;
    let triggers = [
        ("429", json!({"status": 429, "retry_after": 1})),
        ("500", json!({"status": 500})),
        ("503", json!({"status": 503})),
        ("reset", json!({"fault": "reset"})),
        // Past the route's 800 ms timeout.
        ("timeout", json!({"latency_ms": 2500})),
    ];
    // A route per mode, so the ten failures do not add up in one breaker's window.
    for (alias, first, stream) in [("chain", "first", false), ("chain-s", "first-s", true)] {
        for (name, behaviour) in &triggers {
            let mut script = behaviour.clone();
            script["model"] = json!(first);
            env.mock().script(&script).await.unwrap();
            let seen = chat(&env, alias, stream).await;
            assert_eq!(seen.status, 200, "{name} stream={stream}: {seen:?}");
            assert_eq!(seen.deployment, "mock/second", "{name}: {seen:?}");
            assert_eq!(
                (seen.reason.as_str(), seen.attempts.as_str()),
                ("fallback", "2"),
                "{name}"
            );
            if stream {
                assert!(seen.body.contains("data: [DONE]"), "{name}: {}", seen.body);
            }
            assert_eq!(upstream_models(&env).await, [first, "second"], "{name}");
            // A success on the first deployment ends its run of failures.
            let ok = chat(&env, alias, false).await;
            assert_eq!(ok.status, 200);
            assert_eq!(ok.deployment, format!("mock/{first}"));
            upstream_models(&env).await;
        }
    }

    // A connection refused by the first deployment's host.
    let seen = chat(&env, "to-dead", false).await;
    assert_eq!(
        (seen.status, seen.deployment.as_str()),
        (200, "mock/second")
    );
    assert_eq!(seen.reason, "fallback");
    assert_eq!(upstream_models(&env).await, ["second"]);

    // The client's own mistake is not tried elsewhere.
    env.mock()
        .script(&json!({"model": "first", "status": 400, "error_message": "bad field"}))
        .await
        .unwrap();
    let seen = chat(&env, "chain", false).await;
    assert_eq!(seen.status, 400, "{seen:?}");
    assert!(seen.body.contains("bad field"), "{}", seen.body);
    assert_eq!(upstream_models(&env).await, ["first"]);

    // One usage event per request, whatever its attempts: 22 requests, 11 of them failed
    // over once, each metered at the deployment that answered.
    let spool = env.data_plane().spool_dir().to_owned();
    eventually(Duration::from_secs(20), || async {
        spooled_events(&spool).len() >= 22
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = spooled_events(&spool);
    assert_eq!(events.len(), 22);
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 22, "event ids are unique");
    let failed_over: Vec<_> = events.iter().filter(|e| e.attempts == 2).collect();
    assert_eq!(failed_over.len(), 11);
    for e in failed_over {
        assert_eq!(e.fallbacks, 1);
        assert_eq!(e.route_reason.as_deref(), Some("fallback"));
        assert_eq!(e.deployment.as_deref(), Some("mock/second"));
        assert_eq!(e.outcome, proto::Outcome::Ok);
        assert!(e.usage.completion_tokens > 0, "{e:?}");
    }
    let rejected: Vec<_> = events.iter().filter(|e| e.status == 400).collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].route_reason.as_deref(), Some("ordered"));
}

#[tokio::test]
async fn the_breaker_opens_half_opens_with_a_probe_and_closes() {
    let env = gateway().await;
    env.mock()
        .script(&json!({"model": "flaky", "status": 500, "times": 5}))
        .await
        .unwrap();
    // Five failures in a row: each request still succeeds on the next tier.
    for _ in 0..5 {
        let seen = chat(&env, "breaker", false).await;
        assert_eq!((seen.status, seen.reason.as_str()), (200, "fallback"));
    }
    assert_eq!(
        upstream_models(&env).await,
        ["flaky", "steady"].repeat(5),
        "each request tried flaky first"
    );
    // Open: flaky is not even tried.
    for _ in 0..3 {
        let seen = chat(&env, "breaker", false).await;
        assert_eq!(seen.deployment, "mock/steady");
        assert_eq!(
            (seen.reason.as_str(), seen.attempts.as_str()),
            ("ordered", "1")
        );
    }
    assert_eq!(upstream_models(&env).await, ["steady"; 3]);
    let metrics = env.data_plane().metrics().await.unwrap();
    assert!(
        metrics.contains(r#"switchyard_breaker_state{deployment="mock/flaky"} 2"#),
        "{metrics}"
    );

    // After the cool-down one probe goes to flaky (now healthy) and closes the breaker.
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let probe = chat(&env, "breaker", false).await;
    assert_eq!(probe.deployment, "mock/flaky", "{probe:?}");
    let after = chat(&env, "breaker", false).await;
    assert_eq!(after.deployment, "mock/flaky");
    assert_eq!(upstream_models(&env).await, ["flaky", "flaky"]);
}

#[tokio::test]
async fn strategies_pick_as_they_say() {
    let env = gateway().await;
    let count = |models: Vec<String>| {
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        for m in models {
            *by.entry(m).or_default() += 1;
        }
        by
    };

    for _ in 0..200 {
        assert_eq!(chat(&env, "weighted", false).await.status, 200);
    }
    let by = count(upstream_models(&env).await);
    let w3 = by.get("w3").copied().unwrap_or(0);
    assert!((125..=175).contains(&w3), "3:1 weights gave {by:?}");

    for _ in 0..20 {
        let seen = chat(&env, "cheapest", false).await;
        assert_eq!(seen.reason, "cheapest");
    }
    assert_eq!(count(upstream_models(&env).await)["cheap"], 20);

    // `slow-one` answers 150 ms late; after both are measured the quick one gets nearly all.
    env.mock()
        .script(&json!({"model": "slow-one", "latency_ms": 150, "times": 1000}))
        .await
        .unwrap();
    for _ in 0..100 {
        assert_eq!(chat(&env, "fastest", false).await.status, 200);
    }
    let by = count(upstream_models(&env).await);
    assert!(by["quick"] >= 85 && by["slow-one"] >= 1, "{by:?}");

    // `busy` holds 8 slow requests: the next ones go to `idle`.
    env.mock()
        .script(&json!({"model": "busy", "latency_ms": 1500, "times": 1000}))
        .await
        .unwrap();
    env.mock()
        .script(&json!({"model": "idle", "latency_ms": 1500, "times": 1000}))
        .await
        .unwrap();
    let env = std::sync::Arc::new(env);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let env = std::sync::Arc::clone(&env);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 20)).await;
            chat(&env, "least-busy", false).await.deployment
        }));
    }
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        *by.entry(t.await.unwrap()).or_default() += 1;
    }
    assert_eq!(
        by,
        BTreeMap::from([("mock/busy".to_owned(), 8), ("mock/idle".to_owned(), 8)]),
        "least in flight alternates while all are held: {by:?}"
    );
}

#[tokio::test]
async fn fallback_routes_context_windows_retries_and_the_deadline() {
    let env = gateway().await;

    // Too long for `small`: `unsized` (window unknown) is skipped, `large` serves.
    env.mock()
        .script(&json!({"model": "small-m", "status": 400,
                        "error_message": "This model's maximum context length is 8192 tokens."}))
        .await
        .unwrap();
    let seen = chat(&env, "small", false).await;
    assert_eq!(
        (seen.status, seen.deployment.as_str()),
        (200, "mock/large-m"),
        "{seen:?}"
    );
    assert_eq!(upstream_models(&env).await, ["small-m", "large-m"]);

    // A content-policy refusal moves to the next route of the chain.
    env.mock()
        .script(&json!({"model": "small-m", "status": 400,
                        "error_message": "Flagged by the content policy."}))
        .await
        .unwrap();
    let seen = chat(&env, "small", false).await;
    assert_eq!(
        (seen.status, seen.deployment.as_str()),
        (200, "mock/mid-m"),
        "{seen:?}"
    );
    assert_eq!(upstream_models(&env).await, ["small-m", "mid-m"]);

    // One deployment, two retries: the third attempt succeeds.
    env.mock()
        .script(&json!({"model": "once", "status": 500, "times": 2}))
        .await
        .unwrap();
    let seen = chat(&env, "retrying", false).await;
    assert_eq!(
        (seen.status, seen.attempts.as_str()),
        (200, "3"),
        "{seen:?}"
    );
    assert_eq!(upstream_models(&env).await, ["once"; 3]);

    // Retry-After is waited out before the retry.
    env.mock()
        .script(&json!({"model": "once", "status": 429, "retry_after": 1}))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let seen = chat(&env, "retrying", false).await;
    assert_eq!(
        (seen.status, seen.attempts.as_str()),
        (200, "2"),
        "{seen:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    upstream_models(&env).await;

    // A deployment's own timeout wins over its route's.
    env.mock()
        .script(&json!({"model": "slowdep", "latency_ms": 2000}))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let seen = chat(&env, "dep-timeout", false).await;
    assert_eq!(
        (seen.status, seen.deployment.as_str()),
        (200, "mock/second"),
        "{seen:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    upstream_models(&env).await;

    // The deadline bounds all attempts: each is cut to what is left, none starts after it.
    env.mock()
        .script(&json!({"model": "stall", "latency_ms": 3000, "times": 10}))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let seen = chat(&env, "bounded", false).await;
    let took = started.elapsed();
    assert_eq!(seen.status, 504, "{seen:?}");
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_millis(1500),
        "{took:?}"
    );
}

#[tokio::test]
async fn rules_and_the_callers_preference_choose_the_route_first() {
    let env = gateway().await;
    let route_of = |seen: &Seen| (seen.status, seen.deployment.clone(), seen.reason.clone());

    // Request size: a long prompt goes to the long-context route.
    let short = chat_with(&env, "sized", false, "a short prompt", &[]).await;
    assert_eq!(
        route_of(&short),
        (200, "mock/short-m".into(), "weighted".into())
    );
    let long_prompt = "word ".repeat(1000);
    let long = chat_with(&env, "sized", false, &long_prompt, &[]).await;
    assert_eq!(route_of(&long), (200, "mock/long-m".into(), "rule".into()));

    // Tags (all must match); a rule whose key does not match is skipped.
    let plain = chat_with(&env, "tagged", false, "hi", &[]).await;
    assert_eq!(plain.deployment, "mock/short-m");
    let gold = chat_with(
        &env,
        "tagged",
        false,
        "hi",
        &[("x-switchyard-tags", "tier=gold")],
    )
    .await;
    assert_eq!(route_of(&gold), (200, "mock/long-m".into(), "rule".into()));

    // Team (the test key's team is `platform`).
    let team = chat_with(&env, "teamed", false, "hi", &[]).await;
    assert_eq!(team.deployment, "mock/long-m");

    // The caller's preference: the first alias that exists and is allowed serves.
    let preferred = chat_with(
        &env,
        "sized",
        false,
        "hi",
        &[("x-switchyard-models", "no-such-alias, long, sized")],
    )
    .await;
    assert_eq!(
        route_of(&preferred),
        (200, "mock/long-m".into(), "preference".into())
    );
    let answer = client()
        .post(format!(
            "{}/v1/chat/completions",
            env.data_plane().base_url()
        ))
        .bearer_auth(FULL_KEY)
        .header("x-switchyard-models", "long")
        .json(&json!({"model": "sized", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.headers()["x-switchyard-route"], "long");
    assert_eq!(
        upstream_models(&env).await,
        ["short-m", "long-m", "short-m", "long-m", "long-m", "long-m", "long-m"]
    );
}

#[tokio::test]
async fn active_health_checks_open_and_close_the_breaker_without_client_traffic() {
    let spec = DataPlaneSpec::from_fn(|env| {
        format!(
            r#"
providers:
  - {{ id: checked, kind: openai_compatible, base_url: "{mock}/v1", api_key: {{ env: MOCK_UPSTREAM_KEY }}, health_check_ms: 100 }}
routes:
  - {{ alias: watched, deployments: [{{ provider: checked, model: probed }}] }}
keys:
  - {{ name: full, sha256: "{full}", models: ["*"] }}
"#,
            mock = env.mock().base_url(),
            full = crate::fixture::sha256_hex(FULL_KEY),
        )
    })
    .env("MOCK_UPSTREAM_KEY", UPSTREAM_KEY);
    let env = gateway_with(spec).await;
    env.mock()
        .script(&json!({"model": "probed", "status": 500, "times": 5}))
        .await
        .unwrap();
    let metrics_url = format!("{}/metrics", env.data_plane().ops_url());
    let state = |want: &'static str| {
        let url = metrics_url.clone();
        async move {
            let text = client().get(&url).send().await?.text().await?;
            let line = format!("switchyard_breaker_state{{deployment=\"checked/probed\"}} {want}");
            anyhow::ensure!(text.contains(&line), "no `{line}`");
            Ok(())
        }
    };
    // Five failed checks in a row open the breaker; no client sent anything.
    eventually(Duration::from_secs(10), || state("2"))
        .await
        .unwrap();
    let seen = env.mock().requests().await.unwrap();
    assert!(seen.len() >= 5, "{seen:?}");
    for r in &seen {
        assert_eq!(r["body"]["max_tokens"], 1, "{r}");
        assert_eq!(r["body"]["messages"][0]["content"], "ping");
    }
    // After the cool-down the next check is the probe; it succeeds and closes the breaker.
    eventually(Duration::from_secs(15), || state("0"))
        .await
        .unwrap();
    let answer = chat(&env, "watched", false).await;
    assert_eq!(answer.status, 200);
}
