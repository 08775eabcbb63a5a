//! Picking a deployment for one attempt.
//!
//! Candidates that the caller rules out (already tried, rate-limited) or whose breaker is open
//! are skipped; of the rest, only the best (lowest) priority tier is considered, so tier 1 serves
//! only while tier 0 has nothing available. Within that tier the route's [`Strategy`] decides:
//!
//! - `weighted`: at random in proportion to weight (weight 0 only when nothing else is left);
//! - `ordered`: the first in the route's order;
//! - `lowest_latency`: the lowest moving average of time to first token; a deployment never
//!   measured (or not for [`STALE_AFTER`]) is tried first, and one attempt in [`EXPLORE_ONE_IN`]
//!   goes to a random one, so a deployment that recovered gets measured again;
//! - `least_inflight`: the fewest requests in flight from this proxy, ties by weight;
//! - `cheapest`: the lowest price (input + output per million tokens), unpriced last, ties by
//!   weight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::Strategy;
use rust_decimal::Decimal;

use super::breaker::{Breaker, BreakerConfig};
use super::rng::Rng;

/// A latency sample older than this no longer counts as knowing the deployment's latency.
pub const STALE_AFTER: Duration = Duration::from_secs(30);
/// One `lowest_latency` pick in this many explores at random.
pub const EXPLORE_ONE_IN: u64 = 20;
/// Weight of a new time-to-first-token sample in the moving average, in 1/1000.
const EWMA_NEW_PER_MILLE: u64 = 200;

/// What this proxy knows about one deployment, kept across snapshot swaps.
#[derive(Debug)]
pub struct Stats {
    pub breaker: Breaker,
    inflight: AtomicU64,
    /// Moving average of time to first token, µs; 0 until measured.
    ewma_ttft_us: AtomicU64,
    /// When the last sample was taken, µs after `epoch`.
    sampled_at_us: AtomicU64,
    epoch: Instant,
}

impl Stats {
    pub fn new(breaker: BreakerConfig) -> Self {
        Self {
            breaker: Breaker::new(breaker),
            inflight: AtomicU64::new(0),
            ewma_ttft_us: AtomicU64::new(0),
            sampled_at_us: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Counts a request in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    pub fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Folds one time-to-first-token sample into the moving average.
    pub fn sample_ttft(&self, ttft: Duration, now: Instant) {
        let sample = u64::try_from(ttft.as_micros()).unwrap_or(u64::MAX).max(1);
        // A lost race between two samples loses one of them; the average stays sound.
        let old = self.ewma_ttft_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old * (1000 - EWMA_NEW_PER_MILLE) + sample * EWMA_NEW_PER_MILLE) / 1000
        };
        self.ewma_ttft_us.store(new.max(1), Ordering::Relaxed);
        self.sampled_at_us
            .store(self.micros_since_epoch(now), Ordering::Relaxed);
    }

    /// The moving average, if measured within [`STALE_AFTER`].
    pub fn ttft(&self, now: Instant) -> Option<Duration> {
        let ewma = self.ewma_ttft_us.load(Ordering::Relaxed);
        let at = self.sampled_at_us.load(Ordering::Relaxed);
        let age = self.micros_since_epoch(now).saturating_sub(at);
        (ewma > 0 && Duration::from_micros(age) < STALE_AFTER).then(|| Duration::from_micros(ewma))
    }

    fn micros_since_epoch(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }
}

/// Decrements the in-flight count when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Stats>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One deployment of a route, as selection sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub weight: u32,
    pub priority: u32,
    /// Input + output price per million tokens, if priced.
    pub price: Option<Decimal>,
    pub stats: &'a Stats,
}

/// Why a deployment was picked (for the response header and the usage event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The strategy's choice within the best tier.
    Strategy(Strategy),
    /// `lowest_latency` measuring an unmeasured or stale deployment, or exploring.
    Explore,
    /// Every deployment's breaker is open: one is tried anyway rather than failing a route
    /// outright on the proxy's own view (panic mode, as Envoy calls it).
    AllOpen,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strategy(s) => s.as_str(),
            Self::Explore => "explore",
            Self::AllOpen => "all_open",
        }
    }
}

/// The index of the candidate to try, or `None` if none is available.
pub fn pick(
    strategy: Strategy,
    candidates: &[Candidate<'_>],
    ruled_out: impl Fn(usize) -> bool,
    now: Instant,
    rng: &mut Rng,
) -> Option<(usize, Reason)> {
    let available = |i: &usize| !ruled_out(*i) && candidates[*i].stats.breaker.available(now);
    if !(0..candidates.len()).any(|i| available(&i)) {
        return None;
    }
    let tier = (0..candidates.len())
        .filter(available)
        .map(|i| candidates[i].priority)
        .min()?;
    let tier: Vec<usize> = (0..candidates.len())
        .filter(available)
        .filter(|i| candidates[*i].priority == tier)
        .collect();
    let chosen = |i: usize| Some((i, Reason::Strategy(strategy)));
    match strategy {
        Strategy::Ordered => tier.first().copied().and_then(chosen),
        Strategy::Weighted => weighted(candidates, &tier, rng).and_then(chosen),
        Strategy::LeastInflight => {
            let least = tier.iter().map(|i| candidates[*i].stats.inflight()).min()?;
            let ties: Vec<usize> = tier
                .into_iter()
                .filter(|i| candidates[*i].stats.inflight() == least)
                .collect();
            weighted(candidates, &ties, rng).and_then(chosen)
        }
        Strategy::Cheapest => {
            let price = |i: &usize| candidates[*i].price.unwrap_or(Decimal::MAX);
            let cheapest = tier.iter().map(price).min()?;
            let ties: Vec<usize> = tier.into_iter().filter(|i| price(i) == cheapest).collect();
            weighted(candidates, &ties, rng).and_then(chosen)
        }
        Strategy::LowestLatency => {
            if let Some(unmeasured) = tier
                .iter()
                .copied()
                .find(|i| candidates[*i].stats.ttft(now).is_none())
            {
                return Some((unmeasured, Reason::Explore));
            }
            if tier.len() > 1 && rng.below(EXPLORE_ONE_IN) == 0 {
                let i = tier[rng.below(tier.len() as u64) as usize];
                return Some((i, Reason::Explore));
            }
            tier.iter()
                .copied()
                .min_by_key(|i| candidates[*i].stats.ttft(now))
                .and_then(chosen)
        }
    }
}

/// At random among `among`, in proportion to weight; all weights 0 means uniform.
fn weighted(candidates: &[Candidate<'_>], among: &[usize], rng: &mut Rng) -> Option<usize> {
    let total: u64 = among.iter().map(|i| u64::from(candidates[*i].weight)).sum();
    if total == 0 {
        return among
            .get(rng.below(among.len().max(1) as u64) as usize)
            .copied();
    }
    let mut ticket = rng.below(total);
    for i in among {
        let w = u64::from(candidates[*i].weight);
        if ticket < w {
            return Some(*i);
        }
        ticket -= w;
    }
    among.last().copied()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stats(n: usize) -> Vec<Arc<Stats>> {
        (0..n)
            .map(|_| Arc::new(Stats::new(BreakerConfig::default())))
            .collect()
    }

    fn cands<'a>(stats: &'a [Arc<Stats>], spec: &[(u32, u32, Option<i64>)]) -> Vec<Candidate<'a>> {
        spec.iter()
            .zip(stats)
            .map(|((weight, priority, price), stats)| Candidate {
                weight: *weight,
                priority: *priority,
                price: price.map(Decimal::from),
                stats,
            })
            .collect()
    }

    fn counts(strategy: Strategy, c: &[Candidate<'_>], n: usize) -> Vec<usize> {
        let mut rng = Rng::seeded(7);
        let mut seen = vec![0; c.len()];
        let now = Instant::now();
        for _ in 0..n {
            let (i, _) = pick(strategy, c, |_| false, now, &mut rng).unwrap();
            seen[i] += 1;
        }
        seen
    }

    #[test]
    fn weighted_follows_the_weights_within_the_best_tier() {
        let s = stats(3);
        let c = cands(&s, &[(1, 0, None), (3, 0, None), (100, 1, None)]);
        let seen = counts(Strategy::Weighted, &c, 8000);
        assert_eq!(seen[2], 0, "tier 1 unused while tier 0 is available");
        let share = seen[1] as f64 / 8000.0;
        assert!((0.72..0.78).contains(&share), "{seen:?}");
    }

    #[test]
    fn the_next_tier_serves_when_the_first_is_open_or_ruled_out() {
        let s = stats(3);
        let c = cands(&s, &[(1, 0, None), (1, 0, None), (1, 1, None)]);
        let now = Instant::now();
        let mut rng = Rng::seeded(1);
        // One of tier 0 ruled out (rate-limited): the other one serves.
        let (i, _) = pick(Strategy::Ordered, &c, |i| i == 0, now, &mut rng).unwrap();
        assert_eq!(i, 1);
        s[1].breaker.trip(now);
        let (i, _) = pick(Strategy::Ordered, &c, |i| i == 0, now, &mut rng).unwrap();
        assert_eq!(i, 2);
        s[2].breaker.trip(now);
        assert!(pick(Strategy::Ordered, &c, |i| i == 0, now, &mut rng).is_none());
    }

    #[test]
    fn least_inflight_and_cheapest() {
        let s = stats(3);
        let c = cands(&s, &[(1, 0, Some(5)), (1, 0, Some(2)), (1, 0, None)]);
        let _busy = (s[0].start(), s[0].start(), s[1].start());
        assert_eq!(counts(Strategy::LeastInflight, &c, 50), [0, 0, 50]);
        assert_eq!(counts(Strategy::Cheapest, &c, 50), [0, 50, 0]);
        drop(_busy);
        assert_eq!(s[0].inflight(), 0);
    }

    #[test]
    fn lowest_latency_measures_the_unknown_then_prefers_the_fastest_and_explores() {
        let s = stats(2);
        let c = cands(&s, &[(1, 0, None), (1, 0, None)]);
        let now = Instant::now();
        let mut rng = Rng::seeded(3);
        assert_eq!(
            pick(Strategy::LowestLatency, &c, |_| false, now, &mut rng),
            Some((0, Reason::Explore))
        );
        s[0].sample_ttft(Duration::from_millis(300), now);
        assert_eq!(
            pick(Strategy::LowestLatency, &c, |_| false, now, &mut rng),
            Some((1, Reason::Explore))
        );
        s[1].sample_ttft(Duration::from_millis(20), now);
        let seen = counts(Strategy::LowestLatency, &c, 2000);
        assert!(seen[1] > 1850 && seen[0] > 20, "{seen:?}");
        // A stale measurement is taken again.
        assert_eq!(
            pick(
                Strategy::LowestLatency,
                &c,
                |_| false,
                now + STALE_AFTER + Duration::from_secs(1),
                &mut rng
            ),
            Some((0, Reason::Explore))
        );
    }

    #[test]
    fn the_moving_average_moves_toward_new_samples() {
        let s = Arc::new(Stats::new(BreakerConfig::default()));
        let now = Instant::now();
        s.sample_ttft(Duration::from_millis(100), now);
        s.sample_ttft(Duration::from_millis(200), now);
        assert_eq!(s.ttft(now), Some(Duration::from_millis(120)));
    }
}
