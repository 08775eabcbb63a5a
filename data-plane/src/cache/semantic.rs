//! The semantic cache: an answer stored for one prompt also answers a prompt whose embedding
//! is similar enough, within the same scope (policy and epoch, team unless shared, serving
//! route, and every request field but the conversation itself).
//!
//! Each stored answer that a semantic policy covers is announced as a [`Record`] (its scope,
//! the exact entry's key, its expiry, the prompt's text and embedding) on the JetStream stream
//! [`STREAM`]; every proxy folds that stream, from its start, into an in-memory index, so the
//! index is rebuilt on start and shared by all proxies (the answer itself stays in the exact
//! cache's bucket, read by key). Without NATS, records go straight into this proxy's index.
//! The index ([`index`](super::index)) is bounded ([`MAX_ITEMS`]): expired records go first,
//! then the oldest. A search has the scope's sign codes propose candidates and their exact
//! cosines decide.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream;
use base64::Engine as _;
use futures_util::StreamExt as _;
use metrics::{counter, gauge};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::embed::{differ_beyond_embedding, Embedder};
use super::entry::now_ms;
use super::index::{self, Index};

/// JetStream stream of semantic records.
pub const STREAM: &str = "SWITCHYARD_CACHE_SEMANTIC";
/// Its subjects: `switchyard.cache.semantic.<scope prefix>`.
const SUBJECTS: &str = "switchyard.cache.semantic.>";
/// Most records a proxy's index holds.
pub const MAX_ITEMS: usize = 100_000;

pub const SEMANTIC_INDEX: &str = "switchyard_cache_semantic_index_entries";
pub const SEMANTIC_SEARCHES: &str = "switchyard_cache_semantic_searches_total";

/// One stored answer as the semantic index knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub scope: String,
    /// The exact cache's key of the answer.
    pub key: String,
    pub expires_ms: i64,
    /// The prompt's text (for the lexical guard).
    pub text: String,
    /// The unit embedding, little-endian `f32`s, base64.
    pub vector: String,
}

/// A semantic match: the exact entry's key and the similarity.
#[derive(Debug, Clone)]
pub struct Match {
    pub key: String,
    pub similarity: f32,
}

/// The in-process embedder (if this proxy loaded one) and the index.
#[derive(Debug)]
pub struct Semantic {
    embedder: Option<Arc<Embedder>>,
    /// Searches read it together; a fold writes it.
    index: RwLock<Index>,
    js: Option<jetstream::Context>,
}

impl Semantic {
    pub fn new(embedder: Option<Embedder>, nats: Option<async_nats::Client>) -> Self {
        Self {
            embedder: embedder.map(Arc::new),
            index: RwLock::new(Index::new(MAX_ITEMS)),
            js: nats.map(jetstream::new),
        }
    }

    /// The index, to read (searches hold it briefly; so should any other reader).
    pub fn index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn index_mut(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// This proxy loaded the in-process embedder.
    pub fn has_embedder(&self) -> bool {
        self.embedder.is_some()
    }

    /// The embedding of `text` by the in-process model, computed off the async workers.
    pub async fn embed(&self, text: String) -> Option<Vec<f32>> {
        let embedder = Arc::clone(self.embedder.as_ref()?);
        match tokio::task::spawn_blocking(move || embedder.embed(&text)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "a prompt could not be embedded");
                None
            }
            Err(_) => None,
        }
    }

    /// The most similar live record of `scope` at or above `threshold` (its exact cosine),
    /// unless the lexical guard tells the texts apart, among the candidates the index proposes.
    pub fn search(&self, scope: &str, text: &str, vector: &[f32], threshold: f32) -> Option<Match> {
        let accept = |t: &str, s: f32| s >= threshold && !differ_beyond_embedding(text, t);
        let best = self.index().search(scope, vector, now_ms(), accept);
        counter!(SEMANTIC_SEARCHES, "result" => if best.is_some() { "hit" } else { "miss" })
            .increment(1);
        best.map(|found| Match {
            key: found.key,
            similarity: found.similarity,
        })
    }

    /// Announces a stored answer: on the stream (every proxy's index, this one's included,
    /// folds it), or straight into this index without NATS.
    pub async fn add(&self, record: Record) {
        let Some(js) = &self.js else {
            self.fold(record);
            return;
        };
        let Ok(body) = serde_json::to_vec(&record) else {
            return;
        };
        let subject = format!(
            "switchyard.cache.semantic.{}",
            &record.scope[..16.min(record.scope.len())]
        );
        let published = match js.publish(subject, body.into()).await {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = published {
            tracing::warn!(error = %e, "a semantic cache record could not be published");
            // This proxy still knows it.
            self.fold(record);
        }
    }

    /// Adds a record to this proxy's index.
    pub fn fold(&self, record: Record) {
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&record.vector) else {
            return;
        };
        // Any dimension (a routed embedder's); one scope's vectors all come from one embedder.
        if bytes.is_empty() || bytes.len() % 4 != 0 || record.expires_ms <= now_ms() {
            return;
        }
        let vector = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let entry = index::Entry {
            key: record.key,
            text: record.text,
            vector,
            expires_ms: record.expires_ms,
        };
        let mut index = self.index_mut();
        index.insert(&record.scope, entry, now_ms());
        gauge!(SEMANTIC_INDEX).set(index.len() as f64);
    }

    /// Follows the stream from its start into the index, until `cancel`; reconnects after a
    /// failure.
    pub fn follow(
        self: &Arc<Self>,
        client: async_nats::Client,
        tasks: &TaskTracker,
        cancel: CancellationToken,
    ) {
        let Some(js) = self.js.clone() else { return };
        let me = Arc::clone(self);
        tasks.spawn(async move {
            loop {
                let run = me.follow_once(&client, &js);
                tokio::select! {
                    () = cancel.cancelled() => return,
                    result = run => if let Err(e) = result {
                        tracing::warn!(error = %e, "following the semantic cache stream failed; retrying");
                    },
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        });
    }

    async fn follow_once(
        &self,
        client: &async_nats::Client,
        js: &jetstream::Context,
    ) -> Result<(), String> {
        let stream = js
            .get_or_create_stream(jetstream::stream::Config {
                name: STREAM.into(),
                description: Some("Switchyard semantic-cache records".into()),
                subjects: vec![SUBJECTS.into()],
                max_age: Duration::from_secs(proto::CACHE_MAX_TTL_SECS),
                max_messages: MAX_ITEMS as i64 * 4,
                num_replicas: crate::usage::replicas(js).await,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let consumer = stream
            .create_consumer(jetstream::consumer::push::OrderedConfig {
                deliver_subject: client.new_inbox(),
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| e.to_string())?;
            if let Ok(record) = serde_json::from_slice::<Record>(&message.payload) {
                self.fold(record);
            }
        }
        Err("the stream ended".into())
    }
}

/// A vector as a record carries it.
pub fn encode(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What a semantic lookup compares: the conversation's last message, when it is the user's
/// and only text (its text is embedded), and the messages before it (which, with every other
/// field, must match exactly: they go into the scope). `None` for any other conversation.
pub fn last_user_turn(messages: &serde_json::Value) -> Option<(serde_json::Value, String)> {
    let all = messages.as_array()?;
    let (last, before) = all.split_last()?;
    if last["role"] != "user" {
        return None;
    }
    let text = match &last["content"] {
        serde_json::Value::String(t) => t.clone(),
        serde_json::Value::Array(parts) => {
            let mut t = String::new();
            for p in parts {
                if p["type"] != "text" {
                    return None;
                }
                t.push_str(p["text"].as_str()?);
            }
            t
        }
        _ => return None,
    };
    (!text.trim().is_empty()).then(|| (serde_json::Value::Array(before.to_vec()), text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_final_text_turn_of_the_user_is_compared() {
        let m = json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}]);
        let (before, text) = last_user_turn(&m).unwrap();
        assert_eq!(
            (before, text.as_str()),
            (json!([{"role": "system", "content": "be brief"}]), "hi")
        );
        assert!(last_user_turn(&json!([{"role": "assistant", "content": "x"}])).is_none());
        assert!(
            last_user_turn(&json!([{"role": "user", "content": [{"type": "image_url"}]}]))
                .is_none()
        );
    }
}
