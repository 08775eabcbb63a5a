//! Internal OpenAI chunks → Anthropic's stream events, as SSE frames (`event:` + `data:`).
//!
//! Sequence: `message_start` (before the first content; the provider's count is not known yet,
//! so `input_tokens` is the gateway's estimate, as clients such as Claude Code read context
//! use from it; output zero), `ping`, per
//! content block `content_block_start` / `content_block_delta` (`text_delta`, or
//! `input_json_delta` with the tool call's argument pieces, or `thinking_delta` with the
//! provider's reasoning, `reasoning_content`, in a `thinking` block without a signature) / `content_block_stop`, then at the
//! end `message_delta` (stop reason, usage from the final usage chunk) and `message_stop`.
//! Anthropic allows one open block at a time, so a new tool call (or text after a tool call)
//! closes the open block first. A failure after the start ends with an `error` event.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};

use super::{error, response, stop_reason};
use crate::dialect::frames::EventWriter;
use crate::providers::UpstreamError;

/// The block currently open.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    Thinking,
    Text,
    /// A tool call, by its OpenAI `index`.
    Tool(u64),
}

/// Translates one stream; feed it every chunk in order, then [`EventWriter::done`].
#[derive(Debug)]
pub struct Events {
    id: String,
    model: String,
    /// The prompt estimate `message_start` reports.
    input_tokens: u64,
    started: bool,
    open: Option<Open>,
    /// Index of the next block (the open one is `next - 1`).
    next: u64,
    stop: Option<&'static str>,
    usage: Option<Value>,
}

impl Events {
    /// `id` is the message id, `model` the alias the client asked for, `input_tokens` the
    /// gateway's estimate of the prompt.
    pub fn new(id: String, model: String, input_tokens: u64) -> Self {
        Self {
            id,
            model,
            input_tokens,
            started: false,
            open: None,
            next: 0,
            stop: None,
            usage: None,
        }
    }
}

impl EventWriter for Events {
    fn start(&mut self, out: &mut BytesMut) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let message = json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        });
        frame(
            out,
            "message_start",
            &json!({"type": "message_start", "message": message}),
        );
        // As Anthropic's own streams do early on; clients skip it.
        frame(out, "ping", &json!({"type": "ping"}));
    }

    fn usage(&mut self, usage: &Value) {
        self.usage = Some(response::usage(usage));
    }

    fn reasoning(&mut self, text: &str, out: &mut BytesMut) {
        let block = json!({"type": "thinking", "thinking": "", "signature": ""});
        self.open_block(Open::Thinking, block, out);
        self.delta(json!({"type": "thinking_delta", "thinking": text}), out);
    }

    fn text(&mut self, text: &str, out: &mut BytesMut) {
        self.open_block(Open::Text, json!({"type": "text", "text": ""}), out);
        self.delta(json!({"type": "text_delta", "text": text}), out);
    }

    fn tool_call(&mut self, index: u64, call: &Value, out: &mut BytesMut) {
        let block = json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": {}});
        self.open_block(Open::Tool(index), block, out);
        if let Some(args) = call["function"]["arguments"]
            .as_str()
            .filter(|a| !a.is_empty())
        {
            let d = json!({"type": "input_json_delta", "partial_json": args});
            self.delta(d, out);
        }
    }

    fn finish(&mut self, reason: &str, out: &mut BytesMut) {
        self.stop = Some(stop_reason(reason));
        self.close(out);
    }

    /// Closes the open block, then `message_delta` and `message_stop`.
    fn done(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        self.start(&mut out);
        self.close(&mut out);
        let usage = self
            .usage
            .take()
            .unwrap_or_else(|| json!({"output_tokens": 0}));
        let stop = self.stop.unwrap_or("end_turn");
        frame(
            &mut out,
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": usage}),
        );
        frame(&mut out, "message_stop", &json!({"type": "message_stop"}));
        out.freeze()
    }

    /// An `error` event (`kind` is Anthropic's error type); the same whether or not the
    /// stream was translated.
    fn error(&mut self, kind: &str, message: &str) -> Bytes {
        let mut out = BytesMut::new();
        frame(
            &mut out,
            "error",
            &json!({"type": "error", "error": {"type": kind, "message": message}}),
        );
        out.freeze()
    }

    fn code(e: &UpstreamError) -> &'static str {
        error::error_type(e.status())
    }
}

impl Events {
    /// Opens `kind` unless it is the open block (closing any other first).
    fn open_block(&mut self, kind: Open, block: Value, out: &mut BytesMut) {
        if self.open == Some(kind) {
            return;
        }
        self.close(out);
        let index = self.next;
        self.next += 1;
        self.open = Some(kind);
        frame(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
    }

    fn delta(&self, delta: Value, out: &mut BytesMut) {
        let index = self.next.saturating_sub(1);
        frame(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
    }

    fn close(&mut self, out: &mut BytesMut) {
        if self.open.take().is_some() {
            let index = self.next.saturating_sub(1);
            frame(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }
}

fn frame(out: &mut BytesMut, event: &str, data: &Value) {
    out.put_slice(b"event: ");
    out.put_slice(event.as_bytes());
    out.put_slice(b"\ndata: ");
    out.put_slice(data.to_string().as_bytes());
    out.put_slice(b"\n\n");
}
