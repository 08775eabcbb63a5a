//! The on-disk copy of the last good snapshot from NATS, so a restarted proxy serves while the
//! control plane or NATS is down.
//!
//! The file holds the snapshot's JSON exactly as published (the bytes whose SHA-256 was checked).
//! It is replaced atomically (temp file in the same directory, fsync, rename), so a crash mid-write
//! leaves the previous copy; a file that fails to parse or compile at start is ignored with a
//! warning, never served.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use proto::Snapshot;

use super::{compile, CompiledSnapshot};
use crate::seal::SealKey;

/// Why snapshot JSON could not become a [`CompiledSnapshot`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid snapshot JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<proto::ValidationError>),
}

/// Why the cache file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {source}")]
    Decode { path: PathBuf, source: DecodeError },
}

/// Parses, validates and compiles snapshot JSON (as published by the control plane). Unknown
/// fields are ignored: wire changes are additive, and an older proxy must read a newer body.
pub fn decode(bytes: &[u8], seal_key: Option<&SealKey>) -> Result<CompiledSnapshot, DecodeError> {
    let snapshot: Snapshot = serde_json::from_slice(bytes)?;
    compile(snapshot, seal_key).map_err(DecodeError::Invalid)
}

/// The cached snapshot, compiled; `Ok(None)` when there is no cache file yet.
pub fn load(
    path: &Path,
    seal_key: Option<&SealKey>,
) -> Result<Option<CompiledSnapshot>, CacheError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CacheError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    decode(&bytes, seal_key)
        .map(Some)
        .map_err(|source| CacheError::Decode {
            path: path.to_owned(),
            source,
        })
}

/// Replaces the cache file with `bytes`: temp file beside it, fsync, rename.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(version: u64) -> Snapshot {
        serde_yaml::from_str(&format!(
            r#"
version: {version}
providers: [{{id: p, kind: vllm, base_url: "http://127.0.0.1:1/v1"}}]
routes: [{{alias: chat, deployments: [{{provider: p, model: m}}]}}]
keys: [{{name: k, sha256: "{}", models: ["*"], expires_at: 1700000000}}]
"#,
            "ab".repeat(32)
        ))
        .unwrap()
    }

    #[test]
    fn round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        assert!(load(&path, None).unwrap().is_none(), "no file yet");

        write(&path, &serde_json::to_vec(&snapshot(5)).unwrap()).unwrap();
        write(&path, &serde_json::to_vec(&snapshot(7)).unwrap()).unwrap();
        let loaded = load(&path, None).unwrap().unwrap();
        assert_eq!(loaded.version, 7);
        assert_eq!(loaded.aliases(), ["chat"]);
        assert_eq!(loaded.key_count(), 1);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["cache.json"], "no temp file is left behind");
    }

    #[test]
    fn a_broken_cache_is_refused_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        std::fs::write(&path, b"{\"version\": 3, \"routes\": [").unwrap();
        let err = load(&path, None).err().map(|e| e.to_string()).unwrap();
        assert!(err.contains("not valid snapshot JSON"), "{err}");

        let mut bad = snapshot(4);
        bad.routes[0].deployments[0].provider = "ghost".into();
        std::fs::write(&path, serde_json::to_vec(&bad).unwrap()).unwrap();
        let err = load(&path, None).err().map(|e| e.to_string()).unwrap();
        assert!(err.contains("unknown provider `ghost`"), "{err}");
    }

    #[test]
    fn unknown_fields_from_a_newer_control_plane_are_ignored() {
        let mut json = serde_json::to_value(snapshot(9)).unwrap();
        json["quotas_from_the_future"] = serde_json::json!([{"id": "b"}]);
        json["keys"][0]["future_field"] = serde_json::json!(true);
        let bytes = serde_json::to_vec(&json).unwrap();
        assert_eq!(decode(&bytes, None).unwrap().version, 9);
    }
}
