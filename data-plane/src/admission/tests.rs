//! Admission against a fake control plane (no NATS): the lease transport is a trait, so these
//! tests script grants, outages and delays and read every lease request the proxy sent.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::{LeaseReply, LeaseRequest, PoolKey};
use rust_decimal::Decimal;

use super::*;
use crate::snapshot::compile;

// 2026-11-21T15:30:00Z, a Saturday; 30 s into a minute window.
const T0_MS: i64 = 1_795_275_030_000;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Snapshot with one provider `p`, model `m` priced at $1 per million input tokens and $2 per
/// million output tokens (`free` has no price), one route per model and the given extra YAML
/// (keys, teams, budgets).
fn snapshot(extra: &str) -> CompiledSnapshot {
    let yaml = format!(
        r#"
providers: [{{id: p, kind: vllm, base_url: "http://127.0.0.1:1/v1"}}]
routes:
  - {{alias: chat, deployments: [{{provider: p, model: m}}]}}
  - {{alias: limited, deployments: [{{provider: p, model: m, rpm: 3, tpm: 100000}}]}}
  - {{alias: free, deployments: [{{provider: p, model: free}}]}}
  - {{alias: short, reserve_output_tokens: 10, deployments: [{{provider: p, model: m}}]}}
  - {{alias: big, deployments: [{{provider: p, model: m, rpm: 100000000, tpm: 100000000000}}]}}
pricing:
  - {{model: m, input_per_mtok: "1", output_per_mtok: "2"}}
{extra}
"#
    );
    let s: proto::Snapshot = serde_yaml::from_str(&yaml).unwrap();
    compile(s, &crate::snapshot::Context::default()).unwrap_or_else(|e| panic!("{e:?}"))
}

fn key_hash(n: u8) -> String {
    format!("{:064x}", n)
}

fn key(s: &CompiledSnapshot, n: u8) -> &KeyPolicy {
    let mut d = [0u8; 32];
    d[31] = n;
    s.key(&d).unwrap()
}

/// A request of key `n` on `alias` with `prompt` tokens and `max_tokens`.
fn req<'a>(
    s: &'a CompiledSnapshot,
    n: u8,
    alias: &str,
    tags: &'a BTreeMap<String, String>,
    prompt: u64,
    max_tokens: Option<u64>,
) -> AdmitRequest<'a> {
    let route = s.route(alias).unwrap();
    AdmitRequest {
        snapshot: s,
        key: key(s, n),
        route,
        deployment: route.primary().unwrap(),
        tags,
        prompt_tokens: prompt,
        max_output_tokens: max_tokens,
        cost_cap: None,
    }
}

fn no_tags() -> &'static BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    &EMPTY
}

fn header<'a>(h: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.as_str() == name)
        .and_then(|(_, v)| v.to_str().ok())
}

/// A control plane in memory: grants from each pool's limit, logs every request.
#[derive(Debug, Default)]
struct FakeCp {
    /// Budget amounts by budget id.
    budgets: Mutex<HashMap<String, Decimal>>,
    /// Granted (to all proxies) per pool.
    granted: Mutex<HashMap<PoolKey, Decimal>>,
    log: Mutex<Vec<LeaseRequest>>,
    down: AtomicBool,
    delay_ms: AtomicI64,
    inflight: Mutex<HashMap<PoolKey, usize>>,
    max_inflight: Mutex<usize>,
}

#[derive(Debug, Clone)]
struct Fake(Arc<FakeCp>);

impl LeaseTransport for Fake {
    fn lease(&self, request: LeaseRequest) -> LeaseFuture {
        let cp = Arc::clone(&self.0);
        Box::pin(async move {
            cp.log.lock().unwrap().push(request.clone());
            if cp.down.load(Ordering::SeqCst) {
                return Err(LeaseError::Unreachable("no responders".into()));
            }
            {
                let mut inflight = cp.inflight.lock().unwrap();
                let n = inflight.entry(request.pool.clone()).or_default();
                *n += 1;
                let mut max = cp.max_inflight.lock().unwrap();
                *max = (*max).max(*n);
            }
            let delay = cp.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay as u64)).await;
            }
            *cp.inflight.lock().unwrap().get_mut(&request.pool).unwrap() -= 1;
            let limit = match &request.pool {
                PoolKey::Budget { budget_id, .. } => cp
                    .budgets
                    .lock()
                    .unwrap()
                    .get(budget_id)
                    .copied()
                    .unwrap_or_default(),
                PoolKey::Rate { limit, .. } => Decimal::from(*limit),
            };
            let mut granted = cp.granted.lock().unwrap();
            let total = granted.entry(request.pool.clone()).or_default();
            let grant = if request.release {
                // One proxy in these tests: what it was granted beyond `used` comes back.
                *total = request.used;
                Decimal::ZERO
            } else {
                request.want.min(limit - *total).max(Decimal::ZERO)
            };
            *total += grant;
            Ok(LeaseReply {
                granted: grant,
                total_granted: *total,
                remaining: limit - *total,
                limit,
                resets_at: 0,
                error: None,
            })
        })
    }
}

fn fast_settings() -> Settings {
    Settings {
        lease_timeout: Duration::from_millis(500),
        idle_release: Duration::from_secs(30),
        backoff: Duration::from_secs(1),
        upkeep_every: Duration::from_secs(3600),
    }
}

fn remote(cp: &Arc<FakeCp>) -> (Admission, Arc<AtomicI64>) {
    let clock = Arc::new(AtomicI64::new(T0_MS));
    let transport: Arc<dyn LeaseTransport> = Arc::new(Fake(Arc::clone(cp)));
    let a = Admission::build(
        Some(transport),
        "proxy-1".into(),
        fast_settings(),
        Clock(Some(Arc::clone(&clock))),
    );
    (a, clock)
}

fn local() -> (Admission, Arc<AtomicI64>) {
    let clock = Arc::new(AtomicI64::new(T0_MS));
    let a = Admission::build(
        None,
        "proxy-1".into(),
        fast_settings(),
        Clock(Some(Arc::clone(&clock))),
    );
    (a, clock)
}

/// The single pool whose key matches `pred`.
fn pool_where(a: &Admission, pred: impl Fn(&PoolKey) -> bool) -> Arc<Pool> {
    let found: Vec<_> = a
        .inner
        .pools
        .all()
        .into_iter()
        .filter(|p| pred(&p.key))
        .collect();
    assert_eq!(found.len(), 1, "pools: {found:?}");
    found.into_iter().next().unwrap()
}

fn budget_pool(a: &Admission, id: &str, value: &str) -> Arc<Pool> {
    pool_where(
        a,
        |k| matches!(k, PoolKey::Budget { budget_id, scope_value, .. } if budget_id == id && scope_value == value),
    )
}

const TEAM_BUDGET: &str = r#"
teams: [{id: t1}]
keys:
  - {name: k1, id: key1, team: t1, sha256: "KEY1", models: ["*"]}
budgets:
  - {id: b1, name: team-t1, scope: team, target: t1, amount_usd: "AMOUNT", period: daily, hard: true}
  - {id: soft, name: soft-t1, scope: team, target: t1, amount_usd: "0.000001", period: daily, hard: false}
"#;

/// Team `t1` with a hard daily budget of `amount` (and a tiny soft one), key 1 in the team.
fn team_budget(amount: &str) -> CompiledSnapshot {
    snapshot(
        &TEAM_BUDGET
            .replace("KEY1", &key_hash(1))
            .replace("AMOUNT", amount),
    )
}

#[tokio::test]
async fn a_request_without_limits_takes_no_pool_and_no_headers() {
    let s = snapshot(&format!(
        "keys: [{{name: k, sha256: \"{}\", models: [\"*\"]}}]",
        key_hash(1)
    ));
    let (a, _) = local();
    let admitted = a
        .admit(&req(&s, 1, "chat", no_tags(), 100, None))
        .await
        .unwrap();
    // 100 prompt + the default 1024 output tokens, at $1 / $2 per million.
    assert_eq!(admitted.reserved_tokens, 100 + DEFAULT_OUTPUT_TOKENS);
    assert_eq!(admitted.reserved_cost, dec("0.002148"));
    assert!(admitted.headers().is_empty());
    assert_eq!(a.inner.pools.len(), 0);
    // The route's reservation applies when the request sets no max_tokens.
    let short = a
        .admit(&req(&s, 1, "short", no_tags(), 100, None))
        .await
        .unwrap();
    assert_eq!(short.reserved_tokens, 110);
}

#[tokio::test]
async fn local_mode_spends_the_whole_budget_then_refuses_without_retry() {
    let s = team_budget("0.01");
    let (a, _) = local();
    // Each request reserves 1000 prompt + 1000 output = $0.003.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            a.admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
                .await
                .unwrap(),
        );
    }
    let refused = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap_err();
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code, "budget_exceeded");
    assert_eq!(refused.limit, "team-t1");
    assert_eq!(refused.retry_after, None);
    assert_eq!(header(&refused.headers, "x-should-retry"), Some("false"));
    // The soft budget (a millionth of a dollar) never blocked anything and holds no pool.
    assert_eq!(a.inner.pools.len(), 1);

    // Settling below the reservation frees the difference.
    for h in held {
        h.settle(dec("0.001"), 500);
    }
    let pool = budget_pool(&a, "b1", "t1");
    {
        let st = pool.state();
        assert_eq!((st.consumed, st.reserved), (dec("0.003"), Decimal::ZERO));
    }
    a.admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap()
        .settle(dec("0.005"), 3000);
    // $0.008 spent of $0.01: a $0.003 request no longer fits.
    let refused = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap_err();
    assert_eq!(refused.code, "budget_exceeded");
}

#[tokio::test]
async fn per_request_cap_refuses_before_any_lease() {
    let s = snapshot(&format!(
        r#"
keys: [{{name: k, id: key1, sha256: "{}", models: ["*"], max_request_cost_usd: "0.002"}}]
budgets: [{{id: b, name: kb, scope: key, target: key1, amount_usd: "10", period: daily, hard: true}}]
"#,
        key_hash(1)
    ));
    let cp = Arc::new(FakeCp::default());
    let (a, _) = remote(&cp);
    // $0.003 > the key's $0.002 cap.
    let refused = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap_err();
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.code, "request_cost_cap");
    assert_eq!(refused.limit, "max_request_cost_usd");
    assert!(cp.log.lock().unwrap().is_empty());
    assert_eq!(a.inner.pools.len(), 0);

    // A tighter header cap wins over the key's.
    let mut r = req(&s, 1, "chat", no_tags(), 500, Some(500));
    r.cost_cap = Some(dec("0.001"));
    let refused = a.admit(&r).await.unwrap_err();
    assert_eq!(refused.limit, "x-switchyard-max-cost");
    // Under both caps: admitted (cost $0.0015).
    r.cost_cap = Some(dec("0.0015"));
    cp.budgets.lock().unwrap().insert("b".into(), dec("10"));
    assert_eq!(a.admit(&r).await.unwrap().reserved_cost, dec("0.0015"));
}

#[tokio::test]
async fn reservations_are_all_or_nothing_across_pools() {
    let s = snapshot(&format!(
        r#"
teams: [{{id: t1}}]
keys: [{{name: k, id: key1, team: t1, sha256: "{}", models: ["*"], rpm: 1}}]
budgets: [{{id: b1, name: team-t1, scope: team, target: t1, amount_usd: "1", period: daily, hard: true}}]
"#,
        key_hash(1)
    ));
    let (a, _) = local();
    let first = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap();
    assert_eq!(
        header(first.headers(), "x-ratelimit-limit-requests"),
        Some("1")
    );
    assert_eq!(
        header(first.headers(), "x-ratelimit-remaining-requests"),
        Some("0")
    );
    assert_eq!(
        header(first.headers(), "x-ratelimit-reset-requests"),
        Some("30s")
    );
    let refused = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap_err();
    assert_eq!(refused.code, "rate_limit_exceeded");
    assert_eq!(refused.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(
        header(&refused.headers, "x-ratelimit-limit-requests"),
        Some("1")
    );
    // The budget reservation taken before the rate limit refused was given back.
    let budget = budget_pool(&a, "b1", "t1");
    assert_eq!(budget.state().reserved, dec("0.003"));
    drop(first);
    assert_eq!(budget.state().reserved, Decimal::ZERO);
    let rate = pool_where(&a, |k| matches!(k, PoolKey::Rate { .. }));
    assert_eq!(rate.state().reserved, Decimal::ZERO);
}

#[tokio::test]
async fn settlement_reports_used_as_consumed_plus_reserved() {
    let s = team_budget("1");
    let cp = Arc::new(FakeCp::default());
    cp.budgets.lock().unwrap().insert("b1".into(), dec("1"));
    let (a, _) = remote(&cp);
    // $0.003 per request; slices are 5% of $1 = $0.05.
    let first = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap();
    let pool = budget_pool(&a, "b1", "t1");
    {
        let log = cp.log.lock().unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!((log[0].want, log[0].used), (dec("0.05"), Decimal::ZERO));
        assert_eq!(log[0].proxy, "proxy-1");
    }
    let second = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap();
    // The real cost exceeds the reservation: it counts in full.
    first.settle(dec("0.01"), 3000);
    {
        let st = pool.state();
        assert_eq!(
            (st.granted, st.consumed, st.reserved),
            (dec("0.05"), dec("0.01"), dec("0.003"))
        );
    }
    // Run until the pool asks again: the refill threshold is half of the last grant.
    let mut held = vec![second];
    while cp.log.lock().unwrap().len() < 2 {
        held.push(
            a.admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
                .await
                .unwrap(),
        );
        // Lets a scheduled refill run (this runtime has one thread).
        tokio::task::yield_now().await;
    }
    wait_for(|| !pool.state().refilling).await;
    let asked = cp.log.lock().unwrap()[1].clone();
    assert!(!asked.release);
    assert_eq!(
        asked.used,
        dec("0.01") + dec("0.003") * Decimal::from(held.len())
    );
    assert_eq!(pool.state().granted, dec("0.10"));
    drop(held);
    let st = pool.state();
    assert_eq!((st.consumed, st.reserved), (dec("0.01"), Decimal::ZERO));
}

async fn wait_for(cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("condition not reached");
}

#[tokio::test]
async fn an_exhausted_budget_is_refused_and_not_asked_again_at_once() {
    let s = team_budget("0.004");
    let cp = Arc::new(FakeCp::default());
    cp.budgets.lock().unwrap().insert("b1".into(), dec("0.004"));
    let (a, clock) = remote(&cp);
    let one = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap();
    let refused = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap_err();
    assert_eq!(refused.code, "budget_exceeded");
    let asked = cp.log.lock().unwrap().len();
    // Within the backoff, no new lease request.
    let again = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap_err();
    assert_eq!(again.code, "budget_exceeded");
    assert_eq!(cp.log.lock().unwrap().len(), asked);
    // Smaller requests still fit what the proxy holds.
    drop(one);
    clock.fetch_add(1500, Ordering::SeqCst);
    a.admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_control_plane_refuses_what_the_pool_cannot_cover() {
    let s = team_budget("1");
    let cp = Arc::new(FakeCp::default());
    cp.budgets.lock().unwrap().insert("b1".into(), dec("1"));
    let (a, clock) = remote(&cp);
    let held = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap();
    cp.down.store(true, Ordering::SeqCst);
    // What the proxy holds ($0.05) still serves.
    let more = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap();
    let big = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(100_000)))
        .await
        .unwrap_err();
    assert_eq!(big.code, "budget_unavailable");
    assert_eq!(big.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(big.retry_after, Some(Duration::from_secs(1)));
    assert!(big.retryable());
    let sent = cp.log.lock().unwrap().len();
    let again = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(100_000)))
        .await
        .unwrap_err();
    assert_eq!(again.code, "budget_unavailable");
    assert_eq!(
        cp.log.lock().unwrap().len(),
        sent,
        "backoff: no new request"
    );
    // Back up after the backoff.
    cp.down.store(false, Ordering::SeqCst);
    clock.fetch_add(1500, Ordering::SeqCst);
    a.admit(&req(&s, 1, "chat", no_tags(), 1000, Some(100_000)))
        .await
        .unwrap();
    drop((held, more));
}

#[tokio::test]
async fn a_slow_control_plane_times_out_as_unavailable() {
    let s = team_budget("1");
    let cp = Arc::new(FakeCp::default());
    cp.budgets.lock().unwrap().insert("b1".into(), dec("1"));
    cp.delay_ms.store(2000, Ordering::SeqCst);
    let (a, _) = remote(&cp);
    let started = std::time::Instant::now();
    let refused = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap_err();
    assert_eq!(refused.code, "budget_unavailable");
    assert!(started.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn tag_budgets_hold_per_distinct_value() {
    let s = snapshot(&format!(
        r#"
keys:
  - {{name: k, id: key1, sha256: "{}", models: ["*"]}}
  - {{name: k2, id: key2, sha256: "{}", models: ["*"], budget: proj}}
budgets: [{{id: proj, name: per-project, scope: tag, target: project, amount_usd: "0.005", period: monthly, hard: true}}]
"#,
        key_hash(1),
        key_hash(2)
    ));
    let (a, _) = local();
    let tags = |v: &str| BTreeMap::from([("project".to_owned(), v.to_owned())]);
    let (ta, tb) = (tags("a"), tags("b"));
    a.admit(&req(&s, 1, "chat", &ta, 1000, Some(1000)))
        .await
        .unwrap()
        .settle(dec("0.003"), 2000);
    let refused = a
        .admit(&req(&s, 1, "chat", &ta, 1000, Some(1000)))
        .await
        .unwrap_err();
    assert_eq!(refused.limit, "per-project");
    // Another value has the amount to itself; untagged requests are not in the budget.
    a.admit(&req(&s, 1, "chat", &tb, 1000, Some(1000)))
        .await
        .unwrap();
    a.admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap();
    assert_eq!(budget_pool(&a, "proj", "b").state().reserved, Decimal::ZERO);
    // A key naming the tag budget spends from the same per-value pool (not twice).
    let refused = a
        .admit(&req(&s, 2, "chat", &ta, 1000, Some(1000)))
        .await
        .unwrap_err();
    assert_eq!(refused.code, "budget_exceeded");
    let admitted = a
        .admit(&req(&s, 2, "chat", &tb, 1000, Some(1000)))
        .await
        .unwrap();
    assert_eq!(admitted.holds.len(), 1);
    a.admit(&req(&s, 2, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_key_budget_reference_applies_by_id() {
    let s = snapshot(&format!(
        r#"
keys: [{{name: k, id: key1, sha256: "{}", models: ["*"], budget: shared}}]
budgets: [{{id: shared, name: shared-pot, scope: team, target: platform, amount_usd: "0.002", period: total, hard: true}}]
"#,
        key_hash(1)
    ));
    let (a, _) = local();
    let refused = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap_err();
    assert_eq!(refused.limit, "shared-pot");
    let ok = a
        .admit(&req(&s, 1, "chat", no_tags(), 100, Some(100)))
        .await
        .unwrap();
    assert_eq!(ok.holds.len(), 1);
    drop(ok);
    budget_pool(&a, "shared", "platform");
    // An unpriced deployment reserves nothing against budgets.
    let free = a
        .admit(&req(&s, 1, "free", no_tags(), 1_000_000, Some(1_000_000)))
        .await
        .unwrap();
    assert_eq!(free.reserved_cost, Decimal::ZERO);
    assert!(free.holds.is_empty());
}

#[tokio::test]
async fn periods_and_windows_roll_over() {
    let s = snapshot(&format!(
        r#"
teams: [{{id: t1, rpm: 2}}]
keys: [{{name: k1, id: key1, team: t1, sha256: "{}", models: ["*"]}}]
budgets: [{{id: b1, name: team-t1, scope: team, target: t1, amount_usd: "0.003", period: daily, hard: true}}]
"#,
        key_hash(1)
    ));
    let (a, clock) = local();
    a.admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap()
        .settle(dec("0.001"), 10);
    let h = a
        .admit(&req(&s, 1, "chat", no_tags(), 100, Some(100)))
        .await
        .unwrap();
    assert_eq!(
        header(h.headers(), "x-ratelimit-remaining-requests"),
        Some("0")
    );
    h.settle(dec("0.0015"), 10);
    let refused = a
        .admit(&req(&s, 1, "chat", no_tags(), 100, Some(100)))
        .await
        .unwrap_err();
    assert_eq!(refused.code, "rate_limit_exceeded");
    assert_eq!(
        header(&refused.headers, "x-ratelimit-reset-requests"),
        Some("30s")
    );

    // Next window: requests again; the budget ($0.0005 left) refuses a $0.003 request.
    clock.fetch_add(30_000, Ordering::SeqCst);
    let refused = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap_err();
    assert_eq!(refused.code, "budget_exceeded");
    a.admit(&req(&s, 1, "chat", no_tags(), 100, Some(100)))
        .await
        .unwrap();

    // Next day: a fresh budget period; the old period and window leave memory on the sweep.
    clock.fetch_add(86_400_000, Ordering::SeqCst);
    a.inner.sweep().await;
    assert_eq!(a.inner.pools.len(), 0);
    a.admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap();
    assert_eq!(a.inner.pools.len(), 2);
}

#[tokio::test]
async fn idle_pools_and_shutdown_give_leases_back() {
    let s = snapshot(&format!(
        r#"
teams: [{{id: t1, tpm: 100000}}]
keys: [{{name: k1, id: key1, team: t1, sha256: "{}", models: ["*"]}}]
budgets: [{{id: b1, name: team-t1, scope: team, target: t1, amount_usd: "1", period: daily, hard: true}}]
"#,
        key_hash(1)
    ));
    let cp = Arc::new(FakeCp::default());
    cp.budgets.lock().unwrap().insert("b1".into(), dec("1"));
    let (a, clock) = remote(&cp);
    a.admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap()
        .settle(dec("0.002"), 1500);
    let held = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap();
    let budget = budget_pool(&a, "b1", "t1");
    wait_for(|| !budget.state().refilling).await;
    let sent = cp.log.lock().unwrap().len();

    // Not idle yet, or still in flight: nothing is released.
    clock.fetch_add(31_000, Ordering::SeqCst);
    a.inner.sweep().await;
    assert_eq!(cp.log.lock().unwrap().len(), sent);
    drop(held);
    // The rate window ended on the way (its pool is gone); the budget pool is idle.
    a.inner.sweep().await;
    let log = cp.log.lock().unwrap().clone();
    let releases: Vec<_> = log[sent..].iter().filter(|r| r.release).collect();
    assert_eq!(releases.len(), 1, "{log:?}");
    assert_eq!(releases[0].used, dec("0.002"));
    assert_eq!(releases[0].pool, budget.key);
    {
        let st = budget.state();
        assert_eq!(st.granted, dec("0.002"));
        assert_eq!(st.available(), Decimal::ZERO);
    }
    // The pool stays (its `used` must keep growing from here); it leases again when used.
    let held = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
        .await
        .unwrap();
    let asked = cp
        .log
        .lock()
        .unwrap()
        .iter()
        .rfind(|r| r.pool == budget.key)
        .cloned()
        .unwrap();
    assert!(!asked.release);
    assert_eq!(asked.used, dec("0.002"));

    // Shutdown: everything unreserved goes back, the reservation in flight stays in `used`.
    let before = cp.log.lock().unwrap().len();
    a.release_all().await;
    let log = cp.log.lock().unwrap().clone();
    let releases: Vec<_> = log[before..].iter().filter(|r| r.release).collect();
    assert_eq!(releases.len(), 2, "budget and token pools: {log:?}");
    let budget_release = releases.iter().find(|r| r.pool == budget.key).unwrap();
    assert_eq!(budget_release.used, dec("0.002") + dec("0.003"));
    held.settle(dec("0.001"), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_one_lease_request_per_pool() {
    let s = Arc::new(snapshot(&format!(
        r#"
teams: [{{id: t1, rpm: 1000}}]
keys: [{{name: k1, id: key1, team: t1, sha256: "{}", models: ["*"]}}]
budgets: [{{id: b1, name: team-t1, scope: team, target: t1, amount_usd: "100", period: daily, hard: true}}]
"#,
        key_hash(1)
    )));
    let cp = Arc::new(FakeCp::default());
    cp.budgets.lock().unwrap().insert("b1".into(), dec("100"));
    cp.delay_ms.store(50, Ordering::SeqCst);
    let (a, _) = remote(&cp);
    let a = Arc::new(a);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (a, s) = (Arc::clone(&a), Arc::clone(&s));
        tasks.push(tokio::spawn(async move {
            a.admit(&req(&s, 1, "chat", no_tags(), 1000, Some(1000)))
                .await
                .map(|adm| adm.settle(dec("0.003"), 2000))
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(*cp.max_inflight.lock().unwrap(), 1);
    let log = cp.log.lock().unwrap();
    // One request for the budget ($5 covers all 64), a few for the rate pool (100 at a time).
    let budget_asks = log
        .iter()
        .filter(|r| matches!(r.pool, PoolKey::Budget { .. }))
        .count();
    assert!(budget_asks <= 2, "{budget_asks} budget lease requests");
    assert!(log.len() <= 4, "{} lease requests", log.len());
}

#[tokio::test]
async fn rate_limits_of_key_team_and_deployment_and_their_headers() {
    let s = snapshot(&format!(
        r#"
teams: [{{id: t1, rpm: 10, tpm: 5000}}]
keys: [{{name: k1, id: key1, team: t1, sha256: "{}", models: ["*"], rpm: 5}}]
"#,
        key_hash(1)
    ));
    let (a, clock) = local();
    clock.fetch_add(500, Ordering::SeqCst);
    // The deployment of `limited` allows 3 rpm: the tightest request limit.
    let h = a
        .admit(&req(&s, 1, "limited", no_tags(), 1000, Some(1000)))
        .await
        .unwrap();
    assert_eq!(header(h.headers(), "x-ratelimit-limit-requests"), Some("3"));
    assert_eq!(
        header(h.headers(), "x-ratelimit-remaining-requests"),
        Some("2")
    );
    assert_eq!(
        header(h.headers(), "x-ratelimit-reset-requests"),
        Some("29.5s")
    );
    // Tokens: the team's 5000 (tighter than the deployment's 100000), 2000 reserved.
    assert_eq!(
        header(h.headers(), "x-ratelimit-limit-tokens"),
        Some("5000")
    );
    assert_eq!(
        header(h.headers(), "x-ratelimit-remaining-tokens"),
        Some("3000")
    );
    // Settling fewer tokens than reserved frees the rest.
    h.settle(dec("0"), 500);
    let h = a
        .admit(&req(&s, 1, "chat", no_tags(), 100, Some(100)))
        .await
        .unwrap();
    assert_eq!(
        header(h.headers(), "x-ratelimit-remaining-tokens"),
        Some("4300")
    );
    // A request larger than the tokens left is refused by the token limit.
    let refused = a
        .admit(&req(&s, 1, "chat", no_tags(), 1000, Some(4000)))
        .await
        .unwrap_err();
    assert_eq!(refused.code, "rate_limit_exceeded");
    assert_eq!(refused.limit, "team:t1 tokens_per_minute");
    assert_eq!(
        header(&refused.headers, "x-ratelimit-limit-tokens"),
        Some("5000")
    );
}

#[test]
fn durations_are_formatted_like_openai() {
    assert_eq!(go_duration(0), "0s");
    assert_eq!(go_duration(20), "20ms");
    assert_eq!(go_duration(1000), "1s");
    assert_eq!(go_duration(59_500), "59.5s");
    assert_eq!(go_duration(60_000), "1m0s");
    assert_eq!(go_duration(360_000), "6m0s");
    assert_eq!(go_duration(61_250), "1m1.25s");
    assert_eq!(go_duration(-5), "0s");
}

#[tokio::test]
async fn the_fast_path_is_cheap() {
    let s = snapshot(&format!(
        r#"
teams: [{{id: t1, rpm: 100000000, tpm: 100000000000}}]
keys: [{{name: k1, id: key1, team: t1, sha256: "{}", models: ["*"], rpm: 100000000, tpm: 100000000000}}]
budgets:
  - {{id: b1, name: team-t1, scope: team, target: t1, amount_usd: "1000000", period: daily, hard: true}}
  - {{id: b2, name: key1, scope: key, target: key1, amount_usd: "1000000", period: monthly, hard: true}}
"#,
        key_hash(1)
    ));
    let (a, _) = local();
    let mut times = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        let started = std::time::Instant::now();
        let admitted = a
            .admit(&req(&s, 1, "big", no_tags(), 1000, Some(1000)))
            .await
            .unwrap();
        admitted.settle(dec("0.003"), 2000);
        times.push(started.elapsed());
    }
    times.sort();
    let p50 = times[times.len() / 2];
    let p99 = times[times.len() * 99 / 100];
    println!("admit + settle with 2 budgets and 6 rate pools: p50 {p50:?}, p99 {p99:?}");
    // Generous for unoptimised builds on a busy machine; release builds are far below.
    assert!(p50 < Duration::from_micros(200), "p50 {p50:?}");
}
