//! Stored Responses (`store: true`, `previous_response_id`, `GET`/`DELETE /v1/responses/{id}`):
//! each finished translated response, with the input that led to it, kept for a configurable
//! time and visible only to its team.
//!
//! With NATS the store is a JetStream key-value bucket ([`proto::RESPONSES_KV_BUCKET`]) whose
//! entries expire with the bucket's `max_age`, so every proxy sees every stored response and a
//! conversation's next turn may land on any proxy. Without NATS (a proxy run from a file) it is
//! this process's memory, with the same expiry and at most 10,000 entries (the oldest are
//! forgotten first). Nothing here is a new database.
//!
//! An entry that cannot be written (NATS away, larger than a NATS message) is logged and
//! counted; the response itself was already served, and a later turn naming it gets the
//! "not found" error OpenAI gives for an expired response.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::OnceCell;

/// Most responses a proxy without NATS keeps in memory (the oldest go first).
const MEMORY_ENTRIES: usize = 10_000;

/// One stored response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The team of the key that created it (`None`: a key without a team).
    pub team: Option<String>,
    /// The conversation's input items up to this response (earlier turns included).
    pub input: Vec<Value>,
    /// The `response` object as the client got it.
    pub response: Value,
}

impl Record {
    /// The items a next turn continues from: the input, then this response's output.
    pub fn conversation(&self) -> Vec<Value> {
        let output = self.response["output"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        self.input.iter().cloned().chain(output).collect()
    }
}

/// Where stored responses live.
#[derive(Debug)]
pub struct StoredResponses {
    ttl: Duration,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Nats {
        js: jetstream::Context,
        /// Opened (or created) on first use, so a proxy that starts while NATS is away still
        /// starts.
        kv: Box<OnceCell<kv::Store>>,
    },
    Memory(Mutex<HashMap<String, (Instant, Bytes)>>),
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[error("stored responses: {0}")]
pub struct StoreError(String);

impl StoredResponses {
    /// A store in NATS when `nats` is given, else in memory; entries live `ttl`.
    pub fn new(nats: Option<async_nats::Client>, ttl: Duration) -> Self {
        let backend = match nats {
            Some(client) => Backend::Nats {
                js: jetstream::new(client),
                kv: Box::default(),
            },
            None => Backend::Memory(Mutex::new(HashMap::new())),
        };
        Self { ttl, backend }
    }

    /// The record of `id` if it exists, has not expired and belongs to `team`.
    pub async fn get(&self, id: &str, team: Option<&str>) -> Result<Option<Record>, StoreError> {
        let Some(bytes) = self.read(id).await? else {
            return Ok(None);
        };
        let record: Record =
            serde_json::from_slice(&bytes).map_err(|e| StoreError(format!("entry {id}: {e}")))?;
        Ok((record.team.as_deref() == team).then_some(record))
    }

    /// Stores `record` under `id`.
    pub async fn put(&self, id: &str, record: &Record) -> Result<(), StoreError> {
        let bytes = Bytes::from(serde_json::to_vec(record).map_err(|e| StoreError(e.to_string()))?);
        match &self.backend {
            Backend::Nats { .. } => {
                let kv = self.kv().await?;
                kv.put(id, bytes)
                    .await
                    .map(|_| ())
                    .map_err(|e| StoreError(e.to_string()))
            }
            Backend::Memory(map) => {
                let mut map = map
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                map.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
                // Bounded: a proxy without NATS forgets its oldest entries first.
                while map.len() >= MEMORY_ENTRIES {
                    let oldest = map
                        .iter()
                        .min_by_key(|(_, (at, _))| *at)
                        .map(|(k, _)| k.clone());
                    match oldest {
                        Some(key) => map.remove(&key),
                        None => break,
                    };
                }
                map.insert(id.to_owned(), (now, bytes));
                Ok(())
            }
        }
    }

    /// Deletes `id` if it belongs to `team`; `false` if there was no such record.
    pub async fn delete(&self, id: &str, team: Option<&str>) -> Result<bool, StoreError> {
        if self.get(id, team).await?.is_none() {
            return Ok(false);
        }
        match &self.backend {
            Backend::Nats { .. } => {
                let kv = self.kv().await?;
                kv.purge(id).await.map_err(|e| StoreError(e.to_string()))?;
            }
            Backend::Memory(map) => {
                let mut map = map
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                map.remove(id);
            }
        }
        Ok(true)
    }

    async fn read(&self, id: &str) -> Result<Option<Bytes>, StoreError> {
        if !valid_id(id) {
            return Ok(None);
        }
        match &self.backend {
            Backend::Nats { .. } => {
                let kv = self.kv().await?;
                kv.get(id).await.map_err(|e| StoreError(e.to_string()))
            }
            Backend::Memory(map) => {
                let map = map
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                Ok(map
                    .get(id)
                    .filter(|(at, _)| at.elapsed() < self.ttl)
                    .map(|(_, bytes)| bytes.clone()))
            }
        }
    }

    /// The bucket, created on first use: a stream of its own, as nats-server 2.9 needs (its
    /// account-limits answer trips async-nats's `create_key_value`).
    async fn kv(&self) -> Result<&kv::Store, StoreError> {
        let Backend::Nats { js, kv } = &self.backend else {
            return Err(StoreError("no NATS".into()));
        };
        kv.get_or_try_init(|| async {
            let bucket = proto::RESPONSES_KV_BUCKET;
            if let Ok(kv) = js.get_key_value(bucket).await {
                return Ok(kv);
            }
            js.get_or_create_stream(jetstream::stream::Config {
                name: format!("KV_{bucket}"),
                description: Some("Stored Responses API responses, by id".into()),
                subjects: vec![format!("$KV.{bucket}.>")],
                max_messages_per_subject: 1,
                max_age: self.ttl,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: jetstream::stream::DiscardPolicy::New,
                num_replicas: crate::usage::replicas(js).await,
                ..Default::default()
            })
            .await
            .map_err(|e| StoreError(e.to_string()))?;
            js.get_key_value(bucket)
                .await
                .map_err(|e| StoreError(e.to_string()))
        })
        .await
    }
}

/// Ids the store can hold: what the gateway issues (`resp_` and hex), and nothing a KV key
/// could not be.
fn valid_id(id: &str) -> bool {
    id.len() <= 128
        && id.starts_with("resp_")
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(team: Option<&str>) -> Record {
        Record {
            team: team.map(str::to_owned),
            input: vec![serde_json::json!({"role": "user", "content": "hi"})],
            response: serde_json::json!({"id": "resp_1", "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]}]}),
        }
    }

    #[tokio::test]
    async fn memory_store_scopes_by_team_and_expires() {
        let store = StoredResponses::new(None, Duration::from_millis(200));
        store.put("resp_1", &record(Some("a"))).await.unwrap();
        assert!(store.get("resp_1", Some("a")).await.unwrap().is_some());
        assert!(store.get("resp_1", Some("b")).await.unwrap().is_none());
        assert!(store.get("resp_1", None).await.unwrap().is_none());
        assert!(!store.delete("resp_1", Some("b")).await.unwrap());
        let conversation = store
            .get("resp_1", Some("a"))
            .await
            .unwrap()
            .unwrap()
            .conversation();
        assert_eq!(conversation.len(), 2);
        assert_eq!(conversation[1]["type"], "message");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(store.get("resp_1", Some("a")).await.unwrap().is_none());
        store.put("resp_2", &record(None)).await.unwrap();
        assert!(store.delete("resp_2", None).await.unwrap());
        assert!(store.get("resp_2", None).await.unwrap().is_none());
        assert!(store.get("../x", None).await.unwrap().is_none());
    }
}
