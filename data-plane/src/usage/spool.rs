//! The on-disk spool: usage events (or request-log entries, in a spool of their own) that NATS
//! has not acknowledged yet.
//!
//! A directory of append-only JSON-lines segment files named `<UUIDv7>.jsonl`, so names sort
//! in write order across restarts. One segment is active (appended to) at a time; it is
//! sealed when it reaches its size or when a replay starts, and a sealed segment is deleted
//! only after every event in it was acknowledged (see `publisher`). Each event is written with
//! one `write` call, so a crash leaves at most one partial last line, which a reader skips.
//! Writes go to the OS without `fsync`: a process crash loses nothing, a machine crash may
//! lose the last moments.
//!
//! Guarantees: the directory never holds more than `max_bytes`; an event that would exceed it
//! (or cannot be written) is dropped, counted in `switchyard_usage_spool_dropped_total` (the
//! request log's `switchyard_request_log_spool_dropped_total`) and
//! logged at error level, never silently. The spool is shared by the publisher task and the
//! request handlers (queue overflow); a short `std` mutex guards it and is never held across
//! an `.await`.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use uuid::Uuid;

use crate::metrics::Published;

/// Extension of segment files.
const SEGMENT_EXT: &str = "jsonl";
/// How often a stream of drops is logged again (the first drop is logged at once).
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

/// The spool directory and its size accounting.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// The metric series of the stream it spools for.
    metrics: &'static Published,
    max_bytes: u64,
    /// A segment is sealed once it holds this much.
    segment_bytes: u64,
    state: Mutex<State>,
    /// Held for the life of the process: one proxy per spool directory.
    _lock: Option<File>,
}

/// Another process holds the spool directory.
#[derive(Debug, thiserror::Error)]
#[error(
    "the usage spool {0} is in use by another data-plane process; give each proxy its own --spool-dir"
)]
pub struct SpoolInUse(pub String);

#[derive(Debug)]
struct State {
    active: Option<Active>,
    /// Bytes in every segment, the active one included.
    total: u64,
    /// Drops not logged yet, and when the last drop log line was written.
    unlogged_drops: u64,
    last_drop_log: Option<Instant>,
}

#[derive(Debug)]
struct Active {
    path: PathBuf,
    file: File,
    bytes: u64,
}

/// One event read back from a segment.
#[derive(Debug, Clone)]
pub struct Spooled {
    pub id: String,
    pub team: Option<String>,
    /// The event's JSON, as published.
    pub json: Bytes,
}

#[derive(Deserialize)]
struct Probe {
    id: String,
    #[serde(default)]
    team: Option<String>,
}

impl Spool {
    /// Opens (creating if needed) the spool directory and counts what it holds. Never fails:
    /// an unusable directory is logged, and each event that cannot be written is counted as
    /// dropped.
    pub fn open(dir: &Path, max_bytes: u64, metrics: &'static Published) -> Self {
        Self::open_inner(dir, max_bytes, None, metrics)
    }

    /// Like [`Spool::open`], and takes an exclusive lock on the directory (`.lock`, released
    /// when the process exits), so two proxies never replay and delete each other's
    /// segments. Fails only if another process holds the lock.
    pub fn open_exclusive(
        dir: &Path,
        max_bytes: u64,
        metrics: &'static Published,
    ) -> Result<Self, SpoolInUse> {
        let _ = fs::create_dir_all(dir);
        let lock = match File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".lock"))
        {
            Ok(file) => match file.try_lock() {
                Ok(()) => Some(file),
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(SpoolInUse(dir.display().to_string()))
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    tracing::warn!(path = %dir.display(), error = %e, "cannot lock the usage spool directory");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(path = %dir.display(), error = %e, "cannot lock the usage spool directory");
                None
            }
        };
        Ok(Self::open_inner(dir, max_bytes, lock, metrics))
    }

    fn open_inner(
        dir: &Path,
        max_bytes: u64,
        lock: Option<File>,
        metrics: &'static Published,
    ) -> Self {
        if let Err(e) = fs::create_dir_all(dir) {
            tracing::error!(path = %dir.display(), error = %e, "cannot create the usage spool directory; events NATS does not take will be lost");
        }
        let total = segments(dir)
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        metrics.spool_bytes(total);
        Self {
            dir: dir.to_owned(),
            metrics,
            max_bytes,
            segment_bytes: (max_bytes / 16).clamp(4 * 1024, 16 * 1024 * 1024),
            state: Mutex::new(State {
                active: None,
                total,
                unlogged_drops: 0,
                last_drop_log: None,
            }),
            _lock: lock,
        }
    }

    /// The spool directory.
    /// The metric series of the stream it spools for.
    pub fn metrics(&self) -> &'static Published {
        self.metrics
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one event's JSON as a line. Returns whether it was written; if not, the drop
    /// is already counted and logged.
    pub fn append(&self, json: &[u8]) -> bool {
        let mut line = Vec::with_capacity(json.len() + 1);
        line.extend_from_slice(json);
        line.push(b'\n');
        let len = line.len() as u64;
        let mut guard = self.state();
        let st = &mut *guard;
        if st.total + len > self.max_bytes {
            self.dropped(st, "full");
            return false;
        }
        if st
            .active
            .as_ref()
            .is_some_and(|a| a.bytes + len > self.segment_bytes)
        {
            st.active = None;
        }
        if st.active.is_none() {
            match self.new_segment() {
                Ok(active) => st.active = Some(active),
                Err(e) => {
                    tracing::error!(path = %self.dir.display(), error = %e, "cannot create a usage spool segment");
                    self.dropped(st, "io");
                    return false;
                }
            }
        }
        let Some(active) = st.active.as_mut() else {
            return false;
        };
        match active.file.write_all(&line) {
            Ok(()) => {
                active.bytes += len;
                st.total += len;
                self.metrics.spooled();
                self.metrics.spool_bytes(st.total);
                true
            }
            Err(e) => {
                // Whatever part of the line reached the file is skipped by readers; count it.
                let written = fs::metadata(&active.path).map_or(active.bytes, |m| m.len());
                st.total += written.saturating_sub(active.bytes);
                tracing::error!(path = %active.path.display(), error = %e, "cannot write to the usage spool");
                st.active = None;
                self.dropped(st, "io");
                false
            }
        }
    }

    fn new_segment(&self) -> io::Result<Active> {
        fs::create_dir_all(&self.dir)?;
        let path = self
            .dir
            .join(format!("{}.{SEGMENT_EXT}", Uuid::now_v7().as_simple()));
        let file = File::options().create_new(true).append(true).open(&path)?;
        Ok(Active {
            path,
            file,
            bytes: 0,
        })
    }

    fn dropped(&self, st: &mut State, reason: &'static str) {
        self.metrics.spool_dropped(reason);
        st.unlogged_drops += 1;
        let due = st
            .last_drop_log
            .is_none_or(|t| t.elapsed() >= DROP_LOG_EVERY);
        if due {
            tracing::error!(
                dropped = st.unlogged_drops,
                reason,
                spool_bytes = st.total,
                max_bytes = self.max_bytes,
                path = %self.dir.display(),
                "spooled items LOST: the spool is full or cannot be written (see {})", self.metrics.spool_dropped
            );
            st.unlogged_drops = 0;
            st.last_drop_log = Some(Instant::now());
        }
    }

    /// Closes the active segment, so every event written so far is in a sealed segment.
    pub fn seal(&self) {
        self.state().active = None;
    }

    /// Sealed segments, oldest first.
    pub fn sealed(&self) -> Vec<PathBuf> {
        let st = self.state();
        let active = st.active.as_ref().map(|a| a.path.as_path());
        segments(&self.dir)
            .into_iter()
            .filter(|p| Some(p.as_path()) != active)
            .collect()
    }

    /// Deletes a sealed segment whose events were all acknowledged.
    pub fn remove(&self, segment: &Path) -> io::Result<()> {
        let len = fs::metadata(segment).map_or(0, |m| m.len());
        fs::remove_file(segment)?;
        let mut st = self.state();
        st.total = st.total.saturating_sub(len);
        self.metrics.spool_bytes(st.total);
        Ok(())
    }

    /// Bytes held (all segments).
    pub fn bytes(&self) -> u64 {
        self.state().total
    }
}

/// Segment files in `dir`, in name (= write) order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == SEGMENT_EXT))
        .collect();
    paths.sort();
    paths
}

/// Reads a segment; lines that are not events (a partial last line after a crash) are
/// skipped, counted as dropped and logged.
pub fn read_segment(path: &Path, metrics: &Published) -> io::Result<Vec<Spooled>> {
    let bytes = Bytes::from(fs::read(path)?);
    let mut events = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| start + i);
        let line = bytes.slice(start..end);
        start = end + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Probe>(&line) {
            Ok(p) => events.push(Spooled {
                id: p.id,
                team: p.team,
                json: line,
            }),
            Err(e) => {
                metrics.spool_dropped("corrupt");
                tracing::error!(path = %path.display(), error = %e, "skipping a spooled line that is not an event");
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::USAGE_STREAM;

    fn event(id: &str, team: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"id": id, "team": team, "pad": "x".repeat(200)}))
            .unwrap_or_default()
    }

    fn all_ids(spool: &Spool) -> Vec<String> {
        spool.seal();
        spool
            .sealed()
            .iter()
            .flat_map(|p| read_segment(p, &USAGE_STREAM).unwrap_or_default())
            .map(|e| e.id)
            .collect()
    }

    #[test]
    fn a_spool_directory_serves_one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let first = Spool::open_exclusive(dir.path(), 1 << 20, &USAGE_STREAM);
        assert!(first.is_ok());
        let second = Spool::open_exclusive(dir.path(), 1 << 20, &USAGE_STREAM);
        assert!(second.is_err_and(|e| e.to_string().contains("in use")));
        drop(first);
        assert!(Spool::open_exclusive(dir.path(), 1 << 20, &USAGE_STREAM).is_ok());
        assert!(
            segments(dir.path()).is_empty(),
            "the lock file is not a segment"
        );
    }

    #[test]
    fn events_round_trip_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let spool = Spool::open(dir.path(), 1 << 20, &USAGE_STREAM);
        let ids: Vec<String> = (0..100).map(|i| format!("id-{i:03}")).collect();
        for (i, id) in ids.iter().enumerate() {
            let team = (i % 2 == 0).then_some("t");
            assert!(spool.append(&event(id, team)));
        }
        // 1 MiB / 16 = 64 KiB segments; 100 × ~250 bytes fits one, so force a rotation.
        spool.seal();
        assert!(spool.append(&event("id-100", None)));
        assert_eq!(spool.sealed().len(), 1, "the active segment is not listed");
        let mut expected = ids.clone();
        expected.push("id-100".into());
        assert_eq!(all_ids(&spool), expected);
        let first = read_segment(&spool.sealed()[0], &USAGE_STREAM).unwrap_or_default();
        assert_eq!(first[0].team.as_deref(), Some("t"));
        assert_eq!(first[1].team, None);
        assert!(serde_json::from_slice::<serde_json::Value>(&first[0].json).is_ok());
    }

    #[test]
    fn segments_rotate_at_their_size_and_removal_frees_bytes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // Segments of 4 KiB (the floor): ~16 events each.
        let spool = Spool::open(dir.path(), 64 * 1024, &USAGE_STREAM);
        for i in 0..100 {
            assert!(spool.append(&event(&format!("{i}"), None)));
        }
        spool.seal();
        let sealed = spool.sealed();
        assert!(sealed.len() >= 6, "{} segments", sealed.len());
        for p in &sealed {
            assert!(fs::metadata(p).map(|m| m.len()).unwrap_or(0) <= 4096);
        }
        let before = spool.bytes();
        let first_len = fs::metadata(&sealed[0]).map(|m| m.len()).unwrap_or(0);
        spool.remove(&sealed[0]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spool.bytes(), before - first_len);
        // A new process sees what is left.
        assert_eq!(
            Spool::open(dir.path(), 64 * 1024, &USAGE_STREAM).bytes(),
            before - first_len
        );
    }

    #[test]
    fn the_bound_is_never_exceeded() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let max = 8 * 1024;
        let spool = Spool::open(dir.path(), max, &USAGE_STREAM);
        let written = (0..100)
            .filter(|i| spool.append(&event(&format!("{i}"), None)))
            .count();
        assert!(written > 10 && written < 100, "{written}");
        assert!(spool.bytes() <= max);
        let on_disk: u64 = segments(dir.path())
            .iter()
            .map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum();
        assert_eq!(on_disk, spool.bytes());
        assert_eq!(all_ids(&spool).len(), written);
    }

    #[test]
    fn a_partial_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let spool = Spool::open(dir.path(), 1 << 20, &USAGE_STREAM);
        assert!(spool.append(&event("a", None)));
        spool.seal();
        let path = &spool.sealed()[0];
        let mut f = File::options()
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("{e}"));
        f.write_all(br#"{"id":"b","te"#)
            .unwrap_or_else(|e| panic!("{e}"));
        let read = read_segment(path, &USAGE_STREAM).unwrap_or_default();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].id, "a");
    }
}
