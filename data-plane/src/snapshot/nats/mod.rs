//! The NATS snapshot source: the control plane's pointer (key-value bucket and push subject)
//! and the snapshot body (object store), as described in `proto::distribution`.
//!
//! Guarantees:
//! - The proxy never waits for NATS: the client connects (and reconnects) in the background
//!   while the cached or current snapshot serves.
//! - Core NATS pushes are at-most-once, so the pointer in the bucket is also read on every
//!   (re)connect and every [`RECHECK_INTERVAL`]; a lost push delays a change, never loses it.
//! - A pointer no newer than the served version is not fetched. A body is installed only after
//!   its size and SHA-256 match the pointer and it parses, validates and compiles (off the async
//!   threads); anything else is logged, counted and leaves the current snapshot in place.
//! - Keys that travel as parts: only the parts not already held are fetched (from the parts
//!   bucket, several at a time), each checked against its digest and compiled; the others are
//!   shared with the snapshot being replaced. So a change to one key of 100,000 costs one part.
//! - After each install the body and the new parts are written to the cache for the next start.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::{GetStreamError, GetStreamErrorKind};
use async_nats::jetstream::object_store::ObjectStore;
use async_nats::jetstream::{self, kv, ErrorCode};
use async_nats::{Client, ConnectOptions, Event, ServerAddr, Subscriber};
use futures_util::StreamExt as _;
use proto::{SnapshotPointer, SNAPSHOT_KV_BUCKET, SNAPSHOT_KV_KEY, SNAPSHOT_SUBJECT};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

mod fetch;

use super::cache::{self, DecodeError};
use super::parts::HeldParts;
use super::Context;
use super::SnapshotStore;
use crate::background::retrying;
use crate::metrics;

/// How often the pointer in the bucket is read again, in case a push was lost.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Longest a single push or bucket check (read the pointer, fetch, verify, compile) may take.
pub const HANDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause between connection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);
/// Waits between attempts to set up the client or the subscription: 100 ms, doubling up to
/// [`MAX_RECONNECT_DELAY`].
const RETRY: (Duration, Duration) = (Duration::from_millis(100), MAX_RECONNECT_DELAY);
/// Longest time one snapshot body may take to download.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest snapshot body accepted (a pointer asking for more is refused before downloading).
const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;
/// Key parts downloaded at once.
const PARTS_IN_FLIGHT: usize = 16;

/// A `--nats` value that is not a list of NATS URLs.
#[derive(Debug, thiserror::Error)]
#[error("--nats: `{url}` is not a NATS server URL: {reason}")]
pub struct BadUrl {
    url: String,
    reason: String,
}

/// Parses comma-separated NATS URLs (`nats://host:4222,nats://other:4222`).
pub fn parse_servers(urls: &str) -> Result<Vec<ServerAddr>, BadUrl> {
    let servers = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<ServerAddr>().map_err(|e| BadUrl {
                // Credentials in a URL stay out of the message.
                url: redact_userinfo(u),
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err(BadUrl {
            url: urls.to_owned(),
            reason: "empty".to_owned(),
        });
    }
    Ok(servers)
}

fn redact_userinfo(url: &str) -> String {
    match url.split_once('@') {
        Some((before, after)) => {
            let scheme = before.split_once("://").map_or("", |(s, _)| s);
            format!("{scheme}://***@{after}")
        }
        None => url.to_owned(),
    }
}

/// What the watcher needs besides the store.
#[derive(Debug, Clone)]
pub struct Source {
    pub servers: Vec<ServerAddr>,
    /// Where each installed body is written.
    pub cache: PathBuf,
    /// What compiling needs: the seal key and this proxy's deployment health.
    pub ctx: Context,
    /// Key parts of the snapshot already served (from the cache), not to be fetched again.
    pub parts: HeldParts,
}

/// Why a published snapshot was not installed.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("cannot fetch object `{object}`: {detail}")]
    Fetch { object: String, detail: String },
    #[error("object `{object}` is {got} bytes, the pointer says {want}")]
    Size { object: String, got: u64, want: u64 },
    #[error("object `{object}` does not match the pointer's SHA-256")]
    Digest { object: String },
    #[error("snapshot {version} is {source}")]
    Decode { version: u64, source: DecodeError },
    #[error("the pointer says version {pointer} but the body is version {body}")]
    Version { pointer: u64, body: u64 },
    #[error("checking the snapshot failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl SyncError {
    /// The `switchyard_snapshot_reloads_total` result label.
    fn result(&self) -> &'static str {
        match self {
            Self::Fetch { .. } | Self::Size { .. } | Self::Digest { .. } => "fetch_failed",
            // Bytes that were wrong in transit may arrive right on the next try.
            Self::Decode {
                source: DecodeError::Parts(p),
                ..
            } if p.is_transfer() => "fetch_failed",
            Self::Decode { .. } | Self::Version { .. } | Self::Task(_) => "invalid",
        }
    }
}

/// Follows the published snapshot until `cancel` fires.
pub async fn watch(source: Source, store: Arc<SnapshotStore>, cancel: CancellationToken) {
    let connected = Arc::new(Notify::new());
    let Some(client) = connect(&source.servers, &connected, &cancel).await else {
        return;
    };
    let Some(mut pushes) = subscribe(&client, &cancel).await else {
        return;
    };
    let mut watcher = Watcher::new(source, store, jetstream::new(client.clone()));
    let mut recheck = tokio::time::interval_at(
        tokio::time::Instant::now() + RECHECK_INTERVAL,
        RECHECK_INTERVAL,
    );
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let work = tokio::select! {
            () = cancel.cancelled() => return,
            message = pushes.next() => match message {
                Some(message) => Work::Push(message.payload),
                None => {
                    tracing::warn!("snapshot subscription ended; subscribing again");
                    match subscribe(&client, &cancel).await {
                        Some(s) => pushes = s,
                        None => return,
                    }
                    Work::Check("resubscribed")
                }
            },
            () = connected.notified() => Work::Check("connected"),
            _ = recheck.tick() => match client.connection_state() {
                // While disconnected, a read would only time out; reconnecting triggers one.
                State::Connected => Work::Check("recheck"),
                _ => continue,
            },
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            done = tokio::time::timeout(HANDLE_TIMEOUT, watcher.handle(work)) => {
                if done.is_err() {
                    // A fetch that never completes must not stop the watcher: the next push or
                    // recheck tries again.
                    metrics::snapshot_reload("timeout");
                    tracing::warn!(after = ?HANDLE_TIMEOUT, "fetching a snapshot took too long; trying again at the next push or recheck");
                }
            }
        }
    }
}

/// One thing to do in the watch loop.
enum Work {
    /// A pointer pushed on the subject.
    Push(bytes::Bytes),
    /// Read the pointer in the bucket; the reason is for the logs.
    Check(&'static str),
}

/// Connects in the background (the client retries on its own); loops only if the client cannot
/// even be set up.
async fn connect(
    servers: &[ServerAddr],
    connected: &Arc<Notify>,
    cancel: &CancellationToken,
) -> Option<Client> {
    retrying("cannot set up the NATS client", cancel, RETRY, || {
        let notify = Arc::clone(connected);
        ConnectOptions::new()
            .name("switchyard-data-plane")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(move |event| {
                let notify = Arc::clone(&notify);
                async move { on_event(&event, &notify) }
            })
            .connect(servers)
    })
    .await
}

fn on_event(event: &Event, connected: &Notify) {
    match event {
        Event::Connected => {
            tracing::info!("connected to NATS; reading the latest snapshot pointer");
            // A permit is kept if the loop is busy, so this connect is never missed.
            connected.notify_one();
        }
        Event::Disconnected => {
            tracing::warn!("lost the NATS connection; serving the current snapshot meanwhile");
        }
        other => tracing::debug!(event = %other, "NATS client event"),
    }
}

/// 0 for the first retry, then doubling from 50 ms up to [`MAX_RECONNECT_DELAY`].
fn reconnect_delay(attempts: usize) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).min(8)).unwrap_or(8);
    match attempts {
        0 | 1 => Duration::ZERO,
        _ => (Duration::from_millis(25) * 2u32.pow(exp)).min(MAX_RECONNECT_DELAY),
    }
}

async fn subscribe(client: &Client, cancel: &CancellationToken) -> Option<Subscriber> {
    let what = format!("cannot subscribe to {SNAPSHOT_SUBJECT}");
    retrying(&what, cancel, RETRY, || client.subscribe(SNAPSHOT_SUBJECT)).await
}

/// Turns pointers into installed snapshots.
struct Watcher {
    source: Source,
    store: Arc<SnapshotStore>,
    js: jetstream::Context,
    kv: Option<kv::Store>,
    objects: Option<ObjectStore>,
    parts_kv: Option<kv::Store>,
    /// Key parts of the snapshot being served.
    held: HeldParts,
    /// The last pointer whose body was refused as invalid: not fetched again, since the control
    /// plane publishes a fix under a new version.
    refused: Option<SnapshotPointer>,
    /// The last pointer refused as older, so hearing it again is not counted again.
    stale: Option<SnapshotPointer>,
    /// Whether "nothing published yet" has been logged.
    said_empty: bool,
}

impl Watcher {
    fn new(mut source: Source, store: Arc<SnapshotStore>, js: jetstream::Context) -> Self {
        Self {
            held: std::mem::take(&mut source.parts),
            source,
            store,
            js,
            kv: None,
            objects: None,
            parts_kv: None,
            refused: None,
            stale: None,
            said_empty: false,
        }
    }

    async fn handle(&mut self, work: Work) {
        match work {
            Work::Push(payload) => match serde_json::from_slice::<SnapshotPointer>(&payload) {
                Ok(pointer) => self.offer(pointer, "push").await,
                Err(e) => {
                    metrics::snapshot_reload("invalid");
                    tracing::warn!(error = %e, subject = SNAPSHOT_SUBJECT, "ignoring a push that is not a snapshot pointer");
                }
            },
            Work::Check(why) => self.check_bucket(why).await,
        }
    }

    /// Reads the pointer in the bucket and offers it.
    async fn check_bucket(&mut self, why: &'static str) {
        let read = match self.kv_store().await {
            Ok(Some(kv)) => kv.get(SNAPSHOT_KV_KEY).await.map_err(|e| e.to_string()),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        match read {
            Ok(Some(value)) => match serde_json::from_slice::<SnapshotPointer>(&value) {
                Ok(pointer) => self.offer(pointer, "bucket").await,
                Err(e) => {
                    metrics::snapshot_reload("invalid");
                    tracing::warn!(error = %e, bucket = SNAPSHOT_KV_BUCKET, "the snapshot pointer in the bucket is not valid JSON");
                }
            },
            Ok(None) if !self.said_empty => {
                self.said_empty = true;
                tracing::info!(
                    bucket = SNAPSHOT_KV_BUCKET,
                    "no snapshot published yet; waiting for the control plane"
                );
            }
            Ok(None) => {}
            Err(detail) => {
                metrics::snapshot_reload("fetch_failed");
                tracing::warn!(error = %detail, why, bucket = SNAPSHOT_KV_BUCKET, "cannot read the snapshot pointer; keeping the current snapshot");
            }
        }
    }

    /// The pointer bucket; `Ok(None)` while it does not exist (nothing published yet).
    async fn kv_store(&mut self) -> Result<Option<&kv::Store>, String> {
        if self.kv.is_none() {
            match self.js.get_key_value(SNAPSHOT_KV_BUCKET).await {
                Ok(kv) => self.kv = Some(kv),
                Err(e) if stream_missing(&e) => return Ok(None),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(self.kv.as_ref())
    }

    /// Fetches, checks and installs the snapshot `pointer` names, if it is newer.
    async fn offer(&mut self, pointer: SnapshotPointer, via: &'static str) {
        let current = self.store.get().map(|s| s.version);
        if let Some(current) = current.filter(|c| pointer.version <= *c) {
            if pointer.version < current && self.stale.as_ref() != Some(&pointer) {
                metrics::snapshot_reload("stale");
                tracing::warn!(
                    offered = pointer.version,
                    current,
                    via,
                    "ignoring a snapshot pointer older than the snapshot being served"
                );
                self.stale = Some(pointer);
            }
            return;
        }
        if self.refused.as_ref() == Some(&pointer) {
            tracing::debug!(
                version = pointer.version,
                via,
                "snapshot already refused; waiting for a newer one"
            );
            return;
        }
        let version = pointer.version;
        let started = std::time::Instant::now();
        let mut fetched = std::time::Duration::ZERO;
        let outcome = match self.fetch_all(&pointer).await {
            Ok((body, fresh)) => {
                fetched = started.elapsed();
                self.check_and_compile(pointer.clone(), body, fresh).await
            }
            Err(e) => Err(e),
        };
        let checked = match outcome {
            Ok(ok) => ok,
            Err(e) => {
                metrics::snapshot_reload(e.result());
                tracing::warn!(version, via, reason = %e, "snapshot refused; keeping the current snapshot");
                if e.result() == "invalid" {
                    self.refused = Some(pointer);
                }
                return;
            }
        };
        let Checked {
            decoded:
                cache::Decoded {
                    snapshot: next,
                    held,
                    compiled,
                    reused,
                },
            body,
            fresh,
        } = checked;
        let (keys, routes) = (next.key_count(), next.aliases().len());
        if let Err(stale) = self.store.install(next) {
            metrics::snapshot_reload("stale");
            tracing::warn!(reason = %stale, via, "snapshot refused; keeping the current snapshot");
            return;
        }
        self.held = held;
        let total = started.elapsed();
        metrics::snapshot_reload("ok");
        metrics::snapshot_swap(fetched, total.saturating_sub(fetched));
        metrics::snapshot_key_parts(compiled, reused);
        metrics::snapshot_published(pointer.published_at_ms);
        tracing::info!(
            version,
            keys,
            routes,
            via,
            parts_fetched = compiled,
            parts_reused = reused,
            fetch_ms = fetched.as_secs_f64() * 1e3,
            compile_ms = total.saturating_sub(fetched).as_secs_f64() * 1e3,
            "snapshot installed from NATS"
        );
        self.write_cache(pointer, body, fresh).await;
    }

    async fn write_cache(
        &self,
        pointer: SnapshotPointer,
        body: Vec<u8>,
        fresh: HashMap<String, Vec<u8>>,
    ) {
        let path = self.source.cache.clone();
        let written =
            tokio::task::spawn_blocking(move || cache::write(&path, &pointer, &body, &fresh)).await;
        let error = match written {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(path = %self.source.cache.display(), error, "cannot write the snapshot cache; a restart without NATS would start from an older copy or empty");
    }
}

/// A snapshot that passed every check, and what it was made of.
struct Checked {
    decoded: cache::Decoded,
    /// The body and the fetched parts, for the cache.
    body: Vec<u8>,
    fresh: HashMap<String, Vec<u8>>,
}

/// Whether opening a bucket failed because its stream does not exist (yet).
fn stream_missing(e: &async_nats::jetstream::context::KeyValueError) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<GetStreamError>())
        .is_some_and(|g| {
            matches!(g.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lists_parse_and_bad_urls_hide_credentials() {
        assert_eq!(
            parse_servers("nats://127.0.0.1:4222, nats://h2:4222")
                .unwrap()
                .len(),
            2
        );
        let err = parse_servers("http://user:secret@h:4222")
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("secret") && err.contains("***@h:4222"),
            "{err}"
        );
        assert!(parse_servers(" , ").is_err());
    }

    #[test]
    fn reconnects_back_off_up_to_the_cap() {
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(50));
        assert_eq!(reconnect_delay(3), Duration::from_millis(100));
        assert_eq!(reconnect_delay(100), MAX_RECONNECT_DELAY);
    }

    #[test]
    fn failures_are_labelled_for_metrics() {
        let fetch = SyncError::Digest { object: "o".into() };
        assert_eq!(fetch.result(), "fetch_failed");
        let invalid = SyncError::Version {
            pointer: 2,
            body: 1,
        };
        assert_eq!(invalid.result(), "invalid");
    }
}
