//! A scripted mock of an OpenAI-compatible LLM provider, used as the upstream in end-to-end
//! tests and throughput benchmarks. It runs as the `mock-provider` binary or in-process via
//! [`serve`] / [`spawn`].
//!
//! # Routes
//! - `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models` (OpenAI dialect,
//!   `Authorization: Bearer KEY`), and `POST /v1/responses` and `POST /v1/responses/compact`
//!   (OpenAI's Responses API and its compaction; see `responses.rs`).
//! - `POST /openai/deployments/{deployment}/chat/completions` and `.../embeddings` (Azure
//!   dialect, `api-key: KEY` header, `api-version` query parameter required or 400). The
//!   response `model` is the body's `model`, else the deployment name.
//! - `POST /v1/messages` (Anthropic Messages dialect, `x-api-key: KEY`, `anthropic-version`
//!   required; Anthropic's error shape; see `anthropic.rs`) and
//!   `POST /v1/messages/count_tokens` (see `count.rs`).
//! - `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
//!   `:batchEmbedContents` (Gemini dialect, `x-goog-api-key: KEY`; see `gemini.rs`) and
//!   `:countTokens` (see `count.rs`).
//! - `POST /model/{modelId}/converse` and `/model/{modelId}/converse-stream` (AWS Bedrock
//!   Converse dialect, SigV4-signed with KEY as the secret access key; binary event-stream
//!   answers and Bedrock's error shape; see `bedrock/`).
//! - `POST /token` (Google's OAuth token endpoint: verifies the service-account JWT against
//!   [`MockOptions::google_service_account`] and issues `ya29.mock-N` tokens living
//!   [`MockOptions::google_token_ttl_secs`]) and
//!   `POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent`,
//!   `:streamGenerateContent?alt=sse` and `:predict` (Vertex AI, `Authorization: Bearer` with
//!   a token the mock issued and that has not expired; see `vertex/`), and Claude on Vertex
//!   AI, `POST /v1/projects/{project}/locations/{location}/publishers/anthropic/models/
//!   {model}:rawPredict` and `:streamRawPredict` (Anthropic's Messages body without `model`,
//!   with `anthropic_version`, answered as `/v1/messages` is) and
//!   `…/models/count-tokens:rawPredict`, behind the same token check.
//! - Control: `POST|GET|DELETE /__mock/script`, `GET|DELETE /__mock/requests`,
//!   `GET /__mock/healthz` (no auth, not recorded).
//!
//! Without [`MockOptions::api_key`] no auth is checked; with it a wrong or missing key gets
//! 401 `invalid_api_key`. Bodies that are not JSON, or not the expected shape, get 400
//! `invalid_request_error`. All errors use OpenAI's `{"error":{message,type,param,code}}`.
//!
//! # Token counting (deterministic; tests depend on it)
//! - One token is one whitespace-separated word ([`count_words`]).
//! - Chat `prompt_tokens`: words of every message's `content`, summed. String content counts
//!   as is; for an array of parts only `{"type":"text"}` parts count, by their `text`. Roles,
//!   names, tools and non-text parts count zero.
//! - Chat reply: the script's/header's reply, else [`DEFAULT_REPLY`] (5 words). If
//!   `max_tokens` or `max_completion_tokens` (the smaller, if both) is below the word count,
//!   the reply is cut to that many words and `finish_reason` is `"length"`, else `"stop"`.
//!   `completion_tokens` = words in the (cut) reply; `total_tokens` = prompt + completion.
//! - Token counting endpoints (`count.rs`) answer the prompt tokens the same body's chat
//!   request would count, and bill nothing.
//! - Embeddings `prompt_tokens` (= `total_tokens`): words of each string input, or the number
//!   of ids of each token-array input, summed.
//!
//! # Streams
//! `data: <chunk>\n\n` events, each flushed on its own: a role chunk
//! (`delta: {"role":"assistant","content":""}`), one chunk per reply word (words after the
//! first carry a leading space, so the deltas concatenate to the reply), a chunk with an empty
//! delta and the `finish_reason`, then, with `stream_options.include_usage`, a chunk with
//! `choices: []` and the usage (all other chunks then carry `"usage": null`), then
//! `data: [DONE]`.
//!
//! # Embeddings
//! `input` may be a string, strings, token ids or arrays of token ids; `dimensions` (default
//! 8) sets the vector length; vectors are deterministic per input and L2-normalised;
//! `encoding_format: "base64"` returns base64 of the little-endian `f32` bytes.
//!
//! # Scripting
//! Per request, from `x-mock-status`, `x-mock-retry-after` (seconds), `x-mock-latency-ms`,
//! `x-mock-chunk-delay-ms`, `x-mock-fault`, `x-mock-reply`, `x-mock-error-message`,
//! `x-mock-tool-calls` (a JSON array of `{"name", "arguments"}`), `x-mock-reasoning` and the
//! cache headers below, and from [`Script`]s queued with `POST /__mock/script` (FIFO, consumed
//! by matching requests; headers win per field). See [`Behaviour`] and [`Fault`].
//!
//! Scripted prompt-cache usage (`x-mock-cache-read-tokens`, `x-mock-cache-write-5m-tokens`,
//! `x-mock-cache-write-1h-tokens`, or a script's `cache_read_tokens`, `cache_write_5m_tokens`,
//! `cache_write_1h_tokens`) reports that many of the prompt's words as read from or written to
//! the provider's cache; the prompt's word count is unchanged and stays what is billed as
//! `prompt_tokens`. The counts are cut, in the order reads, 5-minute writes, 1-hour writes, to
//! the prompt's words. Each wire reports them its own way (`cache.rs`): Anthropic takes them
//! out of `input_tokens` into `cache_read_input_tokens`, `cache_creation_input_tokens` and
//! `cache_creation.ephemeral_5m_input_tokens`/`ephemeral_1h_input_tokens`; Bedrock takes them
//! out of `inputTokens` into `cacheReadInputTokens` and `cacheWriteInputTokens` (5m + 1h);
//! OpenAI chat (`prompt_tokens_details.cached_tokens`), the Responses API
//! (`input_tokens_details.cached_tokens`) and Gemini (`cachedContentTokenCount`) report the
//! reads inside the prompt count and have no writes.
//!
//! Every dialect answers a generation request from one plan (`output.rs`): scripted reasoning
//! first, then the scripted tool calls or the reply text.
//! - Scripted tool calls make one tool round trip in every dialect: a request that declares
//!   tools and whose conversation does not end with a tool result is answered with every
//!   scripted call, in order (parallel tool calls), each costing one completion token plus
//!   the words of its arguments' JSON; the request that carries the results gets the reply
//!   text. OpenAI chat: `tool_calls` (finish reason `tool_calls`; each call streamed as a
//!   naming chunk and an arguments chunk, with its `index`); Responses: one `function_call`
//!   item each; Anthropic: one `tool_use` block each (its own block index, the input in two
//!   `input_json_delta`s); Gemini and Vertex: one `functionCall` part each; Bedrock: one
//!   `toolUse` block each.
//! - Scripted reasoning comes before everything else; its words (joined by single spaces)
//!   are completion tokens, never cut by the output limit. OpenAI chat: `reasoning_content`
//!   and `completion_tokens_details.reasoning_tokens`; Responses: a `reasoning` item with a
//!   `summary_text` part and `output_tokens_details.reasoning_tokens`; Anthropic: a `thinking`
//!   block with a `signature` (streamed as `thinking_delta`s and a `signature_delta`), inside
//!   `output_tokens`; Gemini and Vertex: a `thought: true` part, counted apart in
//!   `thoughtsTokenCount` (not in `candidatesTokenCount`); Bedrock: a `reasoningContent`
//!   block (`reasoningText` with a `signature`; streamed as `reasoningContent` deltas), inside
//!   `outputTokens`. A record's `billed` completion tokens are always reasoning plus the rest,
//!   which is what the gateway must bill from each wire's report.
//!
//! # Recording
//! `GET /__mock/requests` lists the last [`RECORD_CAPACITY`] API requests, oldest first, as
//! `{seq, path, query, headers (lowercased name -> value), body (JSON, or the raw text when
//! not JSON), body_sha256 (hex SHA-256 of the body's bytes as received), model, stream,
//! prompt_tokens, completion_tokens, billed, received_at_ms, chunk_sent_at_ms (one Unix ms per
//! SSE event handed to the connection, filled in live), completed_at_ms (null until the last
//! byte is handed over), response_sha256 (hex SHA-256 of a streamed body's bytes, once sent in
//! full; null for single-piece answers)}`. Disabled with
//! [`MockOptions::record`] = false (`--no-record`).

mod admit;
mod anthropic;
mod api;
mod bedrock;
mod cache;
mod conn;
mod control;
mod count;
mod embedding;
mod error;
mod gemini;
mod google_error;
mod openai;
mod output;
mod record;
mod responses;
mod script;
mod stream;
mod tokens;
mod vertex;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod http_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test_client;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod wire_tests;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use embedding::{to_base64, DEFAULT_DIMENSIONS};
pub use openai::SYSTEM_FINGERPRINT;
pub use record::RECORD_CAPACITY;
pub use script::{Behaviour, Fault, Script, ToolCall};
pub use tokens::{count_words, Reply, DEFAULT_REPLY};

use conn::{KillSwitch, MockListener};

/// Largest accepted request body.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// How the mock runs.
#[derive(Debug, Clone)]
pub struct MockOptions {
    /// When set, API routes require this key (`Authorization: Bearer` / Azure `api-key`; for
    /// the Bedrock routes it is the AWS secret access key the SigV4 signature must use).
    pub api_key: Option<String>,
    /// Whether API requests are recorded for `GET /__mock/requests`.
    pub record: bool,
    /// The service-account JSON key file (text) whose JWTs `POST /token` accepts; without it
    /// every token request is refused.
    pub google_service_account: Option<String>,
    /// Lifetime of the access tokens `POST /token` issues.
    pub google_token_ttl_secs: u64,
}

impl Default for MockOptions {
    fn default() -> Self {
        Self {
            api_key: None,
            record: true,
            google_service_account: None,
            google_token_ttl_secs: 3600,
        }
    }
}

/// State shared by all handlers.
#[derive(Debug)]
pub(crate) struct Shared {
    options: MockOptions,
    seq: AtomicU64,
    scripts: script::ScriptQueue,
    records: record::RecordStore,
}

impl Shared {
    fn new(options: MockOptions) -> Self {
        Self {
            records: record::RecordStore::new(options.record),
            options,
            seq: AtomicU64::new(1),
            scripts: script::ScriptQueue::default(),
        }
    }

    /// Numbers requests in arrival order, from 1.
    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }
}

fn router(shared: Arc<Shared>) -> Router {
    const AZURE_CHAT: &str = "/openai/deployments/{deployment}/chat/completions";
    const AZURE_EMBEDDINGS: &str = "/openai/deployments/{deployment}/embeddings";
    Router::new()
        .route("/v1/chat/completions", post(api::chat))
        .route("/v1/embeddings", post(api::embeddings))
        .route("/v1/responses", post(responses::create))
        .route("/v1/responses/compact", post(responses::compact))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(count::anthropic))
        .route("/v1/models", get(api::models))
        .route(AZURE_CHAT, post(api::chat))
        .route(AZURE_EMBEDDINGS, post(api::embeddings))
        .route("/v1beta/models/{target}", post(gemini::models_action))
        .merge(vertex::routes())
        .merge(bedrock::routes())
        .route(
            "/__mock/script",
            post(control::push_script)
                .get(control::list_scripts)
                .delete(control::clear_scripts),
        )
        .route(
            "/__mock/requests",
            get(control::list_requests).delete(control::clear_requests),
        )
        .route("/__mock/healthz", get(control::healthz))
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

/// Serves the mock on `listener` until `shutdown` resolves, then drains open connections.
pub async fn serve<F>(listener: TcpListener, options: MockOptions, shutdown: F) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let app = router(Arc::new(Shared::new(options)));
    let make_service = app.into_make_service_with_connect_info::<KillSwitch>();
    axum::serve(MockListener(listener), make_service)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Starts the mock in-process on `127.0.0.1:0`; it stops when the handle is dropped.
pub async fn spawn(options: MockOptions) -> io::Result<MockServer> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, options, async {
        let _ = stopped.await;
    }));
    Ok(MockServer {
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}

/// A mock running in-process; dropping it starts a graceful shutdown.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl MockServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, waits for open connections to finish, and returns the server result.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
