//! Deployment health: the control plane listens to every proxy's breaker announcements
//! ([`proto::HEALTH_SUBJECTS`]) and keeps the latest state per deployment and proxy in
//! `provider_health`, which `GET /admin/health` reads. An announcement older than the one
//! stored for the same deployment and proxy changes nothing, so late or replayed messages
//! cannot roll a state back. Proxies share health among themselves directly (each applies the
//! others' announcements), so serving never waits on this table.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use proto::HealthEvent;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Listens until cancelled, reconnecting with a capped backoff.
pub async fn run(store: Store, nats_url: String, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    while !cancel.is_cancelled() {
        match listen(&store, &nats_url, &cancel).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "health listener interrupted");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn listen(store: &Store, nats_url: &str, cancel: &CancellationToken) -> anyhow::Result<()> {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(nats_url)
        .await?;
    let mut events = client.subscribe(proto::HEALTH_SUBJECTS).await?;
    tracing::info!(subject = proto::HEALTH_SUBJECTS, "health listener started");
    loop {
        let message = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            m = events.next() => m,
        };
        let Some(message) = message else {
            anyhow::bail!("health subscription closed");
        };
        let Ok(event) = serde_json::from_slice::<HealthEvent>(&message.payload) else {
            tracing::debug!("ignoring a malformed health announcement");
            continue;
        };
        if let Err(e) = record(store, &event).await {
            tracing::warn!(error = %e, deployment = %event.deployment, "health announcement not recorded");
        }
    }
}

/// Stores one announcement unless a newer one for the same deployment and proxy is there.
pub async fn record(store: &Store, event: &HealthEvent) -> anyhow::Result<()> {
    let Some(at) = DateTime::<Utc>::from_timestamp_millis(event.time_ms) else {
        anyhow::bail!("time out of range");
    };
    let client = store.pool().get().await?;
    client
        .execute(
            "INSERT INTO provider_health (deployment, proxy, state, error, changed_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (deployment, proxy) DO UPDATE
               SET state = EXCLUDED.state, error = EXCLUDED.error,
                   changed_at = EXCLUDED.changed_at, received_at = now()
               WHERE provider_health.changed_at <= EXCLUDED.changed_at",
            &[
                &event.deployment,
                &event.proxy,
                &event.state.as_str(),
                &event.error,
                &at,
            ],
        )
        .await?;
    Ok(())
}
