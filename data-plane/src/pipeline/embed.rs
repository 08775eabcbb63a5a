//! Embeddings (`/v1/embeddings`, OpenAI's dialect only): stages 2–4, then the attempt loop
//! with [`EmbedOp`]; no stream, no output tokens to reserve.

use axum::response::Response;

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
