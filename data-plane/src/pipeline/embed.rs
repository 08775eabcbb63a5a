//! Embeddings (`/v1/embeddings`, OpenAI's dialect only): stages 2–4, then the attempt loop
//! with [`EmbedOp`]; no stream, no output tokens to reserve.

use axum::response::Response;
use http::HeaderMap;

use super::attempt::{self, Operation, Won};
use super::body;
use super::chat::served;
use super::prepare::{Arrived, Ask, Inbound, Prepared};
use crate::error::ApiError;
use crate::providers::{Call, JsonBody, JsonReply, Provider, UpstreamError};
use crate::state::App;

/// Metric and usage-event label.
pub const ENDPOINT: &str = "embeddings";

/// Serves one embeddings request.
pub async fn serve(app: &App, arrived: Arrived<'_>) -> Result<Response, ApiError> {
    let Arrived { headers, trace, .. } = arrived;
    let inbound = Inbound::read(app, arrived).await?;
    let json = body::parse_object(&inbound.bytes)?;
    let ask = Ask {
        endpoint: ENDPOINT,
        model: body::embeddings(&json)?,
        streamed: false,
        max_output_tokens: Some(0),
    };
    let prepared = Prepared::new(&inbound, headers, &json, ask, trace)?;
    drop(inbound);
    let Some(mut attempts) = prepared.attempts(&app.parts().health) else {
        return Err(prepared.not_found());
    };
    let mut op = EmbedOp { body: json };
    let Won {
        reply,
        billing,
        attempt,
        upstream,
        inflight,
        ..
    } = attempt::run(app, &prepared, &mut attempts, &mut op, None).await?;
    drop(inflight);
    prepared.trace.span.answer_body(&reply.body);
    let mut response = served(&prepared, attempt.deployment, upstream, reply, billing);
    attempts.tag(response.headers_mut(), &attempt);
    Ok(response)
}

/// The unit-length embedding of `text` by the route `alias`, for the semantic cache of a
/// request `p`: a request of its own on behalf of the same key (its own id, admission,
/// attempts, usage event and log entry, the key's tags), as if the caller had sent
/// `{"model": alias, "input": text}` to `/v1/embeddings`.
pub async fn routed(
    app: &App,
    p: &Prepared,
    alias: &str,
    text: &str,
) -> Result<Vec<f32>, ApiError> {
    let body = serde_json::json!({"model": alias, "input": text});
    let inbound = Inbound {
        snapshot: std::sync::Arc::clone(&p.snapshot),
        key: std::sync::Arc::clone(&p.key),
        bytes: bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
    };
    let json = body::parse_object(&inbound.bytes)?;
    let ask = Ask {
        endpoint: ENDPOINT,
        model: alias.to_owned(),
        streamed: false,
        max_output_tokens: Some(0),
    };
    // None of the caller's headers: they steer the chat request (a route preference among
    // them), not this one.
    let trace = super::respond::Trace::start();
    let prepared = Prepared::new(&inbound, &HeaderMap::new(), &json, ask, &trace)?;
    let Some(mut attempts) = prepared.attempts(&app.parts().health) else {
        return Err(prepared.not_found());
    };
    let mut op = EmbedOp { body: json };
    let Won {
        reply,
        billing,
        attempt,
        upstream,
        inflight,
        ..
    } = attempt::run(app, &prepared, &mut attempts, &mut op, None).await?;
    drop(inflight);
    let vector = first_embedding(&reply.body);
    // Metered and settled like any answer; the response itself goes nowhere.
    drop(served(
        &prepared,
        attempt.deployment,
        upstream,
        reply,
        billing,
    ));
    vector.ok_or(ApiError::Upstream(UpstreamError::BadResponse {
        provider: attempt.deployment.provider.id().to_owned(),
        detail: "the embeddings answer has no embedding",
    }))
}

/// `data[0].embedding` of an OpenAI embeddings answer, scaled to unit length.
fn first_embedding(body: &[u8]) -> Option<Vec<f32>> {
    #[derive(serde::Deserialize)]
    struct Answer {
        data: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        embedding: Vec<f32>,
    }
    let mut vector = serde_json::from_slice::<Answer>(body)
        .ok()?
        .data
        .into_iter()
        .next()?
        .embedding;
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if vector.is_empty() || !norm.is_normal() {
        return None;
    }
    vector.iter_mut().for_each(|x| *x /= norm);
    Some(vector)
}

/// One embeddings attempt: the body as the client sent it (the adapter sets the model).
struct EmbedOp {
    body: JsonBody,
}

impl Operation for EmbedOp {
    type Reply = JsonReply;

    async fn send(&mut self, call: &Call<'_>, last: bool) -> Result<JsonReply, UpstreamError> {
        let body = if last {
            std::mem::take(&mut self.body)
        } else {
            self.body.clone()
        };
        call.deployment.provider.embeddings(call, body).await
    }
}
