//! The Messages answer the mock sends: the `message` object, and its stream.
//!
//! Content blocks come from one [`Output`]: a `thinking` block (with its `signature`), then a
//! `text` block or one `tool_use` block per call, indexed in that order.
//!
//! Streams send the full event sequence, each event its own write: `message_start`, then per
//! block `content_block_start` (a `ping` after the first), its `content_block_delta`s and
//! `content_block_stop`, then `message_delta` (stop reason, usage) and `message_stop`. The
//! deltas: a `thinking_delta` per reasoning word then one `signature_delta`; a `text_delta`
//! per reply word; two `input_json_delta` halves of each call's input. A scripted cut
//! (`truncate_stream`, `reset_mid_stream`) comes after the first two deltas.

use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::MessagesRequest;
use crate::mock::admit::{Admitted, ApiRequest as _};
use crate::mock::cache::CacheTokens;
use crate::mock::output::{call_id, signature, Content, Output};
use crate::mock::script::Fault;
use crate::mock::stream::{block_events, sse_stream, Ending, StreamBlock};

/// What the mock answers one admitted request with.
pub(super) struct Answer<'a> {
    id: String,
    seq: u64,
    model: &'a str,
    /// The whole prompt (cache parts included).
    pub input_tokens: u64,
    cache: CacheTokens,
    pub output: Output<'a>,
}

impl<'a> Answer<'a> {
    pub(super) fn new(admitted: &'a Admitted<MessagesRequest>) -> Self {
        let request = &admitted.request;
        let calls = Output::scripted(admitted.tool_calls())
            .or_else(|| request.forced_call().map(|call| vec![call]));
        Self {
            id: format!("msg_mock{:08x}", admitted.seq),
            seq: admitted.seq,
            model: &admitted.model,
            input_tokens: request.prompt_tokens(),
            cache: CacheTokens::of(&admitted.behaviour, request.prompt_tokens()),
            output: Output::new(&admitted.behaviour, calls, request.max_tokens),
        }
    }

    fn stop_reason(&self) -> &'static str {
        match &self.output.content {
            Content::Calls(_) => "tool_use",
            Content::Text(_) if self.output.cut() => "max_tokens",
            Content::Text(_) => "end_turn",
        }
    }

    /// The content blocks as the stream sends them.
    fn blocks(&self) -> Vec<StreamBlock> {
        let mut blocks = Vec::new();
        if let Some(reasoning) = &self.output.reasoning {
            let mut deltas: Vec<Value> = reasoning
                .deltas()
                .map(|t| json!({ "type": "thinking_delta", "thinking": t }))
                .collect();
            deltas.push(json!({ "type": "signature_delta", "signature": signature(self.seq) }));
            let start = json!({ "type": "thinking", "thinking": "" });
            blocks.push(block(blocks.len(), start, deltas));
        }
        match &self.output.content {
            Content::Text(reply) => {
                let deltas = reply
                    .deltas()
                    .map(|t| json!({ "type": "text_delta", "text": t }))
                    .collect();
                let start = json!({ "type": "text", "text": "" });
                blocks.push(block(blocks.len(), start, deltas));
            }
            Content::Calls(calls) => {
                for (i, call) in calls.iter().enumerate() {
                    let input = &call.arguments;
                    let (a, b) = input.split_at(input.floor_char_boundary(input.len() / 2));
                    let deltas = [a, b]
                        .iter()
                        .map(|p| json!({ "type": "input_json_delta", "partial_json": p }))
                        .collect();
                    let start = json!({ "type": "tool_use", "id": call_id("toolu_mock", self.seq, i),
                                        "name": call.name, "input": {} });
                    blocks.push(block(blocks.len(), start, deltas));
                }
            }
        }
        if let Some(first) = blocks.first_mut() {
            // As Anthropic's own streams do early on; clients skip it.
            first
                .opening
                .push(event("ping", &json!({ "type": "ping" })));
        }
        blocks
    }

    /// The finished content blocks.
    fn content(&self) -> Value {
        let mut content = Vec::new();
        if let Some(thinking) = self.output.reasoning_text() {
            content.push(
                json!({ "type": "thinking", "thinking": thinking, "signature": signature(self.seq) }),
            );
        }
        match &self.output.content {
            Content::Text(reply) => content.push(json!({ "type": "text", "text": reply.text() })),
            Content::Calls(calls) => {
                for (i, call) in calls.iter().enumerate() {
                    content.push(
                        json!({ "type": "tool_use", "id": call_id("toolu_mock", self.seq, i),
                                         "name": call.name, "input": call.input() }),
                    );
                }
            }
        }
        Value::Array(content)
    }

    /// The non-stream `message` object.
    pub(super) fn message(&self) -> Value {
        self.envelope(
            self.content(),
            json!(self.stop_reason()),
            self.output.completion_tokens(),
        )
    }

    /// The message object; in `message_start` it has no content yet and a null stop reason.
    fn envelope(&self, content: Value, stop_reason: Value, output_tokens: u64) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": self.cache.anthropic_usage(self.input_tokens, output_tokens),
        })
    }

    /// The SSE reply.
    pub(super) fn stream(&self, admitted: &Admitted<MessagesRequest>) -> Response {
        let fault = admitted.behaviour.fault;
        let start = self.envelope(json!([]), Value::Null, 1);
        let mut pieces = vec![event(
            "message_start",
            &json!({ "type": "message_start", "message": start }),
        )];
        if fault == Some(Fault::Malformed) {
            pieces.push(Bytes::from_static(
                b"event: content_block_start\ndata: {\"type\": <malformed>\n\n",
            ));
            return sse_stream(admitted, pieces, Ending::Clean);
        }
        if let Some(ending) = block_events(self.blocks(), fault, &mut pieces) {
            return sse_stream(admitted, pieces, ending);
        }
        pieces.push(event(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": { "stop_reason": self.stop_reason(), "stop_sequence": null },
                "usage": { "output_tokens": self.output.completion_tokens() },
            }),
        ));
        pieces.push(event("message_stop", &json!({ "type": "message_stop" })));
        sse_stream(admitted, pieces, Ending::Clean)
    }
}

/// Block `index` of the stream: `content_block_start` announcing `start`, one
/// `content_block_delta` per delta, `content_block_stop`.
fn block(index: usize, start: Value, deltas: Vec<Value>) -> StreamBlock {
    StreamBlock {
        opening: vec![event(
            "content_block_start",
            &json!({ "type": "content_block_start", "index": index, "content_block": start }),
        )],
        deltas: deltas
            .into_iter()
            .map(|delta| {
                event(
                    "content_block_delta",
                    &json!({ "type": "content_block_delta", "index": index, "delta": delta }),
                )
            })
            .collect(),
        closing: event(
            "content_block_stop",
            &json!({ "type": "content_block_stop", "index": index }),
        ),
    }
}

fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}
