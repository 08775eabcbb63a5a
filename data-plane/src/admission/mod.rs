//! Admission: budgets (by lease), per-request cost caps and rate limits, checked before a
//! request reaches a provider.
//!
//! CONTRACT (the request pipeline relies on these signatures):
//! - `Admission::new(nats, proxy_id)` is built once at start-up and kept in `App`.
//! - The pipeline calls `admit(&AdmitRequest)` per attempt, once it has chosen the deployment
//!   (`pipeline::billing`); `Err(Refused)` becomes the client's error (and a refused usage
//!   event); `Ok(Admitted)` travels with the request's meter, as one `Billing`, to its end.
//! - Whoever ends the request calls `Admitted::settle(cost, tokens)` (through `Billing`) with
//!   the real cost and total tokens. Dropping an `Admitted` without settling returns the whole
//!   reservation (nothing was spent, e.g. the upstream refused before generating).
//! - `Admitted::headers()` are added to the response (the `x-ratelimit-*` set).
//!
//! How it holds (see "Budgets without overspend" in `docs/ARCHITECTURE.md`):
//! - A request reserves its worst case: `prompt estimate + output reservation` tokens, where
//!   the output reservation is `max_tokens`, else the route's `reserve_output_tokens`, else
//!   [`DEFAULT_OUTPUT_TOKENS`]; and the exact cost of those tokens at the deployment's price.
//!   A deployment without a price reserves nothing against budgets (it is logged once).
//! - It reserves from every applicable pool (see [`limits`]) all or nothing. A pool is what
//!   this proxy holds of one budget/period or one rate limit/window: granted by the control
//!   plane (a lease), minus what was settled, minus what is in flight. When a pool with room
//!   covers the request, nothing awaits; otherwise the request waits (at most
//!   [`Settings::lease_timeout`]) for one lease request per pool, shared with every request
//!   that needs the same pool. Pools are refilled in the background when they fall below half
//!   of their last grant, and given back when idle or on [`Admission::release_all`].
//! - Settlement consumes the real cost, even above the reservation (the spend happened).
//! - Without NATS (`Admission::new(None, ..)`) the proxy is standalone: each pool starts with
//!   its whole limit granted locally, so budgets and rate limits hold **per proxy** only.

mod headers;
mod lease;
mod limits;
mod metrics;
#[cfg(test)]
mod nats_tests;
mod pool;
mod refusal;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::{HeaderName, HeaderValue, StatusCode};
use proto::{RateUnit, TokenUsage};
use rust_decimal::Decimal;

use crate::providers::Deployment;
use crate::snapshot::{CompiledSnapshot, KeyPolicy, Route};

pub use headers::go_duration;
pub use lease::{LeaseError, LeaseFuture, LeaseTransport, NatsLeases};
pub use refusal::CapSource;

use limits::{BudgetIndex, PoolSpec};
use pool::{Pool, PoolKind, PoolTable, Reserve};

/// Completion tokens reserved when neither the request (`max_tokens`) nor the route
/// (`reserve_output_tokens`) says how many it may generate.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 1024;

/// Budgets and rate limits of this proxy, shared by all requests.
#[derive(Debug)]
pub struct Admission {
    inner: Arc<Inner>,
}

/// Timings of admission (defaults suit production; tests shorten them).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Longest a request waits for leases, and a lease request for its reply.
    pub lease_timeout: Duration,
    /// A pool nobody reserved from for this long gives its unreserved lease back.
    pub idle_release: Duration,
    /// After an empty or failed lease request, requests that do not fit the pool are refused
    /// at once for this long instead of asking again.
    pub backoff: Duration,
    /// How often idle pools and ended periods are swept.
    pub upkeep_every: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            lease_timeout: Duration::from_secs(2),
            idle_release: Duration::from_secs(30),
            backoff: Duration::from_secs(1),
            upkeep_every: Duration::from_secs(5),
        }
    }
}

/// Wall clock (Unix ms); tests set it by hand to cross periods and windows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    fn now_ms(&self) -> i64 {
        match &self.0 {
            Some(t) => t.load(Ordering::Relaxed),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        }
    }
}

#[derive(Debug)]
struct Inner {
    proxy: String,
    /// `None`: standalone, pools are granted locally from the full limit.
    transport: Option<Arc<dyn LeaseTransport>>,
    pools: PoolTable,
    /// Hard budgets of the last snapshot seen, indexed.
    index: ArcSwapOption<BudgetIndex>,
    clock: Clock,
    settings: Settings,
    /// Deployments already reported as unpriced.
    unpriced: Mutex<HashSet<String>>,
    upkeep_started: AtomicBool,
}

/// What admission needs to know about one request.
#[derive(Debug)]
pub struct AdmitRequest<'a> {
    pub snapshot: &'a CompiledSnapshot,
    pub key: &'a KeyPolicy,
    pub route: &'a Route,
    pub deployment: &'a Deployment,
    /// Effective tags (caller's, with the key's forced tags on top).
    pub tags: &'a BTreeMap<String, String>,
    /// Estimated prompt tokens.
    pub prompt_tokens: u64,
    /// `max_tokens` / `max_completion_tokens` of the request, if set.
    pub max_output_tokens: Option<u64>,
    /// `x-switchyard-max-cost` header, if sent.
    pub cost_cap: Option<Decimal>,
}

/// A request admitted with its reservations.
#[derive(Debug)]
pub struct Admitted {
    /// Reserved cost (USD) at the deployment's price.
    pub reserved_cost: Decimal,
    /// Reserved tokens (prompt estimate + output reservation).
    pub reserved_tokens: u64,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Reservations to settle or return.
    holds: Vec<Hold>,
}

/// One reservation in one pool.
#[derive(Debug)]
struct Hold {
    pool: Arc<Pool>,
    amount: Decimal,
}

/// Why a request was refused.
#[derive(Debug, Clone)]
pub struct Refused {
    pub status: StatusCode,
    /// `budget_exceeded`, `budget_unavailable`, `rate_limit_exceeded` or `request_cost_cap`.
    pub code: &'static str,
    /// The budget or limit that refused it, for the client and the usage event.
    pub limit: String,
    pub message: String,
    /// Sent as `Retry-After` (rate limits); `None` with `x-should-retry: false` (budgets).
    pub retry_after: Option<Duration>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Admission {
    /// With `nats`, pools are leased from the control plane; without, the proxy is standalone
    /// and every budget and rate limit holds per proxy.
    pub fn new(nats: Option<async_nats::Client>, proxy: String) -> Self {
        let transport = nats.map(|c| Arc::new(NatsLeases::new(c)) as Arc<dyn LeaseTransport>);
        if transport.is_none() {
            tracing::info!("no NATS: budgets and rate limits are enforced per proxy");
        }
        Self::with_transport(transport, proxy, Settings::default())
    }

    /// Admission over any lease transport (`None`: standalone), e.g. a fake control plane.
    pub fn with_transport(
        transport: Option<Arc<dyn LeaseTransport>>,
        proxy: String,
        settings: Settings,
    ) -> Self {
        Self::build(transport, proxy, settings, Clock::default())
    }

    fn build(
        transport: Option<Arc<dyn LeaseTransport>>,
        proxy: String,
        settings: Settings,
        clock: Clock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                proxy,
                transport,
                pools: PoolTable::default(),
                index: ArcSwapOption::empty(),
                clock,
                settings,
                unpriced: Mutex::default(),
                upkeep_started: AtomicBool::new(false),
            }),
        }
    }

    /// This proxy's id, as it appears in leases and usage events.
    pub fn proxy_id(&self) -> &str {
        &self.inner.proxy
    }

    /// Admits the request or says why not.
    pub async fn admit(&self, request: &AdmitRequest<'_>) -> Result<Admitted, Refused> {
        let result = self.admit_inner(request).await;
        match &result {
            Ok(_) => metrics::admission("admitted", "ok"),
            Err(r) => metrics::admission("refused", r.code),
        }
        result
    }

    async fn admit_inner(&self, request: &AdmitRequest<'_>) -> Result<Admitted, Refused> {
        let inner = &self.inner;
        let output = request
            .max_output_tokens
            .or(request.route.reserve_output_tokens)
            .unwrap_or(DEFAULT_OUTPUT_TOKENS);
        let reserved_tokens = request.prompt_tokens.saturating_add(output);
        let reserved_cost = match &request.deployment.price {
            Some(price) => price.cost(&TokenUsage {
                prompt_tokens: request.prompt_tokens,
                completion_tokens: output,
                ..TokenUsage::default()
            }),
            None => {
                inner.warn_unpriced(request.deployment);
                Decimal::ZERO
            }
        };
        if let Some((cap, source)) = cost_cap(request) {
            if reserved_cost > cap {
                return Err(refusal::cost_cap(reserved_cost, cap, source));
            }
        }

        let now_ms = inner.clock.now_ms();
        let now_s = now_ms.div_euclid(1000);
        let mut specs: Vec<PoolSpec> = Vec::new();
        if !request.snapshot.budgets.is_empty() && reserved_cost > Decimal::ZERO {
            let index = inner.index(request.snapshot);
            limits::budget_pools(&index, request, reserved_cost, now_s, &mut specs);
        }
        limits::rate_pools(request, reserved_tokens, now_s, &mut specs);
        let mut admitted = Admitted {
            reserved_cost,
            reserved_tokens,
            headers: Vec::new(),
            holds: Vec::with_capacity(specs.len()),
        };
        if specs.is_empty() {
            return Ok(admitted);
        }
        inner.start_upkeep();

        // Fast path: every pool has room, nothing awaits.
        let mut short = Vec::new();
        for PoolSpec {
            key,
            kind,
            limit,
            amount,
        } in specs
        {
            let local = inner.transport.is_none();
            let pool = inner
                .pools
                .get_or_create(key, |key| Pool::new(key, kind, limit, local, now_ms));
            match inner.reserve_or_spawn_refill(&pool, amount, limit) {
                Reserve::Taken { .. } => admitted.holds.push(Hold { pool, amount }),
                // Refused: the reservations taken so far go back as `admitted` drops.
                Reserve::Short {
                    backoff: Some(why), ..
                } => return Err(refusal::for_pool(&pool, why, now_ms)),
                Reserve::Short { .. } => short.push((pool, amount, limit)),
            }
        }

        // Slow path: ask for the pools that lack room, all at once.
        if !short.is_empty() {
            let started = std::time::Instant::now();
            let deadline = tokio::time::Instant::now() + inner.settings.lease_timeout;
            let results = futures_util::future::join_all(
                short
                    .iter()
                    .map(|(pool, amount, limit)| inner.acquire(pool, *amount, *limit, deadline)),
            )
            .await;
            metrics::lease_wait(started.elapsed());
            let mut refused = None;
            for ((pool, amount, _), result) in short.into_iter().zip(results) {
                match result {
                    Ok(()) => admitted.holds.push(Hold { pool, amount }),
                    Err(why) => {
                        if refused.is_none() {
                            refused = Some(refusal::for_pool(&pool, why, inner.clock.now_ms()));
                        }
                    }
                }
            }
            if let Some(refused) = refused {
                return Err(refused);
            }
        }
        admitted.headers = headers::for_pools(admitted.holds.iter().map(|h| &*h.pool), now_ms);
        Ok(admitted)
    }

    /// Gives every lease back to the control plane (clean shutdown). Reservations in flight
    /// stay counted in `used`.
    pub async fn release_all(&self) {
        let pools = self.inner.pools.all();
        futures_util::future::join_all(pools.iter().map(|p| self.inner.release(p, None))).await;
    }
}

/// The tighter of the key's and the request's per-request caps.
fn cost_cap(request: &AdmitRequest<'_>) -> Option<(Decimal, CapSource)> {
    let key = request
        .key
        .max_request_cost_usd
        .map(|c| (c, CapSource::Key));
    let header = request.cost_cap.map(|c| (c, CapSource::Header));
    match (key, header) {
        (Some(k), Some(h)) => Some(if h.0 < k.0 { h } else { k }),
        (k, h) => k.or(h),
    }
}

impl Inner {
    /// The budget index of `snapshot`, built once per snapshot.
    fn index(&self, snapshot: &CompiledSnapshot) -> Arc<BudgetIndex> {
        let origin = BudgetIndex::origin_of(snapshot);
        if let Some(index) = self.index.load_full() {
            if index.origin == origin {
                return index;
            }
        }
        let index = Arc::new(BudgetIndex::build(snapshot));
        self.index.store(Some(Arc::clone(&index)));
        index
    }

    fn warn_unpriced(&self, deployment: &Deployment) {
        let mut seen = self.unpriced.lock().unwrap_or_else(PoisonError::into_inner);
        if !seen.contains(&deployment.id) {
            seen.insert(deployment.id.clone());
            tracing::warn!(deployment = %deployment.id, "deployment has no price: its requests reserve and spend nothing against budgets");
        }
    }

    /// Starts the sweep of idle pools and ended periods, once, on the first limited request
    /// (so `new` needs no runtime). It holds only a weak reference and ends with `Admission`.
    fn start_upkeep(self: &Arc<Self>) {
        if self.upkeep_started.load(Ordering::Relaxed)
            || self.upkeep_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.upkeep_started.store(false, Ordering::Relaxed);
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(self);
        let every = self.settings.upkeep_every;
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                inner.sweep().await;
            }
        });
    }
}

impl Admitted {
    /// The `x-ratelimit-*` headers for the response.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// Settles the request's real cost and tokens against its reservations. Budgets consume
    /// `cost`, token limits `tokens` and request limits one request, even where that exceeds
    /// the reservation.
    pub fn settle(mut self, cost: Decimal, tokens: u64) {
        let cost = cost.max(Decimal::ZERO);
        for hold in self.holds.drain(..) {
            let real = match hold.pool.kind {
                PoolKind::Budget { .. } => cost,
                PoolKind::Rate {
                    unit: RateUnit::Requests,
                    ..
                } => Decimal::ONE,
                PoolKind::Rate {
                    unit: RateUnit::Tokens,
                    ..
                } => Decimal::from(tokens),
            };
            hold.pool.settle(hold.amount, real);
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        for hold in self.holds.drain(..) {
            hold.pool.unreserve(hold.amount);
        }
    }
}
