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
    map.insert(deployment_id.to_owned(), Arc::downgrade(&stats));
    stats
}
