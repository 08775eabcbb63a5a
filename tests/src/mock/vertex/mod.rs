//! Google Vertex AI routes of the mock, with Google's OAuth token endpoint in front of them.
//!
//! - `POST /token`: the service-account JWT bearer grant (see `token.rs`).
//! - `POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{action}`
//!   with `generateContent`, `streamGenerateContent?alt=sse` (the Gemini handlers of
//!   `gemini.rs`: same bodies, scripting, faults, recording and token counting) and `predict`
//!   (text embeddings: `{"instances":[{"content"}],"parameters":{"outputDimensionality"}}` →
//!   `{"predictions":[{"embeddings":{"values","statistics":{"token_count","truncated"}}}]}`,
//!   token_count = words of the content, vectors as for the other embedding routes). These
//!   require `Authorization: Bearer <token>` with a token this mock issued that has not
//!   expired; otherwise, before anything else is checked, 401
//!   `{"error":{"code":401,"message":…,"status":"UNAUTHENTICATED"}}` (recorded too).
//! - `POST /v1/projects/{project}/locations/{location}/publishers/anthropic/models/
//!   {model}:{action}`: Claude on Vertex AI with `rawPredict`, `streamRawPredict` and
//!   `count-tokens:rawPredict` (see `claude.rs`), behind the same token check.

mod claude;
mod token;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::admit::{Admitted, ApiRequest, Dialect, Inbound};
use super::embedding::{self, Item, DEFAULT_DIMENSIONS, MAX_DIMENSIONS};
use super::gemini::{generate_action, google_answer, non_stream};
use super::google_error::gemini_error;
use super::record::RecordInit;
use super::tokens::count_words;
use super::Shared;
use token::Tokens;

const MODELS: &str =
    "/v1/projects/{project}/locations/{location}/publishers/google/models/{target}";
const CLAUDE_MODELS: &str =
    "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{target}";

/// The Vertex routes, merged into the mock's router.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/token", post(token::token))
        .route(MODELS, post(models_action))
        .route(CLAUDE_MODELS, post(claude::models_action))
        .layer(Extension(Arc::new(Tokens::default())))
}

/// `POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:{action}`.
async fn models_action(
    Extension(tokens): Extension<Arc<Tokens>>,
    Path((_project, _location, target)): Path<(String, String, String)>,
    inbound: Inbound,
) -> Response {
    let Some((model, action)) = target.rsplit_once(':') else {
        return not_found(&target);
    };
    if !tokens.valid(&inbound.headers) {
        return unauthenticated(&inbound, model, action == "streamGenerateContent");
    }
    let dialect = Dialect::Vertex { model };
    match action {
        "predict" => google_answer(&inbound, dialect, predict).await,
        _ => generate_action(&inbound, dialect, action)
            .await
            .unwrap_or_else(|| not_found(&target)),
    }
}

#[derive(Debug, Deserialize)]
struct Instance {
    content: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Parameters {
    #[serde(default)]
    output_dimensionality: Option<u32>,
}

/// A text-embedding `predict` request.
#[derive(Debug, Deserialize)]
struct Predict {
    instances: Vec<Instance>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

impl Predict {
    fn dimensions(&self) -> Option<u32> {
        self.parameters.as_ref()?.output_dimensionality
    }
}

impl ApiRequest for Predict {
    fn prompt_tokens(&self) -> u64 {
        self.instances.iter().map(|i| count_words(&i.content)).sum()
    }
    fn validate(&self) -> Result<(), String> {
        if self.instances.is_empty() {
            return Err("instances must not be empty".into());
        }
        match self.dimensions() {
            Some(d) if !(1..=MAX_DIMENSIONS).contains(&d) => Err(format!(
                "outputDimensionality {d} is not in 1..={MAX_DIMENSIONS}"
            )),
            _ => Ok(()),
        }
    }
}

fn predict(admitted: &Admitted<Predict>) -> Response {
    let request = &admitted.request;
    let dims = request.dimensions().unwrap_or(DEFAULT_DIMENSIONS);
    let predictions: Vec<Value> = request
        .instances
        .iter()
        .map(|i| {
            json!({ "embeddings": {
                "values": embedding::vector(Item::Text(&i.content), dims),
                "statistics": { "token_count": count_words(&i.content), "truncated": false },
            }})
        })
        .collect();
    let characters: usize = request
        .instances
        .iter()
        .map(|i| i.content.chars().count())
        .sum();
    admitted.report_usage(request.prompt_tokens(), 0);
    let body = json!({
        "predictions": predictions,
        "metadata": { "billableCharacterCount": characters },
    });
    non_stream(admitted, body.to_string().into_bytes())
}

/// Google's 401 for a request without a live token, recorded like the others.
fn unauthenticated(inbound: &Inbound, model: &str, stream: bool) -> Response {
    recorded_refusal(inbound, model, stream);
    gemini_error(
        StatusCode::UNAUTHORIZED,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login \
         cookie or other valid authentication credential. (mock provider)",
        None,
    )
}

/// Records a request refused before admission: its body (JSON, else text), `model`, `stream`.
fn recorded_refusal(inbound: &Inbound, model: &str, stream: bool) {
    let body = &inbound.body;
    let record = inbound.shared.records.start(RecordInit {
        body: serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())),
        model: Some(model),
        stream,
        ..inbound.record_init()
    });
    record.completed();
}

fn not_found(target: &str) -> Response {
    let message = format!("Publisher Model `{target}` not found. (mock provider)");
    gemini_error(StatusCode::NOT_FOUND, &message, None)
}
