//! The loops of the proxy's background tasks, each ending when its cancellation token fires:
//! waking on a fixed period ([`Ticks`]: metrics upkeep, active health checks, the snapshot
//! file watch, the usage spool's replay), and retrying a setup step until it succeeds
//! ([`retrying`]: the snapshot source's NATS client and subscription).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// A periodic wake-up that stops once its token is cancelled. The first tick is at once.
pub struct Ticks {
    interval: Interval,
    cancel: CancellationToken,
}

impl Ticks {
    /// Every `period`; `missed` says what a late tick does (see [`MissedTickBehavior`]).
    pub fn new(period: Duration, missed: MissedTickBehavior, cancel: CancellationToken) -> Self {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(missed);
        Self { interval, cancel }
    }

    /// Waits for the next tick: `true`, or `false` once the token is cancelled.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            () = self.cancel.cancelled() => false,
            _ = self.interval.tick() => true,
        }
    }
}

/// Calls `attempt` until it succeeds (`Some`) or `cancel` fires (`None`). A failure is logged
/// as `what` and tried again after `first_delay`, doubling up to `max_delay`.
pub async fn retrying<T, E, F, Fut>(
    what: &str,
    cancel: &CancellationToken,
    (first_delay, max_delay): (Duration, Duration),
    mut attempt: F,
) -> Option<T>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = first_delay;
    loop {
        let result = tokio::select! {
            () = cancel.cancelled() => return None,
            r = attempt() => r,
        };
        match result {
            Ok(value) => return Some(value),
            Err(e) => {
                tracing::warn!(error = %e, "{what}; retrying");
                tokio::select! {
                    () = cancel.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(max_delay);
            }
        }
    }
}
