//! The request log's bodies: `full` requests' payload entries from the data planes
//! (JetStream `SWITCHYARD_REQUESTS`) into `request_payloads`, one partition per UTC day, and
//! retention that drops whole partitions.
//!
//! A request's metadata is its usage event (`usage_events`, folded by `usage`); its entry in
//! `request_payloads` has the same id, so the admin API's request log (`api::requests`) joins
//! the two. Guarantees, as for usage: an entry is acknowledged only after its batch committed,
//! a redelivered entry inserts nothing (`ON CONFLICT DO NOTHING` on the key), a message that is
//! not an entry is terminated so it cannot block the consumer, and several replicas may store
//! at once on the one durable consumer. An entry older than the retention is acknowledged and
//! not stored: its day's partition is gone or about to be.
//!
//! - [`partitions`]: creating a day's partition on first use, and dropping expired ones.
//! - [`store`]: decoding and the batch insert.

pub mod partitions;
pub mod store;

use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::usage::fold::{fetch_loop, Pulled};

/// How long the request log keeps bodies.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Days of partitions kept (today included); 0 keeps every partition.
    pub days: u32,
    /// How often expired partitions are looked for.
    pub sweep_every: Duration,
}

/// Stores entries and sweeps expired partitions until `cancel` fires, reconnecting to NATS and
/// Postgres as needed.
pub async fn run(store: Store, nats_url: String, retention: Retention, cancel: CancellationToken) {
    let sweeper = {
        let (store, cancel) = (store.clone(), cancel.clone());
        tokio::spawn(async move {
            let sweep = || partitions::sweep(&store, retention.days);
            crate::background::every(retention.sweep_every, &cancel, sweep).await;
        })
    };
    crate::background::reconnecting("request-log storing", &cancel, || {
        session(&store, &nats_url, retention, &cancel)
    })
    .await;
    let _ = sweeper.await;
}

/// One connection's worth of storing.
async fn session(
    store: &Store,
    nats_url: &str,
    retention: Retention,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let nats = tokio::select! {
        () = cancel.cancelled() => return Ok(()),
        c = async_nats::ConnectOptions::new().retry_on_initial_connect().connect(crate::config::nats_servers(nats_url)) => c?,
    };
    let js = jetstream::new(nats);
    let consumer = crate::usage::stream::REQUESTS
        .open(&js)
        .await
        .map_err(|e| anyhow::anyhow!("opening the request-log stream and consumer: {e}"))?;
    let _role = crate::roles::hold(crate::roles::Role::RequestLog);
    tracing::info!(
        stream = proto::REQUESTS_STREAM,
        consumer = proto::REQUESTS_FOLD_CONSUMER,
        "storing request-log bodies"
    );
    let (tx, mut rx) = mpsc::channel(1);
    let fetcher = tokio::spawn(fetch_loop(consumer, store::decode, tx, cancel.clone()));
    let mut days = partitions::Known::default();
    let mut failures = 0u32;
    loop {
        let pulled = tokio::select! {
            () = cancel.cancelled() => break,
            p = rx.recv() => p,
        };
        let Some(mut pulled): Option<Pulled<_, _>> = pulled else {
            break;
        };
        let (entries, bad) = pulled.split();
        let stored = store::insert(store, &mut days, entries, retention.days).await;
        pulled
            .settle(stored.is_ok(), &bad, "request-log entries")
            .await;
        if !bad.is_empty() {
            metrics::counter!("switchyard_request_log_undecodable_total")
                .increment(bad.len() as u64);
        }
        match stored {
            Ok(n) => {
                failures = 0;
                metrics::counter!("switchyard_request_log_stored_total").increment(n);
            }
            Err(e) => {
                failures += 1;
                let pause = Duration::from_millis(200 * u64::from(failures.min(25)));
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "storing request-log bodies failed; they will be delivered again");
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    fetcher.abort();
    Ok(())
}
