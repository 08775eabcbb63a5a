//! Folding usage into the spend ledger (issue 4), end to end with real Postgres, NATS and a
//! control plane, fed with hand-made usage events published straight to JetStream:
//! - totals are exact (compared with Decimal sums from the pricing table), group_by works, tag
//!   rows never double count, duplicates and undecodable messages change nothing;
//! - a team-scoped token sees only its team's spend and usage;
//! - a price change applies only to events after it (by event time), and rebuilt projections
//!   (price history included) equal the live ones;
//! - a soft budget alerts once;
//! - a control plane killed mid-fold and restarted ends with exact totals.

use crate::fixture::{created, dec};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use futures_util::StreamExt;
use proto::{usage_subject, ModelPrice, Outcome, Refusal, TokenUsage, UsageEvent};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use switchyard_tests::support::{eventually, ControlPlane, TestEnv};

struct Stack {
    env: TestEnv,
    cp: ControlPlane,
    js: jetstream::Context,
    nats: async_nats::Client,
}

async fn stack() -> Stack {
    let env = TestEnv::builder()
        .postgres()
        .nats()
        .build()
        .await
        .expect("services start");
    let cp = env
        .control_plane("control-plane")
        .await
        .expect("control plane starts");
    let nats = async_nats::connect(env.nats().url()).await.unwrap();
    let js = jetstream::new(nats.clone());
    // The control plane creates the stream; wait for it rather than racing it.
    eventually(Duration::from_secs(10), || async {
        js.get_stream(proto::USAGE_STREAM).await.map(drop)
    })
    .await
    .expect("the control plane creates the usage stream");
    Stack { env, cp, js, nats }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn new_id() -> String {
    uuid_v7()
}

/// A UUIDv7 without depending on the uuid crate: 48-bit ms time, version, random rest.
fn uuid_v7() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let ms = now_ms() as u64;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let pid = u64::from(std::process::id());
    let rand = (pid << 40) ^ seq ^ 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
        ms >> 16,
        ms & 0xffff,
        (seq >> 48) & 0xfff,
        0x8000 | ((rand >> 48) & 0x3fff),
        rand & 0xffff_ffff_ffff
    )
}

#[allow(clippy::too_many_arguments)]
fn event(
    team: &str,
    key: &str,
    model: &str,
    tags: &[(&str, &str)],
    prompt: u64,
    completion: u64,
    cached: u64,
    time_ms: i64,
) -> UsageEvent {
    UsageEvent {
        id: new_id(),
        time_ms,
        proxy: "test-proxy".into(),
        key_id: Some(key.into()),
        key_name: Some(format!("{key}-name")),
        team: Some(team.into()),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        endpoint: "chat".into(),
        alias: "chat".into(),
        provider: Some(
            if model.starts_with("claude") {
                "anthropic"
            } else {
                "openai"
            }
            .into(),
        ),
        deployment: Some(format!("p/{model}")),
        model: Some(model.into()),
        usage: TokenUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_input_tokens: cached,
            reasoning_tokens: completion / 4,
            ..TokenUsage::default()
        },
        usage_estimated: false,
        cost_usd: Decimal::new(1, 2),
        latency_ms: 120,
        ttft_ms: Some(40),
        status: 200,
        outcome: Outcome::Ok,
        refused: None,
        streamed: true,
        abandoned: false,
        attempts: 1,
        fallbacks: 0,
        cache_hit: false,
        saved_cost_usd: Decimal::ZERO,
        route_reason: None,
        log: proto::LogPayloads::Metadata,
        guardrail: Default::default(),
    }
}

/// Publishes events with their id as `Nats-Msg-Id`, pipelined, waiting for every ack.
async fn publish(js: &jetstream::Context, events: &[UsageEvent]) {
    for chunk in events.chunks(2000) {
        let mut acks = Vec::with_capacity(chunk.len());
        for e in chunk {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", e.id.as_str());
            let body = serde_json::to_vec(e).unwrap();
            acks.push(
                js.publish_with_headers(usage_subject(e.team.as_deref()), headers, body.into())
                    .await
                    .unwrap(),
            );
        }
        for ack in acks {
            ack.await.unwrap();
        }
    }
}

/// Publishes events as a data plane does: several per message, one JSON line each
/// (`proto::batch_items`), with the batch id as `Nats-Msg-Id`.
async fn publish_batched(js: &jetstream::Context, events: &[UsageEvent], per_message: usize) {
    let mut acks = Vec::new();
    for batch in events.chunks(per_message) {
        let lines: Vec<String> = batch
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            proto::batch_id(&batch[0].id, batch.len()).as_str(),
        );
        acks.push(
            js.publish_with_headers(
                usage_subject(batch[0].team.as_deref()),
                headers,
                lines.join("\n").into(),
            )
            .await
            .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

/// Publishes raw bytes without a message id.
async fn publish_raw(js: &jetstream::Context, body: &[u8]) {
    js.publish(usage_subject(Some("junk")), body.to_vec().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Built-in prices from the control plane's own table.
fn built_in(model: &str) -> Option<ModelPrice> {
    control_plane::domain::pricing::built_in()
        .into_iter()
        .find(|(m, _)| m == model)
        .map(|(m, s)| s.price(&m))
}

fn cost(e: &UsageEvent) -> Decimal {
    e.model
        .as_deref()
        .and_then(built_in)
        .map(|p| p.cost(&e.usage))
        .unwrap_or_default()
}

const ALL_TIME: &str = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z";

async fn spend(cp: &ControlPlane, query: &str, token: Option<&str>) -> Value {
    let answer = cp
        .call(
            Method::GET,
            &format!("/admin/spend?{ALL_TIME}&{query}"),
            token,
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{query}: {}", answer.body);
    answer.body
}

/// Waits until the ledger counts `n` requests (and checks it does not go beyond).
async fn wait_folded(cp: &ControlPlane, n: u64, limit: Duration) -> Value {
    eventually(limit, || async {
        let total = spend(cp, "", None).await["total"].clone();
        let got = total["requests"].as_u64().unwrap_or(0);
        anyhow::ensure!(got >= n, "folded {got} of {n}");
        Ok(total)
    })
    .await
    .unwrap_or_else(|e| panic!("the ledger never caught up: {e:#}"));
    // Anything counted twice would show up a moment later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let total = spend(cp, "", None).await["total"].clone();
    assert_eq!(total["requests"].as_u64(), Some(n), "{total}");
    total
}

async fn team(cp: &ControlPlane, name: &str) -> String {
    created(cp, "/admin/teams", &json!({ "name": name }), "/id").await
}

#[tokio::test]
async fn usage_folds_into_exact_grouped_isolated_ledgers() {
    let s = stack().await;
    let a = team(&s.cp, "alpha").await;
    let b = team(&s.cp, "bravo").await;
    let token = json!({"name": "alpha-admin", "team_id": a});
    let token_a = created(&s.cp, "/admin/tokens", &token, "/secret").await;

    let now = now_ms();
    let models = [
        "gpt-4o",
        "gpt-4o-mini",
        "claude-sonnet-4-5",
        "no-such-model",
    ];
    let mut events = Vec::new();
    for i in 0..60u64 {
        let (t, k) = if i % 3 == 0 {
            (&b, "kb1")
        } else {
            (&a, if i % 2 == 0 { "ka1" } else { "ka2" })
        };
        let tags: Vec<(&str, &str)> = match i % 4 {
            0 => vec![("env", "prod"), ("app", "checkout")],
            1 => vec![("env", "dev")],
            2 => vec![("app", "search")],
            _ => vec![],
        };
        let mut e = event(
            t,
            k,
            models[(i % 4) as usize],
            &tags,
            1000 + i * 37,
            200 + i * 11,
            i * 5,
            now - (i as i64) * 1000,
        );
        if i % 10 == 7 {
            e.outcome = Outcome::Refused;
            e.status = 429;
            e.usage = TokenUsage::default();
            e.refused = Some(Refusal {
                code: "rate_limit_exceeded".into(),
                limit: format!("key:{k} rpm"),
            });
        }
        events.push(e);
    }
    // Most of them batched, several to a message, the rest one to a message.
    publish_batched(&s.js, &events[..40], 7).await;
    publish(&s.js, &events[40..]).await;
    // The same event again: with the same Nats-Msg-Id (JetStream drops it), and without one
    // (a replay past the duplicate window: the usage_events key drops it).
    publish(&s.js, &events[..3]).await;
    // Both come from a proxy's spool (the replay header is counted by the control plane),
    // once alone and once in a batch with a copy of itself.
    let one = serde_json::to_string(&events[3]).unwrap();
    for replay in [one.clone(), format!("{one}\n{one}")] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(proto::USAGE_REPLAYED_HEADER, "1");
        s.js.publish_with_headers(
            usage_subject(events[3].team.as_deref()),
            headers,
            replay.into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    // Not events at all.
    publish_raw(&s.js, b"{not json").await;
    // A batch with one bad line: the good event in it (a duplicate here) still counts.
    let mixed = format!(
        "{}\n{}",
        serde_json::to_string(&events[59]).unwrap(),
        r#"{"id":"not-a-uuid","time_ms":1,"proxy":"p","endpoint":"chat","alias":"a","latency_ms":1,"status":200,"outcome":"ok"}"#
    );
    publish_raw(&s.js, mixed.as_bytes()).await;

    let total = wait_folded(&s.cp, events.len() as u64, Duration::from_secs(30)).await;
    let want_cost: Decimal = events.iter().map(cost).sum();
    assert_eq!(dec(&total["cost_usd"]), want_cost, "{total}");
    let sum = |f: fn(&UsageEvent) -> u64| events.iter().map(f).sum::<u64>();
    assert_eq!(
        total["prompt_tokens"].as_u64(),
        Some(sum(|e| e.usage.prompt_tokens))
    );
    assert_eq!(
        total["completion_tokens"].as_u64(),
        Some(sum(|e| e.usage.completion_tokens))
    );
    assert_eq!(
        total["cached_input_tokens"].as_u64(),
        Some(sum(|e| e.usage.cached_input_tokens))
    );
    assert_eq!(
        total["reasoning_tokens"].as_u64(),
        Some(sum(|e| e.usage.reasoning_tokens))
    );
    let refused = events
        .iter()
        .filter(|e| e.outcome == Outcome::Refused)
        .count() as u64;
    assert_eq!(total["refused"].as_u64(), Some(refused));

    // group_by team,model: every group exact.
    let report = spend(&s.cp, "group_by=team,model", None).await;
    assert_eq!(report["group_by"], json!(["team", "model"]));
    let mut want: BTreeMap<(String, String), (u64, Decimal)> = BTreeMap::new();
    for e in &events {
        let w = want
            .entry((e.team.clone().unwrap(), e.model.clone().unwrap()))
            .or_default();
        w.0 += 1;
        w.1 += cost(e);
    }
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), want.len(), "{report}");
    for r in rows {
        let k = (
            r["team_id"].as_str().unwrap().to_owned(),
            r["model"].as_str().unwrap().to_owned(),
        );
        let (n, c) = want[&k];
        assert_eq!(r["requests"].as_u64(), Some(n), "{r}");
        assert_eq!(dec(&r["cost_usd"]), c, "{r}");
        assert!(r.get("key_id").is_none() && r.get("tag").is_none(), "{r}");
    }

    // Tags: each tag row once, and summing one tag key counts each tagged event once.
    let by_tag = spend(&s.cp, "group_by=tag", None).await;
    let tag_rows: HashMap<String, u64> = by_tag["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["tag"].as_str().unwrap().to_owned(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    let tagged = |k: &str, v: &str| {
        events
            .iter()
            .filter(|e| e.tags.get(k).map(String::as_str) == Some(v))
            .count() as u64
    };
    assert_eq!(tag_rows["env=prod"], tagged("env", "prod"));
    assert_eq!(tag_rows["env=dev"], tagged("env", "dev"));
    assert_eq!(tag_rows["app=search"], tagged("app", "search"));
    assert_eq!(tag_rows.len(), 4, "{by_tag}");
    let env_total = spend(&s.cp, "tag=env", None).await["total"].clone();
    assert_eq!(
        env_total["requests"].as_u64(),
        Some(tagged("env", "prod") + tagged("env", "dev"))
    );
    let prod: Decimal = events
        .iter()
        .filter(|e| e.tags.get("env").map(String::as_str) == Some("prod"))
        .map(cost)
        .sum();
    assert_eq!(
        dec(&spend(&s.cp, "tag=env%3Dprod", None).await["total"]["cost_usd"]),
        prod
    );
    // Grouping without tag never adds the tag rows in.
    let by_team = spend(&s.cp, "group_by=team,day,provider,key", None).await;
    let n: u64 = by_team["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(n, events.len() as u64);
    assert!(
        by_team["rows"][0]["day"].as_str().unwrap().len() == 10,
        "{by_team}"
    );

    // A team-scoped token sees its own team only, whatever it asks for.
    let a_events: Vec<&UsageEvent> = events
        .iter()
        .filter(|e| e.team.as_deref() == Some(&a))
        .collect();
    let a_total = spend(&s.cp, "", Some(&token_a)).await["total"].clone();
    assert_eq!(a_total["requests"].as_u64(), Some(a_events.len() as u64));
    assert_eq!(
        dec(&a_total["cost_usd"]),
        a_events.iter().map(|e| cost(e)).sum::<Decimal>()
    );
    let sneaky = spend(&s.cp, &format!("team_id={b}&group_by=team"), Some(&token_a)).await;
    assert_eq!(sneaky["total"]["requests"], 0, "{sneaky}");
    assert_eq!(sneaky["rows"], json!([]));
    let teams = spend(&s.cp, "group_by=team", Some(&token_a)).await;
    assert_eq!(teams["rows"].as_array().unwrap().len(), 1);

    // Raw events: newest first, paginated, scoped.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(c) => format!("/admin/usage?limit=7&after={c}"),
            None => "/admin/usage?limit=7".to_owned(),
        };
        let page = s.cp.get(&path).await.unwrap();
        for e in page["data"].as_array().unwrap() {
            seen.push((
                e["time"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next"].as_str() {
            Some(c) => after = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), events.len());
    let mut sorted = seen.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no event twice");
    let newest = s.cp.get("/admin/usage?limit=1").await.unwrap();
    assert_eq!(newest["data"][0]["id"], json!(events[0].id.to_lowercase()));
    assert_eq!(dec(&newest["data"][0]["cost_usd"]), cost(&events[0]));
    let scoped =
        s.cp.call(Method::GET, "/admin/usage?limit=1000", Some(&token_a), None)
            .await
            .unwrap();
    let rows = scoped.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), a_events.len());
    assert!(rows.iter().all(|r| r["team_id"] == json!(a)));
    let refused_rows =
        s.cp.get("/admin/usage?outcome=refused&limit=1000")
            .await
            .unwrap();
    assert_eq!(
        refused_rows["data"].as_array().unwrap().len() as u64,
        refused
    );
    assert_eq!(
        refused_rows["data"][0]["refused_code"],
        "rate_limit_exceeded"
    );

    // Bad input is a clear 422.
    let bad =
        s.cp.call(Method::GET, "/admin/spend?group_by=team,colour", None, None)
            .await
            .unwrap();
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.to_string().contains("colour"), "{}", bad.body);
    let bad =
        s.cp.call(Method::GET, "/admin/usage?outcome=maybe", None, None)
            .await
            .unwrap();
    assert_eq!(bad.status, 422);

    // Metrics saw the duplicate and the junk.
    let metrics = reqwest::get(format!("{}/metrics", s.cp.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "switchyard_fold_duplicates_total",
        "switchyard_usage_undecodable_total 2",
        "switchyard_usage_spool_replays_total 3",
        "switchyard_fold_events_total 60",
        "switchyard_spend_usd_total{",
        "switchyard_usage_tokens_total{",
        "switchyard_fold_lag_seconds",
        "switchyard_usage_unpriced_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    let pg = s.env.postgres().client().await.unwrap();
    let n: i64 = pg
        .query_one("SELECT count(*) FROM usage_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, events.len() as i64);
}

#[tokio::test]
async fn a_price_change_applies_only_to_events_after_it() {
    let s = stack().await;
    let a = team(&s.cp, "alpha").await;
    let before_change = now_ms() - 60_000;
    // Published after the change, but it happened before: old price.
    let early = event(&a, "k", "gpt-4o", &[], 1_000_000, 100_000, 0, before_change);
    let answer = s
        .cp
        .call(
            Method::PUT,
            "/admin/pricing/gpt-4o",
            None,
            Some(&json!({"input_per_mtok": "0.37", "output_per_mtok": "1.13", "cached_input_per_mtok": "0.05"})),
        )
        .await
        .unwrap();
    assert_eq!(answer.status / 100, 2, "{}", answer.body);
    let after_change = now_ms() + 1000;
    let late = event(
        &a,
        "k",
        "gpt-4o",
        &[],
        1_000_000,
        100_000,
        200_000,
        after_change,
    );
    publish(&s.js, &[early.clone(), late.clone()]).await;
    let total = wait_folded(&s.cp, 2, Duration::from_secs(20)).await;
    let new_price = ModelPrice {
        model: "gpt-4o".into(),
        input_per_mtok: "0.37".parse().unwrap(),
        output_per_mtok: "1.13".parse().unwrap(),
        cached_input_per_mtok: Some("0.05".parse().unwrap()),
        cache_write_5m_per_mtok: None,
        cache_write_1h_per_mtok: None,
    };
    // 1M × 2.50 + 0.1M × 10.00 = 3.5 at the old price.
    assert_eq!(cost(&early), Decimal::from_str("3.5").unwrap());
    let want = cost(&early) + new_price.cost(&late.usage);
    assert_eq!(dec(&total["cost_usd"]), want, "{total}");

    // Removing the override brings the built-in price back for later events only.
    let del =
        s.cp.call(Method::DELETE, "/admin/pricing/gpt-4o", None, None)
            .await
            .unwrap();
    assert_eq!(del.status / 100, 2, "{}", del.body);
    let later = event(&a, "k", "gpt-4o", &[], 1_000, 0, 0, now_ms() + 2000);
    publish(&s.js, std::slice::from_ref(&later)).await;
    let total = wait_folded(&s.cp, 3, Duration::from_secs(20)).await;
    assert_eq!(dec(&total["cost_usd"]), want + cost(&later));

    // The price history is a projection like the others: a rebuild gives the same rows.
    let projections = crate::fixture::rebuild_changes_nothing(&s.env).await;
    assert_eq!(
        projections["price_history"].as_array().unwrap().len(),
        2,
        "{projections}"
    );
}

#[tokio::test]
async fn a_soft_budget_alerts_once_per_period() {
    let s = stack().await;
    let a = team(&s.cp, "alpha").await;
    let budget = s
        .cp
        .post(
            "/admin/budgets",
            &json!({"name": "alpha soft", "scope": "team", "target": a, "amount_usd": "0.01", "period": "daily", "hard": false}),
        )
        .await
        .unwrap();
    let mut alerts = s.nats.subscribe(proto::BUDGET_ALERT_SUBJECT).await.unwrap();
    s.nats.flush().await.unwrap();
    // gpt-4o: 1000 prompt + 150 completion tokens = 0.0025 + 0.0015 = 0.004 each.
    let one = || event(&a, "k", "gpt-4o", &[], 1000, 150, 0, now_ms());
    assert_eq!(cost(&one()), Decimal::from_str("0.004").unwrap());
    publish(&s.js, &[one(), one()]).await;
    wait_folded(&s.cp, 2, Duration::from_secs(20)).await;
    let pg = s.env.postgres().client().await.unwrap();
    let count = || async {
        pg.query_one("SELECT count(*) FROM budget_alerts", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(count().await, 0, "0.008 < 0.01");
    publish(&s.js, &[one()]).await;
    wait_folded(&s.cp, 3, Duration::from_secs(20)).await;
    publish(&s.js, &[one(), one()]).await;
    wait_folded(&s.cp, 5, Duration::from_secs(20)).await;
    assert_eq!(count().await, 1);
    let row = pg
        .query_one(
            "SELECT budget_id::text, scope_value, spent_usd::text FROM budget_alerts",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), budget["id"].as_str().unwrap());
    assert_eq!(row.get::<_, String>(1), a);
    let msg = tokio::time::timeout(Duration::from_secs(5), alerts.next())
        .await
        .unwrap()
        .unwrap();
    let alert: proto::BudgetAlert = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(alert.scope_value, a);
    assert_eq!(alert.spent_usd, Decimal::from_str("0.012").unwrap());
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), alerts.next())
            .await
            .is_err(),
        "announced once"
    );
    let log = s.cp.stderr().unwrap();
    assert!(log.contains("soft budget reached"), "{log}");
}

#[tokio::test]
async fn a_control_plane_killed_mid_fold_loses_nothing_and_counts_nothing_twice() {
    let mut s = stack().await;
    let a = team(&s.cp, "alpha").await;
    s.cp.kill().unwrap();
    const N: usize = 30_000;
    let now = now_ms();
    let events: Vec<UsageEvent> = (0..N)
        .map(|i| {
            let tags: &[(&str, &str)] = if i % 2 == 0 { &[("env", "prod")] } else { &[] };
            event(
                &a,
                if i % 3 == 0 { "k1" } else { "k2" },
                ["gpt-4o-mini", "claude-3-5-haiku"][i % 2],
                tags,
                10 + i as u64 % 500,
                5 + i as u64 % 90,
                i as u64 % 7,
                now - i as i64,
            )
        })
        .collect();
    publish(&s.js, &events).await;
    s.cp.restart().await.unwrap();
    let pg = s.env.postgres().client().await.unwrap();
    let folded = eventually(Duration::from_secs(60), || async {
        let n: i64 = pg
            .query_one("SELECT count(*) FROM usage_events", &[])
            .await
            .unwrap()
            .get(0);
        anyhow::ensure!(n > 0, "nothing folded yet");
        Ok(n)
    })
    .await
    .unwrap();
    s.cp.kill().unwrap();
    eprintln!("killed the control plane with {folded} of {N} events folded");
    s.cp.restart().await.unwrap();
    let total = wait_folded(&s.cp, N as u64, Duration::from_secs(120)).await;
    let want: Decimal = events.iter().map(cost).sum();
    assert_eq!(dec(&total["cost_usd"]), want, "{total}");
    let prompt: u64 = events.iter().map(|e| e.usage.prompt_tokens).sum();
    assert_eq!(total["prompt_tokens"].as_u64(), Some(prompt));
    let prod = spend(&s.cp, "tag=env%3Dprod", None).await["total"].clone();
    assert_eq!(prod["requests"].as_u64(), Some(N as u64 / 2));
}
