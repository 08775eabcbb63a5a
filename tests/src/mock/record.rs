//! Recording of the API requests the mock received, served by `GET /__mock/requests`.
//!
//! The store keeps the last [`RECORD_CAPACITY`] requests (oldest dropped first). A record's
//! fixed part is written once on arrival; the parts that change while a stream is being sent
//! (`chunk_sent_at_ms`, `completed_at_ms`) sit behind the record's own lock, so a stream never
//! takes the store-wide lock after its request was registered. With recording disabled
//! (`--no-record`) nothing is built at all: headers are not copied and the body is parsed once.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use serde::{Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How many requests the store keeps.
pub const RECORD_CAPACITY: usize = 50_000;

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Everything known about a request when it is registered.
#[derive(Debug)]
pub(crate) struct RecordInit<'a> {
    pub seq: u64,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: Value,
    /// The body's bytes as received (only hashed).
    pub raw: &'a [u8],
    pub model: Option<&'a str>,
    pub stream: bool,
    pub prompt_tokens: u64,
    pub received_at_ms: u64,
}

#[derive(Debug)]
struct Record {
    seq: u64,
    path: String,
    query: Option<String>,
    headers: BTreeMap<String, String>,
    body: Value,
    body_sha256: String,
    model: Option<String>,
    stream: bool,
    prompt_tokens: u64,
    received_at_ms: u64,
    progress: Mutex<Progress>,
}

#[derive(Debug, Default)]
struct Progress {
    completion_tokens: u64,
    /// Tokens the response reports in its `usage` (what a provider bills), once set.
    usage_reported: Option<(u64, u64)>,
    chunk_sent_at_ms: Vec<u64>,
    completed_at_ms: Option<u64>,
    /// Digest of the bytes of a piecewise (streamed) body handed to the connection so far.
    sent: Option<Sha256>,
}

#[derive(Serialize)]
struct Billed {
    prompt_tokens: u64,
    completion_tokens: u64,
}

#[derive(Serialize)]
struct RecordView<'a> {
    seq: u64,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a BTreeMap<String, String>,
    body: &'a Value,
    body_sha256: &'a str,
    model: Option<&'a str>,
    stream: bool,
    prompt_tokens: u64,
    completion_tokens: u64,
    /// What the mock billed: the usage it reported in a response it delivered in full.
    billed: Option<Billed>,
    received_at_ms: u64,
    chunk_sent_at_ms: &'a [u64],
    completed_at_ms: Option<u64>,
    /// SHA-256 of a streamed response's bytes, once it was sent in full.
    response_sha256: Option<String>,
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        RecordView {
            seq: self.seq,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            body: &self.body,
            body_sha256: &self.body_sha256,
            model: self.model.as_deref(),
            stream: self.stream,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: progress.completion_tokens,
            billed: progress
                .usage_reported
                .filter(|_| progress.completed_at_ms.is_some())
                .map(|(prompt_tokens, completion_tokens)| Billed {
                    prompt_tokens,
                    completion_tokens,
                }),
            received_at_ms: self.received_at_ms,
            chunk_sent_at_ms: &progress.chunk_sent_at_ms,
            completed_at_ms: progress.completed_at_ms,
            response_sha256: progress
                .sent
                .clone()
                .filter(|_| progress.completed_at_ms.is_some())
                .map(|h| hex::encode(h.finalize())),
        }
        .serialize(serializer)
    }
}

/// A request's live record; a no-op when recording is disabled.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordHandle(Option<Arc<Record>>);

impl RecordHandle {
    fn update(&self, f: impl FnOnce(&mut Progress)) {
        if let Some(record) = &self.0 {
            f(&mut record
                .progress
                .lock()
                .unwrap_or_else(PoisonError::into_inner));
        }
    }

    /// Adds bytes of a piecewise body handed to the connection to the response digest.
    pub(crate) fn sent(&self, bytes: &[u8]) {
        self.update(|p| p.sent.get_or_insert_with(Sha256::new).update(bytes));
    }

    /// Notes that one SSE event was handed to the connection now.
    pub(crate) fn chunk_sent(&self) {
        self.update(|p| p.chunk_sent_at_ms.push(now_ms()));
    }

    pub(crate) fn set_completion_tokens(&self, tokens: u64) {
        self.update(|p| p.completion_tokens = tokens);
    }

    /// Notes the usage this response reports; it counts as billed once the response is
    /// delivered in full.
    pub(crate) fn set_usage_reported(&self, prompt_tokens: u64, completion_tokens: u64) {
        self.update(|p| p.usage_reported = Some((prompt_tokens, completion_tokens)));
    }

    /// Notes that the last byte of the response was handed to the connection now.
    pub(crate) fn completed(&self) {
        self.update(|p| p.completed_at_ms = Some(now_ms()));
    }
}

/// Bounded store of the most recent requests.
#[derive(Debug)]
pub(crate) struct RecordStore {
    enabled: bool,
    records: Mutex<VecDeque<Arc<Record>>>,
}

impl RecordStore {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            records: Mutex::new(VecDeque::new()),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Registers a request and returns the handle its response updates.
    pub(crate) fn start(&self, init: RecordInit<'_>) -> RecordHandle {
        if !self.enabled {
            return RecordHandle(None);
        }
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in init.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
        let record = Arc::new(Record {
            seq: init.seq,
            path: init.path.to_owned(),
            query: init.query.map(str::to_owned),
            headers,
            body: init.body,
            body_sha256: hex::encode(Sha256::digest(init.raw)),
            model: init.model.map(str::to_owned),
            stream: init.stream,
            prompt_tokens: init.prompt_tokens,
            received_at_ms: init.received_at_ms,
            progress: Mutex::new(Progress::default()),
        });
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.len() >= RECORD_CAPACITY {
            records.pop_front();
        }
        records.push_back(Arc::clone(&record));
        RecordHandle(Some(record))
    }

    /// All kept records, oldest first, as a JSON array.
    pub(crate) fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        // Snapshot under the store lock, serialize outside it so requests are not blocked.
        let snapshot: Vec<Arc<Record>> = {
            let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
            records.iter().cloned().collect()
        };
        let refs: Vec<&Record> = snapshot.iter().map(|r| &**r).collect();
        serde_json::to_vec(&refs)
    }

    pub(crate) fn clear(&self) -> usize {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let n = records.len();
        records.clear();
        n
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn init(seq: u64, headers: &HeaderMap) -> RecordInit<'_> {
        RecordInit {
            seq,
            path: "/v1/chat/completions",
            query: None,
            headers,
            body: Value::Null,
            raw: b"",
            model: Some("m"),
            stream: true,
            prompt_tokens: 1,
            received_at_ms: 1,
        }
    }

    #[test]
    fn bounded_and_live() {
        let mut headers = HeaderMap::new();
        headers.insert("X-Tenant", "t1".parse().unwrap());
        let store = RecordStore::new(true);
        for seq in 0..(RECORD_CAPACITY as u64 + 2) {
            store.start(init(seq, &headers));
        }
        let handle = store.start(init(99_999_999, &headers));
        handle.chunk_sent();
        handle.set_completion_tokens(5);
        let all: Vec<Value> = serde_json::from_slice(&store.to_json().unwrap()).unwrap();
        assert_eq!(all.len(), RECORD_CAPACITY);
        assert_eq!(all[0]["seq"], 3);
        let last = &all[RECORD_CAPACITY - 1];
        assert_eq!(last["headers"]["x-tenant"], "t1");
        assert_eq!(last["chunk_sent_at_ms"].as_array().unwrap().len(), 1);
        assert_eq!(last["completion_tokens"], 5);
        assert_eq!(last["completed_at_ms"], Value::Null);
        assert_eq!(store.clear(), RECORD_CAPACITY);
        assert!(RecordStore::new(false).start(init(0, &headers)).0.is_none());
    }
}
