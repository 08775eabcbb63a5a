//! The file snapshot source: a YAML file, checked strictly and hot-reloaded when it changes.
//!
//! Unknown fields are errors here (a typo in a hand-written file must not silently change
//! behaviour). A file that fails to read, parse, validate or compile is refused with its
//! reasons logged, and the snapshot already being served stays in place.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use proto::Snapshot;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::Context;
use super::{compile, CompiledSnapshot, SnapshotStore};
use crate::background::Ticks;
use crate::metrics;

/// Why a snapshot file was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML for a snapshot: {source}")]
    Yaml {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("{path} has unknown fields: {}", fields.join(", "))]
    UnknownFields { path: PathBuf, fields: Vec<String> },
    #[error("{path} is invalid: {}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid {
        path: PathBuf,
        errors: Vec<proto::ValidationError>,
    },
}

/// Parses snapshot YAML, refusing unknown fields.
pub fn parse(path: &Path, text: &str) -> Result<Snapshot, LoadError> {
    let mut unknown = Vec::new();
    let snapshot: Snapshot =
        serde_ignored::deserialize(serde_yaml::Deserializer::from_str(text), |p| {
            unknown.push(p.to_string())
        })
        .map_err(|source| LoadError::Yaml {
            path: path.to_owned(),
            source,
        })?;
    if !unknown.is_empty() {
        return Err(LoadError::UnknownFields {
            path: path.to_owned(),
            fields: unknown,
        });
    }
    Ok(snapshot)
}

/// Reads, parses, validates and compiles the file.
pub fn load(path: &Path, ctx: &Context) -> Result<CompiledSnapshot, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let snapshot = parse(path, &text)?;
    compile(snapshot, ctx).map_err(|errors| LoadError::Invalid {
        path: path.to_owned(),
        errors,
    })
}

/// What identifies a version of the file without reading it.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

/// The file's stamp now (`None`: it cannot be read). Taken before the first load, it is what
/// the watcher compares with, so a change made before the watcher first runs is not missed.
pub fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&m),
    })
}

/// Polls the file every `interval` and installs each new valid version until `cancel` fires;
/// `loaded` is the stamp of the version already installed (taken before it was read).
pub async fn watch(
    path: PathBuf,
    loaded: Option<Stamp>,
    store: Arc<SnapshotStore>,
    ctx: Context,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut last = loaded;
    let mut ticks = Ticks::new(interval, MissedTickBehavior::Delay, cancel);
    while ticks.next().await {
        let now = stamp(&path);
        if now == last {
            continue;
        }
        last = now;
        let loaded = {
            let (path, ctx) = (path.clone(), ctx.clone());
            tokio::task::spawn_blocking(move || load(&path, &ctx)).await
        };
        match loaded {
            Ok(Ok(next)) => {
                let version = next.version;
                match store.install(next) {
                    Ok(()) => {
                        metrics::snapshot_reload("ok");
                        tracing::info!(path = %path.display(), version, "snapshot file reloaded");
                    }
                    Err(stale) => {
                        metrics::snapshot_reload("stale");
                        tracing::warn!(path = %path.display(), reason = %stale, "snapshot file refused; keeping the current snapshot");
                    }
                }
            }
            Ok(Err(e)) => {
                metrics::snapshot_reload("invalid");
                tracing::warn!(reason = %e, "snapshot file refused; keeping the current snapshot");
            }
            Err(e) => {
                metrics::snapshot_reload("invalid");
                tracing::error!(error = %e, "snapshot reload task failed; keeping the current snapshot");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_named() {
        let err = parse(Path::new("f.yaml"), "providers: [{id: p, kind: vllm, base_url: 'http://x', api_kee: {env: X}}]\nroute: []\n");
        match err {
            Err(LoadError::UnknownFields { fields, .. }) => {
                assert_eq!(fields, ["providers.0.api_kee", "route"])
            }
            other => panic!("expected unknown fields, got {other:?}"),
        }
    }

    #[test]
    fn yaml_errors_and_validation_errors_are_refused() {
        assert!(matches!(
            parse(Path::new("f"), "providers: {"),
            Err(LoadError::Yaml { .. })
        ));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("s.yaml");
        std::fs::write(
            &file,
            "routes: [{alias: a, deployments: [{provider: nope, model: m}]}]",
        )
        .unwrap_or_default();
        let err = load(&file, &crate::snapshot::Context::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("routes[0].deployments[0].provider: unknown provider `nope`"),
            "{err}"
        );
    }
    /// The watcher compares with the stamp taken before the first read, so a change made
    /// between that read and the watcher's first poll (a starved low-priority thread) is
    /// installed, not taken as the starting point.
    #[tokio::test]
    async fn a_change_before_the_watcher_first_runs_is_installed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("s.yaml");
        let write = |alias: &str| {
            let yaml = format!("providers: [{{id: p, kind: vllm, base_url: 'http://x'}}]\nroutes: [{{alias: {alias}, deployments: [{{provider: p, model: m}}]}}]\n");
            std::fs::write(&file, yaml).unwrap_or_else(|e| panic!("{e}"));
        };
        write("old");
        let ctx = crate::snapshot::Context::default();
        let loaded = stamp(&file);
        let store = Arc::new(SnapshotStore::default());
        let initial = load(&file, &ctx).unwrap_or_else(|e| panic!("{e}"));
        assert!(store.install(initial).is_ok());
        // Another length, so the stamp differs even within one mtime tick.
        write("renamed");
        let cancel = CancellationToken::new();
        let task = tokio::spawn(watch(
            file.clone(),
            loaded,
            Arc::clone(&store),
            ctx,
            Duration::from_millis(10),
            cancel.clone(),
        ));
        let mut aliases = Vec::new();
        for _ in 0..500 {
            aliases = store
                .get()
                .map(|s| s.aliases().to_vec())
                .unwrap_or_default();
            if aliases == ["renamed"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
        let _ = task.await;
        assert_eq!(aliases, ["renamed"]);
    }
}
