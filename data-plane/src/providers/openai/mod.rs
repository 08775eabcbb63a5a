//! The OpenAI wire-format family: OpenAI, Azure OpenAI, Mistral, vLLM, Ollama and any
//! OpenAI-compatible server.
//!
//! Bodies pass through: only `model` is replaced by the upstream name and, for streams,
//! `stream_options.include_usage` is switched on so the gateway always learns the tokens. The
//! kinds differ in URL layout and auth header, settled once when the snapshot is compiled.

pub mod forward;
mod request;
mod response;
mod stream;

use std::time::{Duration, Instant};

use http::header::HeaderName;
use proto::ProviderKind;

use super::common::{encode_segment, parse_url, same_error, Auth, Upstream};
use super::{
    Call, ChatReply, ChatRequest, ChatResult, ConfigError, Endpoints, JsonBody, JsonResult,
    Provider, Wire,
};
use crate::seal::SealKey;

/// A provider speaking the OpenAI wire format.
#[derive(Debug)]
pub struct OpenAiFamily {
    upstream: Upstream,
    kind: ProviderKind,
    api_version: Option<String>,
    stream_usage: bool,
    /// The Responses API's endpoints, for the kinds that serve it (OpenAI, Azure OpenAI); the
    /// model travels in the body for both.
    responses: Option<ResponsesApi>,
}

/// Where a deployment serves the Responses API.
#[derive(Debug)]
struct ResponsesApi {
    /// `…/responses`.
    create: reqwest::Url,
    /// `…/responses/compact`.
    compact: reqwest::Url,
}

impl ResponsesApi {
    /// The endpoints under `base` (the `…/responses` URL).
    fn at(base: &str) -> Option<Self> {
        Some(Self {
            create: parse_url(base).ok()?,
            compact: parse_url(&format!("{base}/compact")).ok()?,
        })
    }
}

impl OpenAiFamily {
    /// Builds the adapter; an unusable credential is kept as an error reported per request, so
    /// one misconfigured provider never blocks a whole snapshot.
    pub fn new(p: &proto::Provider, seal_key: Option<&SealKey>) -> Self {
        let auth = match p.kind {
            ProviderKind::AzureOpenai => Auth::Key(HeaderName::from_static("api-key")),
            _ => Auth::Bearer,
        };
        let upstream = Upstream::new(p, seal_key, &[], auth);
        let responses = match p.kind {
            ProviderKind::Openai => Some(format!("{}/responses", upstream.base_url)),
            ProviderKind::AzureOpenai => Some(format!("{}/openai/v1/responses", upstream.base_url)),
            _ => None,
        }
        .and_then(|url| ResponsesApi::at(&url));
        Self {
            upstream,
            responses,
            kind: p.kind,
            api_version: p.api_version.clone(),
            stream_usage: p.stream_usage.unwrap_or(p.kind != ProviderKind::Mistral),
        }
    }

    pub fn id(&self) -> &str {
        &self.upstream.id
    }

    /// Which member of the OpenAI family this provider is.
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.upstream.timeout
    }

    /// Whether the deployment serves the Responses API itself (pass-through), compaction
    /// included.
    pub fn speaks_responses(&self) -> bool {
        self.responses.is_some()
    }

    /// The URL of a Responses API `wire` on this provider, if it serves it.
    fn responses_url(&self, wire: Wire) -> Option<reqwest::Url> {
        let api = self.responses.as_ref()?;
        match wire {
            Wire::OpenAiResponses => Some(api.create.clone()),
            Wire::OpenAiCompact => Some(api.compact.clone()),
            Wire::AnthropicMessages => None,
        }
    }

    /// Azure puts the deployment in the path and the API version in the query; the rest of the
    /// family use `{base}/chat/completions` with the model in the body.
    pub fn endpoints(&self, model: &str) -> Result<Endpoints, ConfigError> {
        let base_url = &self.upstream.base_url;
        match self.kind {
            ProviderKind::AzureOpenai => {
                let base = format!("{base_url}/openai/deployments/{}", encode_segment(model));
                let query = format!(
                    "?api-version={}",
                    encode_segment(self.api_version.as_deref().unwrap_or_default())
                );
                Ok(Endpoints {
                    chat: parse_url(&format!("{base}/chat/completions{query}"))?,
                    embeddings: parse_url(&format!("{base}/embeddings{query}"))?,
                })
            }
            _ => Ok(Endpoints {
                chat: parse_url(&format!("{base_url}/chat/completions"))?,
                embeddings: parse_url(&format!("{base_url}/embeddings"))?,
            }),
        }
    }
}

impl Provider for OpenAiFamily {
    async fn chat(&self, call: &Call<'_>, request: ChatRequest) -> ChatResult {
        let start = Instant::now();
        let up = &self.upstream;
        let stream = request.stream;
        let mut body = request.body;
        if request.cache_marks {
            request::drop_cache_marks(&mut body)
                .map_err(|_| up.bad("request could not be encoded"))?;
        }
        let body = request::chat_body(
            body,
            &call.deployment.model_json,
            stream && self.stream_usage,
        )
        .map_err(|_| up.bad("request could not be encoded"))?;
        let url = call.deployment.endpoints.chat.clone();
        let response = up.post(call, url, body, same_error).await?;
        if stream {
            let response = up.event_stream(response)?;
            return Ok(ChatReply::Stream(stream::chunks(up.id.clone(), response)));
        }
        let body = up.read_body(call, start, response).await?;
        response::chat(&up.id, body).map(ChatReply::Json)
    }

    async fn embeddings(&self, call: &Call<'_>, body: JsonBody) -> JsonResult {
        let start = Instant::now();
        let up = &self.upstream;
        let body = request::embeddings_body(body, &call.deployment.model_json)
            .map_err(|_| up.bad("request could not be encoded"))?;
        let url = call.deployment.endpoints.embeddings.clone();
        let response = up.post(call, url, body, same_error).await?;
        let body = up.read_body(call, start, response).await?;
        response::embeddings(&up.id, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::common::test_provider as provider;
    use http::header::{HeaderValue, AUTHORIZATION};

    impl OpenAiFamily {
        fn new_test(p: &proto::Provider) -> Self {
            Self::new(p, None)
        }
    }

    #[test]
    fn azure_urls_carry_deployment_and_api_version() {
        let p = OpenAiFamily::new_test(&provider(
            "{id: az, kind: azure_openai, base_url: 'https://r.openai.azure.com/', api_version: '2024-10-21'}",
        ));
        let e = p.endpoints("gpt 4o").unwrap();
        assert_eq!(e.chat.as_str(), "https://r.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21");
        assert_eq!(e.embeddings.as_str(), "https://r.openai.azure.com/openai/deployments/gpt%204o/embeddings?api-version=2024-10-21");
    }

    #[test]
    fn openai_family_urls_and_defaults() {
        let p = OpenAiFamily::new_test(&provider("{id: o, kind: openai}"));
        assert_eq!(
            p.endpoints("gpt-4o").unwrap().chat.as_str(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert!(p.stream_usage);
        let url = |p: &OpenAiFamily, wire| p.responses_url(wire).map(String::from);
        assert_eq!(
            url(&p, Wire::OpenAiResponses).as_deref(),
            Some("https://api.openai.com/v1/responses")
        );
        assert_eq!(
            url(&p, Wire::OpenAiCompact).as_deref(),
            Some("https://api.openai.com/v1/responses/compact")
        );
        let az = OpenAiFamily::new_test(&provider(
            "{id: az, kind: azure_openai, base_url: 'https://r.openai.azure.com', api_version: v}",
        ));
        assert_eq!(
            url(&az, Wire::OpenAiResponses).as_deref(),
            Some("https://r.openai.azure.com/openai/v1/responses")
        );
        assert_eq!(
            url(&az, Wire::OpenAiCompact).as_deref(),
            Some("https://r.openai.azure.com/openai/v1/responses/compact")
        );
        let m = OpenAiFamily::new_test(&provider("{id: m, kind: mistral}"));
        assert_eq!(
            m.endpoints("x").unwrap().embeddings.as_str(),
            "https://api.mistral.ai/v1/embeddings"
        );
        assert!(
            !m.speaks_responses(),
            "chat-only servers get the translation"
        );
        assert!(
            !m.stream_usage,
            "Mistral reports usage on its own and rejects stream_options"
        );
    }

    #[test]
    fn credentials_are_read_from_the_environment_and_marked_sensitive() {
        let p = OpenAiFamily::new_test(&provider(
            "{id: o, kind: openai_compatible, base_url: 'http://x', api_key: {env: SWITCHYARD_TEST_SURELY_UNSET_VAR}}",
        ));
        assert_eq!(
            p.upstream.headers.err().as_deref(),
            Some("environment variable `SWITCHYARD_TEST_SURELY_UNSET_VAR` is not set")
        );
        let p = OpenAiFamily::new_test(&provider("{id: o, kind: azure_openai, base_url: 'http://x', api_version: v, api_key: {env: PATH}}"));
        let headers = p.upstream.headers.unwrap_or_default();
        assert!(headers
            .get("api-key")
            .is_some_and(HeaderValue::is_sensitive));
        assert!(headers.get(AUTHORIZATION).is_none());
    }

    #[test]
    fn sealed_credentials_open_with_the_key_for_their_provider_only() {
        use base64::Engine as _;
        let key_b64 = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let key = SealKey::from_base64("K", &key_b64).unwrap();
        // Sealed for provider `sealed-p` with `key` (see seal.rs for the format).
        let sealed = "v1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXLCx9GGfXIncDFwCOOk5HP/N5bWUJ89xhyw==";
        let yaml = |id: &str| {
            format!("{{id: {id}, kind: openai_compatible, base_url: 'http://x', api_key: {{sealed: '{sealed}'}}}}")
        };
        let p = OpenAiFamily::new(&provider(&yaml("sealed-p")), Some(&key));
        let headers = p.upstream.headers.unwrap_or_default();
        let auth = headers.get(AUTHORIZATION).unwrap();
        assert!(auth.is_sensitive());
        assert_eq!(auth, "Bearer sk-sealed");

        for (id, key, expected) in [
            ("sealed-p", None, "sealed credential: no seal key is configured (SWITCHYARD_SEAL_KEY)"),
            ("other-p", Some(&key), "sealed credential: the sealed value does not open with this seal key for this provider"),
        ] {
            let p = OpenAiFamily::new(&provider(&yaml(id)), key);
            assert_eq!(p.upstream.headers.err().as_deref(), Some(expected));
        }
    }
}
