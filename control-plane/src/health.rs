//! Deployment health: the control plane listens to every proxy's breaker announcements
//! ([`proto::HEALTH_SUBJECTS`]) and keeps the latest state per deployment and proxy in
//! `provider_health`, which `GET /admin/health` reads. An announcement older than the one
//! stored for the same deployment and proxy changes nothing, so late or replayed messages
//! cannot roll a state back. Proxies share health among themselves directly (each applies the
//! others' announcements), so serving never waits on this table; a starting proxy asks
//! ([`proto::HEALTH_QUERY_SUBJECT`]) for the deployments some proxy saw open in the last few
//! minutes, so it does not have to meet a dead deployment itself first.

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use proto::HealthEvent;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Listens until cancelled, reconnecting with a capped backoff.
pub async fn run(store: Store, nats_url: String, cancel: CancellationToken) {
    crate::background::reconnecting("health listener", &cancel, || {
        listen(&store, &nats_url, &cancel)
    })
    .await;
}

async fn listen(store: &Store, nats_url: &str, cancel: &CancellationToken) -> anyhow::Result<()> {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(crate::config::nats_servers(nats_url))
        .await?;
    let mut events = client.subscribe(proto::HEALTH_SUBJECTS).await?;
    let mut queries = client
        .queue_subscribe(
            proto::HEALTH_QUERY_SUBJECT,
            proto::HEALTH_QUERY_QUEUE.to_owned(),
        )
        .await?;
    tracing::info!(subject = proto::HEALTH_SUBJECTS, "health listener started");
    loop {
        let message = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            q = queries.next() => {
                let Some(query) = q else {
                    anyhow::bail!("health query subscription closed");
                };
                if let Some(reply) = query.reply {
                    let open = recently_open(store).await.unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "health query not answered from the table");
                        Vec::new()
                    });
                    let body = serde_json::to_vec(&open).unwrap_or_else(|_| b"[]".to_vec());
                    if let Err(e) = client.publish(reply, body.into()).await {
                        tracing::debug!(error = %e, "health query reply not sent");
                    }
                }
                continue;
            }
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

/// How long an `open` announcement is passed on to starting proxies.
const RECENT: &str = "5 minutes";

/// The latest `open` announcements of the last few minutes, one per deployment and proxy.
pub async fn recently_open(store: &Store) -> anyhow::Result<Vec<HealthEvent>> {
    let client = store.pool().get().await?;
    Ok(recently_open_in(&**client).await?)
}

/// [`recently_open`] on a given connection or transaction (the snapshot's).
pub async fn recently_open_in(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Vec<HealthEvent>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT deployment, proxy, error, changed_at FROM provider_health
                 WHERE state = 'open' AND changed_at > now() - interval '{RECENT}'
                 ORDER BY deployment, proxy"
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| HealthEvent {
            deployment: r.get(0),
            proxy: r.get(1),
            state: proto::BreakerState::Open,
            error: r.get(2),
            time_ms: r.get::<_, DateTime<Utc>>(3).timestamp_millis(),
        })
        .collect())
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
