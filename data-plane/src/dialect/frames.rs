//! What the translating dialects' stream writers share: one reader of the internal (OpenAI)
//! chunk that hands each piece it carries, in order, to the dialect's [`EventWriter`], and the
//! two [`Frames`] every such dialect serves: [`Translated`] (internal chunks written as the
//! dialect's events) and [`Native`] (a deployment that speaks the client's wire: its events
//! relayed as they came, only a failure written by the dialect).

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use super::Frames;
use crate::providers::{Chunk, UpstreamError};

/// One dialect's stream events, written from the pieces of the internal chunks.
pub trait EventWriter: std::fmt::Debug + Send + 'static {
    /// The opening events, before anything else (once: later calls write nothing).
    fn start(&mut self, out: &mut BytesMut);
    /// A chunk's usage object (OpenAI's shape), kept for the end of the stream.
    fn usage(&mut self, usage: &Value);
    /// A piece of the model's reasoning (never empty).
    fn reasoning(&mut self, text: &str, out: &mut BytesMut);
    /// A piece of the answer's text, or of a refusal (never empty).
    fn text(&mut self, text: &str, out: &mut BytesMut);
    /// A piece of the tool call at `index` (the chat `tool_calls` entry: its id and name in
    /// the first piece, then arguments).
    fn tool_call(&mut self, index: u64, call: &Value, out: &mut BytesMut);
    /// The choice's `finish_reason`.
    fn finish(&mut self, reason: &str, out: &mut BytesMut);
    /// The events after the last chunk.
    fn done(&mut self) -> Bytes;
    /// The events that end a stream which failed after it started; `code` in the dialect's
    /// terms ([`Self::code`]).
    fn error(&mut self, code: &str, message: &str) -> Bytes;
    /// The dialect's code for an upstream failure.
    fn code(e: &UpstreamError) -> &'static str;
    /// After [`Self::done`]: the whole answer as a non-streamed body, for a dialect whose
    /// answers are stored.
    fn finished(&mut self) -> Option<Bytes> {
        None
    }

    /// The events for one internal chunk (the JSON after `data: `); empty when it carries
    /// nothing for the client. A chunk that does not parse is skipped.
    fn chunk(&mut self, data: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else {
            return out.freeze();
        };
        self.start(&mut out);
        if chunk["usage"].is_object() {
            self.usage(&chunk["usage"]);
        }
        let choice = &chunk["choices"][0];
        let delta = &choice["delta"];
        if let Some(t) = nonempty(&delta["reasoning_content"]) {
            self.reasoning(t, &mut out);
        }
        for text in [&delta["content"], &delta["refusal"]] {
            if let Some(t) = nonempty(text) {
                self.text(t, &mut out);
            }
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            self.tool_call(call["index"].as_u64().unwrap_or(0), call, &mut out);
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish(reason, &mut out);
        }
        out.freeze()
    }
}

fn nonempty(v: &Value) -> Option<&str> {
    v.as_str().filter(|t| !t.is_empty())
}

/// Internal chunks → the dialect's events.
#[derive(Debug)]
pub struct Translated<W>(pub W);

impl<W: EventWriter> Frames for Translated<W> {
    fn chunk(&mut self, chunk: &Chunk) -> Option<Bytes> {
        Some(self.0.chunk(&chunk.data)).filter(|b| !b.is_empty())
    }

    fn done(&mut self) -> Bytes {
        self.0.done()
    }

    fn error(&mut self, e: &UpstreamError) -> Bytes {
        self.0.error(W::code(e), &e.to_string())
    }

    fn finished(&mut self) -> Option<Bytes> {
        self.0.finished()
    }
}

/// The events a deployment speaking the client's wire sent, each chunk already a whole SSE
/// frame; only a failure after the start is written, by the dialect's writer (which must not
/// write its opening events again).
#[derive(Debug)]
pub struct Native<W>(pub W);

impl<W: EventWriter> Frames for Native<W> {
    fn chunk(&mut self, chunk: &Chunk) -> Option<Bytes> {
        Some(chunk.data.clone())
    }

    fn done(&mut self) -> Bytes {
        Bytes::new()
    }

    fn error(&mut self, e: &UpstreamError) -> Bytes {
        self.0.error(W::code(e), &e.to_string())
    }
}
