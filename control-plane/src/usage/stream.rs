//! The streams the data planes publish to (usage events, request-log payloads) and their
//! shared durable consumers, created if absent.
//!
//! Both are created with plain stream/consumer calls, which nats-server 2.9 (Debian bookworm's)
//! accepts. An existing stream or consumer is used as it is, so an operator's tuning (replicas,
//! limits) survives restarts; the data planes may create a stream first with the same names.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

/// How long JetStream drops a re-published event id by itself (the table's key does after).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long unfolded events wait in the stream (a control plane down for a week loses usage).
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// A batch not acknowledged within this is delivered again (to any replica).
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// Messages delivered and not yet acknowledged, across all replicas.
pub const MAX_ACK_PENDING: i64 = 50_000;

/// One stream and the consumer every replica shares.
#[derive(Debug)]
pub struct Spec {
    pub stream: &'static str,
    pub subjects: &'static str,
    pub description: &'static str,
    pub consumer: &'static str,
    pub consumer_description: &'static str,
}

/// Usage events, folded into the ledgers.
pub const USAGE: Spec = Spec {
    stream: proto::USAGE_STREAM,
    subjects: proto::USAGE_SUBJECTS,
    description: "Switchyard: usage events from the data planes",
    consumer: proto::USAGE_FOLD_CONSUMER,
    consumer_description: "Switchyard: folds usage into spend ledgers",
};

/// Request-log payloads, stored in `request_payloads`.
pub const REQUESTS: Spec = Spec {
    stream: proto::REQUESTS_STREAM,
    subjects: proto::REQUESTS_SUBJECTS,
    description: "Switchyard: request and response bodies for the request log",
    consumer: proto::REQUESTS_FOLD_CONSUMER,
    consumer_description: "Switchyard: stores request-log bodies",
};

/// How many replicas a stream, bucket or object store this plane creates gets
/// (`proto::replicas`: the `--nats-replicas` setting, else 3 on a cluster of 3 or more, else 1).
pub async fn replicas(js: &jetstream::Context) -> usize {
    let client = js.client();
    if client.server_info().server_id.is_empty() {
        // Not connected yet (the client retries its first connect in the background): the
        // server's INFO arrives with the connection, which a flush waits for.
        let _ = tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
    }
    let info = client.server_info();
    let replicas = proto::process_replicas(info.cluster.is_some(), info.connect_urls.len());
    tracing::debug!(
        replicas,
        cluster = info.cluster.as_deref().unwrap_or_default(),
        servers = info.connect_urls.len(),
        "JetStream replicas"
    );
    replicas
}

impl Spec {
    /// The stream's configuration when we create it, with `replicas` copies.
    pub fn stream_config(&self, replicas: usize) -> stream::Config {
        stream::Config {
            name: self.stream.to_owned(),
            description: Some(self.description.to_owned()),
            subjects: vec![self.subjects.to_owned()],
            storage: stream::StorageType::File,
            // A message goes once the fold acknowledged it (and stays, however long, until
            // then): storage holds the fold's backlog, not every event of the last days.
            retention: stream::RetentionPolicy::WorkQueue,
            duplicate_window: DUPLICATE_WINDOW,
            max_age: MAX_AGE,
            num_replicas: replicas,
            ..Default::default()
        }
    }

    /// The consumer's configuration when we create it.
    pub fn consumer_config(&self) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(self.consumer.to_owned()),
            description: Some(self.consumer_description.to_owned()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_ack_pending: MAX_ACK_PENDING,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        }
    }

    /// Opens (creating if needed) the stream and the shared consumer.
    pub async fn open(
        &self,
        js: &jetstream::Context,
    ) -> Result<consumer::PullConsumer, async_nats::Error> {
        let stream = js
            .get_or_create_stream(self.stream_config(replicas(js).await))
            .await?;
        let consumer = stream
            .get_or_create_consumer(self.consumer, self.consumer_config())
            .await?;
        Ok(consumer)
    }
}
