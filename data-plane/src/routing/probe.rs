//! Active health checks (off unless a provider sets `health_check_ms`): every proxy sends each
//! of that provider's deployments a one-token chat request (`"ping"`, `max_tokens: 1`) at that
//! interval, and the outcome feeds the deployment's breaker like a client request's: failures
//! that say the deployment is unhealthy count against it, anything else counts as alive. While
//! a breaker is open and cooling down no check is sent; after the cool-down the check is the
//! half-open probe, so a recovered deployment is closed again without waiting for a client.
//!
//! The provider bills these tokens; they are not client requests, so they produce no usage
//! event (the README says so).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::Health;
use crate::background::Ticks;
use crate::providers::{Call, ChatRequest, JsonBody, Provider};
use crate::snapshot::SnapshotStore;

/// How often the checker looks for deployments due a check.
const TICK: Duration = Duration::from_millis(100);

/// Runs until cancelled.
pub async fn run(
    snapshots: Arc<SnapshotStore>,
    health: Arc<Health>,
    http: reqwest::Client,
    default_timeout: Duration,
    cancel: CancellationToken,
) {
    let mut last: HashMap<String, Instant> = HashMap::new();
    let mut ticks = Ticks::new(TICK, MissedTickBehavior::Skip, cancel);
    while ticks.next().await {
        let Some(snapshot) = snapshots.get() else {
            continue;
        };
        let now = Instant::now();
        for alias in snapshot.aliases() {
            let Some(route) = snapshot.route(alias) else {
                continue;
            };
            for (i, d) in route.deployments.iter().enumerate() {
                let Some(every) = d.health_check else {
                    continue;
                };
                if last
                    .get(&d.id)
                    .is_some_and(|t| now.duration_since(*t) < every)
                {
                    continue;
                }
                last.insert(d.id.clone(), now);
                if d.stats.breaker.admit(now).is_none() {
                    continue;
                }
                let (route, http, health) = (Arc::clone(route), http.clone(), Arc::clone(&health));
                tokio::spawn(async move {
                    let Some(d) = route.deployments.get(i) else {
                        return;
                    };
                    let timeout = d
                        .timeout
                        .or(route.timeout)
                        .or(d.provider.timeout())
                        .unwrap_or(default_timeout);
                    let call = Call {
                        http: &http,
                        deployment: d,
                        timeout,
                        trace: &[],
                    };
                    let result = d.provider.chat(&call, ping(&d.model_json)).await;
                    match result
                        .as_ref()
                        .err()
                        .and_then(|e| e.trigger().map(|t| (e, t)))
                    {
                        Some((e, t))
                            if !matches!(
                                t,
                                proto::Trigger::ContextWindow | proto::Trigger::ContentPolicy
                            ) =>
                        {
                            tracing::info!(deployment = %d.id, error = %e, "health check failed");
                            health.record(d, false, Some(e.kind()));
                        }
                        _ => health.record(d, true, None),
                    }
                });
            }
        }
        // Deployments gone from the snapshot are forgotten.
        if last.len() > 4 * snapshot.aliases().len().max(16) {
            last.retain(|_, t| now.duration_since(*t) < Duration::from_secs(600));
        }
    }
}

/// The check: one token for a one-word prompt.
fn ping(model: &RawValue) -> ChatRequest {
    let raw = |json: &str| RawValue::from_string(json.to_owned());
    let mut body = JsonBody::new();
    if let Ok(v) = raw(model.get()) {
        body.insert("model".into(), v);
    }
    if let Ok(v) = raw(r#"[{"role":"user","content":"ping"}]"#) {
        body.insert("messages".into(), v);
    }
    if let Ok(v) = raw("1") {
        body.insert("max_tokens".into(), v);
    }
    ChatRequest {
        body,
        stream: false,
        cache_marks: false,
    }
}
