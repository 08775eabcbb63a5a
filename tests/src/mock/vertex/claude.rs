//! Claude on Vertex AI: `POST /v1/projects/{project}/locations/{location}/publishers/anthropic/
//! models/{model}:{action}`, behind the token check of the Google routes (401 in Google's
//! shape, recorded).
//!
//! - `{model}:rawPredict` and `{model}:streamRawPredict`: Anthropic's Messages body without
//!   `model` (the URL names it) and with `"anthropic_version": "vertex-2023-10-16"`. A body
//!   that carries `model`, or lacks that version, is refused with Anthropic's 400
//!   `invalid_request_error` (recorded). Then the mock's `/v1/messages` handler answers it
//!   (same scripting, faults, recording and billing), with the URL's model, streamed when the
//!   action is `streamRawPredict` (whatever the body's `stream` says).
//! - `count-tokens:rawPredict`: Anthropic's count_tokens body, which names the `model` it
//!   counts for (required here), with the same `anthropic_version`; answered as
//!   `/v1/messages/count_tokens` is.

use std::sync::Arc;

use axum::extract::Path;
use axum::response::Response;
use axum::Extension;
use serde_json::Value;

use super::token::Tokens;
use super::{not_found, recorded_refusal, unauthenticated};
use crate::mock::admit::{Dialect, Inbound, Rejected};
use crate::mock::error::render;
use crate::mock::{anthropic, count};

/// The version Vertex requires in a Claude request's body.
const VERSION: &str = "vertex-2023-10-16";
/// The model segment of the token-count action.
const COUNT_TOKENS: &str = "count-tokens";

/// `POST /v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model}:{action}`.
pub(super) async fn models_action(
    Extension(tokens): Extension<Arc<Tokens>>,
    Path((_project, _location, target)): Path<(String, String, String)>,
    inbound: Inbound,
) -> Response {
    let Some((model, action)) = target.rsplit_once(':') else {
        return not_found(&target);
    };
    let count = model == COUNT_TOKENS;
    let stream = match action {
        "rawPredict" => false,
        "streamRawPredict" if !count => true,
        _ => return not_found(&target),
    };
    if !tokens.valid(&inbound.headers) {
        return unauthenticated(&inbound, model, stream);
    }
    if let Err(message) = vertex_body(&inbound.body, count) {
        recorded_refusal(&inbound, model, stream);
        return render(Rejected::BadRequest(message), &anthropic::Shape);
    }
    let dialect = Dialect::VertexAnthropic { model, stream };
    if count {
        count::messages(&inbound, dialect).await
    } else {
        anthropic::answer(&inbound, dialect).await
    }
}

/// Vertex's own rules for a Claude body: `model` only where the URL does not name it (the
/// token count), and the Vertex API version. A body that is not a JSON object is left to
/// admission, which refuses it in Anthropic's shape.
fn vertex_body(body: &[u8], count: bool) -> Result<(), String> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    match (body.contains_key("model"), count) {
        (true, false) => {
            return Err(
                "model: Extra inputs are not permitted (Vertex AI names the model in \
                        the URL) (mock provider)"
                    .to_owned(),
            )
        }
        (false, true) => return Err("model: Field required (mock provider)".to_owned()),
        _ => {}
    }
    if body.get("anthropic_version").and_then(Value::as_str) != Some(VERSION) {
        return Err(format!(
            "anthropic_version: Input should be '{VERSION}' (mock provider)"
        ));
    }
    Ok(())
}
