//! The Converse answer the mock sends, as one JSON body or as ConverseStream frames, built from
//! one [`Output`] (see the parent module for the blocks and counts).

use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::Response;
use serde_json::{json, Value};

use super::{frames, Converse};
use crate::mock::admit::{Admitted, ApiRequest as _};
use crate::mock::api::non_stream_response;
use crate::mock::cache::CacheTokens;
use crate::mock::output::{call_id, signature, Content, Output};
use crate::mock::script::Fault;
use crate::mock::stream::{block_events, event_stream, Ending, StreamBlock};

/// What one request is answered with.
struct Answer<'a> {
    seq: u64,
    output: Output<'a>,
    prompt: u64,
    cache: CacheTokens,
}

/// `converse` (`STREAM` false) and `converse-stream` (true).
pub(super) fn answer<const STREAM: bool>(admitted: &Admitted<Converse<STREAM>>) -> Response {
    let request = &admitted.request;
    let limit = request.inference_config.as_ref().and_then(|c| c.max_tokens);
    let calls = Output::scripted(admitted.tool_calls())
        .or_else(|| request.forced_call().map(|call| vec![call]));
    let answer = Answer {
        seq: admitted.seq,
        output: Output::new(&admitted.behaviour, calls, limit),
        prompt: request.prompt_tokens(),
        cache: CacheTokens::of(&admitted.behaviour, request.prompt_tokens()),
    };
    admitted.bill(answer.prompt, answer.output.completion_tokens());
    if STREAM {
        return answer.stream(admitted);
    }
    let body = json!({
        "output": { "message": { "role": "assistant", "content": answer.content() } },
        "stopReason": answer.stop_reason(),
        "usage": answer.usage(),
        "metrics": { "latencyMs": admitted.behaviour.latency_ms.unwrap_or(0) },
    });
    with_request_id(non_stream_response(
        admitted,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

impl Answer<'_> {
    fn stop_reason(&self) -> &'static str {
        match &self.output.content {
            Content::Calls(_) => "tool_use",
            Content::Text(_) if self.output.cut() => "max_tokens",
            Content::Text(_) => "end_turn",
        }
    }

    fn usage(&self) -> Value {
        self.cache
            .bedrock_usage(self.prompt, self.output.completion_tokens())
    }

    fn tool_use_id(&self, i: usize) -> String {
        call_id("tooluse_mock", self.seq, i)
    }

    /// The finished content blocks.
    fn content(&self) -> Value {
        let mut content = Vec::new();
        if let Some(text) = self.output.reasoning_text() {
            let signature = signature(self.seq);
            content.push(json!({ "reasoningContent": { "reasoningText": { "text": text, "signature": signature } } }));
        }
        match &self.output.content {
            Content::Text(reply) => content.push(json!({ "text": reply.text() })),
            Content::Calls(calls) => {
                for (i, call) in calls.iter().enumerate() {
                    content.push(json!({ "toolUse": { "toolUseId": self.tool_use_id(i),
                                                      "name": call.name, "input": call.input() } }));
                }
            }
        }
        Value::Array(content)
    }

    /// The content blocks as the stream sends them.
    fn blocks(&self) -> Vec<StreamBlock> {
        let mut blocks = Vec::new();
        if let Some(reasoning) = &self.output.reasoning {
            let mut deltas: Vec<Value> = reasoning
                .deltas()
                .map(|t| json!({ "reasoningContent": { "text": t } }))
                .collect();
            deltas.push(json!({ "reasoningContent": { "signature": signature(self.seq) } }));
            blocks.push(block(blocks.len(), None, deltas));
        }
        match &self.output.content {
            Content::Text(reply) => {
                let deltas = reply.deltas().map(|t| json!({ "text": t })).collect();
                blocks.push(block(blocks.len(), None, deltas));
            }
            Content::Calls(calls) => {
                for (i, call) in calls.iter().enumerate() {
                    let input = &call.arguments;
                    let (a, b) = input.split_at(input.floor_char_boundary(input.len() / 2));
                    let deltas = [a, b]
                        .iter()
                        .map(|part| json!({ "toolUse": { "input": part } }))
                        .collect();
                    let start = json!({ "toolUse": { "toolUseId": self.tool_use_id(i), "name": call.name } });
                    blocks.push(block(blocks.len(), Some(start), deltas));
                }
            }
        }
        blocks
    }

    fn stream<const STREAM: bool>(&self, admitted: &Admitted<Converse<STREAM>>) -> Response {
        let fault = admitted.behaviour.fault;
        let mut pieces = vec![frames::event(
            "messageStart",
            &json!({ "role": "assistant" }),
        )];
        let mut ending = Ending::Clean;
        if fault == Some(Fault::Malformed) {
            pieces.push(frames::corrupt(
                "contentBlockDelta",
                &json!({ "contentBlockIndex": 0, "delta": { "text": "malformed" } }),
            ));
        } else if let Some(cut) = block_events(self.blocks(), fault, &mut pieces) {
            ending = cut;
        } else {
            pieces.push(frames::event(
                "messageStop",
                &json!({ "stopReason": self.stop_reason() }),
            ));
            pieces.push(frames::event(
                "metadata",
                &json!({ "usage": self.usage(), "metrics": { "latencyMs": 0 } }),
            ));
        }
        let mut response = event_stream(admitted, pieces, ending);
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.amazon.eventstream"),
        );
        with_request_id(response)
    }
}

/// Block `index` of the stream: its `contentBlockStart` (only a tool call's has one), one
/// `contentBlockDelta` per delta, `contentBlockStop`.
fn block(index: usize, start: Option<Value>, deltas: Vec<Value>) -> StreamBlock {
    StreamBlock {
        opening: start
            .map(|start| {
                frames::event(
                    "contentBlockStart",
                    &json!({ "contentBlockIndex": index, "start": start }),
                )
            })
            .into_iter()
            .collect(),
        deltas: deltas
            .into_iter()
            .map(|delta| {
                frames::event(
                    "contentBlockDelta",
                    &json!({ "contentBlockIndex": index, "delta": delta }),
                )
            })
            .collect(),
        closing: frames::event("contentBlockStop", &json!({ "contentBlockIndex": index })),
    }
}

/// With the `x-amzn-requestid` every Bedrock answer carries.
pub(super) fn with_request_id(mut response: Response) -> Response {
    response.headers_mut().insert(
        "x-amzn-requestid",
        HeaderValue::from_static("00000000-0000-0000-0000-000000000000"),
    );
    response
}
