//! `POST /v1/responses/compact` as an inbound dialect: a long conversation made short.
//!
//! A deployment that speaks the Responses wire natively (OpenAI, Azure OpenAI:
//! `Wire::OpenAiCompact`) is sent the client's body as it is (but for `model`) at its own
//! `…/responses/compact`, and its `response.compaction` (the user's messages, then one
//! `compaction` item whose `encrypted_content` only that provider reads) is relayed byte for
//! byte. A conversation holding items only such a deployment reads (an earlier `compaction`
//! item, an `item_reference`) goes to one of those only.
//!
//! Every other deployment is asked to summarise the conversation (`input`, a stored one the
//! pipeline placed before it), as one more Responses turn ([`PROMPT`] appended) translated
//! like any other. The answer is OpenAI's `response.compaction` object whose `output` is the
//! user's messages verbatim, then one assistant message holding the summary. A client sends
//! that output back as the next turn's input, like OpenAI's; unlike OpenAI's it is readable
//! text, so every provider can continue from it. Only `model`, `input`, `instructions` (and
//! `previous_response_id`) shape the summary; the other fields are dropped and named.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};

use super::response::{to_response, Ids};
use super::Responses;
use crate::dialect::{field, Answer, ChatDialect, Frames};
use crate::error::ApiError;
use crate::pipeline::body::{self, ChatFields};
use crate::providers::{JsonBody, Wire};

/// What the routed model is asked to do with the conversation.
pub const PROMPT: &str = "Summarize the conversation so far for your own later use: the task, \
what was decided, what was done (commands run, files changed, results) and what remains. \
Be complete but brief; write only the summary.";

/// The summary message's opening words.
const SUMMARY_HEAD: &str = "Summary of the conversation so far:";

/// The fields the summarising turn is made of.
const KEPT: [&str; 4] = ["model", "input", "instructions", "previous_response_id"];

/// `POST /v1/responses/compact`.
#[derive(Debug)]
pub struct Compact;

impl ChatDialect for Compact {
    const ENDPOINT: &'static str = "compact";
    const NATIVE: Option<Wire> = Some(Wire::OpenAiCompact);

    /// The summarising turn: the conversation, then [`PROMPT`], with the client's model and
    /// instructions; a `previous_response_id` still here (not the gateway's) is left for the
    /// translation to refuse.
    fn request(mut body: JsonBody) -> Result<JsonBody, ApiError> {
        let mut input = conversation(&body)?;
        input.push(json!({"type": "message", "role": "user", "content": PROMPT}));
        let input = serde_json::value::to_raw_value(&input)
            .map_err(|_| ApiError::invalid("input", "The conversation could not be compacted."))?;
        let mut ask: JsonBody = KEPT
            .iter()
            .filter_map(|name| body.remove_entry(*name))
            .collect();
        ask.insert("input".into(), input);
        Responses::request(ask)
    }

    fn dropped(body: &JsonBody) -> Vec<String> {
        let names: Vec<&str> = body
            .keys()
            .map(String::as_str)
            .filter(|name| !KEPT.contains(name))
            .collect();
        crate::dialect::present(body, &names)
    }

    fn native_fields(body: &JsonBody) -> Result<ChatFields, ApiError> {
        body::compaction(body)
    }

    fn reply(body: Bytes, answer: &Answer<'_>, native: bool) -> Option<Bytes> {
        if native {
            return Some(body);
        }
        let summary = to_response(&body, answer.model, &Ids::new(answer.id))?;
        let summary: Value = serde_json::from_slice(&summary).ok()?;
        let request = body::parse_object(answer.request).ok()?;
        let compacted = compaction(&conversation(&request).ok()?, &summary);
        serde_json::to_vec(&compacted).ok().map(Bytes::from)
    }

    /// Compaction never streams ([`body::compaction`], and the summarising turn asks for no
    /// stream); a stream would be the Responses API's.
    fn frames(fields: &ChatFields, answer: &Answer<'_>, native: bool) -> Box<dyn Frames> {
        Responses::frames(fields, answer, native)
    }

    fn error(e: ApiError) -> Response {
        e.into_response()
    }
}

/// The conversation to compact: `input` as items (a string is one user message; none is an
/// empty conversation, as for a stored one named by an id the gateway does not know).
fn conversation(body: &JsonBody) -> Result<Vec<Value>, ApiError> {
    match field(body, "input")? {
        None => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![
            json!({"type": "message", "role": "user", "content": text}),
        ]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(ApiError::invalid(
            "input",
            "'input' must be a string or an array of input items.",
        )),
    }
}

/// The `response.compaction` object: the user's messages, then the summary (the text of the
/// summarising turn's answer, a Responses `response`).
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

    fn parsed(text: &str) -> JsonBody {
        body::parse_object(text.as_bytes()).unwrap()
    }

    #[test]
    fn the_summarising_turn_is_the_conversation_then_the_prompt() {
        let client = parsed(
            r#"{"model":"m","instructions":"Be terse.","input":"fix the bug","tools":[{"type":"function","name":"shell"}],"reasoning":{"effort":"high"},"text":null}"#,
        );
        assert_eq!(Compact::dropped(&client), ["reasoning", "tools"]);
        let chat = Compact::request(client).unwrap();
        let messages: Value = serde_json::from_str(chat["messages"].get()).unwrap();
        assert_eq!(
            messages,
            json!([
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "fix the bug"},
                {"role": "user", "content": PROMPT},
            ])
        );
        assert!(!chat.contains_key("tools"));
        // An id the gateway did not store: only a deployment that keeps it can compact.
        let unknown = parsed(r#"{"model":"m","previous_response_id":"resp_x"}"#);
        assert!(matches!(
            Compact::request(unknown),
            Err(ApiError::PreviousResponseNotFound(_))
        ));
        let fields = Compact::native_fields(&parsed(r#"{"model":"m","stream":true}"#)).unwrap();
        assert_eq!((fields.model.as_str(), fields.stream), ("m", false));
    }

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

    #[test]
    fn a_compaction_from_the_provider_is_relayed_as_it_came() {
        let answer = Answer {
            model: "m",
            id: uuid::Uuid::nil(),
            prompt_tokens: 1,
            request: b"{}",
        };
        let body = Bytes::from_static(br#"{"object":"response.compaction","output":[{"type":"compaction","encrypted_content":"x"}]}"#);
        assert_eq!(Compact::reply(body.clone(), &answer, true), Some(body));
    }
}
