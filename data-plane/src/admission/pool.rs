//! Local pools: what this proxy holds of one budget (one scope value, one period) or of one
//! rate limit (one scope, one minute window), and the table that finds them.
//!
//! A pool's counters live behind a `std::sync::Mutex` held only for a few arithmetic
//! operations; nothing awaits while holding it. The separate async `lease` lock serialises
//! conversations with the control plane about this pool, so there is at most one lease
//! request in flight per pool and waiting requests share its result.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use proto::{PoolKey, RateUnit};
use rust_decimal::Decimal;

/// What a pool limits, with what a refusal or a header needs to say about it.
#[derive(Debug, Clone)]
pub enum PoolKind {
    /// A hard budget (USD).
    Budget {
        /// The budget's display name (a refusal names it).
        name: String,
        /// Start of the next period (Unix ms); `None` for a `total` budget.
        resets_at_ms: Option<i64>,
    },
    /// A rate limit (requests or tokens per minute).
    Rate {
        unit: RateUnit,
        /// End of the window (Unix ms).
        window_end_ms: i64,
    },
}

/// Why a pool could not cover a reservation after asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortage {
    /// The control plane has nothing more for this pool (or local mode ran out).
    Exhausted,
    /// The control plane could not be asked (timeout, no responders, error reply).
    Unreachable,
}

/// Counters of one pool. All amounts are in the pool's unit (USD, requests or tokens).
#[derive(Debug, Default)]
pub struct PoolState {
    /// The pool's limit as the snapshot says (budget amount or rate limit).
    pub limit: Decimal,
    /// Everything the control plane (or local mode) has granted this proxy.
    pub granted: Decimal,
    /// Settled consumption.
    pub consumed: Decimal,
    /// Reservations of requests in flight.
    pub reserved: Decimal,
    /// Size of the last non-empty grant (the refill threshold is half of it).
    pub last_grant: Decimal,
    /// What the control plane said was left for anybody after its last grant.
    pub remote_remaining: Decimal,
    /// After an empty or failed lease request, requests that do not fit are refused without
    /// asking again until this time (Unix ms), so an exhausted budget or an unreachable control
    /// plane costs one round trip per second, not one per request.
    pub backoff: Option<(i64, Shortage)>,
    /// A background refill is scheduled or running.
    pub refilling: bool,
    /// Last time a request reserved from this pool (Unix ms); idle pools give their lease back.
    pub last_used_ms: i64,
}

impl PoolState {
    /// What this proxy holds and has not reserved; negative after an overspend.
    pub fn available(&self) -> Decimal {
        self.granted - self.consumed - self.reserved
    }

    /// Cumulative consumption reported to the control plane (`LeaseRequest::used`).
    pub fn used(&self) -> Decimal {
        self.consumed + self.reserved
    }
}

/// Result of trying to reserve from a pool without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// Reserved; `refill` asks the caller to schedule a background refill.
    Taken { refill: bool },
    /// Not enough; `backoff` is set while a recent lease request came back empty or failed.
    Short {
        available: Decimal,
        backoff: Option<Shortage>,
    },
}

/// One pool held by this proxy.
#[derive(Debug)]
pub struct Pool {
    pub key: PoolKey,
    pub kind: PoolKind,
    /// Granted locally from the full limit (no control plane): never leases.
    pub local: bool,
    state: Mutex<PoolState>,
    /// Held while a lease request (grant, refill or release) for this pool is in flight.
    pub lease: tokio::sync::Mutex<()>,
}

impl Pool {
    /// A new, empty pool; in local mode it starts with its whole limit granted.
    pub fn new(key: PoolKey, kind: PoolKind, limit: Decimal, local: bool, now_ms: i64) -> Self {
        let state = PoolState {
            limit,
            granted: if local { limit } else { Decimal::ZERO },
            last_used_ms: now_ms,
            ..PoolState::default()
        };
        Self {
            key,
            kind,
            local,
            state: Mutex::new(state),
            lease: tokio::sync::Mutex::new(()),
        }
    }

    /// The counters (held briefly: never across an await).
    pub fn state(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves `amount` if the pool has room, without waiting.
    ///
    /// `limit` is the snapshot's current limit: a local pool follows a changed budget amount.
    pub fn try_reserve(&self, amount: Decimal, limit: Decimal, now_ms: i64) -> Reserve {
        let mut s = self.state();
        if s.limit != limit {
            if self.local {
                let delta = limit - s.limit;
                s.granted += delta;
            }
            s.limit = limit;
        }
        let available = s.available();
        if available >= amount {
            s.reserved += amount;
            s.last_used_ms = now_ms;
            let refill = !self.local
                && !s.refilling
                && s.backoff.is_none_or(|(until, _)| until <= now_ms)
                && (available - amount) * Decimal::TWO < s.last_grant;
            if refill {
                s.refilling = true;
            }
            return Reserve::Taken { refill };
        }
        let backoff = match s.backoff {
            Some((until, why)) if until > now_ms => Some(why),
            _ => None,
        };
        Reserve::Short { available, backoff }
    }

    /// Returns a reservation that was not spent.
    pub fn unreserve(&self, amount: Decimal) {
        let mut s = self.state();
        s.reserved -= amount;
    }

    /// Replaces a reservation with the real consumption (which may exceed it: the spend
    /// happened, so it counts).
    pub fn settle(&self, reserved: Decimal, real: Decimal) {
        let mut s = self.state();
        s.reserved -= reserved;
        s.consumed += real;
    }

    /// When this pool stops mattering (Unix ms): the end of its period or window.
    pub fn ends_at_ms(&self) -> Option<i64> {
        match &self.kind {
            PoolKind::Budget { resets_at_ms, .. } => *resets_at_ms,
            PoolKind::Rate { window_end_ms, .. } => Some(*window_end_ms),
        }
    }
}

const SHARDS: usize = 16;

type Shard = HashMap<PoolKey, Arc<Pool>>;

/// Every pool this proxy holds, sharded so that requests on different pools rarely meet on
/// one lock.
#[derive(Debug)]
pub struct PoolTable {
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

impl Default for PoolTable {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl PoolTable {
    fn shard(&self, key: &PoolKey) -> MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(key) as usize) % self.shards.len();
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The pool for `key`, created by `make` if this proxy holds none yet.
    pub fn get_or_create(&self, key: PoolKey, make: impl FnOnce(PoolKey) -> Pool) -> Arc<Pool> {
        let mut shard = self.shard(&key);
        if let Some(pool) = shard.get(&key) {
            return Arc::clone(pool);
        }
        let pool = Arc::new(make(key.clone()));
        shard.insert(key, Arc::clone(&pool));
        pool
    }

    /// Every pool (for sweeps and shutdown).
    pub fn all(&self) -> Vec<Arc<Pool>> {
        self.shards
            .iter()
            .flat_map(|s| {
                s.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .values()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Forgets pools whose period or window ended before `now_ms`. Requests still holding one
    /// settle on their own `Arc`; the control plane starts the next period from scratch.
    pub fn drop_ended(&self, now_ms: i64) -> usize {
        let mut dropped = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let before = shard.len();
            shard.retain(|_, pool| pool.ends_at_ms().is_none_or(|end| end > now_ms));
            dropped += before - shard.len();
        }
        dropped
    }

    /// Number of pools held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}
