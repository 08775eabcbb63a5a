//! `POST /v1/responses/compact`: a long conversation made short, on every provider.
//!
//! The conversation (`input`, after the stored one `previous_response_id` names) is sent to
//! the routed model as one more Responses turn, through the whole pipeline (admission,
//! fallback, metering: it is a real provider call), asking for a summary. The answer is
//! OpenAI's `response.compaction` object whose `output` is the conversation to continue
//! from: the user's messages kept verbatim, then one assistant message holding the summary
//! of everything else. A client sends that output back as the next turn's input, like
//! OpenAI's compaction items; unlike them it is readable text, so every provider can take it.

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

use super::body;
use super::chat;
use super::prepare::{Arrived, Inbound};
use super::responses::Turn;
use crate::dialect::responses::Responses;
use crate::dialect::ChatDialect;
use crate::error::ApiError;
use crate::providers::UpstreamError;
use crate::state::App;

/// What the routed model is asked to do with the conversation.
const PROMPT: &str = "Summarize the conversation so far for your own later use: the task, \
what was decided, what was done (commands run, files changed, results) and what remains. \
Be complete but brief; write only the summary.";

/// The summary message's opening words.
const SUMMARY_HEAD: &str = "Summary of the conversation so far:";

/// Largest answer read back from the summarising turn.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// `POST /v1/responses/compact`.
pub async fn compact(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let serve = async |arrived: Arrived<'_>| -> Result<Response, ApiError> {
        let (headers, trace) = (arrived.headers, arrived.trace);
        let mut inbound = Inbound::read(&app, arrived).await?;
        let turn = Turn::read(&inbound.bytes, true)?;
        let mut conversation = turn.history(&app, inbound.key.team.as_deref()).await?;
        conversation.extend(turn.input.iter().cloned());
        let client = body::parse_object(&inbound.bytes)?;
        let field = |name: &str| crate::dialect::field(&client, name);
        let Some(model) = field("model")? else {
            return Err(ApiError::invalid(
                "model",
                "'model' is a required property.",
            ));
        };
        let mut ask = vec![json!({"type": "message", "role": "user", "content": PROMPT})];
        ask.splice(0..0, conversation.iter().cloned());
        let mut summarise = json!({"model": model, "input": ask, "store": false});
        if let Some(instructions) = field("instructions")? {
            summarise["instructions"] = instructions;
        }
        inbound.bytes =
            Bytes::from(serde_json::to_vec(&summarise).map_err(|_| {
                ApiError::invalid("input", "The conversation could not be compacted.")
            })?);
        let answered = chat::serve_read::<Responses>(&app, headers, trace, inbound, None).await?;
        if !answered.status().is_success() {
            return Ok(answered);
        }
        let (mut parts, body) = answered.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_ANSWER)
            .await
            .map_err(|_| unreadable())?;
        let answer: Value = serde_json::from_slice(&bytes).map_err(|_| unreadable())?;
        let compacted = compaction(&conversation, &answer);
        parts.headers.remove(http::header::CONTENT_LENGTH);
        Ok((parts, Json(compacted)).into_response())
    };
    super::handle(&app, &headers, body, "compact", Responses::error, serve).await
}

fn unreadable() -> ApiError {
    ApiError::Upstream(UpstreamError::BadResponse {
        provider: "compact".into(),
        detail: "the summary could not be read",
    })
}

/// The `response.compaction` object: the user's messages, then the summary.
fn compaction(conversation: &[Value], answer: &Value) -> Value {
    let summary: String = answer["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().into_iter().flatten())
        .filter_map(|part| part["text"].as_str())
        .collect();
    let mut output: Vec<Value> = conversation
        .iter()
        .filter(|item| {
            item["role"] == "user" && item["type"].as_str().is_none_or(|t| t == "message")
        })
        .cloned()
        .collect();
    let id = answer["id"].as_str().unwrap_or("resp_compact");
    output.push(json!({
        "id": format!("msg_{}", id.trim_start_matches("resp_")),
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": format!("{SUMMARY_HEAD}\n{summary}"), "annotations": []}],
    }));
    json!({
        "id": id,
        "object": "response.compaction",
        "created_at": answer["created_at"],
        "model": answer["model"],
        "output": output,
        "usage": answer["usage"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_messages_stay_and_everything_else_becomes_one_summary() {
        let conversation = vec![
            json!({"role": "user", "content": "fix the bug"}),
            json!({"type": "function_call", "call_id": "c", "name": "shell", "arguments": "{}"}),
            json!({"type": "function_call_output", "call_id": "c", "output": "ok"}),
            json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Fixed."}]}),
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "thanks"}]}),
        ];
        let answer = json!({"id": "resp_9", "created_at": 5, "model": "m",
            "output": [{"type": "message", "content": [{"type": "output_text", "text": "The bug was fixed."}]}],
            "usage": {"input_tokens": 3, "output_tokens": 4}});
        let c = compaction(&conversation, &answer);
        assert_eq!(c["object"], "response.compaction");
        let output = c["output"].as_array().unwrap();
        assert_eq!(output.len(), 3);
        assert_eq!(output[0], conversation[0]);
        assert_eq!(output[1], conversation[4]);
        assert_eq!(
            output[2]["content"][0]["text"],
            "Summary of the conversation so far:\nThe bug was fixed."
        );
        assert_eq!(c["usage"]["output_tokens"], 4);
    }
}
