//! Publishing a snapshot to NATS: body into the object store, pointer into the key-value bucket
//! (for proxies that start cold) and onto the push subject (for hot swaps).
//!
//! Publishing is idempotent: the object name is derived from the version, and the pointer in
//! the bucket only ever moves forward (compare-and-set on the bucket revision), so a replayed
//! or late publish never rolls proxies back.

use async_nats::jetstream::{self, kv, object_store};
use proto::{
    Snapshot, SnapshotPointer, SNAPSHOT_KV_BUCKET, SNAPSHOT_KV_KEY, SNAPSHOT_OBJECT_BUCKET,
    SNAPSHOT_SUBJECT,
};
use sha2::{Digest, Sha256};

/// How many snapshot bodies to keep in the object store besides the latest.
const KEEP_OLD_OBJECTS: usize = 3;

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
    kv: kv::Store,
    objects: object_store::ObjectStore,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    /// Opens (creating if needed) the snapshot buckets.
    pub async fn connect(client: async_nats::Client) -> Result<Self, PublishError> {
        let err = |step, e: &dyn std::fmt::Display| PublishError {
            version: 0,
            step,
            detail: e.to_string(),
        };
        let js = jetstream::new(client.clone());
        let kv = match js.get_key_value(SNAPSHOT_KV_BUCKET).await {
            Ok(kv) => kv,
            Err(_) => {
                // The stream a key-value bucket is made of, created directly: async-nats's
                // `create_key_value` first reads account limits that nats-server 2.9 (Debian
                // bookworm's) does not report, and fails there.
                js.get_or_create_stream(jetstream::stream::Config {
                    name: format!("KV_{SNAPSHOT_KV_BUCKET}"),
                    description: Some(
                        "Switchyard: pointer to the latest config snapshot".to_owned(),
                    ),
                    subjects: vec![format!("$KV.{SNAPSHOT_KV_BUCKET}.>")],
                    max_messages_per_subject: 5,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: jetstream::stream::DiscardPolicy::New,
                    ..Default::default()
                })
                .await
                .map_err(|e| err("create key-value bucket", &e))?;
                js.get_key_value(SNAPSHOT_KV_BUCKET)
                    .await
                    .map_err(|e| err("open key-value bucket", &e))?
            }
        };
        let objects = match js.get_object_store(SNAPSHOT_OBJECT_BUCKET).await {
            Ok(o) => o,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: SNAPSHOT_OBJECT_BUCKET.to_owned(),
                    description: Some("Switchyard: config snapshot bodies".to_owned()),
                    ..Default::default()
                })
                .await
                .map_err(|e| err("create object store", &e))?,
        };
        Ok(Self {
            client,
            kv,
            objects,
        })
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

    /// Uploads a snapshot body; no proxy sees it before [`announce`](Self::announce).
    pub async fn stage(&self, snapshot: &Snapshot) -> Result<SnapshotPointer, PublishError> {
        let version = snapshot.version;
        let err = |step, e: &dyn std::fmt::Display| PublishError {
            version,
            step,
            detail: e.to_string(),
        };
        let body = serde_json::to_vec(snapshot).map_err(|e| err("encode", &e))?;
        let pointer = SnapshotPointer {
            version,
            object: SnapshotPointer::object_name(version),
            sha256: hex::encode(Sha256::digest(&body)),
            size: body.len() as u64,
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
        self.prune(version).await;
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
}
