//! `POST /v1/messages/count_tokens`: `{"input_tokens": N}` for an Anthropic Messages body.
//!
//! Stages 1–4 run as for any request (key, body, route, tags). Then the route's plan chooses
//! the deployment the request would go to (strategy, breakers; a body only Anthropic's wire
//! can express rules out the others, as for `/v1/messages`). If that deployment's provider
//! counts tokens itself (`Adapter::counts_tokens`: Anthropic's `count_tokens`, Vertex AI's
//! `count-tokens:rawPredict` for Claude models, Gemini's `countTokens`), N is its count;
//! otherwise, or when that one call fails, N is the gateway's estimate (the generous
//! body-size estimate admission reserves with: it errs high). The header [`TOKEN_COUNT`] says
//! which. One call, no retries, no fallback, no admission, no usage event: nothing is billed.
//! The key's guardrails apply to the body first (stage 6), as they would to the request.

use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue};

use super::attempt::timeout_for;
use super::body;
use super::prepare::{Arrived, Inbound, Prepared};
use super::respond::{DEPLOYMENT, PROVIDER};
use crate::dialect::anthropic::Messages;
use crate::dialect::ChatDialect;
use crate::error::ApiError;
use crate::providers::{Call, JsonBody, NativeRequest, Wire};
use crate::state::App;

/// Metric label of the endpoint.
pub const ENDPOINT: &str = "count_tokens";
/// Response header: `provider` (the provider counted) or `estimate` (the gateway estimated).
pub const TOKEN_COUNT: HeaderName = HeaderName::from_static("x-switchyard-token-count");

/// Serves one count_tokens request.
pub async fn serve(app: &App, arrived: Arrived<'_>) -> Result<Response, ApiError> {
    let Arrived { headers, trace, .. } = arrived;
    let inbound = Inbound::read(app, arrived).await?;
    let (json, untranslatable) = internal(&inbound.bytes)?;
    let fields = match untranslatable {
        None => body::chat(&json)?,
        Some(_) => Messages::native_fields(&json)?,
    };
    let mut prepared = Prepared::chat(ENDPOINT, &inbound, headers, &json, &fields, trace)?;
    // The body is counted by a provider: it is guarded like the request it stands for.
    let (json, untranslatable, bytes) =
        match super::guard::request(&mut prepared, headers, &inbound.bytes)?.body {
            Some(redacted) => {
                let (json, untranslatable) = internal(&redacted)?;
                (json, untranslatable, redacted)
            }
            None => (json, untranslatable, inbound.bytes),
        };
    let client = NativeRequest {
        wire: Wire::AnthropicMessages,
        body: bytes,
        headers,
        stream: false,
    };
    let native_only = untranslatable.is_some();
    match provider_count(app, &prepared, &json, &client, native_only).await {
        Some((n, provider, deployment)) => {
            let mut response = reply(n, "provider");
            for (name, value) in [(PROVIDER, provider), (DEPLOYMENT, deployment)] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().insert(name, value);
                }
            }
            Ok(response)
        }
        None => match untranslatable {
            Some(e) => Err(e),
            None => Ok(reply(prepared.prompt_tokens, "estimate")),
        },
    }
}

/// The internal body of a Messages body, or the body itself with the translation's error.
fn internal(bytes: &bytes::Bytes) -> Result<(JsonBody, Option<ApiError>), ApiError> {
    Ok(match Messages::request(body::parse_object(bytes)?) {
        Ok(json) => (json, None),
        Err(e) => (body::parse_object(bytes)?, Some(e)),
    })
}

fn reply(input_tokens: u64, source: &'static str) -> Response {
    let mut response =
        axum::Json(serde_json::json!({ "input_tokens": input_tokens })).into_response();
    response
        .headers_mut()
        .insert(TOKEN_COUNT, HeaderValue::from_static(source));
    response
}

/// The count of the deployment the plan chooses, with its provider and deployment ids, if
/// that provider counts tokens and answered.
async fn provider_count(
    app: &App,
    prepared: &Prepared,
    internal: &JsonBody,
    client: &NativeRequest<'_>,
    native_only: bool,
) -> Option<(u64, String, String)> {
    let mut attempts = prepared.attempts(&app.parts().health)?;
    if native_only {
        attempts.rule_out(|d| !d.provider.speaks(&d.model, Wire::AnthropicMessages));
    }
    let attempt = attempts.next_attempt()?;
    let deployment = attempt.deployment;
    if !deployment
        .provider
        .counts_tokens(&deployment.model, native_only)
    {
        return None;
    }
    let call = Call {
        http: &app.parts().http,
        deployment,
        timeout: attempts.cap(timeout_for(app, attempt.route, deployment)),
        trace: &[],
    };
    match deployment
        .provider
        .count_tokens(&call, internal, client)
        .await
    {
        Ok(n) => Some((
            n,
            deployment.provider.id().to_owned(),
            deployment.id.clone(),
        )),
        Err(e) => {
            tracing::info!(deployment = %deployment.id, error = %e, "the provider's token count failed; answering the estimate");
            None
        }
    }
}
