//! The configuration snapshot: everything a data-plane proxy needs to serve requests.
//!
//! The same shape is read from a YAML file (standalone proxies, tests) and, later, published by
//! the control plane. It never carries a secret in plaintext: virtual keys travel as SHA-256
//! hashes and provider credentials as references (an environment variable name).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Version of the snapshot wire format. Bumped only for a change an older reader cannot ignore.
///
/// 2: a published body may leave its keys to the pointer's [`crate::KeyParts`] (a reader of
/// version 1 would see a snapshot without keys, so it must refuse the body instead).
/// 3: key parts are binary ([`crate::encode_keys`]); a reader of version 2 expects JSON.
pub const SCHEMA_VERSION: u32 = 3;

/// A complete, self-contained configuration for the data plane.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Wire format version; see [`SCHEMA_VERSION`].
    #[serde(default = "default_schema_version")]
    pub schema_version: u32,
    /// Monotonic version: the position of the last control-plane event it contains. A proxy never
    /// replaces a snapshot with an older one. Files may leave it at 0.
    #[serde(default)]
    pub version: u64,
    /// Upstream providers, referenced by id from route deployments.
    #[serde(default)]
    pub providers: Vec<Provider>,
    /// Public model aliases and the deployments that serve them.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Virtual keys callers authenticate with.
    #[serde(default)]
    pub keys: Vec<VirtualKey>,
    /// Teams that carry limits or a request-log policy of their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<TeamPolicy>,
    /// Budgets (hard ones are enforced by leases, soft ones only alert).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<Budget>,
    /// Prices per upstream model (the built-in table with overrides applied), used to reserve
    /// a request's cost before it is sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pricing: Vec<crate::ModelPrice>,
    /// Deployments some proxy saw go down in the last few minutes, as of when the snapshot was
    /// built (live changes travel as health announcements, not as snapshots). A proxy opens its
    /// breaker for each, as of the reported time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<crate::HealthEvent>,
    /// Response-cache policies (none: nothing is cached).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_policies: Vec<crate::CachePolicy>,
    /// Guardrail policies: personal data and secrets looked for in what providers would see.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<crate::GuardrailPolicy>,
}

/// Limits shared by all of a team's keys, and the request-log policy of those that set none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamPolicy {
    pub id: String,
    /// Requests per minute across the team's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    /// Tokens per minute across the team's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// What the request log keeps of the team's requests (a key's own setting wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_payloads: Option<crate::LogPayloads>,
}

/// What a budget applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// Everything one team spends (`target` is the team id).
    Team,
    /// Everything one key spends (`target` is the key id).
    Key,
    /// Each distinct value of one tag (`target` is the tag name) has the amount to itself.
    Tag,
}

/// When a budget starts over (calendar boundaries, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    Daily,
    /// Weeks start on Monday.
    Weekly,
    Monthly,
    /// Never resets.
    Total,
}

/// A spending limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub id: String,
    pub name: String,
    pub scope: BudgetScope,
    pub target: String,
    pub amount_usd: Decimal,
    pub period: BudgetPeriod,
    /// Hard budgets refuse requests; soft budgets alert.
    pub hard: bool,
}

fn default_schema_version() -> u32 {
    SCHEMA_VERSION
}

/// One upstream provider account/endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// Unique id, referenced by deployments (e.g. `openai-main`).
    pub id: String,
    /// Which wire protocol and auth scheme the provider speaks.
    pub kind: ProviderKind,
    /// Base URL up to and including the API version path, e.g. `https://api.openai.com/v1`.
    /// For Azure OpenAI: the resource endpoint, e.g. `https://my-resource.openai.azure.com`.
    /// When absent, the kind's public default is used (OpenAI, Mistral).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The credential sent upstream. Absent for servers that need none (local vLLM, Ollama).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Credential>,
    /// Azure OpenAI only: the `api-version` query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Total time allowed for a non-streaming call, and for a stream's first byte (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Whether to ask the upstream for a usage report in streams
    /// (`stream_options.include_usage`). Defaults by kind: on for all but Mistral, which always
    /// reports usage on its last chunk and rejects the option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_usage: Option<bool>,
    /// Extra, non-secret headers sent with every upstream request (e.g. `OpenAI-Organization`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Active health checks (off when absent): every proxy sends each of this provider's
    /// deployments a one-token chat request this often (ms), and the answer feeds the
    /// deployment's circuit breaker like a client request's would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_ms: Option<u64>,
    /// Kind-specific, non-secret settings: `project` and `location` for `vertex_ai`, `region`
    /// for `bedrock`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
}

/// Provider families. All but `Gemini`, `VertexAi`, `Anthropic` and `Bedrock` speak the OpenAI
/// wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// api.openai.com.
    Openai,
    /// Azure OpenAI: deployment in the URL path, `api-version` query, `api-key` header.
    AzureOpenai,
    /// api.mistral.ai.
    Mistral,
    /// A vLLM server's OpenAI-compatible endpoint.
    Vllm,
    /// Ollama's OpenAI-compatible endpoint (`http://host:11434/v1`).
    Ollama,
    /// Any other server speaking the OpenAI wire format.
    OpenaiCompatible,
    /// Google Gemini API (AI Studio): its own wire format, `x-goog-api-key` header.
    Gemini,
    /// api.anthropic.com: the Messages API (`x-api-key`, `anthropic-version`), translated
    /// from and to the OpenAI dialect. The base URL excludes `/v1`.
    Anthropic,
    /// Google Vertex AI: Gemini's wire format under
    /// `/v1/projects/{project}/locations/{location}/publishers/google`, authenticated with an
    /// OAuth access token obtained from a service-account JSON key (the credential). Settings
    /// `project` and `location` are required; the base URL defaults to the location's endpoint.
    VertexAi,
    /// AWS Bedrock Runtime: the Converse API, SigV4-signed. The credential is
    /// `ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]` or a JSON object with `access_key_id`,
    /// `secret_access_key` and optional `session_token`. Setting `region` is required; the base
    /// URL defaults to `https://bedrock-runtime.{region}.amazonaws.com`.
    Bedrock,
}

impl ProviderKind {
    /// Stable lowercase name, used in headers, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::AzureOpenai => "azure_openai",
            Self::Mistral => "mistral",
            Self::Vllm => "vllm",
            Self::Ollama => "ollama",
            Self::OpenaiCompatible => "openai_compatible",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::VertexAi => "vertex_ai",
            Self::Bedrock => "bedrock",
        }
    }

    /// The public base URL used when a provider of this kind gives none.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Self::Openai => Some("https://api.openai.com/v1"),
            Self::Mistral => Some("https://api.mistral.ai/v1"),
            Self::Anthropic => Some("https://api.anthropic.com"),
            Self::Gemini => Some("https://generativelanguage.googleapis.com/v1beta"),
            Self::AzureOpenai
            | Self::Vllm
            | Self::Ollama
            | Self::OpenaiCompatible
            | Self::VertexAi
            | Self::Bedrock => None,
        }
    }

    /// Settings a provider of this kind must have (non-empty).
    pub fn required_settings(self) -> &'static [&'static str] {
        match self {
            Self::VertexAi => &["project", "location"],
            Self::Bedrock => &["region"],
            _ => &[],
        }
    }

    /// Whether the base URL can be derived from the settings when none is given.
    pub fn derives_base_url(self) -> bool {
        matches!(self, Self::VertexAi | Self::Bedrock)
    }
}

/// Where a secret comes from. Never the secret itself.
///
/// Written as a one-field map (`{env: OPENAI_API_KEY}`); each variant's field name is its tag,
/// so new sources (e.g. sealed values) are added as new variants without breaking old ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Credential {
    /// Read from this environment variable of the data-plane process.
    Env {
        /// Variable name.
        env: String,
    },
    /// Sealed by the control plane: `v1:` + base64(24-byte nonce ‖ XChaCha20-Poly1305
    /// ciphertext and tag), with the provider id as associated data, under the 32-byte key
    /// both planes read from `SWITCHYARD_SEAL_KEY` (base64).
    Sealed {
        /// The sealed value.
        sealed: String,
    },
}

/// A public model alias that callers name in `model`, and the deployments that serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The name callers use, e.g. `gpt-4o-mini` or `fast-chat`.
    pub alias: String,
    /// Deployments in preference order. The first one serves; the rest are reserved for
    /// fallback and load-balancing strategies.
    pub deployments: Vec<Deployment>,
    /// Overrides the provider's timeout for this route (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Completion tokens reserved against budgets and token limits when a request sets no
    /// `max_tokens` (the data plane's default applies when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_output_tokens: Option<u64>,
    /// How a deployment is picked within the lowest priority tier that has one available
    /// (default `weighted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Aliases tried in order once this route's deployments are exhausted (each with its own
    /// strategy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// Attempts, retries, backoff, deadline and the failures that move a request on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// The largest prompt (tokens) this route's models accept: a request refused for its
    /// length falls back only to a route with a larger window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    /// Checked in order before the strategy runs: the first rule whose conditions all hold
    /// sends the request to its `route` instead (one level: the target's own rules are not
    /// applied).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RouteRule>,
}

/// Sends matching requests for a route to another route.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RouteRule {
    /// The caller's team is this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The caller's key has this id or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The request carries every one of these tags (after the key's forced tags).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The prompt is estimated at this many tokens or more (e.g. to a long-context route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_prompt_tokens: Option<u64>,
    /// The alias that serves matching requests.
    pub route: String,
}

/// How a request moves on after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Most attempts in all, across deployments and fallback routes (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Further attempts on deployments already tried, once every deployment of the chain has
    /// been tried (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Base of the exponential backoff before such a retry, with full jitter (default 200 ms);
    /// a provider's `Retry-After` is waited out when it is longer and fits the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
    /// Longest backoff (default 5 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff_ms: Option<u64>,
    /// Total time for all attempts from the request's arrival (default: none beyond each
    /// attempt's timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Failures that move the request on (default: `rate_limited`, `server_error`, `timeout`,
    /// `connection_error`, `context_window`, `content_policy`). The client's own mistakes never
    /// do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<Vec<Trigger>>,
}

/// A kind of failure that may move a request to another deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// 429 from the provider.
    RateLimited,
    /// 5xx from the provider (or its refusal of the gateway's credentials).
    ServerError,
    /// No answer, or no first stream chunk, in time.
    Timeout,
    /// Connection refused, reset or broken before an answer.
    ConnectionError,
    /// The prompt exceeds the model's context window (only to a route with a larger one).
    ContextWindow,
    /// The provider refused the content under its usage policy.
    ContentPolicy,
}

impl Trigger {
    pub const ALL: [Trigger; 6] = [
        Self::RateLimited,
        Self::ServerError,
        Self::Timeout,
        Self::ConnectionError,
        Self::ContextWindow,
        Self::ContentPolicy,
    ];
}

/// How a route picks among the available deployments of its best priority tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// At random, in proportion to `weight`.
    #[default]
    Weighted,
    /// The first in the route's order.
    Ordered,
    /// The lowest moving average of time to first token, with some exploration so a
    /// deployment that recovered is measured again.
    LowestLatency,
    /// The fewest requests in flight from this proxy (ties by weight).
    LeastInflight,
    /// The lowest price in the pricing table (input + output per million tokens); unpriced
    /// deployments last.
    Cheapest,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Weighted => "weighted",
            Self::Ordered => "ordered",
            Self::LowestLatency => "lowest_latency",
            Self::LeastInflight => "least_inflight",
            Self::Cheapest => "cheapest",
        }
    }
}

/// One provider + upstream model pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Provider id.
    pub provider: String,
    /// Model name as the provider knows it (the deployment name for Azure OpenAI).
    pub model: String,
    /// Relative share of traffic among deployments of the same priority (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Priority tier: lower tiers are used first (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Requests per minute this deployment may receive (to stay under the provider's limit),
    /// across all proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    /// Tokens per minute this deployment may receive, across all proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// This deployment's own timeout (ms): a whole non-streaming call, or a stream's first
    /// chunk. Wins over the route's and the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// A caller's credential and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualKey {
    /// Human-readable name, shown in logs and metrics instead of the secret.
    pub name: String,
    /// Lowercase hex SHA-256 of the secret the caller presents.
    pub sha256: String,
    /// Owning team, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Aliases this key may call. `*` allows all; a trailing `*` matches a prefix (`gpt-*`).
    /// An empty list allows nothing.
    #[serde(default)]
    pub models: Vec<String>,
    /// Stable id of the key (shared by both secrets while a rotation's grace period runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The secret stops working at this time (Unix seconds, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Requests per minute allowed, across all proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    /// Tokens per minute allowed, across all proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    /// The most one request may cost (USD); a request whose reservation exceeds it is refused
    /// before it reaches a provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_cost_usd: Option<Decimal>,
    /// A further budget this key spends from (besides those matched by scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    /// Tags forced onto every request made with this key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// What the request log keeps of this key's requests (else its team's setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_payloads: Option<crate::LogPayloads>,
}

impl VirtualKey {
    /// A key that may call every alias, with no team, limits, expiry or tags.
    pub fn allowing_all(name: impl Into<String>, sha256: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            sha256: sha256.into(),
            team: None,
            models: vec!["*".into()],
            id: None,
            expires_at: None,
            rpm: None,
            tpm: None,
            max_request_cost_usd: None,
            budget: None,
            tags: BTreeMap::new(),
            log_payloads: None,
        }
    }
}
