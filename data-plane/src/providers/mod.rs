//! Provider adapters: one trait, one module per provider family, static enum dispatch.
//!
//! The gateway's internal dialect is OpenAI's: handlers hand an adapter an OpenAI-shaped request
//! body and get back an OpenAI-shaped response or chunk stream, plus the usage the provider
//! reported. An adapter for a provider with another wire format (Anthropic, Gemini, Bedrock)
//! translates in its own `request`/`response`/`stream` modules; the OpenAI family passes bodies
//! through with only the model name and the usage request changed.
//!
//! Pass-through is an adapter capability: an adapter that also speaks a client's [`Wire`]
//! natively for a deployment's model says so ([`Adapter::speaks`]) and takes that client's own
//! bytes ([`Adapter::forward`]); the pipeline applies that one rule for every dialect.

pub mod anthropic;
pub mod bedrock;
mod common;
mod error;
mod forward;
pub mod gemini;
pub mod http;
pub mod openai;
pub mod sse;
pub mod stream;
pub mod translate;
mod usage;
pub mod vertex;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde_json::value::RawValue;

use crate::seal::SealKey;

pub use error::{ConfigError, UpstreamError};
pub use usage::{OpenAiUsage, ResponsesUsage, Usage};

/// A request body as top-level fields with their values left as raw JSON: fields the gateway
/// does not interpret are forwarded without being parsed into a tree and re-built.
pub type JsonBody = BTreeMap<String, Box<RawValue>>;

/// Everything an adapter needs for one upstream call besides the body.
#[derive(Debug)]
pub struct Call<'a> {
    /// Shared connection pool.
    pub http: &'a reqwest::Client,
    /// The deployment chosen for this request.
    pub deployment: &'a Deployment,
    /// Time allowed for the whole non-streaming call, or for the first byte of a stream.
    pub timeout: Duration,
    /// The attempt's trace context for the upstream (`traceparent`, `tracestate`): added to
    /// every upstream request of the call. Empty when traces are off.
    pub trace: &'a [(::http::HeaderName, ::http::HeaderValue)],
}

/// A wire format besides the internal (OpenAI) one that an inbound dialect speaks and an
/// adapter may speak natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Anthropic's Messages API (`/v1/messages`).
    AnthropicMessages,
    /// OpenAI's Responses API (`/v1/responses`).
    OpenAiResponses,
    /// The Responses API's compaction (`/v1/responses/compact`): a conversation in, a
    /// `response.compaction` object out, never streamed.
    OpenAiCompact,
}

/// A request in the client's own wire, for an adapter that speaks it natively.
#[derive(Debug)]
pub struct NativeRequest<'a> {
    pub wire: Wire,
    /// The client's body as it arrived (the adapter replaces only the model).
    pub body: Bytes,
    /// The client's headers; the adapter forwards the ones its wire defines (versions, betas).
    pub headers: &'a ::http::HeaderMap,
    /// The client asked for a stream.
    pub stream: bool,
}

/// A chat request in the OpenAI dialect.
#[derive(Debug)]
pub struct ChatRequest {
    pub body: JsonBody,
    /// The client asked for a stream.
    pub stream: bool,
    /// The body holds prompt-cache marks (`cache_control`) the gateway's own translation put
    /// there (from the Messages dialect): an adapter whose provider has no such field removes
    /// them. Marks an OpenAI-dialect client sent itself are its own, and pass.
    pub cache_marks: bool,
}

/// A complete JSON answer in the OpenAI dialect.
#[derive(Debug)]
pub struct JsonReply {
    pub body: Bytes,
    pub usage: Option<Usage>,
}

/// One chunk of a chat stream in the OpenAI dialect (the JSON after `data: `).
#[derive(Debug)]
pub struct Chunk {
    pub data: Bytes,
    /// Usage reported in this chunk, if any.
    pub usage: Option<Usage>,
    /// The chunk carries only usage (`choices: []`): it exists because the gateway asked for it
    /// and reaches the client only if the client asked too.
    pub usage_only: bool,
}

/// Chunks until the provider's end of stream; an error ends the stream.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, UpstreamError>> + Send>>;

/// What a chat call produced.
pub enum ChatReply {
    Json(JsonReply),
    Stream(ChunkStream),
}

impl std::fmt::Debug for ChatReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json(j) => f.debug_tuple("Json").field(j).finish(),
            Self::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// What a chat call returns.
pub type ChatResult = Result<ChatReply, UpstreamError>;
/// What an embeddings call returns.
pub type JsonResult = Result<JsonReply, UpstreamError>;

/// The operations every provider adapter implements.
pub trait Provider {
    /// Sends a chat completion (streaming or not).
    fn chat(
        &self,
        call: &Call<'_>,
        request: ChatRequest,
    ) -> impl Future<Output = ChatResult> + Send;
    /// Sends an embeddings request.
    fn embeddings(
        &self,
        call: &Call<'_>,
        body: JsonBody,
    ) -> impl Future<Output = JsonResult> + Send;
}

/// A configured provider of any family.
#[derive(Debug)]
pub enum Adapter {
    OpenAi(openai::OpenAiFamily),
    Anthropic(anthropic::Anthropic),
    Gemini(gemini::Gemini),
    Vertex(vertex::Vertex),
    Bedrock(bedrock::Bedrock),
}

impl Adapter {
    /// Builds the adapter for one snapshot provider entry; `seal_key` opens a sealed credential.
    pub fn new(provider: &proto::Provider, seal_key: Option<&SealKey>) -> Self {
        match provider.kind {
            proto::ProviderKind::Anthropic => {
                Self::Anthropic(anthropic::Anthropic::new(provider, seal_key))
            }
            proto::ProviderKind::Gemini => Self::Gemini(gemini::Gemini::new(provider, seal_key)),
            proto::ProviderKind::VertexAi => Self::Vertex(vertex::Vertex::new(provider, seal_key)),
            proto::ProviderKind::Bedrock => {
                Self::Bedrock(bedrock::Bedrock::new(provider, seal_key))
            }
            _ => Self::OpenAi(openai::OpenAiFamily::new(provider, seal_key)),
        }
    }

    /// Whether this adapter takes a client's `wire`, besides the internal one, as the client
    /// sent it, for a deployment of `model`: Anthropic Messages on Anthropic and on Vertex AI's
    /// Claude models, the Responses API (compaction included) on OpenAI and Azure OpenAI.
    pub fn speaks(&self, model: &str, wire: Wire) -> bool {
        match (self, wire) {
            (Self::Anthropic(_), Wire::AnthropicMessages) => true,
            (Self::Vertex(_), Wire::AnthropicMessages) => vertex::is_claude(model),
            (Self::OpenAi(p), Wire::OpenAiResponses | Wire::OpenAiCompact) => p.speaks_responses(),
            _ => false,
        }
    }

    /// Sends a request in a wire the adapter speaks natively (see [`Self::speaks`]), the body
    /// as the client sent it but for the model.
    pub async fn forward(
        &self,
        call: &Call<'_>,
        request: NativeRequest<'_>,
    ) -> Result<ChatReply, UpstreamError> {
        let model = &call.deployment.model;
        match (self, request.wire) {
            (Self::Anthropic(p), Wire::AnthropicMessages) => p.forward(call, request).await,
            (Self::Vertex(p), Wire::AnthropicMessages) if self.speaks(model, request.wire) => {
                p.forward(call, request).await
            }
            (Self::OpenAi(p), Wire::OpenAiResponses | Wire::OpenAiCompact) => {
                p.forward(call, request).await
            }
            _ => Err(UpstreamError::BadResponse {
                provider: self.id().to_owned(),
                detail: "the deployment does not speak the client's wire",
            }),
        }
    }

    /// Whether the provider counts a request's input tokens itself (`count_tokens`) for a
    /// deployment of `model`: Anthropic and Vertex AI's Claude models from the client's own
    /// Messages body, Gemini from the translated one. `native_only`: the body has no
    /// translation, so only the client's own wire can be sent.
    pub fn counts_tokens(&self, model: &str, native_only: bool) -> bool {
        match self {
            Self::Anthropic(_) => true,
            Self::Vertex(_) => vertex::is_claude(model),
            Self::Gemini(_) => !native_only,
            Self::OpenAi(_) | Self::Bedrock(_) => false,
        }
    }

    /// The provider's count of a Messages request's input tokens (see
    /// [`Self::counts_tokens`]): `internal` is the translated body, `client` the client's own.
    pub async fn count_tokens(
        &self,
        call: &Call<'_>,
        internal: &JsonBody,
        client: &NativeRequest<'_>,
    ) -> Result<u64, UpstreamError> {
        match self {
            Self::Anthropic(p) => p.count_tokens(call, client).await,
            Self::Vertex(p) if vertex::is_claude(&call.deployment.model) => {
                p.count_tokens(call, client).await
            }
            Self::Gemini(p) => p.count_tokens(call, internal).await,
            Self::OpenAi(_) | Self::Vertex(_) | Self::Bedrock(_) => {
                Err(UpstreamError::BadResponse {
                    provider: self.id().to_owned(),
                    detail: "the provider has no token count the gateway uses",
                })
            }
        }
    }

    /// Provider id from the snapshot.
    pub fn id(&self) -> &str {
        match self {
            Self::OpenAi(p) => p.id(),
            Self::Anthropic(p) => p.id(),
            Self::Gemini(p) => p.id(),
            Self::Vertex(p) => p.id(),
            Self::Bedrock(p) => p.id(),
        }
    }

    /// The provider's kind (for the `gen_ai_provider_name` metric label).
    pub fn kind(&self) -> proto::ProviderKind {
        match self {
            Self::OpenAi(p) => p.kind(),
            Self::Anthropic(_) => proto::ProviderKind::Anthropic,
            Self::Gemini(_) => proto::ProviderKind::Gemini,
            Self::Vertex(_) => proto::ProviderKind::VertexAi,
            Self::Bedrock(_) => proto::ProviderKind::Bedrock,
        }
    }

    /// The provider's own timeout, if it sets one.
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            Self::OpenAi(p) => p.timeout(),
            Self::Anthropic(p) => p.timeout(),
            Self::Gemini(p) => p.timeout(),
            Self::Vertex(p) => p.timeout(),
            Self::Bedrock(p) => p.timeout(),
        }
    }

    /// Upstream endpoints for one model of this provider.
    pub fn endpoints(&self, model: &str) -> Result<Endpoints, ConfigError> {
        match self {
            Self::OpenAi(p) => p.endpoints(model),
            Self::Anthropic(p) => p.endpoints(model),
            Self::Gemini(p) => p.endpoints(model),
            Self::Vertex(p) => p.endpoints(model),
            Self::Bedrock(p) => p.endpoints(model),
        }
    }
}

impl Provider for Adapter {
    async fn chat(&self, call: &Call<'_>, request: ChatRequest) -> ChatResult {
        match self {
            Self::OpenAi(p) => p.chat(call, request).await,
            Self::Anthropic(p) => p.chat(call, request).await,
            Self::Gemini(p) => p.chat(call, request).await,
            Self::Vertex(p) => p.chat(call, request).await,
            Self::Bedrock(p) => p.chat(call, request).await,
        }
    }

    async fn embeddings(&self, call: &Call<'_>, body: JsonBody) -> JsonResult {
        match self {
            Self::OpenAi(p) => p.embeddings(call, body).await,
            Self::Anthropic(p) => p.embeddings(call, body).await,
            Self::Gemini(p) => p.embeddings(call, body).await,
            Self::Vertex(p) => p.embeddings(call, body).await,
            Self::Bedrock(p) => p.embeddings(call, body).await,
        }
    }
}

/// Upstream URLs of one deployment, parsed once per snapshot (not per request).
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub chat: reqwest::Url,
    pub embeddings: reqwest::Url,
}

/// One provider + upstream model, ready to call.
#[derive(Debug)]
pub struct Deployment {
    /// `provider/model`, shown in headers and logs.
    pub id: String,
    pub provider: Arc<Adapter>,
    /// Model name as the provider knows it.
    pub model: String,
    /// The model name as a JSON string, ready to splice into request bodies.
    pub model_json: Box<RawValue>,
    pub endpoints: Endpoints,
    /// Requests per minute this deployment may receive across all proxies.
    pub rpm: Option<u64>,
    /// Tokens per minute this deployment may receive across all proxies.
    pub tpm: Option<u64>,
    /// The upstream model's price, when the snapshot has one.
    pub price: Option<Arc<proto::ModelPrice>>,
    /// This deployment's own timeout, over the route's and the provider's.
    pub timeout: Option<std::time::Duration>,
    /// How often this proxy checks the deployment actively (its provider's setting).
    pub health_check: Option<std::time::Duration>,
    /// Relative share of traffic within its priority tier.
    pub weight: u32,
    /// Priority tier: lower tiers serve first.
    pub priority: u32,
    /// What this proxy knows of the deployment's health (kept across snapshots).
    pub stats: Arc<crate::routing::select::Stats>,
}
