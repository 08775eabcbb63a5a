//! Routing: which deployment serves an attempt, and what this proxy knows of each deployment's
//! health (circuit breaker, in-flight count, time to first token).
//!
//! The pieces are pure and clocked by the caller, so they are tested without sleeping:
//! [`breaker`] is one deployment's circuit breaker, [`select`] picks a candidate by the
//! route's strategy within the best available priority tier, [`rng`] is the lock-free random
//! source weighted picks use.

pub mod attempts;
pub mod breaker;
pub mod health;
pub mod probe;
pub mod rng;
pub mod select;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use breaker::BreakerConfig;
use select::Stats;

/// This proxy's [`Stats`] for a deployment id (`provider/model`), shared by every route and
/// snapshot that names it, so a snapshot swap keeps breakers and latency averages. Entries no
/// snapshot references any more are dropped on a later call.
pub fn stats_for(deployment_id: &str) -> Arc<Stats> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<Stats>>>> = OnceLock::new();
    let mut map = REGISTRY
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(stats) = map.get(deployment_id).and_then(Weak::upgrade) {
        return stats;
    }
    if map.len() >= 64 && map.len().is_power_of_two() {
        map.retain(|_, w| w.strong_count() > 0);
    }
    let stats = Arc::new(Stats::new(BreakerConfig::default()));
    // Another proxy may have reported it down before this snapshot named it.
    if let Some(at) = reported_down(deployment_id) {
        stats.breaker.trip(at);
    }
    map.insert(deployment_id.to_owned(), Arc::downgrade(&stats));
    stats
}

/// Deployments other proxies reported down, and when: applied to this proxy's breaker for the
/// deployment even if no snapshot names it yet (a proxy learns of them at start, before its
/// first snapshot arrives).
fn down_reports() -> &'static Mutex<HashMap<String, std::time::Instant>> {
    static DOWN: OnceLock<Mutex<HashMap<String, std::time::Instant>>> = OnceLock::new();
    DOWN.get_or_init(Mutex::default)
}

/// Opens this proxy's breaker for `deployment_id` as of `at`, now or when a snapshot first
/// names it.
pub fn report_down(deployment_id: &str, at: std::time::Instant) {
    {
        let mut down = down_reports()
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if down.len() >= 1024 {
            down.retain(|_, t| t.elapsed() < BreakerConfig::default().cool_down);
        }
        down.insert(deployment_id.to_owned(), at);
    }
    stats_for(deployment_id).breaker.trip(at);
}

fn reported_down(deployment_id: &str) -> Option<std::time::Instant> {
    let down = down_reports()
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    down.get(deployment_id)
        .copied()
        .filter(|t| t.elapsed() < BreakerConfig::default().cool_down)
}
