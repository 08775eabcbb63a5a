//! Stages 5 and 9: admission and settlement as one owning value.
//!
//! [`Billing::admit`] asks admission for one attempt; what it grants is the attempt's meter
//! and its reservation together, a [`Billing`]. Whoever ends the request owns it and consumes
//! it exactly once: [`Billing::settle`] (the request's one usage event, the reservation
//! settled at the event's cost) or [`Billing::release`] (an attempt that failed over: the
//! reservation returned, no event; the attempt that ends the request emits it). A refusal
//! consumes the meter into the refused event before any `Billing` exists. If a `Billing` is
//! dropped unconsumed (the client hung up while the provider was answering, or a bug), `Drop`
//! settles it as abandoned with the prompt estimate and counts
//! `switchyard_billing_unsettled_total`: no event is lost and none is doubled.

use http::{HeaderName, HeaderValue};
use rust_decimal::Decimal;

use super::prepare::Prepared;
use crate::admission::{AdmitRequest, Admitted};
use crate::error::ApiError;
use crate::metrics;
use crate::routing::attempts::Attempt;
use crate::state::App;
use crate::usage::event::total_tokens;
use crate::usage::{End, Meter, Start, UsageSink};

/// One admitted attempt's meter and reservation, settled together exactly once.
#[derive(Debug)]
#[must_use = "a Billing must be settled or released"]
pub struct Billing {
    /// Both are `Some` until the billing is consumed.
    open: Option<(Meter, Admitted)>,
    usage: UsageSink,
}

/// What admission decided for one attempt.
// Short-lived (returned once per attempt and matched at once): boxing the billing would cost
// an allocation per request to save a move.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Admit {
    Admitted(Billing),
    /// The deployment's own rate limit is reached and another deployment may serve: not
    /// metered, the refusal kept in case no other deployment can.
    DeploymentFull(ApiError),
}

impl Billing {
    /// Meters and admits one attempt. A refusal is metered (one refused event) and becomes
    /// the client's error, unless it is the deployment's own limit and `may_skip` (another
    /// deployment could serve).
    pub async fn admit(
        app: &App,
        p: &Prepared,
        attempt: &Attempt<'_>,
        may_skip: bool,
    ) -> Result<Admit, ApiError> {
        let parts = app.parts();
        let deployment = attempt.deployment;
        let mut meter = Meter::new(Start {
            id: p.trace.id,
            started: p.trace.started,
            proxy: &parts.proxy_id,
            key: &p.key,
            tags: p.tags.clone(),
            endpoint: p.ask.endpoint,
            alias: &p.route.requested.alias,
            deployment,
            streamed: p.ask.streamed,
            prompt_estimate: p.prompt_tokens,
        });
        let decision = parts
            .admission
            .admit(&AdmitRequest {
                snapshot: &p.snapshot,
                key: &p.key,
                route: attempt.route,
                deployment,
                tags: meter.tags(),
                prompt_tokens: p.prompt_tokens,
                max_output_tokens: p.ask.max_output_tokens,
                cost_cap: p.cost_cap,
            })
            .await;
        match decision {
            Ok(admitted) => {
                meter.routed(attempt.number, attempt.reason());
                Ok(Admit::Admitted(Self::new(
                    meter,
                    admitted,
                    parts.usage.clone(),
                )))
            }
            Err(refused) if may_skip && refused.deployment_scoped() => {
                Ok(Admit::DeploymentFull(refused.into()))
            }
            Err(refused) => {
                parts.usage.emit(meter.refused(&refused));
                Err(refused.into())
            }
        }
    }

    fn new(meter: Meter, admitted: Admitted, usage: UsageSink) -> Self {
        Self {
            open: Some((meter, admitted)),
            usage,
        }
    }

    /// The `x-ratelimit-*` headers for the response.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        self.open.as_ref().map_or(&[], |(_, a)| a.headers())
    }

    /// Ends the request: emits its one usage event and settles the reservation at the
    /// event's cost and tokens.
    pub fn settle(mut self, end: End) {
        self.close(end);
    }

    /// An attempt that failed over to another: the reservation is returned (a request limit
    /// still counts the attempt) and nothing is emitted.
    pub fn release(mut self) {
        if let Some((meter, admitted)) = self.open.take() {
            admitted.settle(Decimal::ZERO, 0);
            drop(meter);
        }
    }

    fn close(&mut self, end: End) {
        if let Some((meter, admitted)) = self.open.take() {
            let event = meter.finish(end);
            admitted.settle(event.cost_usd, total_tokens(&event.usage));
            self.usage.emit(event);
        }
    }
}

impl Drop for Billing {
    fn drop(&mut self) {
        if self.open.is_some() {
            metrics::billing_unsettled();
            tracing::warn!("a request ended without settling its usage; metered as abandoned");
            self.close(End {
                status: 499,
                ok: false,
                usage: None,
                estimated_completion: Some(0),
                ttft: None,
                abandoned: true,
            });
        }
    }
}

/// The end of a request that failed with `status` before any answer.
pub fn failed(status: http::StatusCode) -> End {
    End {
        status: status.as_u16(),
        ok: false,
        usage: None,
        estimated_completion: None,
        ttft: None,
        abandoned: false,
    }
}
