//! Talking to the control plane about pools: asking for a slice when a request does not fit,
//! refilling in the background before a pool runs dry, and giving back what an idle pool (or
//! a shutting-down proxy) holds.
//!
//! Every conversation about one pool happens under that pool's async `lease` lock, so one
//! lease request at most is in flight per pool; requests that need the same pool wait for
//! that answer instead of sending their own. Each wait is bounded by the lease timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use proto::{LeaseReply, LeaseRequest};
use rust_decimal::Decimal;
use tokio::time::{timeout_at, Instant};

use super::metrics;
use super::pool::{Pool, PoolKind, Reserve, Shortage};
use super::Inner;

/// A lease request on its way; resolves to the control plane's reply.
pub type LeaseFuture = Pin<Box<dyn Future<Output = Result<LeaseReply, LeaseError>> + Send>>;

/// How lease requests reach the control plane (NATS in production, a fake in tests).
pub trait LeaseTransport: Send + Sync + std::fmt::Debug + 'static {
    /// Sends one request and waits for its reply (the caller bounds the wait).
    fn lease(&self, request: LeaseRequest) -> LeaseFuture;
}

/// Why a lease request got no usable reply.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("control plane unreachable: {0}")]
    Unreachable(String),
    #[error("invalid lease message: {0}")]
    Invalid(String),
}

/// Lease requests over NATS request/reply on [`proto::LEASE_SUBJECT`].
#[derive(Debug, Clone)]
pub struct NatsLeases {
    client: async_nats::Client,
}

impl NatsLeases {
    pub fn new(client: async_nats::Client) -> Self {
        Self { client }
    }
}

impl LeaseTransport for NatsLeases {
    fn lease(&self, request: LeaseRequest) -> LeaseFuture {
        let client = self.client.clone();
        Box::pin(async move {
            let payload =
                serde_json::to_vec(&request).map_err(|e| LeaseError::Invalid(e.to_string()))?;
            let reply = client
                .request(proto::LEASE_SUBJECT, payload.into())
                .await
                .map_err(|e| LeaseError::Unreachable(e.to_string()))?;
            serde_json::from_slice(&reply.payload).map_err(|e| LeaseError::Invalid(e.to_string()))
        })
    }
}

/// What one lease request brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// Something was granted; `remaining` is what the pool has left for anybody.
    Granted { remaining: Decimal },
    /// Nothing was granted: the pool is exhausted.
    Empty,
    /// No usable answer.
    Failed,
}

/// Why a lease request was sent (a metric label).
#[derive(Debug, Clone, Copy)]
enum Purpose {
    Need,
    Refill,
}

/// Share of a budget asked for at a time: small enough that several proxies share a budget
/// fairly, large enough that one lease serves many requests.
const BUDGET_SLICE: Decimal = Decimal::from_parts(5, 0, 0, false, 2);
/// Share of a rate limit asked for at a time.
const RATE_SLICE: Decimal = Decimal::from_parts(1, 0, 0, false, 1);

/// How much to ask for when a pool is refilled.
fn slice(pool: &Pool, limit: Decimal) -> Decimal {
    match pool.kind {
        PoolKind::Budget { .. } => limit * BUDGET_SLICE,
        PoolKind::Rate { .. } => (limit * RATE_SLICE).ceil().max(Decimal::ONE),
    }
}

impl Inner {
    /// Slow path: `pool` lacks room for `amount`; asks the control plane (once per pool at a
    /// time) until the reservation is taken, refused, or `deadline` passes.
    pub(super) async fn acquire(
        self: &Arc<Self>,
        pool: &Arc<Pool>,
        amount: Decimal,
        limit: Decimal,
        deadline: Instant,
    ) -> Result<(), Shortage> {
        if pool.local {
            // Local mode holds the whole limit already; there is nobody to ask.
            return match pool.try_reserve(amount, limit, self.clock.now_ms()) {
                Reserve::Taken { .. } => Ok(()),
                Reserve::Short { .. } => Err(Shortage::Exhausted),
            };
        }
        loop {
            let Ok(_guard) = timeout_at(deadline, pool.lease.lock()).await else {
                return Err(Shortage::Unreachable);
            };
            // Whoever held the lock may have brought enough, or found the pool empty.
            let available = match self.reserve_or_spawn_refill(pool, amount, limit) {
                Reserve::Taken { .. } => return Ok(()),
                Reserve::Short {
                    backoff: Some(why), ..
                } => return Err(why),
                Reserve::Short { available, .. } => available,
            };
            let want = (amount - available).max(slice(pool, limit));
            match self.ask(pool, want, Purpose::Need, deadline).await {
                Asked::Empty => return Err(Shortage::Exhausted),
                Asked::Failed => return Err(Shortage::Unreachable),
                Asked::Granted { remaining } => {
                    match self.reserve_or_spawn_refill(pool, amount, limit) {
                        Reserve::Taken { .. } => return Ok(()),
                        // Granted all it had, and still not enough for this request.
                        Reserve::Short { .. } if remaining <= Decimal::ZERO => {
                            return Err(Shortage::Exhausted)
                        }
                        // Concurrent requests took the grant first; ask again.
                        Reserve::Short { .. } => {}
                    }
                }
            }
        }
    }

    /// Reserves without waiting and schedules a refill when the pool runs low.
    pub(super) fn reserve_or_spawn_refill(
        self: &Arc<Self>,
        pool: &Arc<Pool>,
        amount: Decimal,
        limit: Decimal,
    ) -> Reserve {
        let result = pool.try_reserve(amount, limit, self.clock.now_ms());
        if let Reserve::Taken { refill: true } = result {
            self.spawn_refill(Arc::clone(pool));
        }
        result
    }

    /// Tops `pool` up in the background so the request path rarely waits for a lease.
    fn spawn_refill(self: &Arc<Self>, pool: Arc<Pool>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            pool.state().refilling = false;
            return;
        };
        let inner = Arc::clone(self);
        // Bounded by the lease timeout; it owns nothing but its pool.
        runtime.spawn(async move {
            let deadline = Instant::now() + inner.settings.lease_timeout;
            if let Ok(_guard) = timeout_at(deadline, pool.lease.lock()).await {
                let want = {
                    let s = pool.state();
                    let low = s.available() * Decimal::TWO < s.last_grant;
                    low.then(|| s.last_grant.max(slice(&pool, s.limit)))
                };
                if let Some(want) = want {
                    inner.ask(&pool, want, Purpose::Refill, deadline).await;
                }
            }
            pool.state().refilling = false;
        });
    }

    /// Sends one lease request for `want` more and applies the reply. The caller holds the
    /// pool's lease lock.
    async fn ask(&self, pool: &Pool, want: Decimal, purpose: Purpose, deadline: Instant) -> Asked {
        let Some(transport) = &self.transport else {
            return Asked::Empty;
        };
        let request = LeaseRequest {
            proxy: self.proxy.clone(),
            pool: pool.key.clone(),
            want,
            used: pool.state().used(),
            release: false,
        };
        let started = std::time::Instant::now();
        let reply = timeout_at(deadline, transport.lease(request)).await;
        let kind = metrics::pool_label(&pool.kind);
        metrics::lease_latency(kind, started.elapsed());
        let purpose = match purpose {
            Purpose::Need => "need",
            Purpose::Refill => "refill",
        };
        let backoff_until = self.clock.now_ms() + millis(self.settings.backoff);
        let mut s = pool.state();
        let failure = match reply {
            Ok(Ok(reply)) if reply.error.is_none() => {
                let granted = reply.granted.max(Decimal::ZERO);
                s.granted += granted;
                s.remote_remaining = reply.remaining.max(Decimal::ZERO);
                if granted > Decimal::ZERO {
                    s.last_grant = granted;
                    // The pool gave its last: what does not fit now will not fit soon.
                    s.backoff = (s.remote_remaining <= Decimal::ZERO)
                        .then_some((backoff_until, Shortage::Exhausted));
                    metrics::lease_request(kind, purpose, "granted");
                    return Asked::Granted {
                        remaining: s.remote_remaining,
                    };
                }
                s.backoff = Some((backoff_until, Shortage::Exhausted));
                metrics::lease_request(kind, purpose, "empty");
                return Asked::Empty;
            }
            Ok(Ok(reply)) => format!("control plane refused: {}", reply.error.unwrap_or_default()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "lease request timed out".to_owned(),
        };
        s.backoff = Some((backoff_until, Shortage::Unreachable));
        drop(s);
        metrics::lease_request(kind, purpose, "failed");
        tracing::warn!(pool = ?pool.key, reason = %failure, "lease request failed; this pool admits only what it holds");
        Asked::Failed
    }

    /// Gives back what `pool` holds unreserved (`release: true`; `used` is kept). With
    /// `idle_before`, only if nobody reserved from it since then and nothing is in flight.
    /// Returns whether a release was sent.
    pub(super) async fn release(&self, pool: &Pool, idle_before: Option<i64>) -> bool {
        let Some(transport) = &self.transport else {
            return false;
        };
        if pool.local {
            return false;
        }
        let deadline = Instant::now() + self.settings.lease_timeout;
        let Ok(_guard) = timeout_at(deadline, pool.lease.lock()).await else {
            return false;
        };
        let used = {
            let mut s = pool.state();
            let busy = idle_before.is_some_and(|t| s.last_used_ms > t || !s.reserved.is_zero());
            if busy || s.available() <= Decimal::ZERO {
                return false;
            }
            // From here on this proxy holds nothing unreserved. If the release is lost the
            // control plane believes we still hold it: capacity is idle until the period
            // ends, but never spent twice.
            s.granted = s.used();
            s.last_grant = Decimal::ZERO;
            s.used()
        };
        let request = LeaseRequest {
            proxy: self.proxy.clone(),
            pool: pool.key.clone(),
            want: Decimal::ZERO,
            used,
            release: true,
        };
        let kind = metrics::pool_label(&pool.kind);
        let started = std::time::Instant::now();
        let reply = timeout_at(deadline, transport.lease(request)).await;
        metrics::lease_latency(kind, started.elapsed());
        match reply {
            Ok(Ok(reply)) => {
                pool.state().remote_remaining = reply.remaining.max(Decimal::ZERO);
                metrics::lease_request(kind, "release", "released");
            }
            Ok(Err(e)) => {
                metrics::lease_request(kind, "release", "failed");
                tracing::warn!(pool = ?pool.key, reason = %e, "lease release failed");
            }
            Err(_) => {
                metrics::lease_request(kind, "release", "failed");
                tracing::warn!(pool = ?pool.key, "lease release timed out");
            }
        }
        true
    }

    /// Drops ended periods and windows, and releases pools idle for the idle period.
    pub(super) async fn sweep(&self) {
        let now = self.clock.now_ms();
        self.pools.drop_ended(now);
        metrics::pools(self.pools.len());
        if self.transport.is_none() {
            return;
        }
        let idle_before = now - millis(self.settings.idle_release);
        let idle: Vec<Arc<Pool>> = self
            .pools
            .all()
            .into_iter()
            .filter(|p| {
                let s = p.state();
                s.last_used_ms <= idle_before
                    && s.reserved.is_zero()
                    && s.available() > Decimal::ZERO
            })
            .collect();
        futures_util::future::join_all(idle.iter().map(|p| self.release(p, Some(idle_before))))
            .await;
    }
}

pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
