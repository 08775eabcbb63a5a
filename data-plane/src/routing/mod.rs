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
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

use breaker::BreakerConfig;
use select::Stats;

/// What this proxy knows of every deployment's health: one [`Stats`] (breaker, in-flight
/// count, latency average) per deployment id (`provider/model`), shared by every route and
/// snapshot that names it, so a snapshot swap keeps breakers and latency averages; and the
/// deployments other proxies reported down. Created with the proxy (`App`), handed to the
/// snapshot compiler and to the health listener; never a process-global.
#[derive(Debug, Default)]
pub struct Health {
    stats: Mutex<HashMap<String, Weak<Stats>>>,
    /// Deployments other proxies reported down, and when: applied to this proxy's breaker for
    /// the deployment even if no snapshot names it yet (a proxy learns of them at start,
    /// before its first snapshot arrives).
    down: Mutex<HashMap<String, Instant>>,
    /// This proxy's id and the queue of its breaker announcements, once sharing started
    /// (`health::start`).
    bus: std::sync::OnceLock<(Arc<str>, tokio::sync::mpsc::Sender<proto::HealthEvent>)>,
}

impl Health {
    /// The [`Stats`] of a deployment id. Entries no snapshot references any more are dropped
    /// on a later call.
    pub fn stats_for(&self, deployment_id: &str) -> Arc<Stats> {
        let mut map = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(stats) = map.get(deployment_id).and_then(Weak::upgrade) {
            return stats;
        }
        if map.len() >= 64 && map.len().is_power_of_two() {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let stats = Arc::new(Stats::new(BreakerConfig::default()));
        // Another proxy may have reported it down before this snapshot named it.
        if let Some(at) = self.reported_down(deployment_id) {
            stats.breaker.trip(at);
        }
        map.insert(deployment_id.to_owned(), Arc::downgrade(&stats));
        stats
    }

    /// Opens this proxy's breaker for `deployment_id` as of `at`, now or when a snapshot
    /// first names it.
    pub fn report_down(&self, deployment_id: &str, at: Instant) {
        {
            let mut down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
            if down.len() >= 1024 {
                down.retain(|_, t| t.elapsed() < BreakerConfig::default().cool_down);
            }
            down.insert(deployment_id.to_owned(), at);
        }
        self.stats_for(deployment_id).breaker.trip(at);
    }

    fn reported_down(&self, deployment_id: &str) -> Option<Instant> {
        let down = self.down.lock().unwrap_or_else(PoisonError::into_inner);
        down.get(deployment_id)
            .copied()
            .filter(|t| t.elapsed() < BreakerConfig::default().cool_down)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_shared_per_deployment_and_per_proxy() {
        let (a, b) = (Health::default(), Health::default());
        let one = a.stats_for("p/m");
        assert!(Arc::ptr_eq(&one, &a.stats_for("p/m")), "one per deployment");
        assert!(
            !Arc::ptr_eq(&one, &b.stats_for("p/m")),
            "one registry per proxy"
        );
        let now = Instant::now();
        a.report_down("p/other", now);
        assert!(!a.stats_for("p/other").breaker.available(now));
        assert!(b.stats_for("p/other").breaker.available(now));
    }
}
