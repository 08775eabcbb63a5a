//! Wire types shared by both Switchyard planes.
//!
//! This crate holds serde types and names only: no I/O, no async, no clients. Wire changes are
//! additive (new optional fields with defaults), so an older proxy keeps reading a newer
//! control plane's messages; fixture tests lock the JSON shape.

mod distribution;
mod snapshot;
mod validate;

pub use distribution::{
    SnapshotPointer, SNAPSHOT_KV_BUCKET, SNAPSHOT_KV_KEY, SNAPSHOT_OBJECT_BUCKET, SNAPSHOT_SUBJECT,
};

pub use snapshot::{
    Credential, Deployment, Provider, ProviderKind, Route, Snapshot, VirtualKey, SCHEMA_VERSION,
};
pub use validate::ValidationError;
