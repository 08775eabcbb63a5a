//! Google Vertex AI adapter: Gemini models and Anthropic's Claude models through Vertex's
//! publisher endpoints, with OAuth access tokens from a service-account key.
//!
//! - Chat: `POST {base}/v1/projects/{project}/locations/{location}/publishers/google/models/
//!   {model}:generateContent`, streams `…:streamGenerateContent?alt=sse`. The bodies, the
//!   stream and the error mapping are Gemini's: this adapter reuses the Gemini translation
//!   (`gemini::{request, response, stream}`) unchanged.
//! - Claude models (a model id starting `claude-`, like `claude-sonnet-4-5@20250929`): the
//!   publisher is `anthropic` and the wire is Anthropic's Messages, taken natively from
//!   Messages clients (pass-through) and translated for the others; see `claude`.
//! - Embeddings: `…/models/{model}:predict` (text-embedding models), see `embeddings`.
//! - Base URL: the provider's `base_url`, else `https://{location}-aiplatform.googleapis.com`
//!   (`https://aiplatform.googleapis.com` for location `global`). Settings `project` and
//!   `location` are required (the snapshot validates them).
//! - Auth: the credential holds the service-account JSON key file. It is parsed once, when the
//!   snapshot is compiled (`auth`); each request sends `Authorization: Bearer <token>` with a
//!   token from the provider's cache (`token`: refreshed before expiry, one fetch at a time).
//!   A fetch is allowed the call's timeout on its own, before the Vertex call's. The cache
//!   lives with the snapshot's adapter: a new snapshot fetches a new token on first use.
//!
//! Guarantees: an unusable key file, or a token endpoint that refuses the key, is reported per
//! request as the gateway's credential failure (502 `upstream_credentials`) naming the
//! credential source and the service account, never the key or a token; the snapshot is never
//! blocked by it. A 401 from Vertex drops the cached token, so the next request fetches a new
//! one.

mod auth;
mod claude;
mod embeddings;
mod token;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, AUTHORIZATION};
use http::HeaderValue;

use super::anthropic;
use super::common::{encode_segment, open_credential, parse_url, Auth, Upstream};
use super::gemini::{self, Google};
use super::{
    Call, ChatRequest, ChatResult, ConfigError, Endpoints, JsonBody, JsonReply, JsonResult,
    Provider, UpstreamError,
};
use crate::seal::SealKey;

use auth::ServiceAccount;
use token::TokenCache;

pub use claude::is_claude;

/// The parsed key and where it came from.
#[derive(Debug)]
struct Account {
    key: ServiceAccount,
    /// `environment variable `X`` or `the sealed credential`, for error texts.
    source: String,
}

/// A Google Vertex AI provider.
#[derive(Debug)]
pub struct Vertex {
    upstream: Upstream,
    project: String,
    location: String,
    /// The service account, or why the credential is unusable (reported per request). Boxed,
    /// like the cache, to keep [`super::Adapter`]'s variants of similar size.
    account: Result<Box<Account>, String>,
    tokens: Box<TokenCache>,
}

impl Vertex {
    /// Builds the adapter; an unusable credential is kept as an error reported per request.
    pub fn new(p: &proto::Provider, seal_key: Option<&SealKey>) -> Self {
        let setting = |name: &str| p.settings.get(name).cloned().unwrap_or_default();
        let location = setting("location");
        let mut upstream = Upstream::new(p, seal_key, &[], Auth::None);
        if p.base_url.is_none() {
            upstream.base_url = default_base_url(&location);
        }
        Self {
            upstream,
            project: setting("project"),
            location,
            account: account(p, seal_key),
            tokens: Box::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.upstream.id
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.upstream.timeout
    }

    /// `chat` is the `generateContent` URL (the stream URL is derived per request);
    /// `embeddings` is `predict`. For a Claude model `chat` is `rawPredict` (streams:
    /// `streamRawPredict`), and embeddings are answered locally, so their URL is never used.
    pub fn endpoints(&self, model: &str) -> Result<Endpoints, ConfigError> {
        if self.project.is_empty() || self.location.is_empty() {
            return Err(ConfigError::MissingSettings {
                kind: "vertex_ai",
                settings: "`project` and `location`",
            });
        }
        if !self
            .location
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(ConfigError::BadSetting {
                value: self.location.clone(),
                expected: "a Vertex AI location (like `us-central1` or `global`)",
            });
        }
        let publisher = if is_claude(model) {
            "anthropic"
        } else {
            "google"
        };
        let base = format!(
            "{}/v1/projects/{}/locations/{}/publishers/{publisher}/models/{}",
            self.upstream.base_url,
            encode_segment(&self.project),
            encode_segment(&self.location),
            // `@` (the version in `claude-…@20250929`) is a path character, sent as Google
            // writes it.
            encode_segment(model).replace("%40", "@")
        );
        if is_claude(model) {
            let chat = parse_url(&format!("{base}:rawPredict"))?;
            return Ok(Endpoints {
                embeddings: chat.clone(),
                chat,
            });
        }
        Ok(Endpoints {
            chat: parse_url(&format!("{base}:generateContent"))?,
            embeddings: parse_url(&format!("{base}:predict"))?,
        })
    }

    /// Posts `body` with this request's token and `extra` headers; a token Vertex refuses is
    /// dropped from the cache.
    async fn send(
        &self,
        call: &Call<'_>,
        url: reqwest::Url,
        body: Vec<u8>,
        extra: &[(HeaderName, HeaderValue)],
        adapt: fn(&str, UpstreamError) -> UpstreamError,
    ) -> gemini::Sent {
        let authorization = self.authorization(call).await?;
        let headers = [&[(AUTHORIZATION, authorization.clone())], extra].concat();
        let result = self
            .upstream
            .post_with(call, url, body, &headers, adapt)
            .await;
        self.forget_refused(&authorization, &result);
        result
    }

    /// Drops `authorization`'s token from the cache if Vertex refused it (401), so the next
    /// request fetches a new one.
    fn forget_refused<T>(&self, authorization: &HeaderValue, result: &Result<T, UpstreamError>) {
        if let Err(UpstreamError::Failed { status, .. }) = result {
            if *status == http::StatusCode::UNAUTHORIZED {
                self.tokens.invalidate(authorization);
            }
        }
    }

    /// The `Authorization` value for this request: a cached or freshly fetched token.
    async fn authorization(&self, call: &Call<'_>) -> Result<HeaderValue, UpstreamError> {
        let credentials = |detail: String| UpstreamError::Credentials {
            provider: self.upstream.id.clone(),
            detail,
        };
        let account = self.account.as_ref().map_err(|e| credentials(e.clone()))?;
        self.tokens
            .get(Instant::now(), || {
                token::fetch(call.http, &account.key, &account.source, call.timeout)
            })
            .await
            .map_err(credentials)
    }

    fn bad(&self, detail: &'static str) -> UpstreamError {
        self.upstream.bad(detail)
    }
}

impl Google for Vertex {
    const PRODUCT: &'static str = "Vertex AI";

    fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// With a token; one the provider refuses is dropped from the cache.
    async fn post(&self, call: &Call<'_>, url: reqwest::Url, body: Vec<u8>) -> gemini::Sent {
        self.send(call, url, body, &[], gemini::openai_error).await
    }
}

impl Provider for Vertex {
    async fn chat(&self, call: &Call<'_>, request: ChatRequest) -> ChatResult {
        if is_claude(&call.deployment.model) {
            return self.claude_chat(call, request).await;
        }
        gemini::chat(self, call, request).await
    }

    async fn embeddings(&self, call: &Call<'_>, body: JsonBody) -> JsonResult {
        let model = &call.deployment.model;
        if is_claude(model) {
            return Err(anthropic::no_embeddings());
        }
        let (predict, texts) = embeddings::predict_request(&body, model)
            .map_err(|e| e.upstream(self.id(), Self::PRODUCT))?;
        let url = call.deployment.endpoints.embeddings.clone();
        let parsed = gemini::exchange(self, call, url, &predict).await?;
        let base64 = gemini::embeddings::wants_base64(&body);
        let (out, usage) = embeddings::predict_response(&parsed, &texts, model, base64)
            .ok_or_else(|| self.bad("embeddings response does not match the request"))?;
        Ok(JsonReply {
            body: Bytes::from(out.to_string()),
            usage,
        })
    }
}

/// The regional endpoint of `location` (`global` has none of its own).
fn default_base_url(location: &str) -> String {
    if location == "global" {
        "https://aiplatform.googleapis.com".to_owned()
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    }
}

/// Opens and parses the service-account key; the error names the source, never the key.
fn account(p: &proto::Provider, seal_key: Option<&SealKey>) -> Result<Box<Account>, String> {
    let secret = open_credential(p, seal_key)?.ok_or_else(|| {
        "a vertex_ai provider needs a service-account JSON key file as its `api_key`".to_owned()
    })?;
    let key = ServiceAccount::parse(&secret.value).map_err(|e| format!("{} {e}", secret.source))?;
    Ok(Box::new(Account {
        key,
        source: secret.source,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::common::test_provider as provider;

    #[test]
    fn urls_follow_the_location() {
        let v = Vertex::new(
            &provider(
                "{id: v, kind: vertex_ai, settings: {project: my-proj, location: europe-west4}}",
            ),
            None,
        );
        let e = v.endpoints("gemini-2.5-flash").unwrap();
        assert_eq!(
            e.chat.as_str(),
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/my-proj/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            gemini::stream_url(&e.chat).as_str(),
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/my-proj/locations/europe-west4/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            e.embeddings.as_str(),
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/my-proj/locations/europe-west4/publishers/google/models/gemini-2.5-flash:predict"
        );

        let global = Vertex::new(
            &provider("{id: v, kind: vertex_ai, settings: {project: p, location: global}}"),
            None,
        );
        assert_eq!(
            global.endpoints("m").unwrap().chat.as_str(),
            "https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/google/models/m:generateContent"
        );

        let mocked = Vertex::new(
            &provider("{id: v, kind: vertex_ai, base_url: 'http://127.0.0.1:9/', settings: {project: p, location: us-east5}}"),
            None,
        );
        assert_eq!(
            mocked.endpoints("m").unwrap().chat.as_str(),
            "http://127.0.0.1:9/v1/projects/p/locations/us-east5/publishers/google/models/m:generateContent"
        );

        let odd = Vertex::new(
            &provider("{id: v, kind: vertex_ai, settings: {project: p, location: 'evil.com/x'}}"),
            None,
        );
        assert!(odd.endpoints("m").is_err());
    }

    #[test]
    fn unusable_credentials_are_kept_and_name_their_source() {
        let none = Vertex::new(
            &provider("{id: v, kind: vertex_ai, settings: {project: p, location: global}}"),
            None,
        );
        assert!(none
            .account
            .unwrap_err()
            .contains("service-account JSON key"));

        let unset = Vertex::new(
            &provider("{id: v, kind: vertex_ai, api_key: {env: SWITCHYARD_TEST_VERTEX_UNSET}, settings: {project: p, location: global}}"),
            None,
        );
        let e = unset.account.unwrap_err();
        assert!(e.contains("SWITCHYARD_TEST_VERTEX_UNSET"), "{e}");

        // PATH is set in every test environment and is not a key file.
        let not_a_key = Vertex::new(
            &provider("{id: v, kind: vertex_ai, api_key: {env: PATH}, settings: {project: p, location: global}}"),
            None,
        );
        let e = not_a_key.account.unwrap_err();
        assert!(
            e.starts_with("environment variable `PATH` is not a service-account"),
            "{e}"
        );
        let path = std::env::var("PATH").unwrap_or_default();
        assert!(path.is_empty() || !e.contains(&path), "{e}");
    }
}
