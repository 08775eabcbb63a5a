//! The outbox relay: publishes a snapshot whenever the event log is ahead of what NATS has.
//!
//! The published position lives in Postgres (`outbox_state`), so a change committed just before
//! a crash is published by the next relay to run. Only one replica relays at a time: the one
//! holding a session advisory lock on its listening connection (the lock is released when that
//! connection dies). The leader wakes on `NOTIFY` from any replica's append, on local appends,
//! and every second as a safety net.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::publish::Publisher;
use crate::store::{Store, NOTIFY_CHANNEL};

const RELAY_LOCK: i64 = 0x5357_4954_4348_0003;

/// Relay settings.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub database_url: String,
    pub nats_url: String,
}

/// Runs until `cancel` fires.
pub async fn run(store: Store, config: RelayConfig, cancel: CancellationToken) {
    crate::background::reconnecting("outbox relay", &cancel, || lead(&store, &config, &cancel))
        .await;
}

/// One leadership term: connect, take the lock, publish until an error or cancellation.
async fn lead(
    store: &Store,
    config: &RelayConfig,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let (client, mut connection) =
        tokio_postgres::connect(&config.database_url, tokio_postgres::NoTls).await?;
    let wake = Arc::new(Notify::new());
    let conn_wake = Arc::clone(&wake);
    let conn_cancel = CancellationToken::new();
    let conn_task = {
        let done = conn_cancel.clone();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            loop {
                tokio::select! {
                    () = done.cancelled() => return,
                    m = messages.next() => match m {
                        Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => conn_wake.notify_one(),
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => { done.cancel(); return; }
                    }
                }
            }
        })
    };
    let result = async {
        // Wait for leadership.
        loop {
            let got: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&RELAY_LOCK])
                .await?
                .get(0);
            if got {
                break;
            }
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = conn_cancel.cancelled() => anyhow::bail!("listening connection closed"),
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
        client
            .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
            .await?;
        let nats = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(crate::config::nats_servers(&config.nats_url))
            .await?;
        let publisher = Publisher::connect(nats).await?;
        let _role = crate::roles::hold(crate::roles::Role::Publisher);
        tracing::info!("outbox relay is the active publisher");
        let local = store.appended();
        loop {
            publish_pending(store, &publisher).await?;
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = conn_cancel.cancelled() => anyhow::bail!("listening connection closed"),
                () = wake.notified() => {}
                () = local.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
    .await;
    conn_cancel.cancel();
    let _ = conn_task.await;
    result
}

/// Publishes the current snapshot if the log is ahead of the published position.
pub async fn publish_pending(store: &Store, publisher: &Publisher) -> anyhow::Result<Option<u64>> {
    let client = store.pool().get().await?;
    let published: i64 = client
        .query_one(
            "SELECT published_position FROM outbox_state WHERE id = 1",
            &[],
        )
        .await?
        .get(0);
    // Exported also when nothing is pending, so a relay that just started says which version
    // is in force (the stale-snapshot alert compares proxies with it).
    metrics::gauge!("switchyard_snapshot_published_version").set(published as f64);
    let head: i64 = client
        .query_one("SELECT COALESCE(MAX(position), 0) FROM events", &[])
        .await?
        .get(0);
    if head <= published {
        return Ok(None);
    }
    let started = Instant::now();
    let snapshot = crate::snapshot::build(store).await?;
    let version = snapshot.version;
    let pointer = publisher.publish(&snapshot).await?;
    client
        .execute(
            "UPDATE outbox_state SET published_position = GREATEST(published_position, $1), published_at = now() WHERE id = 1",
            &[&i64::try_from(version).unwrap_or(i64::MAX)],
        )
        .await?;
    metrics::gauge!("switchyard_snapshot_published_version").set(version as f64);
    metrics::histogram!("switchyard_snapshot_publish_seconds")
        .record(started.elapsed().as_secs_f64());
    tracing::info!(
        version,
        bytes = pointer.size,
        keys = snapshot.keys.len(),
        routes = snapshot.routes.len(),
        "snapshot published"
    );
    Ok(Some(version))
}
