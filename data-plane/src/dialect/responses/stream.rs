//! Internal OpenAI chunks → the Responses API's stream events, as SSE frames (`event:` +
//! `data:`), each `data` carrying its `type` and `sequence_number`.
//!
//! Sequence: `response.created` and `response.in_progress` before anything else; per output
//! item `response.output_item.added`, its content events, `response.output_item.done`:
//! - reasoning (`reasoning_content` deltas): `response.reasoning_summary_part.added`,
//!   `response.reasoning_summary_text.delta`/`.done`, `response.reasoning_summary_part.done`;
//! - text (`content` or `refusal` deltas): `response.content_part.added`,
//!   `response.output_text.delta`/`.done`, `response.content_part.done`;
//! - a tool call: `response.function_call_arguments.delta`/`.done`.
//!
//! An item is closed when output of another item starts, and every open item at the end.
//! The stream ends with `response.completed` (or `response.incomplete` after a `length` or
//! `content_filter` finish) carrying the whole response, usage included; a failure after the
//! start ends it with `response.failed`. The deltas are written as they arrive; only the
//! finished items' text is kept, because the closing events repeat it.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};

use super::response::{self, Ids};
use crate::dialect::frames::EventWriter;
use crate::providers::UpstreamError;

/// What an output item is.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Reasoning,
    Text,
    /// A tool call, by its chat `index`, with its call id and name.
    Call {
        index: u64,
        call_id: String,
        name: String,
    },
}

#[derive(Debug)]
struct Item {
    kind: Kind,
    /// Text, summary text or arguments so far.
    text: String,
    open: bool,
}

/// Translates one stream; feed it every chunk in order, then [`EventWriter::done`].
#[derive(Debug)]
pub struct Events {
    ids: Ids,
    model: String,
    created_at: u64,
    sequence: u64,
    started: bool,
    items: Vec<Item>,
    finish: Option<String>,
    usage: Option<Value>,
    /// The response `response.completed` (or `.incomplete`) carried.
    last: Option<Value>,
}

impl Events {
    /// `model` is the alias the client asked for.
    pub fn new(ids: Ids, model: String) -> Self {
        Self {
            ids,
            model,
            created_at: response::now(),
            sequence: 0,
            started: false,
            items: Vec::new(),
            finish: None,
            usage: None,
            last: None,
        }
    }

    /// A writer for a stream that is already under way in the client's wire (a deployment
    /// that speaks it natively): only [`EventWriter::error`] is used, without the opening events.
    pub fn resumed(ids: Ids, model: String) -> Self {
        Self {
            started: true,
            ..Self::new(ids, model)
        }
    }
}

impl EventWriter for Events {
    fn start(&mut self, out: &mut BytesMut) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let body = response::envelope(
            &self.ids,
            &self.model,
            self.created_at,
            "in_progress",
            Value::Null,
            Vec::new(),
            Value::Null,
        );
        self.event("response.created", json!({"response": body}), out);
        self.event("response.in_progress", json!({"response": body}), out);
    }

    fn usage(&mut self, usage: &Value) {
        self.usage = Some(response::usage(usage));
    }

    fn reasoning(&mut self, text: &str, out: &mut BytesMut) {
        self.append(Kind::Reasoning, text, out);
    }

    fn text(&mut self, text: &str, out: &mut BytesMut) {
        self.append(Kind::Text, text, out);
    }

    fn tool_call(&mut self, index: u64, call: &Value, out: &mut BytesMut) {
        let known = self
            .items
            .iter()
            .position(|i| matches!(&i.kind, Kind::Call { index: x, .. } if *x == index));
        let args = call["function"]["arguments"].as_str().unwrap_or_default();
        match known {
            Some(at) => self.delta(at, args, out),
            None => {
                let kind = Kind::Call {
                    index,
                    call_id: call["id"].as_str().unwrap_or_default().to_owned(),
                    name: call["function"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                };
                self.append(kind, args, out);
            }
        }
    }

    fn finish(&mut self, reason: &str, _: &mut BytesMut) {
        self.finish = Some(reason.to_owned());
    }

    /// Every open item closed, then `response.completed` (or `response.incomplete`) with the
    /// whole response.
    fn done(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        self.start(&mut out);
        for at in 0..self.items.len() {
            self.close(at, &mut out);
        }
        let (status, incomplete) = response::status(self.finish.as_deref());
        let usage = self
            .usage
            .take()
            .unwrap_or_else(|| response::usage(&json!({})));
        let body = self.envelope(status, incomplete, usage);
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.event(kind, json!({"response": body}), &mut out);
        self.last = Some(body);
        out.freeze()
    }

    /// `response.failed`: the stream broke off after it started.
    fn error(&mut self, code: &str, message: &str) -> Bytes {
        let mut out = BytesMut::new();
        self.start(&mut out);
        let mut body = self.envelope("failed", Value::Null, Value::Null);
        body["error"] = json!({"code": code, "message": message});
        self.event("response.failed", json!({"response": body}), &mut out);
        out.freeze()
    }

    fn code(e: &UpstreamError) -> &'static str {
        e.code()
    }

    /// After [`EventWriter::done`]: the finished response object, as a non-streamed answer's
    /// body.
    fn finished(&mut self) -> Option<Bytes> {
        let body = self.last.take()?;
        serde_json::to_vec(&body).ok().map(Bytes::from)
    }
}

impl Events {
    fn envelope(&self, status: &str, incomplete: Value, usage: Value) -> Value {
        let output = (0..self.items.len()).map(|at| self.item(at)).collect();
        response::envelope(
            &self.ids,
            &self.model,
            self.created_at,
            status,
            incomplete,
            output,
            usage,
        )
    }

    /// Output for an item of `kind`: to the last item if it is that open item, else to a new
    /// one (closing the last).
    fn append(&mut self, kind: Kind, text: &str, out: &mut BytesMut) {
        let last = self.items.len().checked_sub(1);
        match last {
            Some(at) if self.items[at].open && self.items[at].kind == kind => {
                self.delta(at, text, out)
            }
            _ => {
                if let Some(at) = last {
                    self.close(at, out);
                }
                self.open(kind, out);
                self.delta(self.items.len() - 1, text, out);
            }
        }
    }

    fn open(&mut self, kind: Kind, out: &mut BytesMut) {
        let at = self.items.len();
        let item = match &kind {
            Kind::Reasoning => {
                json!({"id": self.ids.reasoning(at), "type": "reasoning", "summary": []})
            }
            Kind::Text => {
                json!({"id": self.ids.message(at), "type": "message", "status": "in_progress", "role": "assistant", "content": []})
            }
            Kind::Call {
                index,
                call_id,
                name,
            } => {
                json!({"id": self.ids.call(*index), "type": "function_call", "status": "in_progress", "call_id": call_id, "name": name, "arguments": ""})
            }
        };
        self.items.push(Item {
            kind,
            text: String::new(),
            open: true,
        });
        self.event(
            "response.output_item.added",
            json!({"output_index": at, "item": item}),
            out,
        );
        let id = self.item_id(at);
        match self.items[at].kind {
            Kind::Reasoning => self.event(
                "response.reasoning_summary_part.added",
                json!({"item_id": id, "output_index": at, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
                out,
            ),
            Kind::Text => self.event(
                "response.content_part.added",
                json!({"item_id": id, "output_index": at, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
                out,
            ),
            Kind::Call { .. } => {}
        }
    }

    fn delta(&mut self, at: usize, text: &str, out: &mut BytesMut) {
        if text.is_empty() {
            return;
        }
        self.items[at].text.push_str(text);
        let id = self.item_id(at);
        let (kind, data) = match self.items[at].kind {
            Kind::Reasoning => (
                "response.reasoning_summary_text.delta",
                json!({"item_id": id, "output_index": at, "summary_index": 0, "delta": text}),
            ),
            Kind::Text => (
                "response.output_text.delta",
                json!({"item_id": id, "output_index": at, "content_index": 0, "delta": text, "logprobs": []}),
            ),
            Kind::Call { .. } => (
                "response.function_call_arguments.delta",
                json!({"item_id": id, "output_index": at, "delta": text}),
            ),
        };
        self.event(kind, data, out);
    }

    fn close(&mut self, at: usize, out: &mut BytesMut) {
        if !std::mem::replace(&mut self.items[at].open, false) {
            return;
        }
        let id = self.item_id(at);
        let text = self.items[at].text.clone();
        match self.items[at].kind {
            Kind::Reasoning => {
                self.event(
                    "response.reasoning_summary_text.done",
                    json!({"item_id": id, "output_index": at, "summary_index": 0, "text": text}),
                    out,
                );
                self.event(
                    "response.reasoning_summary_part.done",
                    json!({"item_id": id, "output_index": at, "summary_index": 0, "part": {"type": "summary_text", "text": text}}),
                    out,
                );
            }
            Kind::Text => {
                self.event(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": at, "content_index": 0, "text": text, "logprobs": []}),
                    out,
                );
                self.event(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": at, "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": []}}),
                    out,
                );
            }
            Kind::Call { ref name, .. } => {
                let name = name.clone();
                self.event(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": at, "name": name, "arguments": text}),
                    out,
                );
            }
        }
        let item = self.item(at);
        self.event(
            "response.output_item.done",
            json!({"output_index": at, "item": item}),
            out,
        );
    }

    /// Item `at` as it stands finished.
    fn item(&self, at: usize) -> Value {
        let item = &self.items[at];
        match &item.kind {
            Kind::Reasoning => response::reasoning_item(&self.ids, at, &item.text),
            Kind::Text => response::message_item(&self.ids, at, &item.text, "completed"),
            Kind::Call {
                index,
                call_id,
                name,
            } => response::call_item(&self.ids, *index, call_id, name, &item.text),
        }
    }

    fn item_id(&self, at: usize) -> String {
        match &self.items[at].kind {
            Kind::Reasoning => self.ids.reasoning(at),
            Kind::Text => self.ids.message(at),
            Kind::Call { index, .. } => self.ids.call(*index),
        }
    }

    /// One SSE frame: `event: kind`, `data:` the object with its `type` and sequence number.
    fn event(&mut self, kind: &str, mut data: Value, out: &mut BytesMut) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.put_slice(b"event: ");
        out.put_slice(kind.as_bytes());
        out.put_slice(b"\ndata: ");
        out.put_slice(data.to_string().as_bytes());
        out.put_slice(b"\n\n");
    }
}
