//! What every provider adapter does the same way, whatever its wire format: reading the
//! configured base URL, building the static headers (operator extras plus the credential, opened
//! from the environment or a sealed value and marked sensitive; adapters that authenticate each
//! request themselves take the opened secret from [`open_credential`]), and one upstream call:
//! send within the call's timeout, classify a non-2xx answer, check that a stream really is one,
//! read a whole body within what is left of the timeout.
//!
//! Guarantees: a credential that cannot be used is kept as an error and reported per request
//! (never blocks a snapshot); error texts name where a secret comes from, never the secret.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use proto::Credential;

use super::http::{check_status, is_event_stream, read_body, remaining, secret_header, send};
use super::{Call, ConfigError, UpstreamError};
use crate::seal::{self, SealKey};

/// Where an adapter puts the provider's secret.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer {secret}`.
    Bearer,
    /// The secret alone, in the named header (`x-api-key`, `api-key`, `x-goog-api-key`).
    Key(HeaderName),
    /// No static credential header: the adapter opens the secret itself
    /// ([`open_credential`]) and authenticates each request its own way (OAuth, signing).
    None,
}

/// A provider's secret, opened from where the snapshot says it lives.
pub struct Secret {
    /// The secret itself: never logged, never put in an error text.
    pub value: String,
    /// Where it came from, for error texts (`environment variable `X``, `the sealed
    /// credential`).
    pub source: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("value", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// Opens the provider's credential: `Ok(None)` when it has none; the error names the source,
/// never the secret.
pub fn open_credential(
    p: &proto::Provider,
    seal_key: Option<&SealKey>,
) -> Result<Option<Secret>, String> {
    let Some(credential) = &p.api_key else {
        return Ok(None);
    };
    let secret = match credential {
        Credential::Env { env: var } => Secret {
            value: std::env::var(var)
                .map_err(|_| format!("environment variable `{var}` is not set"))?,
            source: format!("environment variable `{var}`"),
        },
        Credential::Sealed { sealed } => Secret {
            value: seal::open(seal_key, p.id.as_bytes(), sealed)
                .map_err(|e| format!("sealed credential: {e}"))?,
            source: "the sealed credential".to_owned(),
        },
    };
    Ok(Some(secret))
}

/// The part of an adapter that is the same for every family: identity, base URL, headers,
/// timeout, and sending.
#[derive(Debug)]
pub struct Upstream {
    /// Provider id from the snapshot.
    pub id: String,
    /// Base URL without a trailing `/`.
    pub base_url: String,
    /// Static headers for every request, or why the credential is unusable.
    pub headers: Result<HeaderMap, String>,
    /// The provider's own timeout, if it sets one.
    pub timeout: Option<std::time::Duration>,
}

impl Upstream {
    /// `fixed` headers go before the operator's extras (which may override them); the
    /// credential goes last, where `auth` says.
    pub fn new(
        p: &proto::Provider,
        seal_key: Option<&SealKey>,
        fixed: &[(HeaderName, HeaderValue)],
        auth: Auth,
    ) -> Self {
        let base_url = p
            .base_url
            .as_deref()
            .or(p.kind.default_base_url())
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        Self {
            id: p.id.clone(),
            base_url,
            headers: static_headers(p, seal_key, fixed, auth),
            timeout: p.timeout_ms.map(std::time::Duration::from_millis),
        }
    }

    /// A response the gateway cannot use.
    pub fn bad(&self, detail: &'static str) -> UpstreamError {
        UpstreamError::BadResponse {
            provider: self.id.clone(),
            detail,
        }
    }

    /// POSTs `body` to `url` within the call's timeout; a non-2xx answer becomes an error,
    /// which `adapt` may re-shape for the family's error format.
    pub async fn post(
        &self,
        call: &Call<'_>,
        url: reqwest::Url,
        body: Vec<u8>,
        adapt: fn(&str, UpstreamError) -> UpstreamError,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.post_with(call, url, body, &[], adapt).await
    }

    /// [`Self::post`] with per-request headers that replace static ones of the same name.
    pub async fn post_with(
        &self,
        call: &Call<'_>,
        url: reqwest::Url,
        body: Vec<u8>,
        extra: &[(HeaderName, HeaderValue)],
        adapt: fn(&str, UpstreamError) -> UpstreamError,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut headers = self
            .headers
            .as_ref()
            .map_err(|detail| UpstreamError::Credentials {
                provider: self.id.clone(),
                detail: detail.clone(),
            })?
            .clone();
        for (name, value) in extra.iter().chain(call.trace) {
            headers.insert(name.clone(), value.clone());
        }
        let builder = call.http.post(url).headers(headers).body(body);
        let response = send(&self.id, builder, call.timeout).await?;
        check_status(&self.id, response)
            .await
            .map_err(|e| adapt(&self.id, e))
    }

    /// The response, if it declares an SSE body as a stream must.
    pub fn event_stream(
        &self,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, UpstreamError> {
        if is_event_stream(&response) {
            Ok(response)
        } else {
            Err(self.bad("expected an event stream"))
        }
    }

    /// The whole body, within what is left of the call's timeout since `start`.
    pub async fn read_body(
        &self,
        call: &Call<'_>,
        start: Instant,
        response: reqwest::Response,
    ) -> Result<Bytes, UpstreamError> {
        read_body(&self.id, response, remaining(start, call.timeout)).await
    }
}

/// For families whose errors already have OpenAI's shape.
pub fn same_error(_provider: &str, e: UpstreamError) -> UpstreamError {
    e
}

fn static_headers(
    p: &proto::Provider,
    seal_key: Option<&SealKey>,
    fixed: &[(HeaderName, HeaderValue)],
    auth: Auth,
) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in fixed {
        headers.insert(name.clone(), value.clone());
    }
    for (name, value) in &p.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{name}`"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header `{name}`"))?;
        headers.insert(name, value);
    }
    let (name, bearer) = match auth {
        Auth::Bearer => (AUTHORIZATION, true),
        Auth::Key(name) => (name, false),
        Auth::None => return Ok(headers),
    };
    // Error texts name where the secret comes from, never the secret.
    let Some(Secret {
        value: secret,
        source,
    }) = open_credential(p, seal_key)?
    else {
        return Ok(headers);
    };
    let value = if bearer {
        secret_header(&format!("Bearer {secret}"))
    } else {
        secret_header(&secret)
    };
    let value =
        value.ok_or_else(|| format!("{source} holds characters not allowed in a header"))?;
    headers.insert(name, value);
    Ok(headers)
}

/// Parses a URL built from configuration, saying which one is wrong.
pub fn parse_url(s: &str) -> Result<reqwest::Url, ConfigError> {
    reqwest::Url::parse(s).map_err(|e| ConfigError::Url {
        url: s.to_owned(),
        reason: e.to_string(),
    })
}

/// Percent-encodes a URL path segment or query value (model names like `gemini-2.5-flash`
/// pass unchanged).
pub fn encode_segment(s: &str) -> String {
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

/// Seconds since the Unix epoch, for the `created` field providers other than OpenAI omit.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A snapshot provider entry from inline YAML, for adapter tests.
#[cfg(test)]
pub fn test_provider(yaml: &str) -> proto::Provider {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("bad fixture: {e}"))
}
