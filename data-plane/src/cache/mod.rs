//! The exact response cache: answers kept by a canonical hash of what determines them, shared
//! by every proxy through NATS, with a bounded memory of its own in front.
//!
//! - [`key`]: the hash (the route, the team unless the policy shares entries, the policy and
//!   its purge epoch, and every field of the internal body that can change the answer).
//! - [`policy`]: which policy a request takes, and the client's `Cache-Control` /
//!   `x-switchyard-cache`.
//! - [`entry`]: what is stored: the answer as an internal (OpenAI chat) completion, whatever
//!   dialect asked, so any dialect can be answered from it, streamed or not.
//! - [`assemble`] / [`replay`]: a relayed stream folded into that completion; a completion
//!   turned back into the internal chunks a dialect writes as its stream.
//! - [`lru`]: the proxy's bounded memory (entries and bytes).
//! - [`semantic`] / [`index`] / [`simhash`] / [`embed`]: the semantic cache (records shared
//!   through a stream, the bounded per-scope index that sign codes search and exact cosines
//!   decide, the codes, the in-process embedder).
//!
//! With NATS, entries live in the JetStream key-value bucket [`proto::CACHE_KV_BUCKET`]. Its
//! `max_age` is the longest TTL a policy may set (nats-server 2.9 has no per-message TTL) and
//! each entry carries its own expiry, checked on every read. Without NATS (a proxy run from a
//! file) the memory is the whole cache. A write is made off the request path; one that fails
//! is counted and forgotten (the answer was served).
//!
//! The pipeline stage that uses this is `pipeline::cached`.

pub mod assemble;
pub mod embed;
pub mod entry;
pub mod index;
pub mod key;
pub mod lru;
pub mod policy;
pub mod replay;
pub mod semantic;
pub mod simhash;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use metrics::{counter, gauge};
use serde_json::value::RawValue;
use tokio::sync::OnceCell;
use tokio_util::task::TaskTracker;

pub use entry::Entry;
pub use policy::{Control, CACHE_HEADER};

use crate::providers::{Usage, Wire};
use crate::usage::event::token_usage;

pub const CACHE_EVICTIONS: &str = "switchyard_cache_evictions_total";
pub const CACHE_ENTRIES: &str = "switchyard_cache_entries";
pub const CACHE_BYTES: &str = "switchyard_cache_bytes";
pub const CACHE_WRITES: &str = "switchyard_cache_writes_total";
pub const CACHE_READS: &str = "switchyard_cache_reads_total";

/// Where entries are kept.
#[derive(Debug)]
pub struct Cache {
    memory: Mutex<lru::Lru>,
    kv: Option<Kv>,
}

#[derive(Debug)]
struct Kv {
    js: jetstream::Context,
    /// Opened (or created) on first use, so a proxy that starts while NATS is away starts.
    store: OnceCell<kv::Store>,
}

impl Cache {
    /// A cache shared through `nats` when given, with a memory of at most `max_entries` and
    /// `max_bytes`.
    pub fn new(nats: Option<async_nats::Client>, max_entries: usize, max_bytes: usize) -> Self {
        Self {
            memory: Mutex::new(lru::Lru::new(max_entries, max_bytes)),
            kv: nats.map(|client| Kv {
                js: jetstream::new(client),
                store: OnceCell::new(),
            }),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, lru::Lru> {
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The entry under `key` that may answer `team` now: from memory, else from the bucket
    /// (then remembered). A bucket that cannot be read is a miss.
    pub async fn get(&self, key: &str, team: Option<&str>) -> Option<Arc<Entry>> {
        let now = entry::now_ms();
        let remembered = self.memory().get(key);
        if let Some(entry) = remembered {
            if entry.answers(team, now) {
                counter!(CACHE_READS, "source" => "memory").increment(1);
                return Some(entry);
            }
            self.memory().remove(key);
        }
        let store = self.kv_store().await?;
        let bytes = match store.get(key).await {
            Ok(bytes) => bytes?,
            Err(e) => {
                counter!(CACHE_READS, "source" => "error").increment(1);
                tracing::debug!(error = %e, "cache bucket read failed");
                return None;
            }
        };
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        if !entry.answers(team, now) {
            return None;
        }
        counter!(CACHE_READS, "source" => "nats").increment(1);
        let entry = Arc::new(entry);
        self.remember(key.to_owned(), Arc::clone(&entry), bytes.len());
        Some(entry)
    }

    /// Stores `entry` under `key`: in memory at once, in the bucket when there is one.
    pub async fn put(&self, key: String, entry: Entry) {
        let Ok(bytes) = serde_json::to_vec(&entry) else {
            return;
        };
        let bytes = Bytes::from(bytes);
        self.remember(key.clone(), Arc::new(entry), bytes.len());
        let Some(store) = self.kv_store().await else {
            if self.kv.is_none() {
                counter!(CACHE_WRITES, "result" => "ok").increment(1);
            } else {
                counter!(CACHE_WRITES, "result" => "error").increment(1);
            }
            return;
        };
        match store.put(&key, bytes).await {
            Ok(_) => counter!(CACHE_WRITES, "result" => "ok").increment(1),
            Err(e) => {
                counter!(CACHE_WRITES, "result" => "error").increment(1);
                tracing::warn!(error = %e, "a cache entry could not be stored in NATS");
            }
        }
    }

    fn remember(&self, key: String, entry: Arc<Entry>, size: usize) {
        let mut memory = self.memory();
        let evicted = memory.insert(key, entry, size);
        if evicted > 0 {
            counter!(CACHE_EVICTIONS).increment(evicted as u64);
        }
        gauge!(CACHE_ENTRIES).set(memory.len() as f64);
        gauge!(CACHE_BYTES).set(memory.bytes() as f64);
    }

    /// The bucket, created on first use: a stream of its own, as nats-server 2.9 needs (its
    /// account-limits answer trips async-nats's `create_key_value`).
    async fn kv_store(&self) -> Option<&kv::Store> {
        let kv = self.kv.as_ref()?;
        let opened = kv
            .store
            .get_or_try_init(|| async {
                let bucket = proto::CACHE_KV_BUCKET;
                if let Ok(store) = kv.js.get_key_value(bucket).await {
                    return Ok(store);
                }
                kv.js
                    .get_or_create_stream(jetstream::stream::Config {
                        name: format!("KV_{bucket}"),
                        description: Some("Switchyard response-cache entries".into()),
                        subjects: vec![format!("$KV.{bucket}.>")],
                        max_messages_per_subject: 1,
                        max_age: Duration::from_secs(proto::CACHE_MAX_TTL_SECS),
                        allow_rollup: true,
                        deny_delete: true,
                        allow_direct: true,
                        discard: jetstream::stream::DiscardPolicy::New,
                        num_replicas: crate::usage::replicas(&kv.js).await,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                kv.js.get_key_value(bucket).await.map_err(|e| e.to_string())
            })
            .await;
        match opened {
            Ok(store) => Some(store),
            Err(e) => {
                tracing::warn!(error = %e, "the cache bucket is unavailable");
                None
            }
        }
    }
}

/// A Messages content block the internal form holds without loss.
fn lossless_block(kind: &serde_json::Value) -> bool {
    matches!(kind.as_str(), Some("text" | "tool_use"))
}

fn unix_now() -> u64 {
    u64::try_from(entry::now_ms() / 1000).unwrap_or(0)
}

/// An answer to store once it is known to be complete: where, for whom, and the policy's
/// limits.
#[derive(Debug)]
pub struct Pending {
    pub cache: Arc<Cache>,
    pub tasks: TaskTracker,
    pub key: String,
    pub team: Option<String>,
    pub shared: bool,
    pub ttl: Duration,
    pub max_bytes: usize,
    pub finish_reasons: Vec<String>,
    /// Where a semantic policy announces the stored answer.
    pub semantic: Option<SemanticStore>,
}

/// What the semantic index is told of a stored answer.
#[derive(Debug)]
pub struct SemanticStore {
    pub semantic: Arc<semantic::Semantic>,
    pub scope: String,
    /// The user's last turn, and its embedding when the lookup already made it.
    pub text: String,
    pub vector: Option<Vec<f32>>,
    /// The in-process model may embed the text here (not under a policy that embeds by a
    /// route: without the lookup's vector, such an answer is stored for exact hits only).
    pub local: bool,
}

impl SemanticStore {
    async fn announce(self, key: String, expires_ms: i64) {
        let vector = match self.vector {
            Some(v) => v,
            None if !self.local => return,
            None => match self.semantic.embed(self.text.clone()).await {
                Some(v) => v,
                None => return,
            },
        };
        let record = semantic::Record {
            scope: self.scope,
            key,
            expires_ms,
            text: self.text,
            vector: semantic::encode(&vector),
        };
        self.semantic.add(record).await;
    }
}

impl Pending {
    /// Stores a complete internal completion made by `deployment` (`provider/model`, upstream
    /// `model`), off the request path, if the policy allows its finish reason and size.
    pub fn store(self, completion: &[u8], usage: Option<Usage>, deployment: &str, model: &str) {
        if completion.len() > self.max_bytes {
            counter!(CACHE_WRITES, "result" => "too_large").increment(1);
            return;
        }
        let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(completion) else {
            return;
        };
        let choices = parsed["choices"].as_array().map_or(0, Vec::len);
        let finish = parsed["choices"][0]["finish_reason"].as_str();
        if choices != 1 || !finish.is_some_and(|f| self.finish_reasons.iter().any(|r| r == f)) {
            counter!(CACHE_WRITES, "result" => "not_stored").increment(1);
            return;
        }
        let Ok(raw) = serde_json::from_slice::<Box<RawValue>>(completion) else {
            return;
        };
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let entry = Entry {
            expires_ms: entry::now_ms().saturating_add(ttl_ms),
            team: self.team,
            shared: self.shared,
            deployment: deployment.to_owned(),
            model: model.to_owned(),
            usage: usage.map(token_usage).unwrap_or_default(),
            completion: raw,
        };
        let (cache, key, semantic) = (self.cache, self.key, self.semantic);
        let expires_ms = entry.expires_ms;
        self.tasks.spawn(async move {
            cache.put(key.clone(), entry).await;
            if let Some(semantic) = semantic {
                semantic.announce(key, expires_ms).await;
            }
        });
    }

    /// A stream's store (the stream made by `deployment`, upstream `model`): its chunks are
    /// folded as they are relayed. `native`: the wire of a deployment that answered in the
    /// client's own (pass-through), whose events are translated for the cache only.
    pub fn streamed(self, deployment: &str, model: &str, native: Option<Wire>) -> StreamStore {
        let native = native.map(|wire| match wire {
            Wire::AnthropicMessages => NativeStream::Messages(Box::new(
                crate::providers::anthropic::stream::Translator::new(
                    deployment.to_owned(),
                    unix_now(),
                ),
            )),
            Wire::OpenAiResponses => NativeStream::Responses(None),
            Wire::OpenAiCompact => NativeStream::Unstorable,
        });
        StreamStore {
            pending: self,
            answer: assemble::Assembler::default(),
            native,
            deployment: deployment.to_owned(),
            model: model.to_owned(),
        }
    }

    /// Stores a complete answer a deployment gave in the client's own `wire`, translated to
    /// the internal form, unless the translation would lose part of it: an Anthropic message
    /// with blocks other than text and tool use (thinking, with its signature), a Responses
    /// object with items other than messages, function calls and reasoning summaries.
    pub fn store_native(self, wire: Wire, answer: &[u8], deployment: &str, model: &str) {
        let reply = match wire {
            Wire::AnthropicMessages => {
                let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(answer) else {
                    return;
                };
                let blocks = parsed["content"].as_array().into_iter().flatten();
                if !blocks.into_iter().all(|b| lossless_block(&b["type"])) {
                    counter!(CACHE_WRITES, "result" => "not_stored").increment(1);
                    return;
                }
                crate::providers::anthropic::response::chat(deployment, answer, unix_now()).ok()
            }
            Wire::OpenAiResponses => serde_json::from_slice::<serde_json::Value>(answer)
                .ok()
                .and_then(|r| crate::providers::openai::forward::completion(&r, unix_now())),
            Wire::OpenAiCompact => None,
        };
        match reply {
            Some(reply) => self.store(&reply.body, reply.usage, deployment, model),
            None => counter!(CACHE_WRITES, "result" => "not_stored").increment(1),
        }
    }
}

/// A passed-through stream, read for the cache.
#[derive(Debug)]
enum NativeStream {
    /// Anthropic Messages events, translated to internal chunks as they come.
    Messages(Box<crate::providers::anthropic::stream::Translator>),
    /// Responses events: the terminal event carries the whole response, which is kept.
    Responses(Option<serde_json::Value>),
    /// A wire the cache does not keep.
    Unstorable,
}

/// A streamed answer being put together for the cache.
#[derive(Debug)]
pub struct StreamStore {
    pending: Pending,
    answer: assemble::Assembler,
    native: Option<NativeStream>,
    deployment: String,
    model: String,
}

impl StreamStore {
    /// Folds one chunk: internal, or whole SSE frames of the client's wire when passed
    /// through.
    pub fn push(&mut self, data: &[u8]) {
        let Some(native) = self.native.as_mut() else {
            self.answer.push(data);
            return;
        };
        let text = String::from_utf8_lossy(data);
        for line in text.lines() {
            let Some(event) = line.strip_prefix("data:").map(str::trim_start) else {
                continue;
            };
            match native {
                NativeStream::Messages(translator) => {
                    let parsed: serde_json::Value = serde_json::from_str(event).unwrap_or_default();
                    if parsed["type"] == "content_block_start"
                        && !lossless_block(&parsed["content_block"]["type"])
                    {
                        self.answer.spoil();
                    }
                    match translator.event(event.as_bytes()) {
                        Ok(chunks) => chunks.iter().for_each(|c| self.answer.push(&c.data)),
                        Err(_) => self.answer.spoil(),
                    }
                }
                // Only a terminal event is parsed: it holds the whole response.
                NativeStream::Responses(done) => {
                    if !(event.contains("\"response.completed\"")
                        || event.contains("\"response.incomplete\""))
                    {
                        continue;
                    }
                    let mut parsed: serde_json::Value =
                        serde_json::from_str(event).unwrap_or_default();
                    if matches!(
                        parsed["type"].as_str(),
                        Some("response.completed" | "response.incomplete")
                    ) {
                        *done = Some(parsed["response"].take());
                    }
                }
                NativeStream::Unstorable => {}
            }
        }
    }

    /// The stream ended well: stores what it said.
    pub fn finish(self, usage: Option<Usage>) {
        match self.native {
            Some(NativeStream::Responses(Some(response))) => {
                let completion =
                    crate::providers::openai::forward::completion(&response, unix_now());
                match completion {
                    Some(c) => self
                        .pending
                        .store(&c.body, usage, &self.deployment, &self.model),
                    None => counter!(CACHE_WRITES, "result" => "not_stored").increment(1),
                }
                return;
            }
            Some(NativeStream::Responses(None) | NativeStream::Unstorable) => {
                counter!(CACHE_WRITES, "result" => "not_stored").increment(1);
                return;
            }
            Some(NativeStream::Messages(_)) | None => {}
        }
        let Some(completion) = self.answer.completion() else {
            counter!(CACHE_WRITES, "result" => "not_stored").increment(1);
            return;
        };
        let bytes = completion.to_string();
        self.pending
            .store(bytes.as_bytes(), usage, &self.deployment, &self.model);
    }
}
