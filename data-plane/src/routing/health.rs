//! Health shared between proxies over NATS.
//!
//! When this proxy's breaker for a deployment opens or closes, it announces the transition on
//! `switchyard.health.<proxy>` ([`announce`]; dropped without NATS or when the small queue is
//! full: health is advisory, serving never waits for it). Every proxy listens to all
//! announcements and, on another proxy's `open`, opens its own breaker for that deployment, so
//! a deployment one proxy saw die is skipped by all of them within a NATS round trip; each
//! proxy then probes it itself after the cool-down. The control plane records the same events
//! for `GET /admin/health`, and a starting proxy asks it which deployments were seen open in
//! the last few minutes (subscribing first, so nothing announced meanwhile is missed).

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt as _;
use proto::{BreakerState, HealthEvent};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Announcements waiting to be published.
const QUEUE: usize = 256;
/// Longest wait at start for the control plane's list of deployments already down.
const QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

use super::Health;
use crate::providers::Deployment;

impl Health {
    /// Reports an outcome to the deployment's breaker; a transition is exported and announced to
    /// the other proxies.
    pub fn record(&self, deployment: &Deployment, success: bool, error: Option<&'static str>) {
        let breaker = &deployment.stats.breaker;
        let before = breaker.state();
        let after = breaker.record(success, Instant::now());
        if before != after {
            crate::metrics::breaker(&deployment.id, after.as_str());
            self.announce(&deployment.id, after, error);
            tracing::info!(deployment = %deployment.id, from = before.as_str(), to = after.as_str(), error, "breaker");
        }
    }

    /// Announces a local breaker transition (no-op until [`start`] ran).
    fn announce(&self, deployment: &str, state: BreakerState, error: Option<&'static str>) {
        let Some((proxy, tx)) = self.bus.get() else {
            return;
        };
        let event = HealthEvent {
            proxy: proxy.to_string(),
            deployment: deployment.to_owned(),
            state,
            time_ms: now_ms(),
            error: error.map(str::to_owned),
        };
        if tx.try_send(event).is_err() {
            tracing::debug!(deployment, "health announcement dropped (queue full)");
        }
    }

    /// Applies the `open` reports a snapshot carries, each as of the time it was made (so one
    /// older than the cool-down only makes the deployment's next request a probe).
    pub fn apply_reported(&self, reports: &[HealthEvent]) {
        let now_ms = now_ms();
        for r in reports.iter().filter(|r| r.state == BreakerState::Open) {
            let age =
                std::time::Duration::from_millis(u64::try_from(now_ms - r.time_ms).unwrap_or(0));
            if age > REPORT_MAX_AGE {
                continue;
            }
            let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
            self.report_down(&r.deployment, at);
        }
    }

    /// Applies another proxy's announcement to this proxy's breakers.
    pub fn apply(&self, own_proxy: &str, event: &HealthEvent) {
        if event.proxy == own_proxy || event.state != BreakerState::Open {
            return;
        }
        self.report_down(&event.deployment, Instant::now());
        crate::metrics::breaker(&event.deployment, BreakerState::Open.as_str());
        tracing::info!(deployment = %event.deployment, seen_by = %event.proxy, error = event.error.as_deref(), "deployment reported down by another proxy; skipping it");
    }
}

/// Starts publishing this proxy's announcements and applying the others'; returns once it
/// has asked the control plane what is already down (at most [`QUERY_TIMEOUT`]).
pub async fn start(
    client: async_nats::Client,
    proxy: Arc<str>,
    health: Arc<Health>,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
) {
    let (tx, rx) = mpsc::channel::<HealthEvent>(QUEUE);
    if health.bus.set((Arc::clone(&proxy), tx)).is_err() {
        tracing::warn!("health sharing already started");
        return;
    }
    let subject = proto::health_subject(&proxy);
    {
        let client = client.clone();
        let announcements = ReceiverStream::new(rx).take_until(cancel.clone().cancelled_owned());
        tasks.spawn(async move {
            let mut announcements = std::pin::pin!(announcements);
            while let Some(event) = announcements.next().await {
                let Ok(body) = serde_json::to_vec(&event) else {
                    continue;
                };
                if let Err(e) = client.publish(subject.clone(), body.into()).await {
                    tracing::debug!(error = %e, "health announcement not published");
                }
            }
        });
    }
    let events = match client.subscribe(proto::HEALTH_SUBJECTS).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen to other proxies' health announcements");
            return;
        }
    };
    // What the others saw before this proxy listened, before it serves (best effort and
    // bounded: the control plane may be away).
    let asked = client.request(proto::HEALTH_QUERY_SUBJECT, Vec::new().into());
    match tokio::time::timeout(QUERY_TIMEOUT, asked).await {
        Ok(Ok(reply)) => {
            let known: Vec<HealthEvent> =
                serde_json::from_slice(&reply.payload).unwrap_or_default();
            for event in &known {
                // Even this proxy's own id: it is a new process.
                health.apply("", event);
            }
        }
        _ => tracing::debug!("no answer about deployments already down"),
    }
    let events = events.take_until(cancel.clone().cancelled_owned());
    tasks.spawn(async move {
        let mut events = std::pin::pin!(events);
        while let Some(message) = events.next().await {
            let Ok(event) = serde_json::from_slice::<HealthEvent>(&message.payload) else {
                continue;
            };
            health.apply(&proxy, &event);
        }
    });
}

/// How old a reported `open` may be and still be applied from a snapshot.
const REPORT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
