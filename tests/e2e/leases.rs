//! Leases end to end: simulated proxies ask real control planes over NATS for slices of hard
//! budgets and rate windows; the sums must never exceed the limits, across two control-plane
//! replicas answering at once, and nothing may be lost. Also: the snapshot carries budgets,
//! prices, team limits and key cost caps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::{
    period_bounds, rate_window, BudgetPeriod, LeaseReply, LeaseRequest, PoolKey, RateUnit,
    LEASE_SUBJECT,
};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use switchyard_tests::support::{eventually, ControlPlane, TestEnv};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// Postgres, NATS and `n` control planes, once every one of them listens for leases.
async fn stack(n: usize) -> (TestEnv, Vec<ControlPlane>) {
    let env = TestEnv::builder().postgres().nats().build().await.unwrap();
    let mut cps = Vec::new();
    for i in 0..n {
        let cp = ControlPlane::start(
            env.dir(),
            &format!("control-plane-{i}"),
            &env.postgres().database_url(),
            Some(&env.nats().url()),
            vec![],
        )
        .await
        .unwrap();
        cps.push(cp);
    }
    let monitor = format!("{}/connz?subs=1", env.nats().monitor_url());
    eventually(Duration::from_secs(15), || async {
        let connz: Value = reqwest::get(&monitor).await?.json().await?;
        let subscribed = connz["connections"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                c["subscriptions_list"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s == LEASE_SUBJECT))
            })
            .count();
        anyhow::ensure!(
            subscribed == n,
            "{subscribed} of {n} lease services subscribed"
        );
        Ok(())
    })
    .await
    .unwrap();
    (env, cps)
}

async fn ask(nats: &async_nats::Client, req: &LeaseRequest) -> LeaseReply {
    let body = serde_json::to_vec(req).unwrap();
    let answer = tokio::time::timeout(
        Duration::from_secs(15),
        nats.request(LEASE_SUBJECT, body.into()),
    )
    .await
    .expect("lease reply in time")
    .expect("lease request delivered");
    serde_json::from_slice(&answer.payload).unwrap()
}

fn budget_req(
    proxy: &str,
    budget: &str,
    scope: &str,
    period_start: i64,
    want: &str,
) -> LeaseRequest {
    LeaseRequest {
        proxy: proxy.into(),
        pool: PoolKey::Budget {
            budget_id: budget.into(),
            scope_value: scope.into(),
            period_start,
        },
        want: dec(want),
        used: Decimal::ZERO,
        release: false,
    }
}

async fn team(cp: &ControlPlane, name: &str) -> String {
    let t = cp
        .post("/admin/teams", &json!({"name": name}))
        .await
        .unwrap();
    t["id"].as_str().unwrap().to_owned()
}

async fn budget(cp: &ControlPlane, team: &str, amount: &str, hard: bool) -> String {
    let b = cp
        .post(
            "/admin/budgets",
            &json!({"name": format!("b-{amount}-{hard}"), "scope": "team", "target": team,
                    "amount_usd": amount, "period": "daily", "hard": hard}),
        )
        .await
        .unwrap();
    b["id"].as_str().unwrap().to_owned()
}

async fn lease_requests_served(cp: &ControlPlane) -> f64 {
    let text = cp.get("/metrics").await.unwrap();
    let text = text.as_str().unwrap_or_default().to_owned();
    text.lines()
        .filter(|l| l.starts_with("switchyard_lease_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_hard_budget_is_granted_exactly_once_across_replicas_and_proxies() {
    let (env, cps) = stack(2).await;
    let team_id = team(&cps[0], "payments").await;
    let budget_id = budget(&cps[0], &team_id, "1.00", true).await;
    let nats = env.nats().client().await.unwrap();
    let (today, _) = period_bounds(BudgetPeriod::Daily, now());

    // 3 proxies × 12 concurrent askers, each asking until the pool is dry.
    let mut askers = Vec::new();
    for p in 0..3 {
        for a in 0..12 {
            let nats = nats.clone();
            let req = budget_req(&format!("proxy-{p}"), &budget_id, &team_id, today, "0");
            askers.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let mut req = req.clone();
                    req.want = Decimal::new(i64::from(a % 5) * 7 + 1, 3);
                    let reply = ask(&nats, &req).await;
                    assert_eq!(reply.error, None, "{reply:?}");
                    assert_eq!(reply.limit, dec("1.00"));
                    if reply.granted.is_zero() {
                        return (p, got);
                    }
                    got.push(reply);
                }
            }));
        }
    }
    let mut by_proxy: BTreeMap<usize, Vec<LeaseReply>> = BTreeMap::new();
    for asker in askers {
        let (p, got) = asker.await.unwrap();
        by_proxy.entry(p).or_default().extend(got);
    }
    let total: Decimal = by_proxy.values().flatten().map(|r| r.granted).sum();
    assert_eq!(total, dec("1.00"), "every cent granted once, none lost");
    for (p, replies) in &by_proxy {
        let mine: Decimal = replies.iter().map(|r| r.granted).sum();
        let last = replies
            .iter()
            .map(|r| r.total_granted)
            .max()
            .unwrap_or_default();
        assert_eq!(mine, last, "proxy-{p}: total_granted adds up");
    }
    assert!(
        replies_within_slices(&by_proxy),
        "grants are slices or the remainder"
    );
    for cp in &cps {
        assert!(
            lease_requests_served(cp).await > 0.0,
            "both replicas answered"
        );
    }

    // Release: the biggest holder used only $0.10 of what it held; the rest goes to another.
    // (The pool is gone in 20 slices of $0.05; which proxy got how many is up to the race.)
    let held = |p: usize| {
        by_proxy
            .get(&p)
            .map(|r| r.iter().map(|r| r.granted).sum::<Decimal>())
            .unwrap_or_default()
    };
    let holder = (0..3).max_by_key(|p| held(*p)).unwrap();
    let taker = (holder + 1) % 3;
    let held0 = held(holder);
    assert!(held0 > dec("0.10"), "proxy-{holder} held {held0}");
    let mut release = budget_req(&format!("proxy-{holder}"), &budget_id, &team_id, today, "0");
    release.release = true;
    release.used = dec("0.10");
    let released = ask(&nats, &release).await;
    assert_eq!(released.granted, Decimal::ZERO);
    assert_eq!(released.remaining, held0 - dec("0.10"));
    let mut regained = Decimal::ZERO;
    loop {
        let reply = ask(
            &nats,
            &budget_req(
                &format!("proxy-{taker}"),
                &budget_id,
                &team_id,
                today,
                "0.01",
            ),
        )
        .await;
        if reply.granted.is_zero() {
            break;
        }
        regained += reply.granted;
    }
    assert_eq!(regained, held0 - dec("0.10"), "the unused part came back");
    // A released proxy re-opens its lease holding what it used.
    let reopened = ask(
        &nats,
        &budget_req(
            &format!("proxy-{holder}"),
            &budget_id,
            &team_id,
            today,
            "0.05",
        ),
    )
    .await;
    assert_eq!(
        (reopened.granted, reopened.total_granted),
        (Decimal::ZERO, dec("0.10"))
    );

    // Periods are separate pools; finished ones and misaligned starts are refused.
    let tomorrow = today + 86_400;
    let fresh = ask(
        &nats,
        &budget_req("proxy-0", &budget_id, &team_id, tomorrow, "0.01"),
    )
    .await;
    assert_eq!(
        (fresh.granted, fresh.remaining, fresh.resets_at),
        (dec("0.05"), dec("0.95"), tomorrow + 86_400)
    );
    let old = ask(
        &nats,
        &budget_req("proxy-0", &budget_id, &team_id, today - 2 * 86_400, "1"),
    )
    .await;
    assert_eq!(old.error.as_deref(), Some("period_ended"));
    let odd = ask(
        &nats,
        &budget_req("proxy-0", &budget_id, &team_id, today + 5, "1"),
    )
    .await;
    assert_eq!(odd.error.as_deref(), Some("bad_period"));

    // Refusals: soft, unknown, someone else's scope.
    let soft = budget(&cps[1], &team_id, "5", false).await;
    let r = ask(&nats, &budget_req("proxy-0", &soft, &team_id, today, "1")).await;
    assert_eq!(
        (r.error.as_deref(), r.granted),
        (Some("not_hard"), Decimal::ZERO)
    );
    let unknown = "0190a6a4-0000-7000-8000-000000000000";
    let r = ask(&nats, &budget_req("proxy-0", unknown, &team_id, today, "1")).await;
    assert_eq!(r.error.as_deref(), Some("unknown_budget"));
    let r = ask(
        &nats,
        &budget_req("proxy-0", &budget_id, "other-team", today, "1"),
    )
    .await;
    assert_eq!(r.error.as_deref(), Some("scope_mismatch"));

    // A raised amount is available at once.
    cps[1]
        .patch(
            &format!("/admin/budgets/{budget_id}"),
            &json!({"amount_usd": "1.50"}),
        )
        .await
        .unwrap();
    let more = ask(
        &nats,
        &budget_req("proxy-2", &budget_id, &team_id, today, "1"),
    )
    .await;
    assert_eq!((more.granted, more.limit), (dec("0.50"), dec("1.50")));
}

/// Every grant is at least the $0.05 slice unless it emptied the pool.
fn replies_within_slices(by_proxy: &BTreeMap<usize, Vec<LeaseReply>>) -> bool {
    by_proxy
        .values()
        .flatten()
        .all(|r| r.granted >= dec("0.05") || r.remaining.is_zero())
}

fn rate_req(proxy: &str, window_start: i64, limit: u64, want: u64) -> LeaseRequest {
    LeaseRequest {
        proxy: proxy.into(),
        pool: PoolKey::Rate {
            scope: "team:t1".into(),
            unit: RateUnit::Requests,
            window_start,
            limit,
        },
        want: Decimal::from(want),
        used: Decimal::ZERO,
        release: false,
    }
}

#[tokio::test]
async fn rate_windows_never_exceed_the_limit_across_proxies_and_reset() {
    let (env, _cps) = stack(2).await;
    let nats = env.nats().client().await.unwrap();
    let window = rate_window(now());
    let limit = 300;

    let per_proxy = Arc::new(std::sync::Mutex::new([0u64; 3]));
    // Every asker starts at once: fairness between proxies is asserted, not the order in
    // which a loaded machine happened to start the tasks.
    let start = Arc::new(tokio::sync::Barrier::new(24));
    let mut askers = Vec::new();
    for p in 0..3 {
        for _ in 0..8 {
            let nats = nats.clone();
            let per_proxy = Arc::clone(&per_proxy);
            let start = Arc::clone(&start);
            askers.push(tokio::spawn(async move {
                start.wait().await;
                loop {
                    let reply =
                        ask(&nats, &rate_req(&format!("proxy-{p}"), window, limit, 1)).await;
                    assert_eq!(reply.error, None, "{reply:?}");
                    assert_eq!(reply.resets_at, window + 60);
                    let g = u64::try_from(reply.granted).unwrap();
                    if g == 0 {
                        return;
                    }
                    per_proxy.lock().unwrap()[p] += g;
                }
            }));
        }
    }
    for a in askers {
        a.await.unwrap();
    }
    let got = *per_proxy.lock().unwrap();
    assert_eq!(
        got.iter().sum::<u64>(),
        limit,
        "{got:?}: all of the window, no more"
    );
    assert!(
        got.iter().all(|g| *g >= limit / 6),
        "nobody starved: {got:?}"
    );

    // What a proxy gives back, another can take.
    let mut release = rate_req("proxy-0", window, limit, 0);
    release.release = true;
    release.used = Decimal::from(got[0] - 10);
    let r = ask(&nats, &release).await;
    assert_eq!(r.remaining, Decimal::from(10));
    // Others still hold leases, so it comes in halves of what is left: 5, 3, 1, 1.
    let mut regained = Vec::new();
    loop {
        let r = ask(&nats, &rate_req("proxy-1", window, limit, 50)).await;
        if r.granted.is_zero() {
            break;
        }
        regained.push(u64::try_from(r.granted).unwrap());
    }
    assert_eq!(regained, [5, 3, 1, 1]);

    // A lowered limit applies at once; the next window starts over.
    let r = ask(&nats, &rate_req("proxy-2", window, 100, 1)).await;
    assert_eq!((r.granted, r.limit), (Decimal::ZERO, Decimal::from(100)));
    let next = ask(&nats, &rate_req("proxy-2", window + 60, limit, 1)).await;
    assert_eq!(
        (next.granted, next.remaining, next.resets_at),
        (Decimal::from(6), Decimal::from(294), window + 120)
    );
    let r = ask(&nats, &rate_req("proxy-2", window + 7, limit, 1)).await;
    assert_eq!(r.error.as_deref(), Some("bad_window"));
    let r = ask(&nats, &rate_req("proxy-2", window - 3600, limit, 1)).await;
    assert_eq!(r.error.as_deref(), Some("window_ended"));

    // Cleanup drops windows nobody may ask about any more, and only those.
    let db = env.postgres().client().await.unwrap();
    db.execute(
        "INSERT INTO rate_pools (scope, unit, window_start, lim, granted)
         VALUES ('team:t1', 'requests', now() - interval '1 hour', 5, 5)",
        &[],
    )
    .await
    .unwrap();
    let store = control_plane::store::Store::new(
        control_plane::serve::pool(&env.postgres().database_url()).unwrap(),
    );
    assert_eq!(control_plane::lease::cleanup(&store).await.unwrap(), 1);
    let left: i64 = db
        .query_one("SELECT count(*) FROM rate_pools", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 2, "this window and the next stay");
}

#[tokio::test]
async fn malformed_requests_get_an_error_reply_and_the_service_keeps_going() {
    let (env, _cps) = stack(1).await;
    let nats = env.nats().client().await.unwrap();
    for body in [
        &b"not json"[..],
        br#"{"proxy":"p"}"#,
        br#"{"proxy":"p","pool":{"kind":"rate","scope":"s","unit":"requests","window_start":0,"limit":1},"want":"-1","used":"0"}"#,
        br#"{"proxy":"","pool":{"kind":"budget","budget_id":"x","scope_value":"y","period_start":0},"want":"1","used":"0"}"#,
    ] {
        let answer = nats
            .request(LEASE_SUBJECT, bytes_of(body))
            .await
            .expect("a reply even to garbage");
        let reply: LeaseReply = serde_json::from_slice(&answer.payload).unwrap();
        assert_eq!(reply.error.as_deref(), Some("bad_request"), "{body:?}");
        assert_eq!(reply.granted, Decimal::ZERO);
    }
    let window = rate_window(now());
    let ok = ask(&nats, &rate_req("p", window, 10, 1)).await;
    assert_eq!(ok.granted, Decimal::ONE);
}

fn bytes_of(b: &[u8]) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(b)
}

#[tokio::test]
async fn the_snapshot_carries_budgets_prices_team_limits_and_cost_caps() {
    let (env, cps) = stack(1).await;
    let cp = &cps[0];
    let t = cp
        .post(
            "/admin/teams",
            &json!({"name": "limited", "rpm": 120, "tpm": 50000}),
        )
        .await
        .unwrap();
    let team_id = t["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (t["rpm"].as_u64(), t["tpm"].as_u64()),
        (Some(120), Some(50000))
    );
    let plain = team(cp, "plain").await;
    let key = cp
        .post(
            "/admin/keys",
            &json!({"team_id": team_id, "name": "capped", "max_request_cost_usd": "0.25"}),
        )
        .await
        .unwrap();
    assert_eq!(key["key"]["max_request_cost_usd"], "0.25");
    let budget_id = budget(cp, &team_id, "10", true).await;
    cp.call(
        reqwest::Method::PUT,
        "/admin/pricing/gpt-4o",
        None,
        Some(&json!({"input_per_mtok": "2", "output_per_mtok": "8"})),
    )
    .await
    .unwrap();
    cp.call(
        reqwest::Method::PUT,
        "/admin/pricing/house-model",
        None,
        Some(&json!({"input_per_mtok": "0.5", "output_per_mtok": "1.5", "cached_input_per_mtok": "0.1"})),
    )
    .await
    .unwrap();

    let store = control_plane::store::Store::new(
        control_plane::serve::pool(&env.postgres().database_url()).unwrap(),
    );
    let snapshot = control_plane::snapshot::build(&store).await.unwrap();
    assert_eq!(
        snapshot.teams,
        vec![proto::TeamPolicy {
            id: team_id.clone(),
            rpm: Some(120),
            tpm: Some(50000),
            log_payloads: None,
        }],
        "only teams with limits ({plain} has none)"
    );
    let b = &snapshot.budgets[0];
    assert_eq!(
        (
            b.id.as_str(),
            b.scope,
            b.target.as_str(),
            b.amount_usd,
            b.period,
            b.hard
        ),
        (
            budget_id.as_str(),
            proto::BudgetScope::Team,
            team_id.as_str(),
            dec("10"),
            BudgetPeriod::Daily,
            true
        )
    );
    let price = |m: &str| snapshot.pricing.iter().find(|p| p.model == m).cloned();
    let gpt4o = price("gpt-4o").unwrap();
    assert_eq!(
        (gpt4o.input_per_mtok, gpt4o.output_per_mtok),
        (dec("2"), dec("8"))
    );
    assert_eq!(
        price("house-model").unwrap().cached_input_per_mtok,
        Some(dec("0.1"))
    );
    assert_eq!(
        price("gpt-4o-mini").unwrap().input_per_mtok,
        dec("0.15"),
        "built-in kept"
    );
    let k = snapshot.keys.iter().find(|k| k.name == "capped").unwrap();
    assert_eq!(k.max_request_cost_usd, Some(dec("0.25")));

    // Limits and caps can be removed again.
    cp.patch(
        &format!("/admin/teams/{team_id}"),
        &json!({"rpm": null, "tpm": null}),
    )
    .await
    .unwrap();
    let id = key["key"]["id"].as_str().unwrap();
    let k = cp
        .patch(
            &format!("/admin/keys/{id}"),
            &json!({"max_request_cost_usd": null}),
        )
        .await
        .unwrap();
    assert_eq!(k["max_request_cost_usd"], Value::Null);
    let snapshot = control_plane::snapshot::build(&store).await.unwrap();
    assert!(snapshot.teams.is_empty());
    assert_eq!(snapshot.keys[0].max_request_cost_usd, None);
    let bad = cp
        .call(
            reqwest::Method::POST,
            "/admin/teams",
            None,
            Some(&json!({"name": "zero", "rpm": 0})),
        )
        .await
        .unwrap();
    assert_eq!(bad.status, 422);
}

/// Drains a budget pool as one proxy; returns the total granted.
async fn drain(nats: &async_nats::Client, budget: &str, scope: &str, start: i64) -> Decimal {
    let mut total = Decimal::ZERO;
    loop {
        let reply = ask(nats, &budget_req("drainer", budget, scope, start, "0.2")).await;
        assert_eq!(reply.error, None, "{reply:?}");
        if reply.granted.is_zero() {
            return total;
        }
        total += reply.granted;
    }
}

#[tokio::test]
async fn spend_recorded_before_the_pool_existed_counts_against_it() {
    let (env, cps) = stack(1).await;
    let cp = &cps[0];
    let team_id = team(cp, "spenders").await;
    let (today, _) = period_bounds(BudgetPeriod::Daily, now());
    let db = env.postgres().client().await.unwrap();
    for (day, team, key, tag, cost) in [
        (today, team_id.as_str(), "k1", "", "0.30"),
        // Per-tag rows repeat the same spend: a team budget must not count them again.
        (today, team_id.as_str(), "k1", "project=apollo", "0.30"),
        // Yesterday and other teams are not this pool's.
        (today - 86_400, team_id.as_str(), "k1", "", "0.50"),
        (today, "another-team", "k2", "", "0.20"),
    ] {
        db.execute(
            "INSERT INTO spend_ledger (day, team_id, key_id, model, provider, tag, requests, refused,
                 prompt_tokens, completion_tokens, cached_input_tokens, reasoning_tokens, cost_usd)
             VALUES ((to_timestamp($1::bigint) AT TIME ZONE 'UTC')::date, $2, $3, 'm', 'p', $4, 1, 0, 0, 0, 0, 0, $5::text::numeric)",
            &[&day, &team, &key, &tag, &cost],
        )
        .await
        .unwrap();
    }
    let nats = env.nats().client().await.unwrap();
    let team_budget = budget(cp, &team_id, "1", true).await;
    assert_eq!(
        drain(&nats, &team_budget, &team_id, today).await,
        dec("0.70")
    );

    let tag_budget = cp
        .post(
            "/admin/budgets",
            &json!({"name": "per-project", "scope": "tag", "target": "project",
                    "amount_usd": "1", "period": "daily", "hard": true}),
        )
        .await
        .unwrap();
    let tag_budget = tag_budget["id"].as_str().unwrap();
    assert_eq!(drain(&nats, tag_budget, "apollo", today).await, dec("0.70"));
    assert_eq!(
        drain(&nats, tag_budget, "zeus", today).await,
        dec("1"),
        "each tag value has the amount to itself"
    );
}
