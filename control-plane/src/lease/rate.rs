//! Rate pools: slices of one rate limit's minute window, granted under the pool row's lock.
//!
//! The pool row keeps `granted`, the sum of its leases' [`committed`](super::grant::committed)
//! shares, so a grant needs no scan of the leases. Proxies send the limit from their snapshot;
//! the pool keeps the lowest it has seen in the window, so a lowered limit applies at once and a
//! raised one from the next window (never more than either allows). Windows older than
//! [`KEEP_WINDOWS_SECS`] are deleted by the cleanup task and refused.

use chrono::{DateTime, Utc};
use proto::{LeaseReply, LeaseRequest, RateUnit};
use rust_decimal::Decimal;

use super::grant::{committed, rate_grant, whole_units};
use super::{LeaseError, Refusal};
use crate::store::Store;

/// Length of a rate window.
pub const WINDOW_SECS: i64 = 60;
/// How long windows are kept (and answered) after they start.
pub const KEEP_WINDOWS_SECS: i64 = 600;

/// One rate pool, as a request names it.
#[derive(Debug, Clone, Copy)]
pub struct Pool<'a> {
    pub scope: &'a str,
    pub unit: RateUnit,
    pub window_start: i64,
    pub limit: u64,
}

fn unit_name(unit: RateUnit) -> &'static str {
    match unit {
        RateUnit::Requests => "requests",
        RateUnit::Tokens => "tokens",
    }
}

fn to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Grants (or takes back) units of one window for `req`; `now` is Unix seconds.
pub async fn lease(
    store: &Store,
    req: &LeaseRequest,
    pool: Pool<'_>,
    now: i64,
) -> Result<LeaseReply, LeaseError> {
    if pool.scope.is_empty() || pool.scope.len() > 512 {
        return Err(Refusal::BadRequest.into());
    }
    if pool.window_start.rem_euclid(WINDOW_SECS) != 0 {
        return Err(Refusal::BadWindow.into());
    }
    if pool.window_start + KEEP_WINDOWS_SECS < now {
        return Err(Refusal::WindowEnded.into());
    }
    let window = DateTime::<Utc>::from_timestamp(pool.window_start, 0).ok_or(Refusal::BadWindow)?;
    let want = whole_units(req.want).ok_or(Refusal::BadRequest)?;
    let used_now = whole_units(req.used).ok_or(Refusal::BadRequest)?;
    let unit = unit_name(pool.unit);

    let mut client = store.pool().get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO rate_pools (scope, unit, window_start, lim) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
        &[&pool.scope, &unit, &window, &to_db(pool.limit)],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT lim, granted FROM rate_pools
             WHERE scope = $1 AND unit = $2 AND window_start = $3 FOR UPDATE",
            &[&pool.scope, &unit, &window],
        )
        .await?;
    let limit = from_db(row.get(0)).min(pool.limit);
    let pool_committed = from_db(row.get(1));
    let mine = tx
        .query_opt(
            "SELECT granted, used, released FROM rate_leases
             WHERE scope = $1 AND unit = $2 AND window_start = $3 AND proxy = $4",
            &[&pool.scope, &unit, &window, &req.proxy],
        )
        .await?;
    let (granted, used, released) = match &mine {
        Some(r) => (from_db(r.get(0)), from_db(r.get(1)), r.get::<_, bool>(2)),
        None => (0, 0, false),
    };
    let others_hold: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM rate_leases
             WHERE scope = $1 AND unit = $2 AND window_start = $3 AND proxy <> $4 AND NOT released)",
            &[&pool.scope, &unit, &window, &req.proxy],
        )
        .await?
        .get(0);

    let before = committed(granted, used, released);
    let without_me = pool_committed.saturating_sub(before);
    let used = used.max(used_now);
    let (next_granted, next_released, grant) = if req.release {
        (granted, true, 0)
    } else {
        let base = committed(granted, used, released);
        let g = rate_grant(limit, without_me.saturating_add(base), want, others_hold);
        (base + g, false, g)
    };
    let after = committed(next_granted, used, next_released);
    let total = without_me.saturating_add(after);
    tx.execute(
        "UPDATE rate_pools SET lim = $4, granted = $5
         WHERE scope = $1 AND unit = $2 AND window_start = $3",
        &[&pool.scope, &unit, &window, &to_db(limit), &to_db(total)],
    )
    .await?;
    tx.execute(
        "INSERT INTO rate_leases (scope, unit, window_start, proxy, granted, used, released)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (scope, unit, window_start, proxy)
         DO UPDATE SET granted = $5, used = $6, released = $7",
        &[
            &pool.scope,
            &unit,
            &window,
            &req.proxy,
            &to_db(next_granted),
            &to_db(used),
            &next_released,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(LeaseReply {
        granted: Decimal::from(grant),
        total_granted: Decimal::from(next_granted),
        remaining: Decimal::from(limit.saturating_sub(total)),
        limit: Decimal::from(limit),
        resets_at: pool.window_start + WINDOW_SECS,
        error: None,
    })
}
