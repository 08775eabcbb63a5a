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
mod direct;
pub mod file;
mod keys;
pub mod nats;
pub mod parts;

use std::sync::Arc;

use arc_swap::ArcSwapOption;

pub use compile::{compile, compile_with_keys, CompiledSnapshot, Route};
pub use keys::{part_of_digest, KeyPart, KeyPolicy, KeyTable};

use crate::metrics;
use crate::routing::Health;
use crate::seal::SealKey;

/// What compiling a snapshot needs besides the snapshot itself.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Opens sealed provider credentials (`SWITCHYARD_SEAL_KEY`), if the proxy has it.
    pub seal_key: Option<SealKey>,
    /// This proxy's deployment health (breakers, latency), shared by every snapshot it
    /// compiles so that a swap keeps what it knows.
    pub health: Arc<Health>,
}

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

    /// Installs a compiled snapshot unless it is older than the current one. The replaced
    /// snapshot is released on a background thread (see [`retire`]), never by a request.
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
        if let Some(old) = self.current.swap(Some(Arc::new(next))) {
            retire(old);
        }
        Ok(())
    }
}

/// Lowers the calling thread's priority (best effort: a failure only costs latency).
pub fn lower_priority() {
    // 0 is the lowest priority of the normal policy: nice 19.
    let lowered = thread_priority::ThreadPriorityValue::try_from(0u8)
        .map_err(|e| e.to_string())
        .and_then(|p| {
            thread_priority::set_current_thread_priority(
                thread_priority::ThreadPriority::Crossplatform(p),
            )
            .map_err(|e| e.to_string())
        });
    if let Err(e) = lowered {
        tracing::debug!(error = %e, "could not lower a background thread's priority");
    }
}

/// Frees a replaced snapshot once no request holds it any more.
///
/// Freeing 100,000 keys takes tens of milliseconds; if the last holder were a request, that
/// request (and the others queued on its worker) would wait for it. So the snapshot is handed
/// to a thread of its own that waits for the requests in flight to let go, then frees it.
fn retire(old: Arc<CompiledSnapshot>) {
    let spawned = std::thread::Builder::new()
        .name("snapshot-retire".into())
        .spawn(move || {
            lower_priority();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while Arc::strong_count(&old) > 1 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            drop(old);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start a thread to free the replaced snapshot");
    }
}
