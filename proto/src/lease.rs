//! Leases: how budgets and rate limits hold across many proxies.
//!
//! A *pool* is one budget for one scope value and period, or one rate limit for one scope and
//! one minute window. The control plane owns every pool's total in Postgres and hands each
//! proxy a slice (a lease) under a row lock; a proxy admits a request only from what it holds,
//! and asks for more, in the background, before it runs dry. Two replicas never grant the same
//! money twice, and a proxy cut off from the control plane spends only what it holds.
//!
//! Requests go to [`LEASE_SUBJECT`] (NATS request/reply, queue group [`LEASE_QUEUE`]).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Subject of [`LeaseRequest`]s; the reply is a [`LeaseReply`].
pub const LEASE_SUBJECT: &str = "switchyard.lease.request";
/// Queue group the control-plane replicas answer in.
pub const LEASE_QUEUE: &str = "switchyard-leases";

/// What a pool limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PoolKey {
    /// A hard budget (USD) for one scope value in one period.
    Budget {
        budget_id: String,
        /// Team id, key id, or the tag's value, by the budget's scope.
        scope_value: String,
        /// Start of the period (Unix seconds, UTC; 0 for `total`).
        period_start: i64,
    },
    /// A rate limit for one scope in one fixed minute window.
    Rate {
        /// `key:<id>`, `team:<id>` or `deployment:<provider>/<model>`.
        scope: String,
        unit: RateUnit,
        /// Start of the window (Unix seconds, a multiple of 60).
        window_start: i64,
        /// The limit per window, as the proxy's snapshot says.
        limit: u64,
    },
}

/// What a rate pool counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateUnit {
    Requests,
    Tokens,
}

/// A proxy asks for more of a pool, or gives back what it did not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// The asking proxy's id (one per process).
    pub proxy: String,
    pub pool: PoolKey,
    /// How much more it wants now (USD for budgets, requests or tokens for rates).
    pub want: Decimal,
    /// Cumulative amount this proxy has consumed from this pool, counting reservations of
    /// requests still in flight.
    pub used: Decimal,
    /// The proxy is done with this pool (idle or shutting down): it keeps `used`, and the rest
    /// of what it was granted returns to the pool. `want` is ignored.
    #[serde(default)]
    pub release: bool,
}

/// The control plane's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseReply {
    /// Granted by this reply (may be less than asked, or zero).
    pub granted: Decimal,
    /// Total granted to this proxy from this pool so far.
    pub total_granted: Decimal,
    /// What is left in the pool for anybody after this grant.
    pub remaining: Decimal,
    /// The pool's limit (budget amount or rate limit).
    pub limit: Decimal,
    /// When the pool resets (Unix seconds; 0 for a `total` budget).
    pub resets_at: i64,
    /// Why nothing could be granted, if so (`unknown_budget`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Start of the calendar period (UTC) that contains `unix_secs`, and the start of the next
/// one (`None` for `total`, which never resets).
pub fn period_bounds(period: crate::BudgetPeriod, unix_secs: i64) -> (i64, Option<i64>) {
    use crate::BudgetPeriod::*;
    let day = unix_secs.div_euclid(86_400);
    match period {
        Total => (0, None),
        Daily => (day * 86_400, Some((day + 1) * 86_400)),
        Weekly => {
            // 1970-01-01 was a Thursday; weeks start on Monday.
            let monday = day - (day + 3).rem_euclid(7);
            (monday * 86_400, Some((monday + 7) * 86_400))
        }
        Monthly => {
            let (y, m, _) = civil_from_days(day);
            let start = days_from_civil(y, m, 1);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (start * 86_400, Some(days_from_civil(ny, nm, 1) * 86_400))
        }
    }
}

/// Fixed one-minute rate window containing `unix_secs`.
pub fn rate_window(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(60) * 60
}

// Howard Hinnant's civil-date algorithms (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BudgetPeriod;

    // 2026-11-21T15:30:00Z is a Saturday.
    const T: i64 = 1_795_275_000;

    #[test]
    fn periods_start_on_utc_calendar_boundaries() {
        assert_eq!(
            period_bounds(BudgetPeriod::Daily, T),
            (1_795_219_200, Some(1_795_305_600))
        );
        // Monday 2026-11-16.
        assert_eq!(
            period_bounds(BudgetPeriod::Weekly, T),
            (1_794_787_200, Some(1_795_392_000))
        );
        // 2026-11-01 and 2026-12-01.
        assert_eq!(
            period_bounds(BudgetPeriod::Monthly, T),
            (1_793_491_200, Some(1_796_083_200))
        );
        assert_eq!(period_bounds(BudgetPeriod::Total, T), (0, None));
        // December rolls into January.
        let (start, next) = period_bounds(BudgetPeriod::Monthly, 1_796_083_200 + 5);
        assert_eq!(start, 1_796_083_200);
        assert_eq!(next, Some(1_798_761_600));
    }

    #[test]
    fn rate_windows_are_whole_minutes() {
        assert_eq!(rate_window(T + 59), T);
        assert_eq!(rate_window(T + 60), T + 60);
        assert_eq!(rate_window(T - 1), T - 60);
    }

    #[test]
    fn pool_keys_round_trip_with_their_tag() {
        let key = PoolKey::Rate {
            scope: "key:k1".into(),
            unit: RateUnit::Tokens,
            window_start: 60,
            limit: 1000,
        };
        let json = serde_json::to_string(&key).unwrap();
        assert!(json.contains(r#""kind":"rate""#), "{json}");
        assert_eq!(serde_json::from_str::<PoolKey>(&json).unwrap(), key);
    }
}
