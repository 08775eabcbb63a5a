//! A circuit breaker per deployment, local to one proxy.
//!
//! - **Closed**: requests flow. Each failure is remembered with its time; the breaker opens when
//!   `failures` of them fall within `window`, or after a run of `consecutive` failures with no
//!   success between them (whatever their spacing).
//! - **Open**: no request is let through until `cool_down` has passed since it opened.
//! - **Half-open**: after the cool-down exactly one request (the probe) is let through; its
//!   success closes the breaker (history cleared), its failure opens it for another cool-down.
//!   A probe that never reports (its request was dropped) is given up after `cool_down`, and
//!   another probe is allowed.
//!
//! Guarantees: at most one probe at a time; a failure reported by a request admitted before the
//! breaker opened cannot re-open it earlier than the cool-down (it only extends nothing); all
//! transitions happen under one short lock, so concurrent callers see one consistent state.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures within `window` that open the breaker.
    pub failures: u32,
    pub window: Duration,
    /// Failures in a row (no success between) that open the breaker.
    pub consecutive: u32,
    /// Time open before a probe is let through.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 10,
            window: Duration::from_secs(10),
            consecutive: 5,
            cool_down: Duration::from_secs(5),
        }
    }
}

/// What the breaker says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Closed: go ahead.
    Normal,
    /// Half-open: this request is the probe; report its outcome.
    Probe,
}

/// The breaker's state, as reported in health events and metrics.
pub use proto::BreakerState;

#[derive(Debug)]
enum State {
    Closed { recent: VecDeque<Instant>, run: u32 },
    Open { since: Instant },
    HalfOpen { probe_sent: Instant },
}

/// One deployment's breaker.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: Mutex::new(closed()),
        }
    }

    /// Whether a request may go to this deployment now, and as what.
    pub fn admit(&self, now: Instant) -> Option<Permit> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Some(Permit::Normal),
            State::Open { since } if now.duration_since(since) >= self.config.cool_down => {
                *state = State::HalfOpen { probe_sent: now };
                Some(Permit::Probe)
            }
            State::Open { .. } => None,
            State::HalfOpen { probe_sent }
                if now.duration_since(probe_sent) >= self.config.cool_down =>
            {
                // The probe never reported: try another.
                *state = State::HalfOpen { probe_sent: now };
                Some(Permit::Probe)
            }
            State::HalfOpen { .. } => None,
        }
    }

    /// Whether a request would be admitted now, without taking the probe slot.
    pub fn available(&self, now: Instant) -> bool {
        match *self.lock() {
            State::Closed { .. } => true,
            State::Open { since } => now.duration_since(since) >= self.config.cool_down,
            State::HalfOpen { probe_sent } => {
                now.duration_since(probe_sent) >= self.config.cool_down
            }
        }
    }

    /// Reports a request's outcome; returns the state after it.
    pub fn record(&self, success: bool, now: Instant) -> BreakerState {
        let mut state = self.lock();
        let next = match (&mut *state, success) {
            (State::Closed { run, .. }, true) => {
                *run = 0;
                None
            }
            (State::Closed { recent, run }, false) => {
                *run += 1;
                recent.push_back(now);
                while recent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > self.config.window)
                {
                    recent.pop_front();
                }
                let too_many = recent.len() >= self.config.failures as usize;
                (too_many || *run >= self.config.consecutive).then_some(State::Open { since: now })
            }
            (State::HalfOpen { .. }, true) => Some(closed()),
            (State::HalfOpen { .. }, false) => Some(State::Open { since: now }),
            // Late reports from requests admitted before the breaker opened change nothing.
            (State::Open { .. }, _) => None,
        };
        if let Some(next) = next {
            *state = next;
        }
        view(&state)
    }

    pub fn state(&self) -> BreakerState {
        view(&self.lock())
    }

    /// Opens the breaker now (another proxy, through the control plane, saw the deployment die).
    pub fn trip(&self, now: Instant) {
        let mut state = self.lock();
        if !matches!(*state, State::Open { .. }) {
            *state = State::Open { since: now };
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn closed() -> State {
    State::Closed {
        recent: VecDeque::new(),
        run: 0,
    }
}

fn view(state: &State) -> BreakerState {
    match state {
        State::Closed { .. } => BreakerState::Closed,
        State::Open { .. } => BreakerState::Open,
        State::HalfOpen { .. } => BreakerState::HalfOpen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(5);

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failures: 3,
            window: Duration::from_secs(10),
            consecutive: 100,
            cool_down: COOL,
        })
    }

    #[test]
    fn opens_half_opens_with_one_probe_and_closes() {
        let b = breaker();
        let t0 = Instant::now();
        for i in 0..2 {
            assert_eq!(
                b.record(false, t0 + Duration::from_secs(i)),
                BreakerState::Closed
            );
        }
        assert_eq!(
            b.record(false, t0 + Duration::from_secs(2)),
            BreakerState::Open
        );
        let opened = t0 + Duration::from_secs(2);
        assert_eq!(b.admit(opened + Duration::from_secs(1)), None);
        assert!(!b.available(opened + Duration::from_secs(1)));

        assert_eq!(b.admit(opened + COOL), Some(Permit::Probe));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // One probe at a time.
        assert_eq!(b.admit(opened + COOL), None);
        assert_eq!(b.record(true, opened + COOL), BreakerState::Closed);
        assert_eq!(b.admit(opened + COOL), Some(Permit::Normal));
        // History was cleared: two failures do not open it again.
        b.record(false, opened + COOL);
        assert_eq!(b.record(false, opened + COOL), BreakerState::Closed);
    }

    #[test]
    fn a_failed_probe_reopens_for_another_cool_down() {
        let b = breaker();
        let t0 = Instant::now();
        for _ in 0..3 {
            b.record(false, t0);
        }
        assert_eq!(b.admit(t0 + COOL), Some(Permit::Probe));
        assert_eq!(b.record(false, t0 + COOL), BreakerState::Open);
        assert_eq!(b.admit(t0 + COOL + Duration::from_secs(4)), None);
        assert_eq!(b.admit(t0 + COOL * 2), Some(Permit::Probe));
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let b = breaker();
        let t0 = Instant::now();
        b.record(false, t0);
        b.record(false, t0 + Duration::from_secs(1));
        assert_eq!(
            b.record(false, t0 + Duration::from_secs(12)),
            BreakerState::Closed
        );
    }

    #[test]
    fn a_consecutive_run_opens_whatever_the_spacing() {
        let b = Breaker::new(BreakerConfig {
            failures: 1000,
            window: Duration::from_secs(1),
            consecutive: 3,
            cool_down: COOL,
        });
        let t0 = Instant::now();
        b.record(false, t0);
        b.record(true, t0);
        b.record(false, t0 + Duration::from_secs(60));
        b.record(false, t0 + Duration::from_secs(120));
        assert_eq!(
            b.record(false, t0 + Duration::from_secs(180)),
            BreakerState::Open
        );
    }

    #[test]
    fn a_lost_probe_is_replaced_after_the_cool_down() {
        let b = breaker();
        let t0 = Instant::now();
        b.trip(t0);
        assert_eq!(b.admit(t0 + COOL), Some(Permit::Probe));
        assert_eq!(b.admit(t0 + COOL + Duration::from_secs(1)), None);
        assert_eq!(b.admit(t0 + COOL * 2), Some(Permit::Probe));
        // Reports from before the breaker opened change nothing while it is open.
        b.trip(t0 + COOL * 3);
        assert_eq!(b.record(true, t0 + COOL * 3), BreakerState::Open);
    }
}
