//! The on-disk copy of the last good snapshot from NATS, so a restarted proxy serves while the
//! control plane or NATS is down.
//!
//! The cache file holds the pointer and the body exactly as published (the bytes whose SHA-256
//! was checked): `{"pointer": ..., "core": ...}`. When the keys travel as parts, each part is a
//! file named by its digest in the directory beside it (`<file>.parts/`), written before the
//! file that names it and deleted once no longer named, so a change rewrites only the small
//! core and the parts that changed. Every file is replaced atomically (temp file in the same
//! directory, fsync, rename), so a crash mid-write leaves the previous copy; a cache that fails
//! to parse, check or compile at start is ignored with a warning, never served. A file holding
//! only snapshot JSON (an older proxy's cache) is still read.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use proto::{Snapshot, SnapshotPointer};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

use super::parts::{HeldParts, PartError};
use super::Context;
use super::{compile, compile_with_keys, CompiledSnapshot};

/// Why snapshot JSON could not become a [`CompiledSnapshot`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid snapshot JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<proto::ValidationError>),
    #[error("{0}")]
    Parts(#[from] PartError),
}

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {source}")]
    Decode { path: PathBuf, source: DecodeError },
    #[error("{path} does not match the SHA-256 of the pointer it holds")]
    Digest { path: PathBuf },
}

/// A snapshot read back from the cache, with the key parts it was built from (so the parts
/// that did not change since are not fetched again).
#[derive(Debug)]
pub struct Cached {
    pub snapshot: CompiledSnapshot,
    pub parts: HeldParts,
    /// When the control plane published it (Unix ms), if its pointer said.
    pub published_at_ms: Option<i64>,
}

#[derive(Deserialize)]
struct Manifest<'a> {
    pointer: SnapshotPointer,
    #[serde(borrow)]
    core: &'a RawValue,
}

/// Parses, validates and compiles snapshot JSON with its keys inline. Unknown fields are
/// ignored: wire changes are additive, and an older proxy must read a newer body.
pub fn decode(bytes: &[u8], ctx: &Context) -> Result<CompiledSnapshot, DecodeError> {
    let snapshot: Snapshot = serde_json::from_slice(bytes)?;
    compile(snapshot, ctx).map_err(DecodeError::Invalid)
}

/// A compiled published body and the key parts it was built from.
#[derive(Debug)]
pub struct Decoded {
    pub snapshot: CompiledSnapshot,
    /// Key parts to hold once the snapshot is installed.
    pub held: HeldParts,
    /// Parts compiled from fetched bytes, and parts shared with the replaced snapshot.
    pub compiled: usize,
    pub reused: usize,
}

/// Parses and compiles a published body: with its keys inline, or (when the pointer says so)
/// with its keys from `held` and the `fresh` part bytes. Returns the parts to hold next.
/// Unchanged routes of `previous` are reused.
pub fn decode_published(
    pointer: &SnapshotPointer,
    body: &[u8],
    held: &HeldParts,
    fresh: &HashMap<String, Vec<u8>>,
    ctx: &Context,
    previous: Option<&CompiledSnapshot>,
) -> Result<Decoded, DecodeError> {
    let Some(layout) = &pointer.keys else {
        return Ok(Decoded {
            snapshot: decode(body, ctx)?,
            held: HeldParts::default(),
            compiled: 0,
            reused: 0,
        });
    };
    let snapshot: Snapshot = serde_json::from_slice(body)?;
    let assembled = held.assemble(layout, fresh)?;
    let snapshot = compile_with_keys(snapshot, ctx, assembled.table, previous)
        .map_err(DecodeError::Invalid)?;
    Ok(Decoded {
        snapshot,
        held: assembled.held,
        compiled: assembled.compiled,
        reused: assembled.reused,
    })
}

/// The directory holding the cached key parts.
fn parts_dir(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".parts");
    path.with_file_name(name)
}

/// A part's file: its bytes as fetched (binary, or JSON from an older control plane).
fn part_file_name(sha256: &str) -> String {
    format!("{sha256}.part")
}

fn part_file(dir: &Path, sha256: &str) -> PathBuf {
    dir.join(part_file_name(sha256))
}

/// The cached snapshot, compiled; `Ok(None)` when there is no cache file yet.
pub fn load(path: &Path, ctx: &Context) -> Result<Option<Cached>, CacheError> {
    let io = |source| CacheError::Io {
        path: path.to_owned(),
        source,
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io(source)),
    };
    let decoded = |source| CacheError::Decode {
        path: path.to_owned(),
        source,
    };
    let Ok(manifest) = serde_json::from_slice::<Manifest<'_>>(&bytes) else {
        // Snapshot JSON alone: an older proxy's cache.
        let snapshot = decode(&bytes, ctx).map_err(decoded)?;
        return Ok(Some(Cached {
            snapshot,
            parts: HeldParts::default(),
            published_at_ms: None,
        }));
    };
    let core = manifest.core.get().as_bytes();
    if hex::encode(Sha256::digest(core)) != manifest.pointer.sha256 {
        return Err(CacheError::Digest {
            path: path.to_owned(),
        });
    }
    let mut fresh = HashMap::new();
    if let Some(layout) = &manifest.pointer.keys {
        let dir = parts_dir(path);
        for r in &layout.parts {
            if !fresh.contains_key(&r.sha256) {
                let file = part_file(&dir, &r.sha256);
                let part = std::fs::read(&file).map_err(|source| CacheError::Io {
                    path: file.clone(),
                    source,
                })?;
                fresh.insert(r.sha256.clone(), part);
            }
        }
    }
    let decoded = decode_published(
        &manifest.pointer,
        core,
        &HeldParts::default(),
        &fresh,
        ctx,
        None,
    )
    .map_err(|e| {
        // Parts are written without an fsync each (see `write`): one cut short by a power loss
        // fails its digest check and is deleted here, so the next write puts it back.
        if let (DecodeError::Parts(p), Some(layout)) = (&e, &manifest.pointer.keys) {
            if let Some(r) = p.damaged().and_then(|i| layout.parts.get(i)) {
                let _ = std::fs::remove_file(part_file(&parts_dir(path), &r.sha256));
            }
        }
        decoded(e)
    })?;
    Ok(Some(Cached {
        snapshot: decoded.snapshot,
        parts: decoded.held,
        published_at_ms: manifest.pointer.published_at_ms,
    }))
}

/// Replaces the cache with `pointer` and its `body`. Parts named by the pointer are written
/// from `fresh` unless already on disk; parts no longer named are deleted afterwards.
pub fn write(
    path: &Path,
    pointer: &SnapshotPointer,
    body: &[u8],
    fresh: &HashMap<String, Vec<u8>>,
) -> std::io::Result<()> {
    let dir = parts_dir(path);
    let mut named = HashSet::new();
    if let Some(layout) = &pointer.keys {
        std::fs::create_dir_all(&dir)?;
        for r in &layout.parts {
            if !named.insert(part_file_name(&r.sha256)) {
                continue;
            }
            let file = part_file(&dir, &r.sha256);
            if file.exists() {
                continue;
            }
            let bytes = fresh.get(&r.sha256).ok_or_else(|| {
                std::io::Error::other(format!(
                    "key part {} is neither on disk nor at hand",
                    r.sha256
                ))
            })?;
            write_unsynced(&file, bytes)?;
        }
    }
    let mut manifest = Vec::with_capacity(body.len() + 256);
    manifest.extend_from_slice(b"{\"pointer\":");
    serde_json::to_writer(&mut manifest, pointer)?;
    manifest.extend_from_slice(b",\"core\":");
    manifest.extend_from_slice(body);
    manifest.push(b'}');
    write_atomic(path, &manifest)?;
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if !named.contains(name.to_string_lossy().as_ref()) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            if named.is_empty() {
                let _ = std::fs::remove_dir(&dir);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Replaces `path` with `bytes`: temp file beside it, fsync, rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_via_temp(path, bytes, true)
}

/// As [`write_atomic`] without the fsync: for key parts, which are checked against their digest
/// when the cache is loaded. A full swap writes ~130 of them, and an fsync each would cost as
/// many journal commits, work the kernel does at full priority beside the requests.
fn write_unsynced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_via_temp(path, bytes, false)
}

fn write_via_temp(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        if sync {
            file.sync_all()?;
        }
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

    /// Loads the cache at `path` without a seal key.
    fn load_plain(path: &Path) -> Result<Option<Cached>, CacheError> {
        load(path, &Context::default())
    }

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

    /// A pointer with the body inline, as a v1 control plane published it.
    fn inline(snapshot: &Snapshot) -> (SnapshotPointer, Vec<u8>) {
        let body = serde_json::to_vec(snapshot).unwrap();
        let pointer = SnapshotPointer {
            version: snapshot.version,
            object: SnapshotPointer::object_name(snapshot.version),
            sha256: hex::encode(Sha256::digest(&body)),
            size: body.len() as u64,
            keys: None,
            published_at_ms: None,
        };
        (pointer, body)
    }

    /// A pointer with the keys in parts, as the control plane publishes it now.
    fn in_parts(
        snapshot: &Snapshot,
        bits: u8,
    ) -> (SnapshotPointer, Vec<u8>, HashMap<String, Vec<u8>>) {
        let encoded = proto::split_keys_with_bits(&snapshot.keys, bits).unwrap();
        let core = Snapshot {
            keys: Vec::new(),
            ..snapshot.clone()
        };
        let (mut pointer, body) = inline(&core);
        pointer.keys = Some(encoded.layout);
        (pointer, body, encoded.bodies.into_iter().collect())
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        assert!(load_plain(&path).unwrap().is_none(), "no file yet");

        let (p5, b5) = inline(&snapshot(5));
        write(&path, &p5, &b5, &HashMap::new()).unwrap();
        let (p7, b7) = inline(&snapshot(7));
        write(&path, &p7, &b7, &HashMap::new()).unwrap();
        let loaded = load_plain(&path).unwrap().unwrap().snapshot;
        assert_eq!(loaded.version, 7);
        assert_eq!(loaded.aliases(), ["chat"]);
        assert_eq!(loaded.key_count(), 1);
        assert_eq!(
            names(dir.path()),
            ["cache.json"],
            "no temp file is left behind"
        );
    }

    #[test]
    fn parts_are_written_once_and_deleted_when_no_longer_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let mut s = snapshot(5);
        s.keys[0].sha256 = format!("00{}", "ab".repeat(31));
        let mut second = s.keys[0].clone();
        second.sha256 = format!("ff{}", "ab".repeat(31));
        s.keys.push(second);
        let (p5, b5, fresh) = in_parts(&s, 1);
        write(&path, &p5, &b5, &fresh).unwrap();
        let parts = dir.path().join("cache.json.parts");
        assert_eq!(names(&parts).len(), 2);

        // Version 6 changes the key in part 1 only; part 0 is not at hand, only on disk.
        s.version = 6;
        s.keys[1].name = "renamed".into();
        let (p6, b6, mut fresh) = in_parts(&s, 1);
        let kept = p6.keys.as_ref().unwrap().parts[0].sha256.clone();
        fresh.remove(&kept);
        write(&path, &p6, &b6, &fresh).unwrap();
        let want: Vec<String> = p6
            .keys
            .as_ref()
            .unwrap()
            .parts
            .iter()
            .map(|r| part_file_name(&r.sha256))
            .collect();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        assert_eq!(names(&parts), want_sorted, "the replaced part is gone");

        let cached = load_plain(&path).unwrap().unwrap();
        assert_eq!(cached.snapshot.version, 6);
        assert_eq!(cached.snapshot.key_count(), 2);
        let mut d = [0xab; 32];
        d[0] = 0xff;
        assert_eq!(cached.snapshot.key(&d).unwrap().name, "renamed");
        assert!(
            cached.parts.missing(p6.keys.as_ref().unwrap()).is_empty(),
            "the loaded parts are held, so NATS need not send them again"
        );

        // A part damaged on disk makes the cache unusable, not half-served.
        let damaged = parts.join(&want[1]);
        let mut bytes = std::fs::read(&damaged).unwrap();
        bytes[5] ^= 1;
        std::fs::write(&damaged, bytes).unwrap();
        let err = load_plain(&path).unwrap_err().to_string();
        assert!(
            err.contains("does not match the pointer's SHA-256"),
            "{err}"
        );
        // It is deleted, so the next write (with the part fetched again) puts it back.
        assert!(!damaged.exists());
        let (_, _, fresh) = in_parts(&s, 1);
        write(&path, &p6, &b6, &fresh).unwrap();
        assert_eq!(load_plain(&path).unwrap().unwrap().snapshot.version, 6);

        // Back to inline keys: the parts directory goes away.
        let (p7, b7) = inline(&snapshot(7));
        write(&path, &p7, &b7, &HashMap::new()).unwrap();
        assert_eq!(names(dir.path()), ["cache.json"]);
    }

    #[test]
    fn an_older_proxys_cache_of_plain_snapshot_json_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        std::fs::write(&path, serde_json::to_vec(&snapshot(4)).unwrap()).unwrap();
        assert_eq!(load_plain(&path).unwrap().unwrap().snapshot.version, 4);
    }

    #[test]
    fn a_broken_cache_is_refused_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        std::fs::write(&path, b"{\"version\": 3, \"routes\": [").unwrap();
        let err = load_plain(&path).err().map(|e| e.to_string()).unwrap();
        assert!(err.contains("not valid snapshot JSON"), "{err}");

        let mut bad = snapshot(4);
        bad.routes[0].deployments[0].provider = "ghost".into();
        std::fs::write(&path, serde_json::to_vec(&bad).unwrap()).unwrap();
        let err = load_plain(&path).err().map(|e| e.to_string()).unwrap();
        assert!(err.contains("unknown provider `ghost`"), "{err}");
    }

    #[test]
    fn unknown_fields_from_a_newer_control_plane_are_ignored() {
        let mut json = serde_json::to_value(snapshot(9)).unwrap();
        json["quotas_from_the_future"] = serde_json::json!([{"id": "b"}]);
        json["keys"][0]["future_field"] = serde_json::json!(true);
        let bytes = serde_json::to_vec(&json).unwrap();
        assert_eq!(
            decode(&bytes, &crate::snapshot::Context::default())
                .unwrap()
                .version,
            9
        );
    }
}
