//! What a provider's answer says of itself, for the request span: the model that answered
//! (`gen_ai.response.model`) and why each choice stopped (`gen_ai.response.finish_reasons`).
//!
//! Read from what the pipeline holds before the client's dialect writes it (that may put the
//! client's alias where the model was): the internal (OpenAI) answer, complete or chunk by
//! chunk, or, for a pass-through, the provider's own Messages or Responses answer or SSE
//! frames. Only for a span that records; a body that says nothing of either leaves both unset.
//!
//! | answer | model | finish reasons |
//! |---|---|---|
//! | chat completion, chunk | `model` | `choices[].finish_reason` |
//! | embeddings | `model` | — |
//! | Messages, stream | `model`, `message_start.message.model` | `stop_reason`, `message_delta.delta.stop_reason` |
//! | Responses, stream | `model`, `response.model` | `incomplete_details.reason`, else `status` |
//!
//! The members are found by their keys, not by parsing the answer: a key with its quotes and
//! a colon after it cannot occur inside a JSON string (quotes there are escaped), so a search
//! finds only members, at a fraction of a parse's cost. The first `model` and the first
//! `status` of a body are the top-level ones in every shape above (they come before any
//! nested object that could hold the same key).

use memchr::memmem::Finder;
use std::sync::LazyLock;

static MODEL: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"model\""));
static FINISH: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"finish_reason\""));
static STOP: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"stop_reason\""));
static STATUS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"status\""));
static INCOMPLETE: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"incomplete_details\""));

/// The model that answered and the finish reasons, as far as seen.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Answered {
    pub model: Option<String>,
    pub finish_reasons: Vec<String>,
    /// A Responses answer's last status, kept until the end (it is the reason only if no
    /// `incomplete_details.reason` came).
    status: Option<String>,
}

impl Answered {
    /// Reads a complete answer.
    pub fn body(bytes: &[u8]) -> Self {
        let mut answered = Self::default();
        answered.read(bytes);
        answered.finished()
    }

    /// Reads one stream chunk: an internal chunk's JSON, or a pass-through's SSE frame(s).
    pub fn chunk(&mut self, bytes: &[u8]) {
        self.read(bytes);
    }

    /// What was read, once the answer is over.
    pub fn finished(mut self) -> Self {
        let status = self.status.take();
        if self.finish_reasons.is_empty() {
            self.finish_reasons.extend(status);
        }
        self
    }

    fn read(&mut self, json: &[u8]) {
        if self.model.is_none() {
            self.model = MODEL
                .find_iter(json)
                .find_map(|at| string_after(json, at + 7));
        }
        for (finder, len) in [(&*FINISH, 15), (&*STOP, 13)] {
            let reasons = finder
                .find_iter(json)
                .filter_map(|at| string_after(json, at + len));
            self.finish_reasons.extend(reasons);
        }
        if let Some(status) = STATUS
            .find_iter(json)
            .find_map(|at| string_after(json, at + 8))
        {
            self.status = Some(status);
        }
        for at in INCOMPLETE.find_iter(json) {
            let reason = member(json, at + 20)
                .and_then(|v| json[v..].strip_prefix(b"{").map(|_| v + 1))
                .map(|v| skip_space(json, v))
                .filter(|v| json[*v..].starts_with(b"\"reason\""))
                .and_then(|v| string_after(json, v + 8));
            self.finish_reasons.extend(reason);
        }
    }
}

/// The string value of the member whose key ends just before `at` (`None`: not a member, or
/// its value is not a string, e.g. `null`).
fn string_after(json: &[u8], at: usize) -> Option<String> {
    let start = member(json, at)?;
    let rest = json.get(start..)?.strip_prefix(b"\"")?;
    let mut escaped = false;
    let end = rest.iter().position(|b| {
        let quote = *b == b'"' && !escaped;
        escaped = *b == b'\\' && !escaped;
        quote
    })?;
    let raw = &rest[..end];
    if raw.contains(&b'\\') {
        serde_json::from_slice(&json[start..start + end + 2]).ok()
    } else {
        std::str::from_utf8(raw).ok().map(str::to_owned)
    }
}

/// Where the value starts after a key ending at `at` (`None` if no colon follows: the
/// quoted text was a value, not a key).
fn member(json: &[u8], at: usize) -> Option<usize> {
    let colon = skip_space(json, at);
    (json.get(colon) == Some(&b':')).then(|| skip_space(json, colon + 1))
}

fn skip_space(json: &[u8], mut at: usize) -> usize {
    while json.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(model: &str, reasons: &[&str]) -> Answered {
        Answered {
            model: Some(model.to_owned()),
            finish_reasons: reasons.iter().map(|r| (*r).to_owned()).collect(),
            status: None,
        }
    }

    #[test]
    fn complete_answers_of_every_shape() {
        let chat = br#"{"id":"c","model":"gpt-4.1-2025-04-14","choices":[{"index":0,"message":{"role":"assistant","content":"say \"model\": \"x\", \"finish_reason\":\"no\""},"finish_reason":"stop"},{"index":1,"finish_reason":"length"}],"usage":{"prompt_tokens":1}}"#;
        assert_eq!(
            Answered::body(chat),
            answered("gpt-4.1-2025-04-14", &["stop", "length"])
        );
        let spaced =
            b"{\n  \"model\" : \"m\",\n  \"choices\": [{\"finish_reason\" :\n \"stop\"}]\n}";
        assert_eq!(Answered::body(spaced), answered("m", &["stop"]));
        let embeddings = br#"{"object":"list","data":[{"embedding":[0.1]}],"model":"emb-3"}"#;
        assert_eq!(Answered::body(embeddings), answered("emb-3", &[]));
        let messages = br#"{"id":"msg","type":"message","model":"claude-x","content":[{"type":"tool_use","input":{"model":"not this"}}],"stop_reason":"end_turn","usage":{"input_tokens":3}}"#;
        assert_eq!(
            Answered::body(messages),
            answered("claude-x", &["end_turn"])
        );
        let responses = br#"{"id":"resp","object":"response","status":"completed","model":"gpt-5","output":[{"type":"message","status":"in_progress"}]}"#;
        assert_eq!(Answered::body(responses), answered("gpt-5", &["completed"]));
        let cut = br#"{"status":"incomplete","incomplete_details": { "reason":"max_output_tokens"},"model":"gpt-5"}"#;
        assert_eq!(
            Answered::body(cut),
            answered("gpt-5", &["max_output_tokens"])
        );
        let escaped = br#"{"model":"a\"b","type":"model"}"#;
        assert_eq!(Answered::body(escaped), answered("a\"b", &[]));
        assert_eq!(Answered::body(b"not json"), Answered::default());
    }

    #[test]
    fn streams_internal_and_passed_through() {
        let mut chat = Answered::default();
        for chunk in [
            r#"{"model":"m-1","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
            r#"{"model":"m-1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"model":"m-1","choices":[],"usage":{"prompt_tokens":2}}"#,
        ] {
            chat.chunk(chunk.as_bytes());
        }
        assert_eq!(chat.finished(), answered("m-1", &["tool_calls"]));

        let mut messages = Answered::default();
        for frame in [
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\",\"stop_reason\":null}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"}}\n\n",
        ] {
            messages.chunk(frame.as_bytes());
        }
        assert_eq!(messages.finished(), answered("claude-x", &["max_tokens"]));

        let mut responses = Answered::default();
        for frame in [
            "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"status\":\"in_progress\",\"model\":\"gpt-5\"}}\n\n",
            "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"item\":{\"status\":\"in_progress\"}}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\",\"model\":\"gpt-5\"}}\n\n",
        ] {
            responses.chunk(frame.as_bytes());
        }
        assert_eq!(responses.finished(), answered("gpt-5", &["completed"]));
    }
}
