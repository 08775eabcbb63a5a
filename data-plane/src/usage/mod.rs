//! Usage metering: one [`proto::UsageEvent`] per request that reached a provider or was
//! refused by admission, published to JetStream with acknowledgement and spooled on disk while
//! NATS is away.
//!
//! - `tags`: the request's effective tags (header, body `metadata`/`user`, key's forced tags).
//! - `estimate`: token estimates where the provider's count is missing.
//! - `event`: building the event of one request ([`Meter`]).
//! - `sink`: the channels (usage events, request-log bodies) and the handler-side [`Sink`].
//! - `publisher`: the publisher and replay tasks of a channel ([`Usage`]).
//! - `spool`: the on-disk spool.
//! - `payload`: the bodies of a `full` request for the request log, emitted with its event.
//!
//! Without NATS (`--config` only) events go to the spool directory only and stay there until
//! the proxy runs with `--nats`. Nothing on the request path waits for NATS or the disk: a
//! handler's only cost is building the event and a `try_send`.

pub mod batch;
pub mod estimate;
pub mod event;
pub mod payload;
pub mod publisher;
pub mod sink;
pub mod spool;
pub mod tags;

use std::time::Duration;

use async_nats::{ConnectOptions, Event, ServerAddr};

pub use event::{End, Meter, Start};
pub use publisher::{start, Usage};
pub use sink::{LogSink, Sink, UsageSink, REQUESTS, USAGE};
pub use spool::{Spool, SpoolInUse};
pub use tags::Tags;

/// How many replicas a stream or bucket this proxy creates gets (`proto::replicas`: the
/// `--nats-replicas` setting, else 3 on a cluster of 3 or more, else 1).
pub async fn replicas(js: &async_nats::jetstream::Context) -> usize {
    let client = js.client();
    if client.server_info().server_id.is_empty() {
        // Not connected yet (the client retries its first connect in the background): the
        // server's INFO arrives with the connection, which a flush waits for.
        let _ = tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
    }
    let info = client.server_info();
    proto::process_replicas(info.cluster.is_some(), info.connect_urls.len())
}

/// Longest pause between connection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// The NATS client for usage events and budget leases, on the calling runtime. Returns at once:
/// the client connects (and reconnects) in the background, so a proxy starts while NATS is
/// down and spools meanwhile. `None` only if the client cannot even be set up (logged).
pub async fn connect(servers: Vec<ServerAddr>) -> Option<async_nats::Client> {
    // Down until the first connect says otherwise.
    crate::metrics::dependency_up("nats", false);
    let options = ConnectOptions::new()
        .name("switchyard-data-plane-usage")
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            let exp = u32::try_from(attempts.min(8)).unwrap_or(8);
            (Duration::from_millis(25) * 2u32.pow(exp)).min(MAX_RECONNECT_DELAY)
        })
        .event_callback(|event| async move {
            match event {
                Event::Connected => {
                    crate::metrics::dependency_up("nats", true);
                    tracing::info!("usage link connected to NATS");
                }
                Event::Disconnected => {
                    crate::metrics::dependency_up("nats", false);
                    tracing::warn!("usage link lost NATS; spooling usage events to disk")
                }
                other => tracing::debug!(event = %other, "usage link NATS event"),
            }
        });
    match options.connect(servers).await {
        Ok(client) => Some(client),
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the NATS client for usage events; spooling them to disk");
            None
        }
    }
}
