//! The OpenAI wire-format family: OpenAI, Azure OpenAI, Mistral, vLLM, Ollama and any
//! OpenAI-compatible server.
//!
//! Bodies pass through: only `model` is replaced by the upstream name and, for streams,
//! `stream_options.include_usage` is switched on so the gateway always learns the tokens. The
//! kinds differ in URL layout and auth header, settled once when the snapshot is compiled.

mod request;
mod response;
mod stream;

use std::time::{Duration, Instant};

use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use proto::{Credential, ProviderKind};

use super::http::{check_status, is_event_stream, read_body, remaining, secret_header, send};
use super::{
    Call, ChatReply, ChatRequest, Endpoints, JsonBody, JsonReply, Provider, UpstreamError,
};
use crate::seal::{self, SealKey};

/// A provider speaking the OpenAI wire format.
#[derive(Debug)]
pub struct OpenAiFamily {
    id: String,
    kind: ProviderKind,
    base_url: String,
    api_version: Option<String>,
    /// Static headers for every request: auth, content type, operator-configured extras.
    headers: Result<HeaderMap, String>,
    stream_usage: bool,
    timeout: Option<Duration>,
}

impl OpenAiFamily {
    /// Builds the adapter; an unusable credential is kept as an error reported per request, so
    /// one misconfigured provider never blocks a whole snapshot.
    pub fn new(p: &proto::Provider, seal_key: Option<&SealKey>) -> Self {
        let base_url = p
            .base_url
            .as_deref()
            .or(p.kind.default_base_url())
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        Self {
            id: p.id.clone(),
            kind: p.kind,
            base_url,
            api_version: p.api_version.clone(),
            headers: static_headers(p, seal_key),
            stream_usage: p.stream_usage.unwrap_or(p.kind != ProviderKind::Mistral),
            timeout: p.timeout_ms.map(Duration::from_millis),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Azure puts the deployment in the path and the API version in the query; the rest of the
    /// family use `{base}/chat/completions` with the model in the body.
    pub fn endpoints(&self, model: &str) -> Result<Endpoints, String> {
        match self.kind {
            ProviderKind::AzureOpenai => {
                let base = format!(
                    "{}/openai/deployments/{}",
                    self.base_url,
                    encode_segment(model)
                );
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
                chat: parse_url(&format!("{}/chat/completions", self.base_url))?,
                embeddings: parse_url(&format!("{}/embeddings", self.base_url))?,
            }),
        }
    }

    fn post(
        &self,
        call: &Call<'_>,
        url: &reqwest::Url,
        body: Vec<u8>,
    ) -> Result<reqwest::RequestBuilder, UpstreamError> {
        let headers = self
            .headers
            .as_ref()
            .map_err(|detail| UpstreamError::Credentials {
                provider: self.id.clone(),
                detail: detail.clone(),
            })?;
        Ok(call
            .http
            .post(url.clone())
            .headers(headers.clone())
            .body(body))
    }
}

impl Provider for OpenAiFamily {
    async fn chat(
        &self,
        call: &Call<'_>,
        request: ChatRequest,
    ) -> Result<ChatReply, UpstreamError> {
        let start = Instant::now();
        let stream = request.stream;
        let body = request::chat_body(
            request.body,
            &call.deployment.model_json,
            stream && self.stream_usage,
        )
        .map_err(|_| UpstreamError::BadResponse {
            provider: self.id.clone(),
            detail: "request could not be encoded",
        })?;
        let builder = self.post(call, &call.deployment.endpoints.chat, body)?;
        let response = check_status(&self.id, send(&self.id, builder, call.timeout).await?).await?;
        if stream {
            if !is_event_stream(&response) {
                return Err(UpstreamError::BadResponse {
                    provider: self.id.clone(),
                    detail: "expected an event stream",
                });
            }
            return Ok(ChatReply::Stream(stream::chunks(self.id.clone(), response)));
        }
        let body = read_body(&self.id, response, remaining(start, call.timeout)).await?;
        response::chat(&self.id, body).map(ChatReply::Json)
    }

    async fn embeddings(
        &self,
        call: &Call<'_>,
        body: JsonBody,
    ) -> Result<JsonReply, UpstreamError> {
        let start = Instant::now();
        let body = request::embeddings_body(body, &call.deployment.model_json).map_err(|_| {
            UpstreamError::BadResponse {
                provider: self.id.clone(),
                detail: "request could not be encoded",
            }
        })?;
        let builder = self.post(call, &call.deployment.endpoints.embeddings, body)?;
        let response = check_status(&self.id, send(&self.id, builder, call.timeout).await?).await?;
        let body = read_body(&self.id, response, remaining(start, call.timeout)).await?;
        response::embeddings(&self.id, body)
    }
}

fn static_headers(p: &proto::Provider, seal_key: Option<&SealKey>) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in &p.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{name}`"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header `{name}`"))?;
        headers.insert(name, value);
    }
    let Some(credential) = &p.api_key else {
        return Ok(headers);
    };
    // Error texts name where the secret comes from, never the secret.
    let (secret, source) = match credential {
        Credential::Env { env: var } => (
            std::env::var(var).map_err(|_| format!("environment variable `{var}` is not set"))?,
            format!("environment variable `{var}`"),
        ),
        Credential::Sealed { sealed } => (
            seal::open(seal_key, p.id.as_bytes(), sealed)
                .map_err(|e| format!("sealed credential: {e}"))?,
            "the sealed credential".to_owned(),
        ),
    };
    let (name, value) = match p.kind {
        ProviderKind::AzureOpenai => (HeaderName::from_static("api-key"), secret_header(&secret)),
        _ => (AUTHORIZATION, secret_header(&format!("Bearer {secret}"))),
    };
    let value =
        value.ok_or_else(|| format!("{source} holds characters not allowed in a header"))?;
    headers.insert(name, value);
    Ok(headers)
}

fn parse_url(s: &str) -> Result<reqwest::Url, String> {
    reqwest::Url::parse(s).map_err(|e| format!("`{s}` is not a valid URL: {e}"))
}

/// Percent-encodes a URL path segment or query value.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(yaml: &str) -> proto::Provider {
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("bad fixture: {e}"))
    }

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
        let m = OpenAiFamily::new_test(&provider("{id: m, kind: mistral}"));
        assert_eq!(
            m.endpoints("x").unwrap().embeddings.as_str(),
            "https://api.mistral.ai/v1/embeddings"
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
            p.headers.err().as_deref(),
            Some("environment variable `SWITCHYARD_TEST_SURELY_UNSET_VAR` is not set")
        );
        let p = OpenAiFamily::new_test(&provider("{id: o, kind: azure_openai, base_url: 'http://x', api_version: v, api_key: {env: PATH}}"));
        let headers = p.headers.unwrap_or_default();
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
        let headers = p.headers.unwrap_or_default();
        let auth = headers.get(AUTHORIZATION).unwrap();
        assert!(auth.is_sensitive());
        assert_eq!(auth, "Bearer sk-sealed");

        for (id, key, expected) in [
            ("sealed-p", None, "sealed credential: no seal key is configured (SWITCHYARD_SEAL_KEY)"),
            ("other-p", Some(&key), "sealed credential: the sealed value does not open with this seal key for this provider"),
        ] {
            let p = OpenAiFamily::new(&provider(&yaml(id)), key);
            assert_eq!(p.headers.err().as_deref(), Some(expected));
        }
    }
}
