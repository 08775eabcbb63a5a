//! The steps every provider API request goes through before its reply is built: body
//! parsing, recording, auth, Azure `api-version`, validation, behaviour resolution, latency,
//! the `reset` fault and scripted error statuses.
//!
//! Order matters and mirrors a real provider: auth is checked before the body, the body before
//! any scripted behaviour, and a request rejected early does not consume a script.

use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{error::Category, Value};

use super::conn::KillSwitch;
use super::error::{render, OpenAi};
use super::record::{now_ms, RecordHandle, RecordInit};
use super::script::{Behaviour, Fault, ToolCall};
use super::Shared;

/// Which provider API dialect a route speaks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dialect<'a> {
    /// `/v1/...`, `Authorization: Bearer`.
    OpenAi,
    /// `/openai/deployments/{deployment}/...?api-version=`, `api-key` header.
    Azure { deployment: &'a str },
    /// `/v1beta/models/{model}:{action}`, `x-goog-api-key` header; the model is in the path.
    Gemini { model: &'a str },
    /// `/v1/messages`, `x-api-key` header, `anthropic-version` header required.
    Anthropic,
    /// `/model/{model}/converse[-stream]`; the model is in the path. The route verifies the
    /// SigV4 signature itself (it needs the raw request) and says here whether it held.
    Bedrock { model: &'a str, signed: bool },
    /// `/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:{action}`: the OAuth
    /// bearer token is checked by the route before admission (see `vertex/`), not here.
    Vertex { model: &'a str },
    /// `/v1/projects/{p}/locations/{l}/publishers/anthropic/models/{model}:{action}`: Claude on
    /// Vertex AI, Anthropic's Messages body; the token and the body's `anthropic_version` are
    /// checked by the route before admission (see `vertex/`). `stream`: the action streams
    /// (`streamRawPredict`), whatever the body says.
    VertexAnthropic { model: &'a str, stream: bool },
}

impl<'a> Dialect<'a> {
    fn deployment(self) -> Option<&'a str> {
        match self {
            Self::OpenAi | Self::Anthropic => None,
            Self::Azure { deployment } => Some(deployment),
            Self::Gemini { model }
            | Self::Bedrock { model, .. }
            | Self::Vertex { model }
            | Self::VertexAnthropic { model, .. } => Some(model),
        }
    }

    /// Whether the answer streams, where the path says so rather than the body.
    pub(crate) fn stream(self) -> Option<bool> {
        match self {
            Self::VertexAnthropic { stream, .. } => Some(stream),
            _ => None,
        }
    }
}

/// Why a request gets no normal reply; becomes its response in [`IntoResponse`].
#[derive(Debug)]
pub(crate) enum Rejected {
    /// 401 `invalid_api_key`.
    Unauthorized,
    /// 400 `invalid_request_error` with this message.
    BadRequest(String),
    /// A scripted error status.
    Scripted {
        status: StatusCode,
        message: Option<String>,
        retry_after: Option<u64>,
    },
    /// The connection was killed; this response is never written.
    Reset,
}

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        render(self, &OpenAi)
    }
}

/// A provider API request body the mock understands.
pub(crate) trait ApiRequest: DeserializeOwned {
    /// The body's `model`; none where the dialect names the model in the path.
    fn model(&self) -> Option<&str> {
        None
    }
    /// Whether the reply streams; dialects that stream from their own path say so by type.
    fn stream(&self) -> bool {
        false
    }
    fn prompt_tokens(&self) -> u64;
    /// Field checks beyond the JSON shape; the message becomes a 400.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
    /// Scripted tool calls apply: the request declares tools and its conversation does not
    /// end with a tool's result (the answer to an earlier call). Dialects without tools: never.
    fn takes_tool_calls(&self) -> bool {
        false
    }
}

/// One provider API request as every route receives it: the mock's state, the connection's
/// kill switch, and the request itself. It reads the body, so it is a route's last argument.
pub(crate) struct Inbound {
    pub shared: Arc<Shared>,
    pub kill: KillSwitch,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request was read in full.
    pub received_at_ms: u64,
}

impl FromRequest<Arc<Shared>> for Inbound {
    type Rejection = Response;

    async fn from_request(request: Request, state: &Arc<Shared>) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let (State(shared), ConnectInfo(kill)) =
            <(State<Arc<Shared>>, ConnectInfo<KillSwitch>)>::from_request_parts(&mut parts, state)
                .await
                .map_err(IntoResponse::into_response)?;
        let (uri, headers) = (parts.uri.clone(), parts.headers.clone());
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            shared,
            kill,
            uri,
            headers,
            body,
            received_at_ms: now_ms(),
        })
    }
}

impl Inbound {
    /// The start of this request's record: the next sequence number and the request as
    /// received. The route fills in what it made of the body (`..inbound.record_init()`).
    pub(crate) fn record_init(&self) -> RecordInit<'_> {
        RecordInit {
            seq: self.shared.next_seq(),
            path: self.uri.path(),
            query: self.uri.query(),
            headers: &self.headers,
            body: Value::Null,
            raw: &self.body,
            model: None,
            stream: false,
            prompt_tokens: 0,
            received_at_ms: self.received_at_ms,
        }
    }
}

/// A request that passed every check; the caller builds the successful reply.
#[derive(Debug)]
pub(crate) struct Admitted<T> {
    pub seq: u64,
    pub request: T,
    /// Body `model`, or the Azure deployment when the body has none.
    pub model: String,
    pub behaviour: Behaviour,
    /// The status of the successful reply (200 unless a script set a 2xx/3xx one).
    pub status: StatusCode,
    pub record: RecordHandle,
}

impl<T: ApiRequest> Admitted<T> {
    /// The scripted tool calls, where they apply to this request.
    pub(crate) fn tool_calls(&self) -> Option<&[ToolCall]> {
        self.behaviour
            .tool_calls
            .as_deref()
            .filter(|_| self.request.takes_tool_calls())
    }

    /// Notes what the reply bills: its completion tokens, and the usage it reports.
    pub(crate) fn bill(&self, prompt_tokens: u64, completion_tokens: u64) {
        self.record.set_completion_tokens(completion_tokens);
        self.report_usage(prompt_tokens, completion_tokens);
    }

    /// Notes the usage the reply reports, unless a scripted fault cuts the reply before it.
    pub(crate) fn report_usage(&self, prompt_tokens: u64, completion_tokens: u64) {
        if self.behaviour.fault.is_none() {
            self.record
                .set_usage_reported(prompt_tokens, completion_tokens);
        }
    }
}

/// Runs the common steps; `Err` is why the request gets no normal reply.
pub(crate) async fn admit<T: ApiRequest>(
    inbound: &Inbound,
    dialect: Dialect<'_>,
) -> Result<Admitted<T>, Rejected> {
    let Inbound {
        shared,
        kill,
        uri,
        headers,
        body,
        ..
    } = inbound;
    let init = inbound.record_init();
    let seq = init.seq;
    let (recorded_body, parsed) = parse_body::<T>(shared.records.enabled(), body);
    let request = parsed.as_ref().ok();
    let model = request.and_then(T::model).or(dialect.deployment());
    let record = shared.records.start(RecordInit {
        body: recorded_body,
        model,
        stream: dialect
            .stream()
            .unwrap_or_else(|| request.is_some_and(T::stream)),
        prompt_tokens: request.map_or(0, T::prompt_tokens),
        ..init
    });
    let model = model.map(str::to_owned);
    let checked = check(shared, dialect, uri, headers, parsed, model);
    let (request, model, behaviour) = match checked {
        Ok(ok) => ok,
        Err(rejected) => {
            record.completed();
            return Err(rejected);
        }
    };
    if let Some(ms) = behaviour.latency_ms.filter(|ms| *ms > 0) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if behaviour.fault == Some(Fault::Reset) {
        kill.kill();
        record.completed();
        return Err(Rejected::Reset);
    }
    let status = behaviour
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    if status.as_u16() >= 400 {
        record.completed();
        return Err(Rejected::Scripted {
            status,
            message: behaviour.error_message,
            retry_after: behaviour.retry_after,
        });
    }
    Ok(Admitted {
        seq,
        request,
        model,
        behaviour,
        status,
        record,
    })
}

type Checked<T> = (T, String, Behaviour);

fn check<T: ApiRequest>(
    shared: &Shared,
    dialect: Dialect<'_>,
    uri: &Uri,
    headers: &HeaderMap,
    parsed: Result<T, Rejected>,
    model: Option<String>,
) -> Result<Checked<T>, Rejected> {
    authorize(shared, dialect, headers)?;
    if let Dialect::Azure { .. } = dialect {
        if !has_api_version(uri.query()) {
            let message = "Missing required query parameter 'api-version'.";
            return Err(Rejected::BadRequest(message.to_owned()));
        }
    }
    if let Dialect::Anthropic = dialect {
        if headers.get("anthropic-version").is_none() {
            let message = "anthropic-version: header is required";
            return Err(Rejected::BadRequest(message.to_owned()));
        }
    }
    let request = parsed?;
    request.validate().map_err(Rejected::BadRequest)?;
    let Some(model) = model else {
        let message = "you must provide a model parameter";
        return Err(Rejected::BadRequest(message.to_owned()));
    };
    let from_headers = Behaviour::from_headers(headers).map_err(Rejected::BadRequest)?;
    let scripted = shared.scripts.take(request.model(), dialect.deployment());
    let behaviour = scripted.unwrap_or_default().overlaid_with(from_headers);
    Ok((request, model, behaviour))
}

/// Checks the key when the mock was started with one; without a key anything passes.
pub(crate) fn authorize(
    shared: &Shared,
    dialect: Dialect<'_>,
    headers: &HeaderMap,
) -> Result<(), Rejected> {
    let Some(expected) = shared.options.api_key.as_deref() else {
        return Ok(());
    };
    let presented = match dialect {
        Dialect::OpenAi => headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ")),
        Dialect::Azure { .. } => headers.get("api-key").and_then(|v| v.to_str().ok()),
        Dialect::Gemini { .. } => headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()),
        Dialect::Anthropic => headers.get("x-api-key").and_then(|v| v.to_str().ok()),
        Dialect::Bedrock { signed: true, .. } => return Ok(()),
        Dialect::Bedrock { signed: false, .. } => return Err(Rejected::Unauthorized),
        Dialect::Vertex { .. } | Dialect::VertexAnthropic { .. } => return Ok(()),
    };
    if presented == Some(expected) {
        Ok(())
    } else {
        Err(Rejected::Unauthorized)
    }
}

fn has_api_version(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            pair.strip_prefix("api-version=")
                .is_some_and(|v| !v.is_empty())
        })
    })
}

/// Parses the body as `T`; when recording, also returns it as JSON (or as a string if invalid).
fn parse_body<T: DeserializeOwned>(record: bool, body: &[u8]) -> (Value, Result<T, Rejected>) {
    if !record {
        return (
            Value::Null,
            serde_json::from_slice(body).map_err(body_error),
        );
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => {
            let parsed = T::deserialize(&value).map_err(body_error);
            (value, parsed)
        }
        Err(e) => (
            Value::String(String::from_utf8_lossy(body).into_owned()),
            Err(body_error(e)),
        ),
    }
}

fn body_error(e: serde_json::Error) -> Rejected {
    Rejected::BadRequest(match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, \
             but what was sent was not valid JSON.)"
                .to_owned()
        }
        Category::Data => format!("Invalid request body: {e}"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn api_version_query() {
        assert!(has_api_version(Some("api-version=2024-10-21")));
        assert!(has_api_version(Some("a=b&api-version=1")));
        assert!(!has_api_version(Some("api-version=")));
        assert!(!has_api_version(Some("xapi-version=1")));
        assert!(!has_api_version(None));
    }
}
