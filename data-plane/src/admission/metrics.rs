//! Metrics of admission: outcomes by code, lease requests and their latency, and the time
//! requests wait for a lease. Every label comes from a closed set.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use super::pool::PoolKind;

pub const ADMISSIONS: &str = "switchyard_admissions_total";
pub const LEASE_REQUESTS: &str = "switchyard_lease_requests_total";
pub const LEASE_REQUEST_DURATION: &str = "switchyard_lease_request_seconds";
pub const LEASE_WAIT: &str = "switchyard_admission_lease_wait_seconds";
pub const POOLS: &str = "switchyard_admission_pools";

/// A request was admitted (`code` = `ok`) or refused with `code`.
pub fn admission(result: &'static str, code: &'static str) {
    crate::metrics::handles::cached(
        "admission",
        &[result, code],
        || counter!(ADMISSIONS, "result" => result, "code" => code),
    )
    .increment(1);
}

/// A lease request ended: `pool` is `budget` or `rate`; `purpose` is `need`, `refill` or
/// `release`; `result` is `granted`, `empty`, `released` or `failed`.
pub fn lease_request(pool: &'static str, purpose: &'static str, result: &'static str) {
    counter!(LEASE_REQUESTS, "pool" => pool, "purpose" => purpose, "result" => result).increment(1);
}

/// Round trip of one lease request.
pub fn lease_latency(pool: &'static str, d: Duration) {
    histogram!(LEASE_REQUEST_DURATION, "pool" => pool).record(d.as_secs_f64());
}

/// Time a request spent waiting for leases on its own path.
pub fn lease_wait(d: Duration) {
    histogram!(LEASE_WAIT).record(d.as_secs_f64());
}

/// Pools this proxy holds (budgets × scope values × periods, rate limits × windows).
pub fn pools(n: usize) {
    gauge!(POOLS).set(n as f64);
}

/// The `pool` label of a pool.
pub fn pool_label(kind: &PoolKind) -> &'static str {
    match kind {
        PoolKind::Budget { .. } => "budget",
        PoolKind::Rate { .. } => "rate",
    }
}
