//! How snapshots travel over NATS: names and the pointer message.
//!
//! A snapshot can be large (100,000 keys is ~15 MB of JSON, past NATS's default 1 MB message
//! limit), so its body goes into a JetStream object store, which chunks it. What is small and
//! frequent is the [`SnapshotPointer`]: the latest one sits in a key-value bucket for proxies
//! that start cold, and each new one is pushed on [`SNAPSHOT_SUBJECT`] for hot swaps.

use serde::{Deserialize, Serialize};

/// Key-value bucket holding the latest [`SnapshotPointer`].
pub const SNAPSHOT_KV_BUCKET: &str = "switchyard_snapshot";
/// Key of the latest pointer in [`SNAPSHOT_KV_BUCKET`].
pub const SNAPSHOT_KV_KEY: &str = "latest";
/// Object store holding snapshot bodies (JSON of [`crate::Snapshot`]).
pub const SNAPSHOT_OBJECT_BUCKET: &str = "switchyard_snapshots";
/// Subject on which each new pointer is pushed.
pub const SNAPSHOT_SUBJECT: &str = "switchyard.snapshot.published";

/// Where to find a published snapshot and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPointer {
    /// The snapshot's version (position of the last event it contains).
    pub version: u64,
    /// Object name in [`SNAPSHOT_OBJECT_BUCKET`].
    pub object: String,
    /// Lowercase hex SHA-256 of the object's bytes.
    pub sha256: String,
    /// Size of the object in bytes.
    pub size: u64,
}

impl SnapshotPointer {
    /// The object name used for a version.
    pub fn object_name(version: u64) -> String {
        format!("snapshot-{version:020}")
    }
}
