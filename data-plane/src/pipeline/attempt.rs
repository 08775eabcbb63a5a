//! Stage 7: the one attempt loop, for every operation.
//!
//! Each turn takes the next [`Attempt`] from the plan (`routing::attempts`: strategy,
//! breakers, fallback chain, backoff, deadline), waits out its backoff, admits it
//! ([`Billing::admit`]), and has the [`Operation`] send it. A failure is judged once, by the
//! plan's classifier: if the request goes on, the attempt's billing is released and the next
//! one is tried; if not, the billing is settled as failed and the error is the client's. The
//! first answer ends the loop with a [`Won`], which owns the billing from then on.
//!
//! Each send is an attempt span (`crate::spans::AttemptSpan`), ended with its outcome; the
//! upstream request carries its context (`Call::trace`).

use std::future::Future;
use std::time::{Duration, Instant};

use super::billing::{self, Admit, Billing};
use super::prepare::Prepared;
use crate::error::ApiError;
use crate::metrics;
use crate::providers::{Call, Deployment, UpstreamError};
use crate::routing::attempts::{Attempt, Attempts};
use crate::routing::select::InFlight;
use crate::snapshot::Route;
use crate::state::App;

/// What one attempt of an operation sends.
pub trait Operation {
    /// What the provider's answer is.
    type Reply: Send;

    /// Sends the request to `call.deployment`. `last`: no attempt can follow this one, so
    /// the request body may be given away instead of copied. An answer that is not complete
    /// enough to be the request's (a stream without its first chunk) is a failure here, so
    /// another deployment can still take the request.
    fn send(
        &mut self,
        call: &Call<'_>,
        last: bool,
    ) -> impl Future<Output = Result<Self::Reply, UpstreamError>> + Send;
}

/// The attempt that got an answer, and everything the success path needs.
#[derive(Debug)]
pub struct Won<'p, R> {
    pub reply: R,
    pub billing: Billing,
    pub attempt: Attempt<'p>,
    /// The attempt's timeout (also the longest gap between stream chunks).
    pub timeout: Duration,
    /// Time spent waiting on providers over all attempts.
    pub upstream: Duration,
    /// From sending this attempt to its answer (or first chunk).
    pub first_byte: Duration,
    /// Counts the request in its deployment's in-flight requests while it lives.
    pub inflight: InFlight,
}

/// Runs attempts until one gets an answer; `last` is an earlier refusal to report if no
/// attempt can be made.
pub async fn run<'p, O: Operation>(
    app: &App,
    p: &'p Prepared,
    attempts: &mut Attempts<'p>,
    op: &mut O,
    mut last: Option<ApiError>,
) -> Result<Won<'p, O::Reply>, ApiError> {
    loop {
        let Some(attempt) = attempts.next_attempt() else {
            return Err(last.unwrap_or_else(|| p.not_found()));
        };
        if !attempt.wait.is_zero() {
            tokio::time::sleep(attempt.wait).await;
        }
        let billing = match Billing::admit(app, p, &attempt, attempts.more()).await? {
            Admit::Admitted(billing) => billing,
            Admit::DeploymentFull(refusal) => {
                last = Some(refusal);
                continue;
            }
        };
        let deployment = attempt.deployment;
        let parts = app.parts();
        let span = p
            .trace
            .span
            .attempt(&parts.tracer, p.ask.endpoint, deployment, attempt.number);
        let timeout = attempts.cap(timeout_for(app, attempt.route, deployment));
        let call = Call {
            http: &parts.http,
            deployment,
            timeout,
            trace: span.headers(),
        };
        let inflight = deployment.stats.start();
        let sent = Instant::now();
        // `more()` is what the plan knows before this attempt's outcome: if it says no
        // attempt can follow, none will (the body may be moved into this one).
        let reply = op.send(&call, !attempts.more()).await;
        let first_byte = sent.elapsed();
        let upstream = attempts.spent(first_byte);
        let result = reply.as_ref().map_or_else(UpstreamError::kind, |_| "ok");
        metrics::attempt(deployment.provider.id(), result);
        span.end(reply.as_ref().map(drop));
        match reply {
            Ok(reply) => {
                attempts.succeeded(deployment, first_byte);
                p.trace.span.served_by(deployment);
                return Ok(Won {
                    reply,
                    billing,
                    timeout,
                    upstream,
                    first_byte,
                    inflight,
                    attempt,
                });
            }
            Err(e) => {
                let goes_on = attempts.failed(&attempt, &e);
                last = Some(failed(p, deployment, billing, e, goes_on)?);
            }
        }
    }
}

/// A failed attempt: if the request `goes_on` to another, its billing is released and the
/// error kept as the request's latest; otherwise it is settled as failed and becomes the
/// client's error.
fn failed(
    p: &Prepared,
    deployment: &Deployment,
    billing: Billing,
    e: UpstreamError,
    goes_on: bool,
) -> Result<ApiError, ApiError> {
    let labels = p.labels(deployment);
    if goes_on {
        billing.release();
        metrics::fallback(labels.route, labels.provider, e.kind());
        tracing::info!(route = labels.route, provider = labels.provider, error = %e, "attempt failed; trying another deployment");
        return Ok(e.into());
    }
    let status = e.status();
    p.trace.span.served_by(deployment);
    billing.settle(billing::failed(status));
    metrics::request_done(labels, status.as_u16(), p.trace.started.elapsed());
    Err(e.into())
}

/// The deployment's timeout, else the route's, else the provider's, else the process default.
pub(super) fn timeout_for(app: &App, route: &Route, deployment: &Deployment) -> Duration {
    deployment
        .timeout
        .or(route.timeout)
        .or(deployment.provider.timeout())
        .unwrap_or(app.parts().default_timeout)
}
