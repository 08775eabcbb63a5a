//! Pass-through for clients that speak OpenAI's Responses API (`/v1/responses`, and its
//! compaction `/v1/responses/compact`, routed to an OpenAI or Azure OpenAI deployment): the
//! client's body goes upstream byte for byte except for the value of its top-level `model`,
//! and the answer comes back byte for byte. Only usage is read on the way: from the top-level
//! `usage` of a response or a `response.compaction`, or in a stream from the terminal event
//! (`response.completed`, `response.incomplete` or `response.failed`), which is the chunk
//! that carries it to the relay's metering.
//!
//! A stream that ends without a terminal event, or with an `error` event, ends with an
//! error, so the relay reports it (as `response.failed`) and meters it as failed.

use serde::Deserialize;

use super::OpenAiFamily;
use crate::providers::common::same_error;
use crate::providers::forward::{pass_through, Seen, Target, Wire};
use crate::providers::{Call, ChatResult, JsonReply, NativeRequest, ResponsesUsage, Usage};

/// A response object, or a stream event (which nests it under `response`).
#[derive(Deserialize)]
struct Probe {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    usage: Option<ResponsesUsage>,
    #[serde(default)]
    response: Option<Box<Probe>>,
    #[serde(default)]
    message: Option<String>,
}

impl OpenAiFamily {
    /// Sends the client's own Responses (or compaction) request to the endpoint its wire
    /// names; the value of `model` is replaced by the deployment's.
    pub async fn forward(&self, call: &Call<'_>, request: NativeRequest<'_>) -> ChatResult {
        let Some(url) = self.responses_url(request.wire) else {
            return Err(self
                .upstream
                .bad("the deployment does not speak the Responses API"));
        };
        let to = Target::new(url, &[], same_error);
        pass_through::<Responses>(&self.upstream, call, request, to).await
    }
}

/// The Responses wire: usage only in the terminal event, which ends the stream.
#[derive(Default)]
struct Responses;

impl Wire for Responses {
    type Probe = Probe;

    fn body_usage(response: Probe) -> Option<Usage> {
        response.usage.map(Usage::from)
    }

    fn event(&mut self, probe: Option<Probe>) -> Seen {
        let kind = probe.as_ref().and_then(|p| p.kind.as_deref());
        let terminal = matches!(
            kind,
            Some("response.completed" | "response.incomplete" | "response.failed")
        );
        if kind == Some("error") {
            let message = probe
                .and_then(|p| p.message)
                .unwrap_or_else(|| "stream error".into());
            return Seen::Error(message);
        }
        let usage = terminal
            .then(|| probe.and_then(|p| p.response?.usage).map(Usage::from))
            .flatten()
            .or(terminal.then(Usage::default));
        Seen::Relay {
            usage,
            last: terminal,
        }
    }
}

/// A complete Responses `response` object (an answer passed through, or the `response` of a
/// stream's `response.completed` / `response.incomplete` event) as an internal chat
/// completion, for the response cache: its messages' text, its function calls, its reasoning
/// summaries and its usage. `None` when the response did not finish (failed, in progress), or
/// holds an item the chat form cannot say (a built-in tool's call, a refusal, a custom tool),
/// so that a replay never drops part of an answer. Reasoning items keep their summary only:
/// their encrypted content is for the model that wrote them, and a turn may leave them out.
pub fn completion(response: &serde_json::Value, created: u64) -> Option<JsonReply> {
    use serde_json::{json, Value};
    let finish = match (
        response["status"].as_str(),
        response["incomplete_details"]["reason"].as_str(),
    ) {
        (Some("completed"), _) => "stop",
        (Some("incomplete"), Some("max_output_tokens")) => "length",
        (Some("incomplete"), Some("content_filter")) => "content_filter",
        _ => return None,
    };
    let (mut text, mut reasoning, mut calls) = (String::new(), String::new(), Vec::new());
    for item in response["output"].as_array()? {
        match item["type"].as_str()? {
            "message" => {
                for part in item["content"].as_array()? {
                    match part["type"].as_str()? {
                        "output_text" => text.push_str(part["text"].as_str()?),
                        _ => return None,
                    }
                }
            }
            "function_call" => calls.push(json!({
                "id": item["call_id"].as_str()?,
                "type": "function",
                "function": {"name": item["name"].as_str()?, "arguments": item["arguments"].as_str()?},
            })),
            "reasoning" => {
                let summary = item["summary"].as_array().into_iter().flatten();
                for part in summary.filter_map(|p| p["text"].as_str()) {
                    reasoning.push_str(part);
                }
            }
            _ => return None,
        }
    }
    let usage = response
        .get("usage")
        .and_then(|u| serde_json::from_value::<ResponsesUsage>(u.clone()).ok())
        .map(Usage::from)
        .unwrap_or_default();
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::from(text)
    };
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    let finish = if calls.is_empty() {
        finish
    } else {
        message["tool_calls"] = Value::Array(calls);
        if finish == "stop" {
            "tool_calls"
        } else {
            finish
        }
    };
    if !reasoning.is_empty() {
        message["reasoning_content"] = Value::from(reasoning);
    }
    let out = json!({
        "id": response["id"],
        "object": "chat.completion",
        "created": created,
        "model": response["model"],
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage.openai_json(false),
    });
    Some(JsonReply {
        body: bytes::Bytes::from(serde_json::to_vec(&out).ok()?),
        usage: Some(usage),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::forward::relay_verbatim;

    #[test]
    fn frames_pass_unchanged_and_usage_comes_from_the_terminal_event() {
        let (u, last) = relay_verbatim(
            &mut Responses,
            "response.created",
            r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","usage":null}}"#,
        );
        assert!(!last && u == Ok(None));
        let (u, last) = relay_verbatim(
            &mut Responses,
            "response.completed",
            r#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":8},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":64},"total_tokens":123}}}"#,
        );
        let u = u.ok().flatten().unwrap_or_default();
        assert!(last);
        let tokens = (u.prompt_tokens, u.completion_tokens);
        assert_eq!(
            (tokens, u.cached_tokens, u.reasoning_tokens),
            ((36, 87), 8, 64)
        );
        let (u, last) = relay_verbatim(
            &mut Responses,
            "error",
            r#"{"type":"error","code":"server_error","message":"The server had an error","sequence_number":3}"#,
        );
        assert!(last && u.is_err_and(|e| e.contains("The server had an error")));
    }
    #[test]
    fn a_finished_response_becomes_a_chat_completion_unless_it_holds_what_chat_cannot_say() {
        let response = serde_json::json!({
            "id": "resp_1", "model": "gpt-5", "status": "completed",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}],
                 "encrypted_content": "opaque"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi", "annotations": []}]},
                {"type": "function_call", "call_id": "call_1", "name": "ls", "arguments": "{}"}
            ],
            "usage": {"input_tokens": 10, "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2}}
        });
        let reply = completion(&response, 7).unwrap();
        let chat: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        let choice = &chat["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Hi");
        assert_eq!(choice["message"]["reasoning_content"], "think");
        assert_eq!(choice["message"]["tool_calls"][0]["id"], "call_1");
        assert_eq!(chat["usage"]["prompt_tokens"], 10);
        let usage = reply.usage.unwrap();
        assert_eq!((usage.completion_tokens, usage.reasoning_tokens), (5, 2));

        let mut cut = response.clone();
        cut["status"] = "incomplete".into();
        cut["incomplete_details"] = serde_json::json!({"reason": "max_output_tokens"});
        cut["output"] = serde_json::json!([response["output"][1]]);
        let chat: serde_json::Value =
            serde_json::from_slice(&completion(&cut, 7).unwrap().body).unwrap();
        assert_eq!(chat["choices"][0]["finish_reason"], "length");

        let mut searched = response.clone();
        searched["output"][0] =
            serde_json::json!({"type": "web_search_call", "id": "ws_1", "status": "completed"});
        assert!(completion(&searched, 7).is_none(), "a built-in tool's call");
        let mut refused = response.clone();
        refused["output"][1]["content"] = serde_json::json!([{"type": "refusal", "refusal": "no"}]);
        assert!(completion(&refused, 7).is_none(), "a refusal");
        let mut failed = response;
        failed["status"] = "failed".into();
        assert!(completion(&failed, 7).is_none(), "a failed response");
    }
}
