//! Getting usage events (and request-log entries: the same machinery on a [`Channel`] of its
//! own) from the handlers to JetStream, or to the spool until NATS takes them.
//!
//! - Handlers call [`Sink::emit`]: a `try_send` into a bounded queue, never blocking. A
//!   full (or, during shutdown, closed) queue sends the event straight to the spool.
//! - The publisher task gathers events into batches (`batch`: per team, closed [`LINGER`]
//!   after their first event or when full) and sends each batch as one message to the
//!   channel's subject for its team (the framing: `proto::batch_items`), keeping up to
//!   [`MAX_IN_FLIGHT`] publishes un-acknowledged at once (pipelined), and retries a failed one
//!   while connected; a batch NATS does not acknowledge (not connected, no ack within
//!   [`ACK_TIMEOUT`], retries used up) goes to the spool, one line per event.
//! - The replay task re-publishes sealed spool segments (re-batched) while connected and
//!   deletes a segment only once every event in it is acknowledged. A replayed event that JetStream already has
//!   is dropped by the stream's duplicate window (and past it by the ledger's primary key).
//! - The data plane ensures the channel's stream exists (idempotently) before its first
//!   publish on a connection, so proxies work without a control plane.

use std::future::IntoFuture as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::batch::{Batch, Open, LINGER, MAX_BATCH_ITEMS};
use super::sink::{encoded, Channel, Item, Sink};
use super::spool::{self, Spool};
use crate::background::Ticks;

/// Events queued between the handlers and the publisher task.
pub const QUEUE_CAPACITY: usize = 16_384;
/// Publishes awaiting their acknowledgement at once.
pub const MAX_IN_FLIGHT: usize = 256;
/// Longest wait for a JetStream acknowledgement (and for stream management requests).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts per event before it goes to the spool.
const MAX_ATTEMPTS: u32 = 3;
/// How often the spool is checked for something to replay.
const REPLAY_EVERY: Duration = Duration::from_secs(1);
/// Pause between attempts to open or create the usage stream.
const STREAM_RETRY: Duration = Duration::from_secs(1);
/// The JetStream duplicate window of the usage stream.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long a stream keeps events (the control plane folds them within seconds).
const STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The NATS side shared by the publisher and the replay task.
#[derive(Debug)]
struct Link {
    channel: &'static Channel,
    client: async_nats::Client,
    js: jetstream::Context,
    /// The usage stream is known to exist on this server.
    stream_ready: AtomicBool,
    /// After a failed attempt to open the stream, no new attempt before this time (events are
    /// spooled meanwhile instead of each waiting for a request that will likely fail again).
    stream_retry_at: Mutex<Option<Instant>>,
}

impl Link {
    fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// Creates the usage stream unless it exists (nats-server 2.9 compatible: a plain stream
    /// create, no account-info request first).
    async fn ensure_stream(&self) -> bool {
        if self.stream_ready.load(Ordering::Relaxed) {
            return true;
        }
        let now = Instant::now();
        {
            let mut retry_at = self
                .stream_retry_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if retry_at.is_some_and(|t| now < t) {
                return false;
            }
            *retry_at = Some(now + STREAM_RETRY);
        }
        let config = jetstream::stream::Config {
            name: self.channel.stream.to_owned(),
            description: Some(self.channel.description.to_owned()),
            subjects: vec![self.channel.subjects.to_owned()],
            duplicate_window: DUPLICATE_WINDOW,
            // As the control plane creates it: a message goes once folded (see
            // control_plane::usage::stream).
            retention: jetstream::stream::RetentionPolicy::WorkQueue,
            max_age: STREAM_MAX_AGE,
            storage: jetstream::stream::StorageType::File,
            num_replicas: super::replicas(&self.js).await,
            ..Default::default()
        };
        match self.js.get_or_create_stream(config).await {
            Ok(_) => {
                self.stream_ready.store(true, Ordering::Relaxed);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, stream = self.channel.stream, "cannot open or create the stream; spooling to disk");
                false
            }
        }
    }

    async fn send(&self, batch: &Batch, replayed: bool) -> Result<PublishAckFuture, String> {
        let mut publish = PublishMessage::build()
            .payload(batch.payload())
            .message_id(batch.id.as_str());
        if replayed {
            // Lets the control plane count spool replays (`proto::USAGE_REPLAYED_HEADER`).
            publish = publish.header(proto::USAGE_REPLAYED_HEADER, "1");
        }
        self.js
            .send_publish((self.channel.subject)(batch.team.as_deref()), publish)
            .await
            .map_err(|e| e.to_string())
    }

    fn failed(&self, kind: PublishErrorKind) {
        if kind == PublishErrorKind::StreamNotFound {
            self.stream_ready.store(false, Ordering::Relaxed);
        }
    }
}

/// One batch on its way to JetStream.
#[derive(Debug)]
struct Pending {
    batch: Batch,
    sent: Instant,
    attempt: u32,
}

impl Pending {
    /// Writes the batch's items to the spool, one line each.
    fn spool(&self, spool: &Spool) {
        for item in &self.batch.items {
            spool.append(item);
        }
    }
}

type Acked = (Pending, Result<(), PublishErrorKind>);

/// The background tasks; [`Usage::shutdown`] flushes and stops them.
#[derive(Debug)]
pub struct Usage {
    link: Option<Arc<Link>>,
    spool: Arc<Spool>,
    flush: CancellationToken,
    stop_replay: CancellationToken,
    publisher: JoinHandle<()>,
    replayer: Option<JoinHandle<()>>,
}

/// Starts the publisher of `channel` (and, with NATS, the replay task) on the current runtime.
pub fn start<T: Item>(
    channel: &'static Channel,
    nats: Option<async_nats::Client>,
    spool: Spool,
) -> (Sink<T>, Usage) {
    let spool = Arc::new(spool);
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let link = nats.map(|client| {
        let js = jetstream::ContextBuilder::new()
            .timeout(ACK_TIMEOUT)
            .max_ack_inflight(MAX_IN_FLIGHT * 4)
            .build(client.clone());
        Arc::new(Link {
            channel,
            client,
            js,
            stream_ready: AtomicBool::new(false),
            stream_retry_at: Mutex::new(None),
        })
    });
    if link.is_none() {
        tracing::info!(path = %spool.dir().display(), stream = channel.stream, "no NATS configured: events are written to the spool directory only (replayed when the proxy runs with --nats)");
    }
    let flush = CancellationToken::new();
    let stop_replay = CancellationToken::new();
    let publisher = tokio::spawn(
        Publisher {
            rx,
            link: link.clone(),
            spool: Arc::clone(&spool),
            in_flight: FuturesUnordered::new(),
            open: Open::default(),
            linger_until: None,
            draining: false,
        }
        .run(flush.clone()),
    );
    let replayer = link
        .clone()
        .map(|link| tokio::spawn(replay_loop(link, Arc::clone(&spool), stop_replay.clone())));
    let sink = Sink {
        tx,
        spool: Arc::clone(&spool),
    };
    let usage = Usage {
        link,
        spool,
        flush,
        stop_replay,
        publisher,
        replayer,
    };
    (sink, usage)
}

impl Usage {
    /// Clean shutdown, after the last request ended: publishes what is queued, waits for the
    /// acknowledgements in flight, replays the spool for at most `replay_for`, and leaves
    /// anything still unpublished in the spool.
    pub async fn shutdown(self, replay_for: Duration) {
        self.stop_replay.cancel();
        if let Some(replayer) = self.replayer {
            let _ = replayer.await;
        }
        self.flush.cancel();
        let _ = self.publisher.await;
        if let Some(link) = &self.link {
            if self.spool.bytes() > 0 && link.connected() {
                let deadline = Instant::now() + replay_for;
                let _ = tokio::time::timeout(
                    replay_for + ACK_TIMEOUT,
                    replay_pass(link, &self.spool, Some(deadline)),
                )
                .await;
            }
        }
        let left = self.spool.bytes();
        if left > 0 {
            tracing::warn!(bytes = left, path = %self.spool.dir().display(), "events remain in the spool; they are replayed at the next start with NATS");
        } else {
            tracing::info!(path = %self.spool.dir().display(), "spool flushed");
        }
    }
}

struct Publisher<T> {
    rx: mpsc::Receiver<T>,
    link: Option<Arc<Link>>,
    spool: Arc<Spool>,
    in_flight: FuturesUnordered<BoxFuture<'static, Acked>>,
    /// Batches still taking items, and when they close.
    open: Open,
    linger_until: Option<tokio::time::Instant>,
    /// Shutting down: a failed publish goes to the spool without retrying.
    draining: bool,
}

impl<T: Item> Publisher<T> {
    /// While batches are open the queue is not watched (no wake-up per item): it is drained
    /// when they close, [`LINGER`] after the first item.
    async fn run(mut self, flush: CancellationToken) {
        loop {
            let linger = self.linger_until;
            tokio::select! {
                biased;
                Some((pending, result)) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.acked(pending, result).await;
                }
                () = tokio::time::sleep_until(linger.unwrap_or_else(tokio::time::Instant::now)), if linger.is_some() => {
                    self.drain_queue().await;
                    self.close_open().await;
                }
                event = self.rx.recv(), if linger.is_none() && self.in_flight.len() < MAX_IN_FLIGHT => match event {
                    Some(event) => {
                        self.linger_until = Some(tokio::time::Instant::now() + LINGER);
                        self.add(&event).await;
                    }
                    None => break,
                },
                () = flush.cancelled() => break,
            }
        }
        // Flush: whatever is queued now is the last (later emits go to the spool directly).
        self.draining = true;
        self.rx.close();
        while let Some(event) = self.rx.recv().await {
            while self.in_flight.len() >= MAX_IN_FLIGHT {
                if let Some((pending, result)) = self.in_flight.next().await {
                    self.acked(pending, result).await;
                }
            }
            self.add(&event).await;
        }
        self.close_open().await;
        while let Some((pending, result)) = self.in_flight.next().await {
            self.acked(pending, result).await;
        }
    }

    /// Takes what is queued into the open batches, while publishes may be added.
    async fn drain_queue(&mut self) {
        let mut taken = 0;
        while taken < 4 * MAX_BATCH_ITEMS && self.in_flight.len() < MAX_IN_FLIGHT {
            let Ok(event) = self.rx.try_recv() else {
                break;
            };
            self.add(&event).await;
            taken += 1;
        }
    }

    async fn add(&mut self, event: &T) {
        let Some(json) = encoded(&self.spool, event) else {
            return;
        };
        for batch in self.open.add(event.id(), event.team(), json) {
            self.submit_batch(batch).await;
        }
    }

    async fn close_open(&mut self) {
        self.linger_until = None;
        for batch in self.open.take_all() {
            self.submit_batch(batch).await;
        }
    }

    async fn submit_batch(&mut self, batch: Batch) {
        let pending = Pending {
            batch,
            sent: Instant::now(),
            attempt: 1,
        };
        self.submit(pending).await;
    }

    async fn submit(&mut self, mut pending: Pending) {
        let Some(link) = self.link.clone() else {
            pending.spool(&self.spool);
            return;
        };
        if !link.connected() || !link.ensure_stream().await {
            pending.spool(&self.spool);
            return;
        }
        pending.sent = Instant::now();
        match link.send(&pending.batch, false).await {
            Ok(ack) => self.in_flight.push(
                async move {
                    let result = ack.await.map(drop).map_err(|e| e.kind());
                    (pending, result)
                }
                .boxed(),
            ),
            Err(e) => {
                self.spool.metrics().publish_failure();
                tracing::warn!(id = %pending.batch.id, error = %e, stream = link.channel.stream, "cannot publish; spooling it");
                pending.spool(&self.spool);
            }
        }
    }

    async fn acked(&mut self, mut pending: Pending, result: Result<(), PublishErrorKind>) {
        match result {
            Ok(()) => {
                let items = pending.batch.items.len() as u64;
                self.spool.metrics().published("live", items);
                self.spool.metrics().publish_latency(pending.sent.elapsed());
            }
            Err(kind) => {
                self.spool.metrics().publish_failure();
                let retry = !self.draining
                    && pending.attempt < MAX_ATTEMPTS
                    && self.link.as_ref().is_some_and(|l| {
                        l.failed(kind);
                        l.connected()
                    });
                if retry {
                    pending.attempt += 1;
                    self.submit(pending).await;
                } else {
                    tracing::debug!(id = %pending.batch.id, error = %kind, "not acknowledged; spooling it");
                    pending.spool(&self.spool);
                }
            }
        }
    }
}

async fn replay_loop(link: Arc<Link>, spool: Arc<Spool>, stop: CancellationToken) {
    let mut ticks = Ticks::new(REPLAY_EVERY, MissedTickBehavior::Delay, stop.clone());
    while ticks.next().await {
        if spool.bytes() == 0 || !link.connected() {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = replay_pass(&link, &spool, None) => {}
        }
    }
}

/// Re-publishes sealed segments, oldest first, each pipelined; stops at the first segment
/// with a failure (to try again later) or at `deadline`.
async fn replay_pass(link: &Link, spool: &Arc<Spool>, deadline: Option<Instant>) {
    spool.seal();
    for segment in spool.sealed() {
        if deadline.is_some_and(|d| Instant::now() >= d) || !link.ensure_stream().await {
            return;
        }
        let path = segment.clone();
        let metrics = spool.metrics();
        let events = match tokio::task::spawn_blocking(move || spool::read_segment(&path, metrics))
            .await
        {
            Ok(Ok(events)) => events,
            Ok(Err(e)) => {
                tracing::warn!(path = %segment.display(), error = %e, "cannot read a spool segment; retrying later");
                return;
            }
            Err(_) => return,
        };
        // Re-batched as they are read (per team, in order); the items keep their own ids.
        let mut open = Open::default();
        let mut batches = Vec::new();
        for event in events {
            batches.extend(open.add(&event.id, event.team.as_deref(), event.json));
        }
        batches.extend(open.take_all());
        let mut acks = FuturesUnordered::new();
        let mut acked = 0u64;
        let mut failed = false;
        for batch in &batches {
            while acks.len() >= MAX_IN_FLIGHT {
                match acks.next().await {
                    Some((n, Ok(_))) => acked += n,
                    _ => failed = true,
                }
            }
            if failed {
                break;
            }
            match link.send(batch, true).await {
                Ok(ack) => {
                    let n = batch.items.len() as u64;
                    acks.push(ack.into_future().map(move |r| (n, r)));
                }
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        while let Some((n, result)) = acks.next().await {
            match result {
                Ok(_) => acked += n,
                Err(e) => {
                    link.failed(e.kind());
                    failed = true;
                }
            }
        }
        if failed {
            metrics.publish_failure();
            tracing::info!(path = %segment.display(), "replaying a spool segment failed; retrying later");
            return;
        }
        if let Err(e) = spool.remove(&segment) {
            tracing::warn!(path = %segment.display(), error = %e, "cannot delete a replayed spool segment; it will be replayed again (harmless)");
            return;
        }
        metrics.replayed(acked);
        metrics.published("replay", acked);
        tracing::info!(events = acked, path = %segment.display(), stream = link.channel.stream, "replayed spooled events");
    }
}
