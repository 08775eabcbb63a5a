//! The folder: pulls usage events from the shared durable consumer in batches and folds each
//! batch in one Postgres transaction, then acknowledges it.
//!
//! Guarantees:
//! - Exactly-once effect on the ledger: an event is inserted into `usage_events` keyed by its id
//!   (`ON CONFLICT DO NOTHING RETURNING id`) and only the events that were new are added to
//!   `spend_ledger`, in the same transaction. A batch is acknowledged only after its commit; a
//!   crash in between means redelivery, and the redelivered events insert nothing.
//! - Several replicas may fold at once: JetStream hands each message to one of them, rows are
//!   written in a fixed order (event id, ledger key) so concurrent batches cannot deadlock, and
//!   a redelivered event racing its first delivery waits on the primary key and then does
//!   nothing.
//! - A message that is not a valid event is logged, counted and terminated (never redelivered),
//!   so it cannot block the consumer.
//!
//! Fetching and writing overlap: a fetcher task pulls and decodes batches while [`WRITERS`]
//! writers fold them, each batch in its own transaction.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use rust_decimal::Decimal;
use std::sync::Arc;

use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

use super::alerts::SoftBudgets;
use super::ledger;
use super::metrics::SpendMetrics;
use super::pricing::PriceBook;
use super::record::{self, DecodeError, Decoded};
use crate::spans::FoldSpan;
use crate::store::Store;
use telemetry::Tracer;

/// Most messages folded in one transaction. Ledger rows, not events, dominate a batch's cost
/// (each event adds to 1 + one per tag rows); the more events per batch, the more of them
/// share rows. 2,000 folded about twice as fast as 1,000 on bench-fold's mix.
pub const MAX_BATCH: usize = 2000;
/// Most bytes pulled for one transaction: messages carry many events each (data planes batch
/// them), so bytes, not messages, bound a batch then. Above NATS' largest message (1 MiB).
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// Batches folded at once, each in its own transaction on its own connection: while one
/// upserts ledger rows, the next inserts its events.
pub const WRITERS: usize = 2;
/// How long an idle fetcher waits for the first message of the next batch.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Longest a pull (a fetch, or the idle wait) may take before it is given up.
const PULL_TIMEOUT: Duration = Duration::from_secs(10);

/// One pulled batch: the messages, and what each of their items decoded to (a message holds
/// one or more items, one per line: `proto::batch_items`).
pub struct Pulled<T, E> {
    pub messages: Vec<jetstream::Message>,
    /// Each item's message (its index in `messages`) and what it decoded to.
    pub decoded: Vec<(usize, Result<T, E>)>,
}

impl<T, E> Pulled<T, E> {
    /// Decodes every item of every message with `decode`.
    pub fn decode(messages: Vec<jetstream::Message>, decode: fn(&[u8]) -> Result<T, E>) -> Self {
        let decoded = messages
            .iter()
            .enumerate()
            .flat_map(|(i, m)| proto::batch_items(&m.payload).map(move |item| (i, decode(item))))
            .collect();
        Self { messages, decoded }
    }
}

impl<T, E: std::fmt::Display> Pulled<T, E> {
    /// The decoded items, and the items that did not decode (their message's index and why).
    pub fn split(&mut self) -> (Vec<T>, Vec<(usize, E)>) {
        let mut good = Vec::with_capacity(self.decoded.len());
        let mut bad = Vec::new();
        for (i, d) in std::mem::take(&mut self.decoded) {
            match d {
                Ok(d) => good.push(d),
                Err(e) => bad.push((i, e)),
            }
        }
        (good, bad)
    }

    /// Items of messages that carry `header` (spool replays).
    pub fn items_with_header(&self, header: &str) -> usize {
        self.messages
            .iter()
            .filter(|m| m.headers.as_ref().is_some_and(|h| h.get(header).is_some()))
            .map(|m| proto::batch_items(&m.payload).count())
            .sum()
    }

    /// Settles every message once its batch is written (`Ok`): acknowledged, or terminated if
    /// none of its items decoded (`bad`: a message with some good items is acknowledged, its
    /// bad items logged and counted); after a failed write nothing is acknowledged and every
    /// message is delivered again soon. `what` names the items in log lines.
    pub async fn settle(&self, written: bool, bad: &[(usize, E)], what: &str) {
        if !written {
            for m in &self.messages {
                let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
            return;
        }
        let mut bad_items = vec![0usize; self.messages.len()];
        for (i, _) in bad {
            bad_items[*i] += 1;
        }
        for (i, m) in self.messages.iter().enumerate() {
            let all_bad =
                bad_items[i] > 0 && bad_items[i] == proto::batch_items(&m.payload).count();
            let kind = if all_bad { AckKind::Term } else { AckKind::Ack };
            if let Err(e) = m.ack_with(kind).await {
                // The batch is committed; a lost ack means a harmless redelivery.
                tracing::debug!(error = %e, what, "acknowledging a message failed");
            }
        }
        if let Some((i, e)) = bad.first() {
            tracing::warn!(
                subject = %self.messages[*i].subject, error = %e, count = bad.len(), what,
                "dropped items that do not decode"
            );
        }
    }
}

/// A usage batch.
type UsageBatch = Pulled<Decoded, DecodeError>;

/// What folding one batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Folded {
    /// Events added to the ledger.
    pub new: usize,
    /// Events already folded (or twice in the batch): nothing added.
    pub duplicates: usize,
}

/// Folds usage until `cancel` fires, reconnecting to NATS and Postgres as needed; each batch
/// is a span of `tracer`'s.
pub async fn run(store: Store, nats_url: String, tracer: Tracer, cancel: CancellationToken) {
    crate::background::reconnecting("usage folding", &cancel, || {
        session(&store, &nats_url, &tracer, &cancel)
    })
    .await;
}

/// One connection's worth of folding.
async fn session(
    store: &Store,
    nats_url: &str,
    tracer: &Tracer,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let nats = tokio::select! {
        () = cancel.cancelled() => return Ok(()),
        c = async_nats::ConnectOptions::new().retry_on_initial_connect().connect(crate::config::nats_servers(nats_url)) => c?,
    };
    let js = jetstream::new(nats.clone());
    let consumer = super::stream::USAGE
        .open(&js)
        .await
        .map_err(|e| anyhow::anyhow!("opening the usage stream and consumer: {e}"))?;
    let _role = crate::roles::hold(crate::roles::Role::Fold);
    tracing::info!(
        stream = proto::USAGE_STREAM,
        consumer = proto::USAGE_FOLD_CONSUMER,
        "folding usage events"
    );
    let (tx, rx) = mpsc::channel::<UsageBatch>(WRITERS);
    let rx = Arc::new(Mutex::new(rx));
    let spend = Arc::new(std::sync::Mutex::new(SpendMetrics::default()));
    let mut tasks = vec![tokio::spawn(fetch_loop(
        consumer,
        record::decode,
        tx,
        cancel.clone(),
    ))];
    for _ in 0..WRITERS {
        let mut folder = Folder::new(store.clone(), nats.clone(), Arc::clone(&spend));
        folder.tracer = tracer.clone();
        tasks.push(tokio::spawn(write_loop(
            folder,
            Arc::clone(&rx),
            cancel.clone(),
        )));
    }
    cancel.cancelled().await;
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

/// Folds pulled batches until cancelled or the fetcher is gone. A batch that fails is
/// negatively acknowledged (delivered again soon) and the writer backs off.
async fn write_loop(
    mut folder: Folder,
    rx: Arc<Mutex<mpsc::Receiver<UsageBatch>>>,
    cancel: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let pulled = {
            let mut rx = rx.lock().await;
            tokio::select! {
                () = cancel.cancelled() => return,
                p = rx.recv() => p,
            }
        };
        let Some(pulled) = pulled else { return };
        match folder.fold_pulled(pulled).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                let pause = Duration::from_millis(200 * u64::from(failures.min(25)));
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "folding a usage batch failed; it will be delivered again");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// Pulls batches, decoding each message with `decode`, until cancelled or the channel closes.
pub async fn fetch_loop<T, E>(
    consumer: PullConsumer,
    decode: fn(&[u8]) -> Result<T, E>,
    tx: mpsc::Sender<Pulled<T, E>>,
    cancel: CancellationToken,
) {
    let mut carry: Vec<jetstream::Message> = Vec::new();
    loop {
        let pulled = tokio::select! {
            () = cancel.cancelled() => return,
            // A pull whose server went away mid-request may never be answered: give it up
            // and pull again (on the reconnected client) rather than wait forever.
            m = tokio::time::timeout(PULL_TIMEOUT, pull(&consumer, &mut carry)) => match m {
                Ok(m) => m,
                Err(_) => Err("a pull was not answered in time".into()),
            },
        };
        match pulled {
            Ok(messages) if messages.is_empty() => continue,
            Ok(messages) => {
                if tx.send(Pulled::decode(messages, decode)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "pulling from JetStream failed");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

/// What is available now (up to [`MAX_BATCH`]); when nothing is, waits up to [`IDLE_WAIT`] for
/// one message and keeps it in `carry` for the next call, which then takes what came with it.
async fn pull(
    consumer: &PullConsumer,
    carry: &mut Vec<jetstream::Message>,
) -> Result<Vec<jetstream::Message>, async_nats::Error> {
    let mut out = std::mem::take(carry);
    // The expiry arms the client's own timer: a fetch whose request NATS never answers (sent
    // while a restarted server's JetStream is still recovering) would otherwise wait forever,
    // and folding with it.
    let mut batch = consumer
        .fetch()
        .max_messages(MAX_BATCH - out.len())
        .max_bytes(MAX_BATCH_BYTES)
        .expires(IDLE_WAIT)
        .messages()
        .await?;
    while let Some(m) = batch.next().await {
        match m {
            Ok(m) => out.push(m),
            Err(e) => {
                tracing::debug!(error = %e, "fetch ended early");
                break;
            }
        }
    }
    if !out.is_empty() {
        return Ok(out);
    }
    let mut wait = consumer
        .batch()
        .max_messages(1)
        .expires(IDLE_WAIT)
        .messages()
        .await?;
    while let Some(m) = wait.next().await {
        if let Ok(m) = m {
            carry.push(m);
        }
    }
    Ok(Vec::new())
}

/// The writer side: prices, the transaction, acknowledgements, metrics and soft budgets.
pub struct Folder {
    store: Store,
    nats: async_nats::Client,
    book: PriceBook,
    /// Shared by the writers, so label caps are per process.
    spend: Arc<std::sync::Mutex<SpendMetrics>>,
    budgets: SoftBudgets,
    /// Each batch is a span (`crate::spans::FoldSpan`); off by default.
    pub tracer: Tracer,
}

impl std::fmt::Debug for Folder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Folder").finish_non_exhaustive()
    }
}

impl Folder {
    pub fn new(
        store: Store,
        nats: async_nats::Client,
        spend: Arc<std::sync::Mutex<SpendMetrics>>,
    ) -> Self {
        Self {
            store,
            nats,
            book: PriceBook::new(),
            spend,
            budgets: SoftBudgets::default(),
            tracer: Tracer::default(),
        }
    }

    /// Folds a pulled batch and settles every message: acknowledged after the commit, or
    /// terminated if it did not decode. On a database error nothing is acknowledged.
    async fn fold_pulled(&mut self, mut pulled: UsageBatch) -> anyhow::Result<()> {
        let replayed = pulled.items_with_header(proto::USAGE_REPLAYED_HEADER);
        if replayed > 0 {
            // Events a data plane had spooled while NATS was away (duplicates included).
            metrics::counter!("switchyard_usage_spool_replays_total").increment(replayed as u64);
        }
        let (good, bad) = pulled.split();
        let folded = self.fold(good).await;
        pulled.settle(folded.is_ok(), &bad, "usage events").await;
        folded?;
        if !bad.is_empty() {
            metrics::counter!("switchyard_usage_undecodable_total").increment(bad.len() as u64);
        }
        Ok(())
    }

    /// Folds decoded events in one transaction (then updates metrics and checks soft budgets),
    /// as one span.
    pub async fn fold(&mut self, events: Vec<Decoded>) -> anyhow::Result<Folded> {
        let span = FoldSpan::start(&self.tracer, events.len());
        let folded = self.fold_batch(events).await;
        span.end(&folded);
        folded
    }

    async fn fold_batch(&mut self, mut events: Vec<Decoded>) -> anyhow::Result<Folded> {
        let started = Instant::now();
        let total = events.len();
        // One row per id, in id order (a fixed lock order against concurrent replicas).
        events.sort_by_key(|d| d.id);
        events.dedup_by_key(|d| d.id);
        if events.is_empty() {
            return Ok(Folded::default());
        }
        let mut client = self.store.pool().get().await?;
        self.book.refresh(&**client).await?;
        let costed: Vec<(&Decoded, Decimal)> = events
            .iter()
            .map(|d| {
                // A cache hit called no provider: it costs nothing (what it saved is on the
                // event, `saved_cost_usd`).
                let cost = if d.event.cache_hit {
                    Decimal::ZERO
                } else {
                    self.book
                        .cost(d.event.model.as_deref(), d.event.time_ms, &d.event.usage)
                };
                (d, cost)
            })
            .collect();
        let priced = started.elapsed();
        let tx = client.transaction().await?;
        let inserted = record::insert(&tx, &costed).await?;
        let new: Vec<(&proto::UsageEvent, Decimal)> = costed
            .iter()
            .filter(|(d, _)| inserted.contains(&d.id))
            .map(|(d, c)| (&d.event, *c))
            .collect();
        let wrote_events = started.elapsed();
        let rows = ledger::aggregate(new.iter().cloned());
        ledger::upsert(&tx, &rows).await?;
        let wrote_ledger = started.elapsed();
        tx.commit().await?;
        tracing::debug!(
            events = total,
            ledger_rows = rows.len(),
            priced_ms = priced.as_secs_f64() * 1e3,
            events_ms = (wrote_events - priced).as_secs_f64() * 1e3,
            ledger_ms = (wrote_ledger - wrote_events).as_secs_f64() * 1e3,
            commit_ms = (started.elapsed() - wrote_ledger).as_secs_f64() * 1e3,
            "usage batch folded"
        );

        let folded = Folded {
            new: new.len(),
            duplicates: total - new.len(),
        };
        metrics::counter!("switchyard_fold_events_total").increment(folded.new as u64);
        metrics::counter!("switchyard_fold_duplicates_total").increment(folded.duplicates as u64);
        metrics::histogram!("switchyard_fold_batch_seconds")
            .record(started.elapsed().as_secs_f64());
        if let Some(newest) = events.iter().map(|d| d.event.time_ms).max() {
            let lag = (chrono::Utc::now().timestamp_millis() - newest) as f64 / 1000.0;
            metrics::gauge!("switchyard_fold_lag_seconds").set(lag.max(0.0));
        }
        if let Ok(mut spend) = self.spend.lock() {
            spend.record(new.iter().cloned());
        }
        let touched: Vec<&proto::UsageEvent> = new.iter().map(|(e, _)| *e).collect();
        if let Err(e) = self.budgets.check(&**client, &self.nats, &touched).await {
            // The batch is committed; the next batch touching the budget checks again.
            tracing::warn!(error = %e, "checking soft budgets failed");
        }
        Ok(folded)
    }
}
