//! The attempts of one request: which deployment each goes to, what a failure means for the
//! deployment's health, and what the response says about the choice.
//!
//! Each deployment of the route is tried at most once per request, at most [`MAX_ATTEMPTS`]
//! times in all; the order is the route's strategy over what is still available (breaker not
//! open, not tried, not ruled out). A half-open breaker lets exactly one request through as its
//! probe. Failures that say something about the deployment (unreachable, timeouts, 5xx, 429,
//! credentials refused, a stream that breaks before its first chunk) count against its
//! breaker; the client's own mistakes (4xx other than 429) do not. When every deployment's
//! breaker is open, the first attempt goes to the route's first deployment anyway (see
//! [`Reason::AllOpen`]); fallbacks then skip the open ones as usual.

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::rng::Rng;
use super::select::Reason;
use crate::providers::{Deployment, UpstreamError};
use crate::snapshot::Route;

/// Most attempts one request makes.
pub const MAX_ATTEMPTS: u32 = 3;

/// Why the deployment that answered was chosen: the strategy, `explore`, or `fallback` when an
/// earlier attempt failed.
pub const ROUTE_REASON: HeaderName = HeaderName::from_static("x-switchyard-route-reason");
/// How many attempts the request took.
pub const ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");

/// One attempt's deployment and why it was chosen.
#[derive(Debug)]
pub struct Attempt<'r> {
    pub deployment: &'r Deployment,
    pub reason: Reason,
    /// 1 for the first attempt.
    pub number: u32,
}

impl Attempt<'_> {
    /// The reason as the response header and usage event give it.
    pub fn reason(&self) -> &'static str {
        if self.number > 1 {
            "fallback"
        } else {
            self.reason.as_str()
        }
    }
}

/// The attempt plan of one request.
#[derive(Debug)]
pub struct Attempts<'r> {
    route: &'r Route,
    ruled_out: Vec<bool>,
    rng: Rng,
    made: u32,
    upstream: Duration,
}

impl<'r> Attempts<'r> {
    pub fn new(route: &'r Route) -> Self {
        Self {
            route,
            ruled_out: vec![false; route.deployments.len()],
            rng: Rng::thread(),
            made: 0,
            upstream: Duration::ZERO,
        }
    }

    /// Excludes the deployments `out` says cannot take this request.
    pub fn rule_out(&mut self, out: impl Fn(&Deployment) -> bool) {
        for (i, d) in self.route.deployments.iter().enumerate() {
            if out(d) {
                self.ruled_out[i] = true;
            }
        }
    }

    /// Whether another attempt could follow this one (some deployment is neither tried nor
    /// ruled out, and the attempt limit is not reached).
    pub fn more(&self) -> bool {
        self.made < MAX_ATTEMPTS && self.ruled_out.iter().any(|r| !r)
    }

    /// The next attempt, or `None` when no deployment is left or available.
    pub fn next_attempt(&mut self) -> Option<Attempt<'r>> {
        if self.made >= MAX_ATTEMPTS {
            return None;
        }
        let now = Instant::now();
        loop {
            let ruled_out = &self.ruled_out;
            let Some((i, reason)) = self.route.pick(|i| ruled_out[i], now, &mut self.rng) else {
                return self.all_open();
            };
            self.ruled_out[i] = true;
            let deployment = &self.route.deployments[i];
            // Between the pick and here another request may have taken the probe slot.
            if deployment.stats.breaker.admit(now).is_some() {
                self.made += 1;
                return Some(Attempt {
                    deployment,
                    reason,
                    number: self.made,
                });
            }
        }
    }

    /// The first attempt when every breaker of the route is open: the route's first deployment
    /// not ruled out, tried anyway (a route is not failed on one proxy's view alone; its
    /// answer also tells the breaker whether the deployment recovered).
    fn all_open(&mut self) -> Option<Attempt<'r>> {
        if self.made > 0 {
            return None;
        }
        let i = self.ruled_out.iter().position(|r| !r)?;
        self.ruled_out[i] = true;
        self.made += 1;
        Some(Attempt {
            deployment: &self.route.deployments[i],
            reason: Reason::AllOpen,
            number: self.made,
        })
    }

    /// Adds one attempt's time at the provider; returns the total so far.
    pub fn spent(&mut self, upstream: Duration) -> Duration {
        self.upstream += upstream;
        self.upstream
    }

    /// Reports a failed attempt to the deployment's breaker (if it says something about the
    /// deployment).
    pub fn failed(&self, deployment: &Deployment, e: &UpstreamError) {
        if e.counts_against_deployment() {
            let state = deployment.stats.breaker.record(false, Instant::now());
            crate::metrics::breaker(&deployment.id, state.as_str());
        }
    }

    /// Reports a success (time to the first byte or chunk) to the deployment's breaker and
    /// latency average.
    pub fn succeeded(&self, deployment: &Deployment, first_byte: Duration) {
        let now = Instant::now();
        let state = deployment.stats.breaker.record(true, now);
        crate::metrics::breaker(&deployment.id, state.as_str());
        deployment.stats.sample_ttft(first_byte, now);
    }

    /// The routing headers of the response.
    pub fn tag(&self, headers: &mut HeaderMap, attempt: &Attempt<'_>) {
        headers.insert(ROUTE_REASON, HeaderValue::from_static(attempt.reason()));
        headers.insert(ATTEMPTS, HeaderValue::from(attempt.number));
    }
}
