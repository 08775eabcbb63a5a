//! Wire types shared by both Switchyard planes.
//!
//! This crate holds serde types and names only: no I/O, no async, no clients. Wire changes are
//! additive (new optional fields with defaults), so an older proxy keeps reading a newer
//! control plane's messages; fixture tests lock the JSON shape.

mod snapshot;
mod validate;

pub use snapshot::{
    Credential, Deployment, Provider, ProviderKind, Route, Snapshot, VirtualKey, SCHEMA_VERSION,
};
pub use validate::ValidationError;
