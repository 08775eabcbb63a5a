//! The dashboards (`dashboards/`) and the alert rules (`deploy/prometheus/`), proven:
//! - on live Prometheus: Prometheus (Debian's package), loaded with the shipped
//!   `deploy/prometheus/prometheus.yml` and its rules, scrapes a control plane and two proxies
//!   fed by NATS every second while traffic touches every metric (both dialects, streams,
//!   embeddings, upstream errors, fallbacks and an opened breaker, client errors, budget, rate
//!   and cost-cap refusals, a soft-budget alert, a NATS outage that spools and replays usage
//!   events). Then every target expression of every panel of every dashboard, and every
//!   template variable's query, is run through Prometheus' HTTP API with the variables
//!   substituted (`.*`, and [`grafana::RANGE`] for Grafana's interval variables); any query
//!   that fails or answers no data (or only NaN) fails the test. Every alert rule must
//!   evaluate cleanly.
//! - the JSON has what Grafana needs (uid, title, schemaVersion, panels with a datasource and
//!   targets), and the provisioning files name the dashboards' directory and datasource
//!   (`grafana.rs`);
//! - `promtool check rules`, `promtool test rules` and `promtool check config` pass.

mod grafana;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use switchyard_tests::support::{
    eventually, promtool, wait_until_served, workspace_root, DataPlaneSpec, Prometheus,
};

use crate::control_plane::{stack_with, Stack};
use crate::fixture::{chat_body, client, sha256_hex, UPSTREAM_KEY};
use grafana::failing_queries;

/// How long the panel queries may take to all have data after the traffic.
const QUERY_WAIT_SECS: u64 = 60;

const KEY: &str = "sk-sy-dashboards-main-0123456789";
const THROTTLED_KEY: &str = "sk-sy-dashboards-throttled-0123";
const CAPPED_KEY: &str = "sk-sy-dashboards-capped-012345";

fn prometheus_dir() -> PathBuf {
    workspace_root().join("deploy").join("prometheus")
}

/// The gateway's configuration, applied through the admin API: the mock and a dead provider,
/// a route that fails over from the dead one, a route the mock always fails, three keys (one
/// rate-limited, one under a hard budget too small for any request), a soft team budget the
/// first request exceeds and a tag budget.
fn config(mock: &str) -> Value {
    let yaml = format!(
        r#"
providers:
  - {{ id: mock, kind: openai_compatible, base_url: "{mock}/v1", api_key: {{ env: MOCK_UPSTREAM_KEY }} }}
  - {{ id: dead, kind: ollama, base_url: "http://127.0.0.1:9/v1" }}
routes:
  - {{ alias: chat, deployments: [{{ provider: mock, model: mock-chat }}] }}
  - {{ alias: embed, deployments: [{{ provider: mock, model: mock-embed }}] }}
  - {{ alias: failing, deployments: [{{ provider: mock, model: mock-fail }}] }}
  - alias: resilient
    strategy: ordered
    deployments: [{{ provider: dead, model: gone }}, {{ provider: mock, model: mock-chat }}]
keys:
  - {{ name: main, team: dashboards, sha256: "{main}", models: ["*"] }}
  - {{ name: throttled, team: dashboards, sha256: "{throttled}", models: ["*"], rpm: 2 }}
  - {{ name: capped, team: dashboards, sha256: "{capped}", models: ["*"] }}
budgets:
  - {{ id: b1, name: capped-daily, scope: key, target: capped, amount_usd: "0.000001", period: daily, hard: true }}
  - {{ id: b2, name: team-soft, scope: team, target: dashboards, amount_usd: "0.000001", period: monthly, hard: false }}
  - {{ id: b3, name: per-workflow, scope: tag, target: workflow, amount_usd: "5", period: total, hard: false }}
pricing:
  - {{ model: mock-chat, input_per_mtok: "0.15", output_per_mtok: "0.60" }}
  - {{ model: mock-embed, input_per_mtok: "0.02", output_per_mtok: "0" }}
  - {{ model: mock-fail, input_per_mtok: "0.15", output_per_mtok: "0.60" }}
"#,
        main = sha256_hex(KEY),
        throttled = sha256_hex(THROTTLED_KEY),
        capped = sha256_hex(CAPPED_KEY),
    );
    serde_yaml::from_str(&yaml).expect("the test config parses")
}

/// Postgres, NATS, the mock (failing `mock-fail` always), a control plane and two proxies on
/// NATS that hold the mock's credential.
async fn stack() -> Stack {
    let mut s = stack_with(
        [switchyard_tests::support::MockProviderOptions::new().api_key(UPSTREAM_KEY)],
        0,
    )
    .await;
    for _ in 0..2 {
        s.env
            .start_data_plane(DataPlaneSpec::nats_sealed().env("MOCK_UPSTREAM_KEY", UPSTREAM_KEY))
            .await
            .expect("data plane starts");
    }
    s.env
        .mock()
        .script(&json!({"model": "mock-fail", "times": 1_000_000, "status": 500}))
        .await
        .unwrap();
    s
}

/// The shipped prometheus.yml with the stack's targets, a 1 s scrape and evaluation interval,
/// and the shipped rules by absolute path.
fn prometheus_config(s: &Stack) -> String {
    let text = std::fs::read_to_string(prometheus_dir().join("prometheus.yml")).unwrap();
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    config["global"]["scrape_interval"] = "1s".into();
    config["global"]["evaluation_interval"] = "1s".into();
    let rules = prometheus_dir().join("rules").join("*.yml");
    config["rule_files"] = serde_yaml::Value::Sequence(vec![rules.display().to_string().into()]);
    let cp = s.cp.base_url().trim_start_matches("http://").to_owned();
    let proxies: Vec<String> = s
        .env
        .data_planes()
        .iter()
        .map(|d| d.ops_addr().to_string())
        .collect();
    let jobs = config["scrape_configs"].as_sequence_mut().unwrap();
    for job in jobs {
        let targets: Vec<String> = match job["job_name"].as_str() {
            Some("switchyard-data-plane") => proxies.clone(),
            Some("switchyard-control-plane") => vec![cp.clone()],
            other => panic!("prometheus.yml has a job this test does not know: {other:?}"),
        };
        job["static_configs"] = serde_yaml::to_value(json!([{ "targets": targets }])).unwrap();
    }
    serde_yaml::to_string(&config).unwrap()
}

/// POSTs `body` to `path` of `proxy` as `key`, with `headers`; returns the status (and reads
/// the whole body, so streams are consumed to their end).
async fn send(proxy: &str, path: &str, key: &str, headers: Headers<'_>, body: Value) -> u16 {
    let mut request = client()
        .post(format!("{proxy}{path}"))
        .bearer_auth(key)
        .header("x-api-key", key)
        .json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    status
}

const CHAT: &str = "/v1/chat/completions";

/// Request headers as name and value.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// One round of the traffic mix on `proxy`; returns the statuses it got.
async fn round(proxy: &str) -> Vec<u16> {
    let anthropic: Headers = &[("anthropic-version", "2023-06-01")];
    let tagged: Headers = &[("x-switchyard-tags", "workflow=nightly")];
    let cap: Headers = &[("x-switchyard-max-cost", "0.00000001")];
    let stream = json!({"model": "chat", "stream": true, "stream_options": {"include_usage": true},
                        "messages": [{"role": "user", "content": "stream me a hello"}]});
    let messages = |stream: bool| {
        json!({"model": "chat", "max_tokens": 64, "stream": stream,
               "messages": [{"role": "user", "content": "hello from the anthropic dialect"}]})
    };
    let embed = json!({"model": "embed", "input": ["one two three"]});
    // (path, key, headers, body, how many times)
    let mix: Vec<(&str, &str, Headers, Value, usize)> = vec![
        (CHAT, KEY, &[], chat_body("chat"), 2),
        (CHAT, KEY, tagged, chat_body("chat"), 2),
        (CHAT, KEY, &[], stream, 2),
        ("/v1/messages", KEY, anthropic, messages(false), 2),
        ("/v1/messages", KEY, anthropic, messages(true), 2),
        ("/v1/embeddings", KEY, &[], embed, 2),
        // The mock fails every request for `mock-fail`: 502.
        (CHAT, KEY, &[], chat_body("failing"), 2),
        // The dead deployment first: fallbacks, until its breaker opens (5 failures in a row).
        (CHAT, KEY, &[], chat_body("resilient"), 6),
        // 400 request_cost_cap, 401, 404, 429 budget_exceeded, 429 rate_limit_exceeded.
        (CHAT, KEY, cap, chat_body("chat"), 1),
        (CHAT, "sk-sy-unknown-key-0000", &[], chat_body("chat"), 1),
        (CHAT, KEY, &[], chat_body("no-such-model"), 1),
        (CHAT, CAPPED_KEY, &[], chat_body("chat"), 1),
        (CHAT, THROTTLED_KEY, &[], chat_body("chat"), 3),
    ];
    let mut statuses = Vec::new();
    for (path, key, headers, body, times) in mix {
        for _ in 0..times {
            statuses.push(send(proxy, path, key, headers, body.clone()).await);
        }
    }
    statuses
}

/// Waits (up to [`QUERY_WAIT_SECS`]) until `expr` is at least `min`; panics with the last
/// value seen otherwise.
async fn at_least(prometheus: &Prometheus, expr: &str, min: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(QUERY_WAIT_SECS);
    loop {
        let got = value(prometheus, expr).await;
        if got.is_some_and(|v| v >= min) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{expr} is {got:?}, not at least {min}, after {QUERY_WAIT_SECS} s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A number out of an instant-vector answer (its first sample), if any.
async fn value(prometheus: &Prometheus, expr: &str) -> Option<f64> {
    let data = prometheus.query(expr).await.ok()?;
    data["result"][0]["value"][1].as_str()?.parse().ok()
}

#[tokio::test]
async fn dashboards_answer_every_panel_on_live_prometheus() {
    let mut s = stack().await;
    let prometheus = Prometheus::start(s.env.dir(), &prometheus_config(&s))
        .await
        .expect("prometheus starts");
    eventually(Duration::from_secs(30), || async {
        let targets = prometheus.targets().await?;
        let up = targets.iter().filter(|t| t.2 == "up").count();
        anyhow::ensure!(up == 3, "targets: {targets:?}");
        Ok(())
    })
    .await
    .expect("prometheus scrapes both planes");

    // Configured while Prometheus watches, so the proxies measure the propagation.
    let put =
        s.cp.call(
            Method::PUT,
            "/admin/config?prune=false",
            None,
            Some(&config(&s.env.mock().base_url())),
        )
        .await
        .unwrap();
    assert_eq!(put.status, 200, "{}", put.body);
    let proxies: Vec<String> = s.env.data_planes().iter().map(|d| d.base_url()).collect();
    for proxy in &proxies {
        wait_until_served(proxy, KEY, "resilient").await.unwrap();
    }
    // Scraped before the next change, so that one's propagation shows as a rise.
    eventually(Duration::from_secs(10), || async {
        let expr = "count(switchyard_snapshot_propagation_seconds_count)";
        value(&prometheus, expr).await.filter(|n| *n >= 2.0)
    })
    .await
    .expect("both proxies measured the first propagation");

    // Two rounds a few scrapes apart, so every counter rises between two samples.
    let mut statuses = BTreeSet::new();
    for pass in 0..2 {
        for proxy in &proxies {
            statuses.extend(round(proxy).await);
        }
        if pass == 0 {
            // A second change, so a second propagation is measured.
            s.cp.post("/admin/teams", &json!({"name": "late-team"}))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }
    for want in [200, 400, 401, 404, 429, 502] {
        assert!(statuses.contains(&want), "no {want} among {statuses:?}");
    }

    // NATS goes away: usage events go to the spool, and are replayed once it is back.
    s.env.nats_mut().stop().await.unwrap();
    for _ in 0..3 {
        let status = send(&proxies[0], CHAT, KEY, &[], chat_body("chat")).await;
        assert_eq!(status, 200);
    }
    s.env.nats_mut().restart().await.unwrap();
    at_least(&prometheus, "sum(switchyard_usage_replayed_total)", 3.0).await;
    at_least(
        &prometheus,
        "sum(switchyard_usage_spool_replays_total)",
        1.0,
    )
    .await;

    // What the traffic must have touched, read back through Prometheus.
    for (expr, what) in [
        (
            r#"sum(switchyard_requests_total{endpoint="messages"})"#,
            "Anthropic-dialect requests",
        ),
        (
            r#"sum(switchyard_admissions_total{code="budget_exceeded"})"#,
            "budget refusals",
        ),
        (
            r#"sum(switchyard_admissions_total{code="rate_limit_exceeded"})"#,
            "rate-limit refusals",
        ),
        (
            r#"sum(switchyard_admissions_total{code="request_cost_cap"})"#,
            "cost-cap refusals",
        ),
        ("sum(switchyard_fallbacks_total)", "fallbacks"),
        (
            "max(max_over_time(switchyard_breaker_state[5m]))",
            "an opened breaker",
        ),
        (
            r#"sum(gen_ai_client_operation_duration_seconds_count{error_type="502"})"#,
            "upstream errors",
        ),
        (
            "sum(gen_ai_server_time_to_first_token_seconds_count)",
            "streams",
        ),
        (
            "sum(switchyard_budget_soft_alerts_total)",
            "a soft-budget alert",
        ),
    ] {
        eprintln!("checking that the traffic made {what}");
        at_least(&prometheus, expr, 1.0).await;
    }

    // Folding, the budget gauges and the soft alert trail the traffic by a few seconds: retry
    // for a while, and report the last round's failures.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(QUERY_WAIT_SECS);
    let mut failures = failing_queries(&prometheus).await;
    while !failures.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        failures = failing_queries(&prometheus).await;
    }
    assert!(
        failures.is_empty(),
        "dashboard queries failing or without data on live Prometheus:\n{}",
        failures.join("\n")
    );

    // Every rule loaded and evaluates without error.
    let rules = prometheus.api("/api/v1/rules", &[]).await.unwrap();
    let all: Vec<&Value> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(all.len() >= 10, "{rules}");
    for rule in all {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
}

#[test]
fn dashboards_alert_rules_pass_promtool() {
    let promtool = promtool().unwrap();
    let dir = prometheus_dir();
    let rules: Vec<PathBuf> = std::fs::read_dir(dir.join("rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!rules.is_empty());
    let tests: Vec<PathBuf> = std::fs::read_dir(dir.join("tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!tests.is_empty());
    for (command, files) in [("check", &rules), ("test", &tests)] {
        let out = std::process::Command::new(&promtool)
            .args([command, "rules"])
            .args(files)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {command} rules failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = std::process::Command::new(&promtool)
        .args(["check", "config", "prometheus.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
