//! AWS Bedrock Runtime (the Converse API) behind the OpenAI dialect.
//!
//! Auth, URLs and sending live here; translation is pure code in `request`, `response` and
//! `stream`, the binary framing in `eventstream`, signing in `sigv4`, errors in `error`.
//!
//! - Chat: `POST {base}/model/{modelId}/converse`; streams
//!   `POST {base}/model/{modelId}/converse-stream` (answered as
//!   `application/vnd.amazon.eventstream`). `{modelId}` is percent-encoded (`:`
//!   → `%3A`); `{base}` defaults to `https://bedrock-runtime.{region}.amazonaws.com`, the
//!   region coming from the provider's `region` setting.
//! - Auth: every request is signed with SigV4 (service `bedrock`) at send time. The credential
//!   is `ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]` or a JSON object
//!   `{"access_key_id", "secret_access_key", "session_token"?}`; it is opened and parsed once
//!   per snapshot, and a credential that cannot be used is kept as an error reported per
//!   request (502 `upstream_credentials`) whose text never holds the secret.
//! - Errors: see `error` (Bedrock's `{"message"}` + `x-amzn-errortype` → OpenAI's shape; a
//!   refused signature is the gateway's credential failure; 429/5xx retryable).
//! - Embeddings: not offered for Bedrock; a 400 that never reaches the provider.

mod error;
mod eventstream;
mod request;
mod response;
mod sigv4;
mod stream;

#[cfg(test)]
mod fixture_tests;

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::Value;

use super::common::{encode_segment, open_credential, parse_url, unix_now, Auth, Upstream};
use super::http::{check_status, secret_header, send};
use super::{
    Call, ChatReply, ChatRequest, ChatResult, ConfigError, Endpoints, JsonBody, JsonReply,
    JsonResult, Provider, UpstreamError,
};
use crate::providers::translate::rejected;
use crate::seal::SealKey;

use sigv4::AwsKeys;

/// The SigV4 service name of the Bedrock Runtime API.
const SERVICE: &str = "bedrock";
/// The content type of `converse-stream` answers.
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// A Bedrock Runtime provider.
#[derive(Debug)]
pub struct Bedrock {
    /// Static headers (content type, operator extras); the credential is not among them.
    upstream: Upstream,
    region: String,
    /// Parsed AWS keys, or why there are none usable.
    keys: Result<AwsKeys, String>,
}

impl Bedrock {
    /// Builds the adapter; an unusable credential or a missing region is kept as an error
    /// reported per request.
    pub fn new(p: &proto::Provider, seal_key: Option<&SealKey>) -> Self {
        let mut upstream = Upstream::new(p, seal_key, &[], Auth::None);
        let region = p.settings.get("region").cloned().unwrap_or_default();
        if p.base_url.is_none() {
            upstream.base_url = format!("https://bedrock-runtime.{region}.amazonaws.com");
        }
        let keys = if region.is_empty() {
            Err("the provider has no `region` setting".to_owned())
        } else {
            open_credential(p, seal_key).and_then(|secret| match secret {
                Some(secret) => parse_keys(&secret.value),
                None => Err("no credential (`api_key`) is configured".to_owned()),
            })
        };
        Self {
            upstream,
            region,
            keys,
        }
    }

    pub fn id(&self) -> &str {
        &self.upstream.id
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.upstream.timeout
    }

    /// `chat` is the `converse` URL; the stream URL is derived from it per request. Bedrock
    /// has no embeddings here, so that URL is never used.
    pub fn endpoints(&self, model: &str) -> Result<Endpoints, ConfigError> {
        let chat = parse_url(&format!(
            "{}/model/{}/converse",
            self.upstream.base_url,
            encode_segment(model)
        ))?;
        Ok(Endpoints {
            embeddings: chat.clone(),
            chat,
        })
    }

    fn bad(&self, detail: &'static str) -> UpstreamError {
        self.upstream.bad(detail)
    }

    /// Signs and POSTs a Converse body; Bedrock's error answers come back in OpenAI's shape.
    async fn post(
        &self,
        call: &Call<'_>,
        url: reqwest::Url,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let credentials = |detail: &String| UpstreamError::Credentials {
            provider: self.upstream.id.clone(),
            detail: detail.clone(),
        };
        let keys = self.keys.as_ref().map_err(credentials)?;
        let mut headers = self.upstream.headers.as_ref().map_err(credentials)?.clone();
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(self.bad("the provider URL has no host")),
        };
        let amz_date = sigv4::amz_date(SystemTime::now());
        let signed = sigv4::sign(
            keys,
            sigv4::Scope {
                region: &self.region,
                service: SERVICE,
                amz_date: &amz_date,
            },
            &sigv4::Request {
                method: "POST",
                path: url.path(),
                query: url.query(),
                headers: vec![("host", host)],
                body: &body,
            },
            true,
        );
        for (name, value) in signed.headers {
            let value = secret_header(&value).ok_or_else(|| self.bad("unusable signature"))?;
            headers.insert(HeaderName::from_static(name), value);
        }
        // Not signed (the signature covers `host` only), as AWS's own SDKs send it.
        for (name, value) in call.trace {
            headers.insert(name.clone(), value.clone());
        }
        let builder = call.http.post(url).headers(headers).body(body);
        let response = send(&self.upstream.id, builder, call.timeout).await?;
        let kind = error::error_type(response.headers().get("x-amzn-errortype"));
        check_status(&self.upstream.id, response)
            .await
            .map_err(|e| error::adapt(&self.upstream.id, e, kind.as_deref()))
    }
}

impl Provider for Bedrock {
    async fn chat(&self, call: &Call<'_>, request: ChatRequest) -> ChatResult {
        let start = Instant::now();
        let body = request::converse_request(&request.body)
            .map_err(|e| e.upstream(self.id(), "Bedrock"))?;
        let body =
            serde_json::to_vec(&body).map_err(|_| self.bad("request could not be encoded"))?;
        let chat_url = &call.deployment.endpoints.chat;
        let url = if request.stream {
            stream_url(chat_url)
        } else {
            chat_url.clone()
        };
        let response = self.post(call, url, body).await?;
        let meta = response::Meta {
            id: format!("chatcmpl-{}", uuid::Uuid::now_v7().simple()),
            model: call.deployment.model.clone(),
            created: unix_now(),
        };
        if request.stream {
            if !is_event_stream(&response) {
                return Err(self.bad("expected an event stream"));
            }
            return Ok(ChatReply::Stream(stream::chunks(
                self.upstream.id.clone(),
                meta,
                response,
            )));
        }
        let body = self.upstream.read_body(call, start, response).await?;
        let parsed: Value =
            serde_json::from_slice(&body).map_err(|_| self.bad("response is not JSON"))?;
        let (completion, usage) =
            response::chat_response(&parsed, &meta).map_err(|detail| self.bad(detail))?;
        Ok(ChatReply::Json(JsonReply {
            body: Bytes::from(completion.to_string()),
            usage,
        }))
    }

    async fn embeddings(&self, _call: &Call<'_>, _body: JsonBody) -> JsonResult {
        Err(rejected(
            "embeddings are not supported for bedrock providers",
        ))
    }
}

/// `…/converse` → `…/converse-stream`.
fn stream_url(chat: &reqwest::Url) -> reqwest::Url {
    let mut url = chat.clone();
    let path = format!("{}-stream", chat.path());
    url.set_path(&path);
    url
}

fn is_event_stream(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with(EVENT_STREAM)
        })
}

/// The credential as JSON.
#[derive(Deserialize)]
struct JsonKeys {
    #[serde(alias = "AccessKeyId", alias = "aws_access_key_id")]
    access_key_id: String,
    #[serde(alias = "SecretAccessKey", alias = "aws_secret_access_key")]
    secret_access_key: String,
    #[serde(default, alias = "SessionToken", alias = "aws_session_token")]
    session_token: Option<String>,
}

/// `ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]` or a JSON object. Error texts describe
/// the expected shape and never quote the input.
fn parse_keys(secret: &str) -> Result<AwsKeys, String> {
    const SHAPE: &str = "the credential must be `ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]` \
                         or a JSON object with `access_key_id`, `secret_access_key` and an \
                         optional `session_token`";
    let secret = secret.trim();
    let keys = if secret.starts_with('{') {
        let j: JsonKeys = serde_json::from_str(secret).map_err(|_| SHAPE.to_owned())?;
        AwsKeys {
            access_key_id: j.access_key_id,
            secret_access_key: j.secret_access_key,
            session_token: j.session_token.filter(|t| !t.is_empty()),
        }
    } else {
        let mut parts = secret.splitn(3, ':');
        let (Some(id), Some(key)) = (parts.next(), parts.next()) else {
            return Err(SHAPE.to_owned());
        };
        AwsKeys {
            access_key_id: id.to_owned(),
            secret_access_key: key.to_owned(),
            session_token: parts.next().filter(|t| !t.is_empty()).map(str::to_owned),
        }
    };
    if keys.access_key_id.is_empty() || keys.secret_access_key.is_empty() {
        return Err(SHAPE.to_owned());
    }
    let header_safe = |s: &str| HeaderValue::from_str(s).is_ok();
    if !header_safe(&keys.access_key_id) || !keys.session_token.as_deref().is_none_or(header_safe) {
        return Err("the credential holds characters not allowed in a header".to_owned());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::common::test_provider as provider;

    #[test]
    fn urls_default_to_the_region() {
        let b = Bedrock::new(
            &provider(
                "{id: b, kind: bedrock, settings: {region: eu-west-3}, api_key: {env: PATH}}",
            ),
            None,
        );
        let e = b
            .endpoints("anthropic.claude-3-5-haiku-20241022-v1:0")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            e.chat.as_str(),
            "https://bedrock-runtime.eu-west-3.amazonaws.com/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
        );
        assert_eq!(
            stream_url(&e.chat).as_str(),
            "https://bedrock-runtime.eu-west-3.amazonaws.com/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"
        );
        let b = Bedrock::new(
            &provider("{id: b, kind: bedrock, settings: {region: us-east-1}, base_url: 'http://127.0.0.1:9/'}"),
            None,
        );
        let e = b.endpoints("m").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.chat.as_str(), "http://127.0.0.1:9/model/m/converse");
        assert!(b.keys.is_err());
    }

    #[test]
    fn credentials_in_both_shapes_and_errors_without_the_secret() {
        let k = parse_keys("AKID:sec/ret+KEY:TOKEN").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                k.access_key_id.as_str(),
                k.secret_access_key.as_str(),
                k.session_token.as_deref()
            ),
            ("AKID", "sec/ret+KEY", Some("TOKEN"))
        );
        let k = parse_keys("AKID:secret").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.session_token, None);
        let k =
            parse_keys(r#"{"access_key_id":"AKID","secret_access_key":"s","session_token":"t"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.session_token.as_deref(), Some("t"));
        for bad in [
            "onlyonepart-supersecret",
            r#"{"access_key_id":"A","secret":"supersecret"}"#,
            ":supersecret",
        ] {
            let e = parse_keys(bad).err().unwrap_or_default();
            assert!(!e.is_empty() && !e.contains("supersecret"), "{e}");
        }
    }
}
