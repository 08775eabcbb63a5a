//! The usage stream and the fold consumer, created if absent.
//!
//! Both are created with plain stream/consumer calls, which nats-server 2.9 (Debian bookworm's)
//! accepts. An existing stream or consumer is used as it is, so an operator's tuning (replicas,
//! limits) survives restarts; the data planes may create the stream first with the same names.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use proto::{USAGE_FOLD_CONSUMER, USAGE_STREAM, USAGE_SUBJECTS};

/// How long JetStream drops a re-published event id by itself (the table's key does after).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long unfolded events wait in the stream (a control plane down for a week loses usage).
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// A batch not acknowledged within this is delivered again (to any replica).
pub const ACK_WAIT: Duration = Duration::from_secs(30);
/// Messages delivered and not yet acknowledged, across all replicas.
pub const MAX_ACK_PENDING: i64 = 50_000;

/// The stream's configuration when we create it.
pub fn stream_config() -> stream::Config {
    stream::Config {
        name: USAGE_STREAM.to_owned(),
        description: Some("Switchyard: usage events from the data planes".to_owned()),
        subjects: vec![USAGE_SUBJECTS.to_owned()],
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        max_age: MAX_AGE,
        ..Default::default()
    }
}

/// The fold consumer's configuration when we create it.
pub fn consumer_config() -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(USAGE_FOLD_CONSUMER.to_owned()),
        description: Some("Switchyard: folds usage into spend ledgers".to_owned()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending: MAX_ACK_PENDING,
        deliver_policy: consumer::DeliverPolicy::All,
        ..Default::default()
    }
}

/// Opens (creating if needed) the usage stream and the shared fold consumer.
pub async fn open(js: &jetstream::Context) -> Result<consumer::PullConsumer, async_nats::Error> {
    let stream = js.get_or_create_stream(stream_config()).await?;
    let consumer = stream
        .get_or_create_consumer(USAGE_FOLD_CONSUMER, consumer_config())
        .await?;
    Ok(consumer)
}
