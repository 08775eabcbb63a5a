//! Fetching a published snapshot: the body from the object store and the key parts not held
//! from the parts bucket, each bounded in size and time, then checked (size, SHA-256, version)
//! and compiled off the async threads.

use std::collections::HashMap;

use futures_util::{StreamExt as _, TryStreamExt as _};
use proto::{KeyParts, SnapshotPointer, SNAPSHOT_OBJECT_BUCKET, SNAPSHOT_PARTS_BUCKET};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;

use super::{Checked, SyncError, Watcher, FETCH_TIMEOUT, MAX_SNAPSHOT_BYTES, PARTS_IN_FLIGHT};
use crate::snapshot::cache;

impl Watcher {
    /// Downloads the body and the key parts not held.
    pub(super) async fn fetch_all(
        &mut self,
        pointer: &SnapshotPointer,
    ) -> Result<(Vec<u8>, HashMap<String, Vec<u8>>), SyncError> {
        let body = self.fetch(pointer).await?;
        let fresh = match &pointer.keys {
            Some(layout) => self.fetch_parts(pointer, layout).await?,
            None => HashMap::new(),
        };
        Ok((body, fresh))
    }

    /// Downloads the parts of `layout` not held, [`PARTS_IN_FLIGHT`] at a time.
    async fn fetch_parts(
        &mut self,
        pointer: &SnapshotPointer,
        layout: &KeyParts,
    ) -> Result<HashMap<String, Vec<u8>>, SyncError> {
        let missing = self.held.missing(layout);
        if missing.is_empty() {
            return Ok(HashMap::new());
        }
        let fail = |detail: String| SyncError::Fetch {
            object: SNAPSHOT_PARTS_BUCKET.to_owned(),
            detail,
        };
        let total: u64 = missing.iter().map(|r| r.size).sum();
        let what = format!(
            "the pointer of version {} claims {total} bytes of key parts",
            pointer.version
        );
        within_limit(total, &what).map_err(fail)?;
        let kv = opened(
            &mut self.parts_kv,
            self.js.get_key_value(SNAPSHOT_PARTS_BUCKET),
        )
        .await
        .map_err(fail)?;
        let download = futures_util::stream::iter(missing)
            .map(|r| async move {
                let name = KeyParts::entry_name(&r.sha256);
                match kv.get(&name).await {
                    Ok(Some(bytes)) => Ok((r.sha256, bytes.to_vec())),
                    Ok(None) => Err(fail(format!("key part `{name}` is not in the bucket"))),
                    Err(e) => Err(fail(format!("key part `{name}`: {e}"))),
                }
            })
            .buffer_unordered(PARTS_IN_FLIGHT)
            .try_collect::<HashMap<String, Vec<u8>>>();
        tokio::time::timeout(FETCH_TIMEOUT, download)
            .await
            .map_err(|_| fail(format!("no complete key parts within {FETCH_TIMEOUT:?}")))?
    }

    /// Downloads the body named by `pointer`, refusing one larger than the pointer says.
    async fn fetch(&mut self, pointer: &SnapshotPointer) -> Result<Vec<u8>, SyncError> {
        let fail = |detail: String| SyncError::Fetch {
            object: pointer.object.clone(),
            detail,
        };
        let what = format!("the pointer claims {} bytes", pointer.size);
        within_limit(pointer.size, &what).map_err(fail)?;
        let objects = opened(
            &mut self.objects,
            self.js.get_object_store(SNAPSHOT_OBJECT_BUCKET),
        )
        .await
        .map_err(fail)?;
        let download = async {
            let object = objects
                .get(&pointer.object)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let mut body = Vec::with_capacity(usize::try_from(pointer.size).unwrap_or(0));
            // One byte past the expected size is enough to tell the object is too large.
            object
                .take(pointer.size + 1)
                .read_to_end(&mut body)
                .await
                .map_err(|e| fail(e.to_string()))?;
            Ok(body)
        };
        tokio::time::timeout(FETCH_TIMEOUT, download)
            .await
            .map_err(|_| fail(format!("no complete body within {FETCH_TIMEOUT:?}")))?
    }

    /// Checks size and digest, then parses and compiles, on a blocking thread: a 100k-key
    /// snapshot takes long enough to stall the requests sharing an async worker.
    pub(super) async fn check_and_compile(
        &self,
        pointer: SnapshotPointer,
        body: Vec<u8>,
        fresh: HashMap<String, Vec<u8>>,
    ) -> Result<Checked, SyncError> {
        let ctx = self.source.ctx.clone();
        let held = self.held.clone();
        let previous = self.store.get();
        tokio::task::spawn_blocking(move || {
            let got = body.len() as u64;
            if got != pointer.size {
                return Err(SyncError::Size {
                    object: pointer.object,
                    got,
                    want: pointer.size,
                });
            }
            if hex::encode(Sha256::digest(&body)) != pointer.sha256.to_ascii_lowercase() {
                return Err(SyncError::Digest {
                    object: pointer.object,
                });
            }
            let decode = |source| SyncError::Decode {
                version: pointer.version,
                source,
            };
            let decoded =
                cache::decode_published(&pointer, &body, &held, &fresh, &ctx, previous.as_deref())
                    .map_err(decode)?;
            // Not the last holder of the served snapshot: freeing it is `retire`'s job.
            drop(previous);
            if decoded.snapshot.version != pointer.version {
                return Err(SyncError::Version {
                    pointer: pointer.version,
                    body: decoded.snapshot.version,
                });
            }
            Ok(Checked {
                decoded,
                body,
                fresh,
            })
        })
        .await?
    }
}

/// Refuses what claims more than [`MAX_SNAPSHOT_BYTES`].
fn within_limit(claimed: u64, what: &str) -> Result<(), String> {
    if claimed > MAX_SNAPSHOT_BYTES {
        return Err(format!("{what}, above the limit of {MAX_SNAPSHOT_BYTES}"));
    }
    Ok(())
}

/// The store in `slot`, opened by `open` on first use and kept for the next fetch.
async fn opened<T, E: std::fmt::Display>(
    slot: &mut Option<T>,
    open: impl std::future::Future<Output = Result<T, E>>,
) -> Result<&T, String> {
    if slot.is_none() {
        *slot = Some(open.await.map_err(|e| e.to_string())?);
    }
    slot.as_ref().ok_or_else(|| "store unavailable".to_owned())
}
