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
//! `switchyard_billing_unsettled_total`: no event is lost and none is doubled. Whichever way
//! the event is made, its usage and outcome go on the request's span too.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use rust_decimal::Decimal;

use super::prepare::Prepared;
use crate::admission::{AdmitRequest, Admitted};
use crate::error::ApiError;
use crate::metrics;
use crate::routing::attempts::Attempt;
use crate::spans::RequestSpan;
use crate::state::App;
use crate::usage::event::total_tokens;
use crate::usage::payload::Capture;
use crate::usage::{End, LogSink, Meter, Start, UsageSink};

/// One admitted attempt's meter and reservation, settled together exactly once.
#[derive(Debug)]
#[must_use = "a Billing must be settled or released"]
pub struct Billing {
    /// Both are `Some` until the billing is consumed.
    open: Option<(Meter, Admitted)>,
    usage: UsageSink,
    /// A `full` request's bodies, emitted with its event.
    capture: Option<(Box<Capture>, LogSink)>,
    /// The request's span, which records the event's usage and outcome.
    span: RequestSpan,
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
            log: p.log,
        });
        meter.guarded(&p.guardrail);
        let capture = p.logged.as_ref().map(|request| {
            let capture = Capture::new(Arc::clone(request), parts.log_payload_max_bytes);
            (Box::new(capture), parts.request_log.clone())
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
                let mut billing = Self::new(meter, admitted, parts.usage.clone());
                billing.capture = capture;
                billing.span = p.trace.span.clone();
                Ok(Admit::Admitted(billing))
            }
            Err(refused) if may_skip && refused.deployment_scoped() => {
                Ok(Admit::DeploymentFull(refused.into()))
            }
            Err(refused) => {
                let event = meter.refused(&refused);
                p.trace.span.settled(&event);
                if let Some((capture, log)) = capture {
                    log.emit(capture.finish(&event));
                }
                parts.usage.emit(event);
                Err(refused.into())
            }
        }
    }

    fn new(meter: Meter, admitted: Admitted, usage: UsageSink) -> Self {
        Self {
            open: Some((meter, admitted)),
            usage,
            capture: None,
            span: RequestSpan::default(),
        }
    }

    /// Response bytes the client is sent next, for a `full` request's log entry.
    pub fn capture_response(&mut self, bytes: &[u8]) {
        if let Some((capture, _)) = &mut self.capture {
            capture.response(bytes);
        }
    }

    /// Adds detections the answer's output checks made, per class, to the usage event.
    pub fn guarded<'a>(&mut self, counts: impl IntoIterator<Item = (&'a String, &'a u64)>) {
        if let Some((meter, _)) = &mut self.open {
            meter.guarded(counts);
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
            self.span.settled(&event);
            if let Some((capture, log)) = self.capture.take() {
                log.emit(capture.finish(&event));
            }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use proto::Outcome;
    use tokio::sync::mpsc::error::TryRecvError;

    use super::*;
    use crate::admission::Admission;
    use crate::snapshot::{compile, CompiledSnapshot};
    use crate::usage::{Spool, Tags};

    fn snapshot() -> CompiledSnapshot {
        let s: proto::Snapshot = serde_yaml::from_str(&format!(
            r#"
providers: [{{id: p, kind: vllm, base_url: "http://127.0.0.1:1/v1"}}]
routes:
  - {{alias: chat, deployments: [{{provider: p, model: m, rpm: 100}}]}}
keys:
  - {{name: k, id: key-1, team: t1, sha256: "{:064x}", models: ["*"]}}
pricing:
  - {{model: m, input_per_mtok: "2", output_per_mtok: "10"}}
"#,
            1
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        compile(s, &crate::snapshot::Context::default()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// A billing for one admitted request, and the receiver of what it emits.
    async fn billing(
        s: &CompiledSnapshot,
        dir: &std::path::Path,
    ) -> (Billing, tokio::sync::mpsc::Receiver<proto::UsageEvent>) {
        let mut digest = [0u8; 32];
        digest[31] = 1;
        let key = Arc::clone(s.key(&digest).unwrap_or_else(|| panic!("no key")));
        let route = s.route("chat").unwrap_or_else(|| panic!("no route"));
        let deployment = route.primary().unwrap_or_else(|| panic!("no deployment"));
        let tags = Tags::new();
        let admitted = Admission::new(None, "p1".into())
            .admit(&AdmitRequest {
                snapshot: s,
                key: &key,
                route,
                deployment,
                tags: &tags,
                prompt_tokens: 100,
                max_output_tokens: Some(10),
                cost_cap: None,
            })
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        let meter = Meter::new(Start {
            id: uuid::Uuid::now_v7(),
            started: Instant::now(),
            proxy: &Arc::from("p1"),
            key: &key,
            tags,
            endpoint: "chat",
            alias: "chat",
            deployment,
            streamed: false,
            prompt_estimate: 100,
            log: proto::LogPayloads::Metadata,
        });
        let spool = Spool::open_exclusive(dir, 1 << 20, &crate::metrics::USAGE_STREAM)
            .unwrap_or_else(|e| panic!("{e}"));
        let (sink, rx) = UsageSink::channel(spool);
        (Billing::new(meter, admitted, sink), rx)
    }

    /// Each way of consuming a billing yields what it says, and nothing more: the sink is
    /// closed once the billing is gone, so a second event cannot follow.
    #[tokio::test]
    async fn a_billing_is_consumed_once_by_settle_release_or_drop() {
        let s = snapshot();
        for how in ["settle", "release", "drop"] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let (b, mut rx) = billing(&s, dir.path()).await;
            assert!(!b.headers().is_empty(), "rate-limit headers travel with it");
            match how {
                "settle" => b.settle(End {
                    status: 200,
                    ok: true,
                    usage: None,
                    estimated_completion: None,
                    ttft: None,
                    abandoned: false,
                }),
                "release" => b.release(),
                _ => drop(b),
            }
            let events: Vec<proto::UsageEvent> =
                std::iter::from_fn(|| rx.try_recv().ok()).collect();
            assert!(
                matches!(rx.try_recv(), Err(TryRecvError::Disconnected)),
                "{how}"
            );
            match (how, events.as_slice()) {
                ("settle", [e]) => assert_eq!((e.outcome, e.status), (Outcome::Ok, 200)),
                ("release", []) => {}
                ("drop", [e]) => {
                    assert_eq!(e.status, 499);
                    assert!(e.abandoned && e.usage_estimated);
                    assert_eq!(e.usage.prompt_tokens, 100, "the prompt estimate is billed");
                    assert!(e.cost_usd > Decimal::ZERO);
                }
                (how, events) => panic!("{how}: {events:?}"),
            }
        }
    }
}
