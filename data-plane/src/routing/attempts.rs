//! The attempts of one request: which deployment each goes to, which failures move the request
//! on, how long to wait before a retry, and what the response says about the choice.
//!
//! The chain is the requested route followed by its fallback routes (in order). Each deployment
//! of the chain is tried at most once, in the order each route's strategy gives over what is
//! still available (breaker not open, not tried); the route's policy then allows `retries`
//! further rounds over the chain, after an exponential backoff with full jitter (at least the
//! provider's `Retry-After` when one was sent and it fits the deadline). No attempt starts
//! after the policy's deadline, and at most `max_attempts` are made in all.
//!
//! A failure moves the request on only if its [`Trigger`] is in the policy: the client's own
//! mistakes (4xx other than 429, context window and content policy) never do, and an answer
//! that could not be parsed may have been paid for, so it does not either. A prompt too long
//! for the model skips the rest of its route and goes only to a later route with a larger
//! `context_window`. When every deployment's breaker is open, the first attempt goes to the
//! route's first deployment anyway ([`Reason::AllOpen`]).
//!
//! Failures that say something about the deployment count against its breaker; successes
//! close it and feed the latency average.

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};
use proto::Trigger;

use super::rng::Rng;
use super::select::Reason;
use super::Health;
use crate::providers::{Deployment, UpstreamError};
use crate::snapshot::Route;

/// Why the deployment that answered was chosen: `rule` or `preference` when one chose the
/// route, else the strategy, `explore` or `all_open`; `fallback` when an earlier attempt failed.
pub const ROUTE_REASON: HeaderName = HeaderName::from_static("x-switchyard-route-reason");
/// The route (alias) whose deployment answered: the requested one, a rule's or the caller's
/// preferred target, or a fallback route.
pub const ROUTE: HeaderName = HeaderName::from_static("x-switchyard-route");
/// How many attempts the request took.
pub const ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");

/// A route's retry policy with its defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub max_attempts: u32,
    pub retries: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub deadline: Option<Duration>,
    pub on: Vec<Trigger>,
}

impl From<Option<&proto::RetryPolicy>> for Policy {
    fn from(p: Option<&proto::RetryPolicy>) -> Self {
        let p = p.cloned().unwrap_or_default();
        Self {
            max_attempts: p.max_attempts.unwrap_or(3).max(1),
            retries: p.retries.unwrap_or(0),
            backoff: Duration::from_millis(p.backoff_ms.unwrap_or(200)),
            max_backoff: Duration::from_millis(p.max_backoff_ms.unwrap_or(5_000)),
            deadline: p.deadline_ms.map(Duration::from_millis),
            on: p.on.unwrap_or_else(|| Trigger::ALL.to_vec()),
        }
    }
}

/// One attempt's route, deployment and why it was chosen.
#[derive(Debug)]
pub struct Attempt<'r> {
    /// The route (of the chain) the deployment belongs to.
    pub route: &'r Route,
    pub deployment: &'r Deployment,
    pub reason: Reason,
    /// 1 for the first attempt.
    pub number: u32,
    /// What chose the route before the strategy ran (`rule`, `preference`), if anything.
    pub origin: Option<&'static str>,
    /// Wait this long before sending (a retry's backoff).
    pub wait: Duration,
}

impl Attempt<'_> {
    /// The reason as the response header and usage event give it.
    pub fn reason(&self) -> &'static str {
        if self.number > 1 {
            "fallback"
        } else {
            self.origin.unwrap_or(self.reason.as_str())
        }
    }
}

/// The attempt plan of one request.
#[derive(Debug)]
pub struct Attempts<'r> {
    chain: Vec<&'r Route>,
    policy: &'r Policy,
    /// Per route of the chain, per deployment: tried or excluded this round.
    ruled_out: Vec<Vec<bool>>,
    /// Excluded for the whole request (not reset by a retry round).
    excluded: Vec<Vec<bool>>,
    /// The route of the chain attempts come from now.
    at: usize,
    rng: Rng,
    made: u32,
    retries_left: u32,
    deadline: Option<Instant>,
    retry_after: Option<Duration>,
    upstream: Duration,
    origin: Option<&'static str>,
    /// Where outcomes are recorded (breakers) and announced.
    health: &'r Health,
}

impl<'r> Attempts<'r> {
    /// `chain` is the requested route then its fallbacks; the first route's policy governs.
    /// `origin` says what chose the requested route before the strategy (a rule, the caller's
    /// preference), for the response and the usage event. Outcomes go to `health`.
    pub fn new(
        chain: Vec<&'r Route>,
        arrived: Instant,
        origin: Option<&'static str>,
        health: &'r Health,
    ) -> Option<Self> {
        let policy = &chain.first()?.retry;
        let shape: Vec<Vec<bool>> = chain
            .iter()
            .map(|r| vec![false; r.deployments.len()])
            .collect();
        Some(Self {
            policy,
            ruled_out: shape.clone(),
            excluded: shape,
            at: 0,
            rng: Rng::thread(),
            made: 0,
            retries_left: policy.retries,
            deadline: policy.deadline.map(|d| arrived + d),
            retry_after: None,
            upstream: Duration::ZERO,
            origin,
            chain,
            health,
        })
    }

    /// Excludes, for the whole request, the deployments `out` says cannot take it.
    pub fn rule_out(&mut self, out: impl Fn(&Deployment) -> bool) {
        for (r, route) in self.chain.iter().enumerate() {
            for (i, d) in route.deployments.iter().enumerate() {
                if out(d) {
                    self.excluded[r][i] = true;
                    self.ruled_out[r][i] = true;
                }
            }
        }
    }

    /// Time left before the deadline, if the policy has one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// An attempt's timeout, cut to what is left before the deadline.
    pub fn cap(&self, timeout: Duration) -> Duration {
        self.remaining().map_or(timeout, |left| timeout.min(left))
    }

    /// Whether another attempt could follow the current one.
    pub fn more(&self) -> bool {
        let untried = self.ruled_out[self.at..]
            .iter()
            .any(|route| route.iter().any(|r| !r));
        let retry = self.retries_left > 0 && self.excluded.iter().flatten().any(|x| !x);
        self.made < self.policy.max_attempts
            && (untried || retry)
            && self.remaining() != Some(Duration::ZERO)
    }

    /// The next attempt, or `None` when nothing is left, available or allowed.
    pub fn next_attempt(&mut self) -> Option<Attempt<'r>> {
        if self.made >= self.policy.max_attempts || self.remaining() == Some(Duration::ZERO) {
            return None;
        }
        if let Some(a) = self.pick(Duration::ZERO) {
            return Some(a);
        }
        if self.made == 0 {
            return self.all_open();
        }
        if self.retries_left == 0 {
            return None;
        }
        // Another round over the chain, after a backoff.
        self.retries_left -= 1;
        let round = self.policy.retries - self.retries_left;
        let wait = self.backoff(round);
        if self.remaining().is_some_and(|left| left <= wait) {
            return None;
        }
        self.ruled_out = self.excluded.clone();
        self.at = 0;
        self.pick(wait)
    }

    fn pick(&mut self, wait: Duration) -> Option<Attempt<'r>> {
        let now = Instant::now();
        while self.at < self.chain.len() {
            let route = self.chain[self.at];
            let ruled_out = &self.ruled_out[self.at];
            match route.pick(|i| ruled_out[i], now, &mut self.rng) {
                Some((i, reason)) => {
                    self.ruled_out[self.at][i] = true;
                    let deployment = &route.deployments[i];
                    // Between the pick and here another request may have taken the probe.
                    if deployment.stats.breaker.admit(now).is_some() {
                        self.made += 1;
                        return Some(Attempt {
                            route,
                            deployment,
                            reason,
                            number: self.made,
                            wait,
                            origin: self.origin,
                        });
                    }
                }
                None => self.at += 1,
            }
        }
        None
    }

    /// The first attempt when every breaker in the chain is open: the first deployment of the
    /// requested route not excluded, tried anyway (a route is not failed on one proxy's view
    /// alone; the answer also tells the breaker whether the deployment recovered).
    fn all_open(&mut self) -> Option<Attempt<'r>> {
        let route = *self.chain.first()?;
        let i = self.excluded.first()?.iter().position(|x| !x)?;
        self.ruled_out[0][i] = true;
        self.made += 1;
        Some(Attempt {
            route,
            deployment: &route.deployments[i],
            reason: Reason::AllOpen,
            number: self.made,
            wait: Duration::ZERO,
            origin: self.origin,
        })
    }

    /// Exponential backoff with full jitter, at least a `Retry-After` the provider sent.
    fn backoff(&mut self, round: u32) -> Duration {
        let cap = self
            .policy
            .backoff
            .saturating_mul(1 << round.min(16))
            .min(self.policy.max_backoff);
        let cap_us = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        let jittered = Duration::from_micros(self.rng.below(cap_us.saturating_add(1)));
        jittered.max(self.retry_after.take().unwrap_or_default())
    }

    /// Reports a failed attempt: to the deployment's breaker, and whether the request may move
    /// on (the failure is one of the policy's triggers and something is left to try).
    pub fn failed(&mut self, attempt: &Attempt<'_>, e: &UpstreamError) -> bool {
        let kind = e.trigger();
        if kind.is_some_and(|k| !matches!(k, Trigger::ContextWindow | Trigger::ContentPolicy)) {
            self.health
                .record(attempt.deployment, false, Some(e.kind()));
        }
        let Some(kind) = kind.filter(|k| self.policy.on.contains(k)) else {
            return false;
        };
        if let Some(wait) = e.retry_after() {
            self.retry_after = Some(wait);
        }
        if kind == Trigger::ContextWindow {
            self.beyond_window(attempt.route);
        }
        self.more()
    }

    /// Skips the rest of `route` and every later route whose window is not larger: the
    /// prompt would not fit there either.
    fn beyond_window(&mut self, route: &Route) {
        let window = route.context_window.unwrap_or(0);
        for (r, later) in self.chain.iter().enumerate().skip(self.at) {
            if std::ptr::eq(*later, route) || later.context_window.is_none_or(|w| w <= window) {
                self.excluded[r].fill(true);
                self.ruled_out[r].fill(true);
            }
        }
    }

    /// Adds one attempt's time at the provider; returns the total so far.
    pub fn spent(&mut self, upstream: Duration) -> Duration {
        self.upstream += upstream;
        self.upstream
    }

    /// Reports a success (time to the first byte or chunk) to the deployment's breaker and
    /// latency average.
    pub fn succeeded(&self, deployment: &Deployment, first_byte: Duration) {
        self.health.record(deployment, true, None);
        deployment.stats.sample_ttft(first_byte, Instant::now());
    }

    /// The routing headers of the response.
    pub fn tag(&self, headers: &mut HeaderMap, attempt: &Attempt<'_>) {
        if let Ok(alias) = HeaderValue::from_str(&attempt.route.alias) {
            headers.insert(ROUTE, alias);
        }
        headers.insert(ROUTE_REASON, HeaderValue::from_static(attempt.reason()));
        headers.insert(ATTEMPTS, HeaderValue::from(attempt.number));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let p = Policy::from(None);
        assert_eq!((p.max_attempts, p.retries), (3, 0));
        assert_eq!(p.on.len(), 6);
        assert!(p.deadline.is_none());
    }
}
