//! Publishing a snapshot to NATS: keys as content-addressed parts into their bucket, the rest of
//! the body into the object store, pointer into the key-value bucket (for proxies that start
//! cold) and onto the push subject (for hot swaps).
//!
//! Publishing is idempotent: the object name is derived from the version, a part's name from
//! its digest (a part already stored is not sent again, so a change to one key of 100,000 sends
//! one part), and the pointer in the bucket only ever moves forward (compare-and-set on the
//! bucket revision), so a replayed or late publish never rolls proxies back. Old bodies, and
//! parts no recent snapshot names, are pruned after an announce, at most once per
//! [`PRUNE_INTERVAL`]: listing and purging is work for NATS (and for the machine the proxies
//! share with it), which a burst of changes should not pay once per change.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv, object_store};
use futures_util::StreamExt as _;
use proto::{
    KeyParts, Snapshot, SnapshotPointer, SNAPSHOT_KV_BUCKET, SNAPSHOT_KV_KEY,
    SNAPSHOT_OBJECT_BUCKET, SNAPSHOT_PARTS_BUCKET, SNAPSHOT_SUBJECT,
};
use sha2::{Digest, Sha256};

/// How many snapshot bodies to keep in the object store besides the latest.
const KEEP_OLD_OBJECTS: usize = 3;
/// Parts named by this many most recently staged snapshots are kept (the rest are purged):
/// enough for proxies still fetching an older one, and for snapshots staged ahead of their
/// announcement.
const KEEP_STAGED_PART_SETS: usize = 16;
/// Least time between two prunes.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(30);

/// A NATS failure while publishing.
#[derive(Debug, thiserror::Error)]
#[error("publishing snapshot {version} failed at {step}: {detail}")]
pub struct PublishError {
    pub version: u64,
    pub step: &'static str,
    pub detail: String,
}

/// Handles on the buckets a publisher writes to.
#[derive(Clone)]
pub struct Publisher {
    client: async_nats::Client,
    js: jetstream::Context,
    kv: kv::Store,
    objects: object_store::ObjectStore,
    parts: kv::Store,
    /// Part names of the most recently staged snapshots, newest last.
    recent: Arc<Mutex<VecDeque<HashSet<String>>>>,
    /// When the last prune started, and the least time until the next.
    pruned: Arc<Mutex<Option<Instant>>>,
    prune_interval: Duration,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    /// Opens (creating if needed) the snapshot buckets.
    pub async fn connect(client: async_nats::Client) -> Result<Self, PublishError> {
        let js = jetstream::new(client.clone());
        let kv = open_kv(
            &js,
            SNAPSHOT_KV_BUCKET,
            "Switchyard: pointer to the latest config snapshot",
            5,
        )
        .await?;
        let parts = open_kv(
            &js,
            SNAPSHOT_PARTS_BUCKET,
            "Switchyard: config snapshot key parts, by digest",
            1,
        )
        .await?;
        let objects = match js.get_object_store(SNAPSHOT_OBJECT_BUCKET).await {
            Ok(o) => o,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: SNAPSHOT_OBJECT_BUCKET.to_owned(),
                    description: Some("Switchyard: config snapshot bodies".to_owned()),
                    num_replicas: crate::usage::stream::replicas(&js).await,
                    ..Default::default()
                })
                .await
                .map_err(|e| connect_error("create object store", &e))?,
        };
        Ok(Self {
            client,
            js,
            kv,
            objects,
            parts,
            recent: Arc::new(Mutex::new(VecDeque::new())),
            pruned: Arc::new(Mutex::new(None)),
            prune_interval: PRUNE_INTERVAL,
        })
    }

    /// Prunes at most once per `interval` (default [`PRUNE_INTERVAL`]; zero prunes after every
    /// announce).
    #[must_use]
    pub fn prune_every(mut self, interval: Duration) -> Self {
        self.prune_interval = interval;
        self
    }

    /// Whether an announce now should prune (and if so, records that it does).
    fn prune_due(&self) -> bool {
        let mut last = self.pruned.lock().unwrap_or_else(|p| p.into_inner());
        let due = last.is_none_or(|at| at.elapsed() >= self.prune_interval);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// The pointer currently in the bucket, if any.
    pub async fn latest(&self) -> Result<Option<(SnapshotPointer, u64)>, PublishError> {
        let entry = self
            .kv
            .entry(SNAPSHOT_KV_KEY)
            .await
            .map_err(|e| PublishError {
                version: 0,
                step: "read pointer",
                detail: e.to_string(),
            })?;
        Ok(entry.and_then(|e| {
            let revision = e.revision;
            serde_json::from_slice::<SnapshotPointer>(&e.value)
                .ok()
                .map(|p| (p, revision))
        }))
    }

    /// Publishes `snapshot` unless the bucket already points at the same or a newer version.
    /// Returns the pointer now in force.
    pub async fn publish(&self, snapshot: &Snapshot) -> Result<SnapshotPointer, PublishError> {
        if let Some((pointer, _)) = self.latest().await? {
            if pointer.version >= snapshot.version {
                return Ok(pointer);
            }
        }
        let pointer = self.stage(snapshot).await?;
        self.announce(pointer).await
    }

    /// Uploads a snapshot's key parts (those not stored yet) and the rest of its body; no proxy
    /// sees it before [`announce`](Self::announce).
    pub async fn stage(&self, snapshot: &Snapshot) -> Result<SnapshotPointer, PublishError> {
        let version = snapshot.version;
        let err = |step, e: &dyn std::fmt::Display| PublishError {
            version,
            step,
            detail: e.to_string(),
        };
        let encoded = proto::split_keys(&snapshot.keys).map_err(|e| err("encode keys", &e))?;
        let names: HashSet<String> = encoded
            .bodies
            .iter()
            .map(|(sha, _)| KeyParts::entry_name(sha))
            .collect();
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.push_back(names);
            while recent.len() > KEEP_STAGED_PART_SETS {
                recent.pop_front();
            }
        }
        // Listed afresh each time (one short request), so a bucket emptied behind our back, or
        // filled by another replica, is seen as it is.
        let stored = stored_parts(&self.parts)
            .await
            .map_err(|e| err("list key parts", &e))?;
        for (sha, bytes) in encoded.bodies {
            let name = KeyParts::entry_name(&sha);
            if stored.contains(&name) {
                continue;
            }
            self.parts
                .put(name.as_str(), bytes.into())
                .await
                .map_err(|e| err("put key part", &e))?;
        }
        let core = Snapshot {
            schema_version: proto::SCHEMA_VERSION,
            version,
            providers: snapshot.providers.clone(),
            routes: snapshot.routes.clone(),
            keys: Vec::new(),
            teams: snapshot.teams.clone(),
            budgets: snapshot.budgets.clone(),
            pricing: snapshot.pricing.clone(),
            health: snapshot.health.clone(),
            cache_policies: snapshot.cache_policies.clone(),
            guardrails: snapshot.guardrails.clone(),
        };
        let body = serde_json::to_vec(&core).map_err(|e| err("encode", &e))?;
        let pointer = SnapshotPointer {
            version,
            object: SnapshotPointer::object_name(version),
            sha256: hex::encode(Sha256::digest(&body)),
            size: body.len() as u64,
            keys: Some(encoded.layout),
            published_at_ms: None,
        };
        let mut reader = body.as_slice();
        self.objects
            .put(pointer.object.as_str(), &mut reader)
            .await
            .map_err(|e| err("put object", &e))?;
        Ok(pointer)
    }

    /// Moves the bucket's pointer to a staged snapshot (only forward) and pushes it to the
    /// proxies. Returns the pointer now in force.
    pub async fn announce(
        &self,
        pointer: SnapshotPointer,
    ) -> Result<SnapshotPointer, PublishError> {
        let version = pointer.version;
        let err = |step, e: &dyn std::fmt::Display| PublishError {
            version,
            step,
            detail: e.to_string(),
        };
        let current = self.latest().await?;
        if let Some((p, _)) = &current {
            if p.version >= version {
                return Ok(p.clone());
            }
        }
        let pointer = SnapshotPointer {
            published_at_ms: Some(chrono::Utc::now().timestamp_millis()),
            ..pointer
        };
        let value = serde_json::to_vec(&pointer).map_err(|e| err("encode pointer", &e))?;
        let put = match &current {
            Some((_, revision)) => self
                .kv
                .update(SNAPSHOT_KV_KEY, value.clone().into(), *revision)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            None => self
                .kv
                .create(SNAPSHOT_KV_KEY, value.clone().into())
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        };
        if let Err(detail) = put {
            // Someone moved the pointer meanwhile; keep whichever is newer.
            if let Some((p, _)) = self.latest().await? {
                if p.version >= version {
                    return Ok(p);
                }
            }
            return Err(PublishError {
                version,
                step: "update pointer",
                detail,
            });
        }
        self.client
            .publish(SNAPSHOT_SUBJECT, value.into())
            .await
            .map_err(|e| err("push pointer", &e))?;
        self.client.flush().await.map_err(|e| err("flush", &e))?;
        if self.prune_due() {
            self.prune(version).await;
            self.prune_parts().await;
        }
        Ok(pointer)
    }

    /// Deletes bodies older than `version`, keeping the newest few for proxies mid-download.
    async fn prune(&self, version: u64) {
        use futures_util::StreamExt;
        let Ok(mut list) = self.objects.list().await else {
            return;
        };
        let mut names = Vec::new();
        let current = SnapshotPointer::object_name(version);
        while let Some(Ok(info)) = list.next().await {
            // Only bodies older than the one in force: a staged newer one is still to come.
            if !info.deleted && info.name < current {
                names.push(info.name);
            }
        }
        names.sort_unstable();
        let excess = names.len().saturating_sub(KEEP_OLD_OBJECTS);
        for name in names.into_iter().take(excess) {
            if let Err(e) = self.objects.delete(&name).await {
                tracing::debug!(object = %name, error = %e, "could not prune an old snapshot");
            }
        }
    }

    /// Purges stored parts that none of the recently staged snapshots names. The bucket is
    /// listed each time, so parts left by an earlier process (or another replica that led
    /// before) are found too.
    async fn prune_parts(&self) {
        let keep: HashSet<String> = {
            let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.iter().flatten().cloned().collect()
        };
        let stored = match stored_parts(&self.parts).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::debug!(error = %e, "could not list key parts to prune");
                return;
            }
        };
        let stream_name = format!("KV_{SNAPSHOT_PARTS_BUCKET}");
        let Ok(stream) = self.js.get_stream(&stream_name).await else {
            return;
        };
        for name in stored {
            if keep.contains(&name) {
                continue;
            }
            // A stream purge by subject leaves nothing behind (a key-value delete would leave
            // a marker per part forever).
            let subject = format!("$KV.{SNAPSHOT_PARTS_BUCKET}.{name}");
            if let Err(e) = stream.purge().filter(subject).await {
                tracing::debug!(part = %name, error = %e, "could not purge a key part");
            }
        }
    }
}

/// Opens a key-value bucket, creating its stream directly if it does not exist: async-nats's
/// `create_key_value` first reads account limits that nats-server 2.9 (Debian bookworm's) does
/// not report, and fails there.
/// A failure while opening the buckets, before any version is published.
fn connect_error(step: &'static str, e: &dyn std::fmt::Display) -> PublishError {
    PublishError {
        version: 0,
        step,
        detail: e.to_string(),
    }
}

async fn open_kv(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
    history: i64,
) -> Result<kv::Store, PublishError> {
    if let Ok(kv) = js.get_key_value(bucket).await {
        return Ok(kv);
    }
    js.get_or_create_stream(jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(description.to_owned()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: history,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        num_replicas: crate::usage::stream::replicas(js).await,
        ..Default::default()
    })
    .await
    .map_err(|e| connect_error("create key-value bucket", &e))?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| connect_error("open key-value bucket", &e))
}

/// Names of the parts in the bucket.
async fn stored_parts(parts: &kv::Store) -> Result<HashSet<String>, String> {
    let mut keys = parts.keys().await.map_err(|e| e.to_string())?;
    let mut names = HashSet::new();
    while let Some(key) = keys.next().await {
        names.insert(key.map_err(|e| e.to_string())?);
    }
    Ok(names)
}
