//! Snapshots: where configuration comes from, how it is compiled, and how it is swapped in.
//!
//! A reload does all fallible work first (read, parse, validate, compile into lookup tables)
//! and then installs the result with one `ArcSwap` store. Each request loads the current
//! snapshot once and uses that one view to the end, so no request ever sees half of a change.
//!
//! Sources: a YAML file ([`file`]) or the control plane over NATS ([`nats`], with the last good
//! snapshot kept on disk by [`cache`]).

pub mod cache;
mod compile;
pub mod file;
pub mod nats;

use std::sync::Arc;

use arc_swap::ArcSwapOption;

pub use compile::{compile, CompiledSnapshot, KeyPolicy, Route};

use crate::metrics;

/// The current snapshot, shared by all requests.
#[derive(Debug, Default)]
pub struct SnapshotStore {
    current: ArcSwapOption<CompiledSnapshot>,
}

/// A snapshot older than the one being served was offered and refused.
#[derive(Debug, thiserror::Error)]
#[error("snapshot version {offered} is older than the current version {current}")]
pub struct Stale {
    pub offered: u64,
    pub current: u64,
}

impl SnapshotStore {
    /// The snapshot to serve this request with, if one has been loaded.
    pub fn get(&self) -> Option<Arc<CompiledSnapshot>> {
        self.current.load_full()
    }

    /// Installs a compiled snapshot unless it is older than the current one.
    pub fn install(&self, next: CompiledSnapshot) -> Result<(), Stale> {
        if let Some(current) = self.current.load().as_ref() {
            if next.version < current.version {
                return Err(Stale {
                    offered: next.version,
                    current: current.version,
                });
            }
        }
        metrics::snapshot_installed(&next);
        self.current.store(Some(Arc::new(next)));
        Ok(())
    }
}
