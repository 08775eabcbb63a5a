//! The metering proofs of issue 4, end to end with real Postgres, NATS, a control plane, three
//! data-plane proxies and the mock provider:
//! - exactness: the spend ledger equals, to the last decimal, the mock's own record of the
//!   tokens it billed × the price, over thousands of mixed requests, also with NATS and the
//!   control plane killed mid-run;
//! - overspend: a $1.00 hard budget hit by 3 proxies × 64 clients ends within one request's
//!   reservation slack of $1.00, and at least 95% of it is used;
//! - rate limits: a key's requests per minute hold within ±10% across 3 proxies.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use switchyard_tests::support::{eventually, wait_until_served, ControlPlane, TestEnv};

use crate::fixture::{add_mock_provider, client, dec};

/// Prices set through the admin API (USD per million tokens); odd values so rounding shows.
const CHAT_PRICES: (&str, &str) = ("0.37", "1.13");
const EMBED_PRICE: &str = "0.021";

struct Stack {
    env: TestEnv,
    cp: ControlPlane,
    /// Data-plane base URLs.
    proxies: Vec<String>,
}

/// The control-plane suite's stack (Postgres, NATS, the mock, a control plane, `n` proxies).
async fn stack(proxies: usize) -> Stack {
    let crate::control_plane::Stack { cp, env } = crate::control_plane::stack(proxies).await;
    let proxies = env.data_planes().iter().map(|d| d.base_url()).collect();
    Stack { env, cp, proxies }
}

/// A team, the mock as provider, routes `chat` / `chat-slow` / `chat-fail` / `embed` and a
/// key with `key_settings` merged in; returns (team id, key id, secret).
async fn setup(s: &Stack, key_settings: Value) -> (String, String, String) {
    let team =
        s.cp.post("/admin/teams", &json!({"name": "metered"}))
            .await
            .unwrap();
    let team_id = team["id"].as_str().unwrap().to_owned();
    add_mock_provider(&s.cp, &s.env).await;
    for (alias, model) in [
        ("chat", "mock-chat"),
        ("chat-slow", "mock-slow"),
        ("chat-fail", "mock-fail"),
        ("embed", "mock-embed"),
    ] {
        s.cp.post(
            "/admin/routes",
            &json!({"alias": alias, "deployments": [{"provider": "mock", "model": model}]}),
        )
        .await
        .unwrap();
    }
    for model in ["mock-chat", "mock-slow", "mock-fail"] {
        put_price(s, model, CHAT_PRICES.0, CHAT_PRICES.1).await;
    }
    put_price(s, "mock-embed", EMBED_PRICE, "0").await;
    let mut body = json!({"team_id": team_id, "name": "svc", "models": ["*"]});
    if let (Some(b), Some(extra)) = (body.as_object_mut(), key_settings.as_object()) {
        b.extend(extra.clone());
    }
    let key = s.cp.post("/admin/keys", &body).await.unwrap();
    (
        team_id,
        key["key"]["id"].as_str().unwrap().to_owned(),
        key["secret"].as_str().unwrap().to_owned(),
    )
}

async fn put_price(s: &Stack, model: &str, input: &str, output: &str) {
    let answer =
        s.cp.call(
            reqwest::Method::PUT,
            &format!("/admin/pricing/{model}"),
            None,
            Some(&json!({"input_per_mtok": input, "output_per_mtok": output})),
        )
        .await
        .unwrap();
    assert!(answer.status < 300, "price for {model}: {answer:?}");
}

/// Waits until every proxy serves `alias` to `secret` (the config has propagated).
async fn all_serve(s: &Stack, secret: &str, alias: &str) {
    for url in &s.proxies {
        wait_until_served(url, secret, alias).await.unwrap();
    }
}

fn price_of(model: &str) -> (Decimal, Decimal) {
    let d = |s: &str| Decimal::from_str(s).unwrap();
    if model == "mock-embed" {
        (d(EMBED_PRICE), Decimal::ZERO)
    } else {
        (d(CHAT_PRICES.0), d(CHAT_PRICES.1))
    }
}

/// What the mock billed, by its own record.
#[derive(Debug, Default)]
struct Billed {
    /// Requests it received.
    requests: usize,
    prompt_tokens: u64,
    completion_tokens: u64,
    /// Σ tokens × price.
    cost: Decimal,
}

async fn billed_by_mock(s: &Stack) -> Billed {
    let records = s.env.mock().requests().await.unwrap();
    let mut total = Billed {
        requests: records.len(),
        ..Billed::default()
    };
    for r in &records {
        let Some(billed) = r.get("billed").filter(|b| !b.is_null()) else {
            continue;
        };
        let (input, output) = price_of(r["model"].as_str().unwrap_or_default());
        let prompt = billed["prompt_tokens"].as_u64().unwrap();
        let completion = billed["completion_tokens"].as_u64().unwrap();
        total.prompt_tokens += prompt;
        total.completion_tokens += completion;
        total.cost += (Decimal::from(prompt) * input + Decimal::from(completion) * output)
            / Decimal::from(1_000_000u64);
    }
    total
}

/// The ledger's totals over all time.
async fn ledger_total(s: &Stack) -> Value {
    s.cp.get("/admin/spend?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z")
        .await
        .unwrap()["total"]
        .clone()
}

/// Waits until the ledger has folded `requests` requests that reached the provider (refused
/// ones are counted apart), then lets it settle so a late duplicate would show.
async fn wait_for_fold(s: &Stack, requests: usize, limit: Duration) -> Value {
    eventually(limit, || async {
        let total = ledger_total(s).await;
        let folded = (total["requests"].as_u64().unwrap_or(0)
            - total["refused"].as_u64().unwrap_or(0)) as usize;
        anyhow::ensure!(folded >= requests, "folded {folded} of {requests}");
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("ledger never caught up: {e}"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    ledger_total(s).await
}

/// One request of the mix; returns the HTTP status (0 for a transport error).
async fn mixed_request(http: &reqwest::Client, url: &str, secret: &str, i: usize) -> u16 {
    let words: Vec<String> = (0..(i % 13 + 1)).map(|w| format!("w{w}")).collect();
    let prompt = words.join(" ");
    let chat = |model: &str, stream: Option<bool>, usage: bool| {
        let mut body = json!({"model": model, "messages": [{"role": "user", "content": prompt}]});
        if let Some(stream) = stream {
            body["stream"] = json!(stream);
            if usage {
                body["stream_options"] = json!({"include_usage": true});
            }
        }
        body
    };
    let (path, body, abandon) = match i % 10 {
        0..=3 => ("/v1/chat/completions", chat("chat", None, false), false),
        4 | 5 => (
            "/v1/chat/completions",
            chat("chat", Some(true), true),
            false,
        ),
        6 => (
            "/v1/chat/completions",
            chat("chat", Some(true), false),
            false,
        ),
        7 => (
            "/v1/chat/completions",
            chat("chat-slow", Some(true), false),
            true,
        ),
        8 => (
            "/v1/chat/completions",
            chat("chat-fail", None, false),
            false,
        ),
        _ => (
            "/v1/embeddings",
            json!({"model": "embed", "input": prompt}),
            false,
        ),
    };
    let Ok(response) = http
        .post(format!("{url}{path}"))
        .bearer_auth(secret)
        .json(&body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
    else {
        return 0;
    };
    let status = response.status().as_u16();
    let mut bytes = response.bytes_stream();
    if abandon {
        // Read the first frame, then walk away mid-stream.
        let _ = bytes.next().await;
        return status;
    }
    while let Some(chunk) = bytes.next().await {
        if chunk.is_err() {
            return 0;
        }
    }
    status
}

/// Sends `total` mixed requests round-robin over the proxies from `clients` tasks; calls
/// `at(n)` (once each) when `n` requests have been started, for fault injection.
async fn run_mix(s: &Stack, secret: &str, total: usize, clients: usize) -> BTreeMap<u16, usize> {
    let next = Arc::new(AtomicUsize::new(0));
    let http = client();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, http, proxies, secret) = (
            Arc::clone(&next),
            http.clone(),
            s.proxies.clone(),
            secret.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut statuses = BTreeMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let url = &proxies[i % proxies.len()];
                let status = mixed_request(&http, url, &secret, i).await;
                *statuses.entry(status).or_insert(0) += 1;
            }
            statuses
        }));
    }
    let mut all = BTreeMap::new();
    for t in tasks {
        for (status, n) in t.await.unwrap() {
            *all.entry(status).or_insert(0) += n;
        }
    }
    all
}

async fn script_mock(s: &Stack) {
    s.env
        .mock()
        .script(&json!({"model": "mock-fail", "times": 1_000_000, "status": 500}))
        .await
        .unwrap();
    s.env
        .mock()
        .script(&json!({"model": "mock-slow", "times": 1_000_000, "chunk_delay_ms": 15}))
        .await
        .unwrap();
}

fn assert_exact(folded: &Value, billed: &Billed) {
    assert_eq!(
        folded["requests"].as_u64().unwrap() as usize,
        billed.requests,
        "one usage event per request that reached the provider: {folded}"
    );
    assert_eq!(
        (
            folded["prompt_tokens"].as_u64().unwrap(),
            folded["completion_tokens"].as_u64().unwrap()
        ),
        (billed.prompt_tokens, billed.completion_tokens),
        "ledger tokens equal the mock's: {folded} vs {billed:?}"
    );
    assert_eq!(
        dec(&folded["cost_usd"]),
        billed.cost,
        "ledger total equals the mock's own record × price: {folded} vs {billed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ledger_equals_what_the_provider_billed_to_the_last_decimal() {
    let s = stack(3).await;
    let (_, _, secret) = setup(&s, json!({})).await;
    script_mock(&s).await;
    for alias in ["chat", "chat-slow", "chat-fail", "embed"] {
        all_serve(&s, &secret, alias).await;
    }
    let statuses = run_mix(&s, &secret, 5_000, 32).await;
    assert_eq!(statuses.get(&0), None, "no transport errors: {statuses:?}");
    assert_eq!(
        statuses.get(&502).copied().unwrap_or(0),
        500,
        "{statuses:?}"
    );

    // Folded first: abandoned streams are still being drained when the clients are done.
    let folded = wait_for_fold(&s, 5_000, Duration::from_secs(60)).await;
    let billed = billed_by_mock(&s).await;
    assert_eq!(
        billed.requests, 5_000,
        "every request reached the mock once"
    );
    assert!(billed.cost > Decimal::ZERO);
    assert_exact(&folded, &billed);
    // The per-tag and per-model views add up to the same total (nothing double counted).
    let by_model =
        s.cp.get("/admin/spend?group_by=model&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z")
            .await
            .unwrap();
    let sum: Decimal = by_model["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| dec(&r["cost_usd"]))
        .sum();
    assert_eq!(sum, billed.cost, "{by_model}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ledger_stays_exact_when_nats_and_the_control_plane_die_mid_run() {
    let mut s = stack(3).await;
    let (_, _, secret) = setup(&s, json!({})).await;
    script_mock(&s).await;
    for alias in ["chat", "chat-slow", "chat-fail", "embed"] {
        all_serve(&s, &secret, alias).await;
    }
    // First third: everything up.
    let mut statuses = run_mix(&s, &secret, 1_700, 32).await;
    // NATS crashes: proxies keep serving, usage goes to their spools.
    s.env.nats_mut().kill().unwrap();
    for (k, v) in run_mix(&s, &secret, 1_600, 32).await {
        *statuses.entry(k).or_insert(0) += v;
    }
    s.env.nats_mut().restart().await.unwrap();
    // The control plane crashes while the replayed spools are being folded, and while the
    // last third is served.
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.cp.kill().unwrap();
    for (k, v) in run_mix(&s, &secret, 1_700, 32).await {
        *statuses.entry(k).or_insert(0) += v;
    }
    s.cp.restart().await.unwrap();
    assert_eq!(statuses.get(&0), None, "no transport errors: {statuses:?}");

    let folded = wait_for_fold(&s, 5_000, Duration::from_secs(90)).await;
    let billed = billed_by_mock(&s).await;
    assert_eq!(
        billed.requests, 5_000,
        "every request reached the mock once"
    );
    assert_exact(&folded, &billed);
    // The proxies replayed events from their spools.
    let mut replayed = 0.0;
    for dp in s.env.data_planes() {
        let metrics = dp.metrics().await.unwrap();
        replayed += metrics
            .lines()
            .filter(|l| l.starts_with("switchyard_usage_replayed_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    assert!(replayed > 0.0, "events went through the spools");
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hard_budget_holds_across_three_proxies_and_sixty_four_clients_each() {
    let s = stack(3).await;
    let (team_id, _, secret) = setup(&s, json!({})).await;
    // Expensive output so $1.00 lasts a few hundred requests.
    put_price(&s, "mock-chat", "1", "400").await;
    s.cp.post(
        "/admin/budgets",
        &json!({"name": "team-dollar", "scope": "team", "target": team_id,
                    "amount_usd": "1.00", "period": "daily", "hard": true}),
    )
    .await
    .unwrap();
    all_serve(&s, &secret, "chat").await;
    // Let the snapshot with the budget and new price reach every proxy.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let refused_right = Arc::new(AtomicUsize::new(0));
    let http = client();
    let mut tasks = Vec::new();
    for c in 0..(3 * 64) {
        let url = s.proxies[c % 3].clone();
        let (http, secret, refused_right) =
            (http.clone(), secret.clone(), Arc::clone(&refused_right));
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            // Keep asking until refused three times in a row.
            let mut refusals = 0;
            while refusals < 3 {
                let response = http
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(&secret)
                    .json(&json!({"model": "chat", "max_tokens": 6,
                                  "messages": [{"role": "user", "content": "count to five please"}]}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let retry = response
                    .headers()
                    .get("x-should-retry")
                    .map(|v| v.to_str().unwrap_or_default().to_owned());
                let body: Value = response.json().await.unwrap_or_default();
                match status {
                    200 => {
                        ok += 1;
                        refusals = 0;
                    }
                    429 => {
                        assert_eq!(body["error"]["code"], "budget_exceeded", "{body}");
                        assert!(
                            body["error"]["message"]
                                .as_str()
                                .unwrap_or_default()
                                .contains("team-dollar"),
                            "names the budget: {body}"
                        );
                        assert_eq!(retry.as_deref(), Some("false"));
                        refused_right.fetch_add(1, Ordering::Relaxed);
                        refusals += 1;
                    }
                    other => panic!("unexpected {other}: {body}"),
                }
            }
            ok
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += t.await.unwrap();
    }
    assert!(refused_right.load(Ordering::Relaxed) > 0);

    // The truth is what the provider billed.
    let records = s.env.mock().requests().await.unwrap();
    assert_eq!(
        records.len(),
        admitted,
        "only admitted requests reached the mock"
    );
    let (_, spent) = billed_by_mock_at(&records, ("1", "400"));
    // Slack: one request's reservation minus its real cost. The reservation is at most the
    // prompt estimate plus 6 output tokens; a generous bound on the prompt estimate is 200
    // tokens at $1/M.
    let per_request_real = spent / Decimal::from(admitted as u64);
    let reservation_bound = (Decimal::from(200u64) * Decimal::ONE
        + Decimal::from(6u64) * Decimal::from(400u64))
        / Decimal::from(1_000_000u64);
    let limit = Decimal::ONE + (reservation_bound - per_request_real);
    assert!(
        spent <= limit,
        "spent {spent} over {admitted} requests; must stay ≤ {limit}"
    );
    eprintln!("hard budget: {admitted} admitted, {spent} spent of $1.00 (bound {limit})");
    assert!(
        spent >= Decimal::from_str("0.95").unwrap(),
        "refused too early: only {spent} of $1.00 used by {admitted} requests"
    );
    // And the ledger agrees with the provider.
    let folded = wait_for_fold(&s, admitted, Duration::from_secs(30)).await;
    assert_eq!(dec(&folded["cost_usd"]), spent, "{folded}");
}

fn billed_by_mock_at(records: &[Value], prices: (&str, &str)) -> (usize, Decimal) {
    let (input, output) = (
        Decimal::from_str(prices.0).unwrap(),
        Decimal::from_str(prices.1).unwrap(),
    );
    let mut cost = Decimal::ZERO;
    for r in records {
        if let Some(b) = r.get("billed").filter(|b| !b.is_null()) {
            cost += (Decimal::from(b["prompt_tokens"].as_u64().unwrap()) * input
                + Decimal::from(b["completion_tokens"].as_u64().unwrap()) * output)
                / Decimal::from(1_000_000u64);
        }
    }
    (records.len(), cost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_rate_limit_holds_within_ten_percent_across_three_proxies() {
    const RPM: u64 = 300;
    let s = stack(3).await;
    let (_, _, secret) = setup(&s, json!({"rpm": RPM})).await;
    all_serve(&s, &secret, "chat").await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Start in a window with at least 20 s left, and hammer until it ends.
    let mut now = unix_now();
    if 60.0 - now % 60.0 < 20.0 {
        tokio::time::sleep(Duration::from_secs_f64(60.0 - now % 60.0 + 0.2)).await;
        now = unix_now();
    }
    let window_start = (now / 60.0).floor() * 60.0;
    let window_end = window_start + 60.0;
    s.env.mock().clear().await.unwrap();

    let http = client();
    let mut tasks = Vec::new();
    for c in 0..12 {
        let url = s.proxies[c % 3].clone();
        let (http, secret) = (http.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut limited, mut headers_seen) = (0u64, 0u64, 0u64);
            while unix_now() < window_end - 0.3 {
                let response = http
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(&secret)
                    .json(
                        &json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}),
                    )
                    .send()
                    .await
                    .unwrap();
                let h = response.headers().clone();
                match response.status().as_u16() {
                    200 => {
                        ok += 1;
                        if h.get("x-ratelimit-limit-requests")
                            .is_some_and(|v| v == RPM.to_string().as_str())
                            && h.contains_key("x-ratelimit-remaining-requests")
                            && h.contains_key("x-ratelimit-reset-requests")
                        {
                            headers_seen += 1;
                        }
                    }
                    429 => {
                        limited += 1;
                        let retry: f64 = h
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok())
                            .expect("429 carries Retry-After");
                        assert!((0.0..=61.0).contains(&retry), "retry-after {retry}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    other => panic!("unexpected status {other}"),
                }
            }
            (ok, limited, headers_seen)
        }));
    }
    let (mut ok, mut limited, mut headers_seen) = (0, 0, 0);
    for t in tasks {
        let (a, b, c) = t.await.unwrap();
        ok += a;
        limited += b;
        headers_seen += c;
    }
    // Count what reached the provider inside the window, by the mock's own clock.
    let records = s.env.mock().requests().await.unwrap();
    let in_window = records
        .iter()
        .filter(|r| {
            let at = r["received_at_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
            at >= window_start && at < window_end
        })
        .count() as u64;
    assert!(limited > 0, "the limit was reached ({ok} admitted)");
    assert_eq!(
        headers_seen, ok,
        "every admitted response has x-ratelimit-* headers"
    );
    let (low, high) = (RPM * 9 / 10, RPM * 11 / 10);
    assert!(
        (low..=high).contains(&in_window),
        "{in_window} requests reached the provider in one minute; limit {RPM} ±10%"
    );
}
