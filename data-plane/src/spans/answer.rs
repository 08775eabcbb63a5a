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

use std::borrow::Cow;

use serde::Deserialize;

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
        if bytes.first() == Some(&b'{') {
            self.read(bytes);
            return;
        }
        for line in bytes.split(|b| *b == b'\n') {
            if let Some(data) = line.strip_prefix(b"data:") {
                self.read(data.trim_ascii_start());
            }
        }
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
        if let Ok(probe) = serde_json::from_slice::<Probe<'_>>(json) {
            self.take(probe);
        }
    }

    fn take(&mut self, probe: Probe<'_>) {
        if let Some(model) = probe.model {
            if self.model.as_deref() != Some(&*model) {
                self.model = Some(model.into_owned());
            }
        }
        let reasons = probe.choices.into_iter().filter_map(|c| c.finish_reason);
        let reasons = reasons
            .chain(probe.stop_reason)
            .chain(probe.delta.and_then(|d| d.stop_reason))
            .chain(probe.incomplete_details.and_then(|d| d.reason));
        self.finish_reasons.extend(reasons.map(Cow::into_owned));
        if let Some(status) = probe.status {
            self.status = Some(status.into_owned());
        }
        for nested in [probe.message, probe.response].into_iter().flatten() {
            self.take(*nested);
        }
    }
}

/// The few members read, from any of the answer shapes in the module's table.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Probe<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    choices: Vec<Choice<'a>>,
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    delta: Option<Reason<'a>>,
    #[serde(borrow)]
    incomplete_details: Option<Reason<'a>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Box<Probe<'a>>>,
    #[serde(borrow)]
    response: Option<Box<Probe<'a>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Choice<'a> {
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Reason<'a> {
    #[serde(borrow)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
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
        let chat = br#"{"id":"c","model":"gpt-4.1-2025-04-14","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"},{"index":1,"finish_reason":"length"}],"usage":{"prompt_tokens":1}}"#;
        assert_eq!(
            Answered::body(chat),
            answered("gpt-4.1-2025-04-14", &["stop", "length"])
        );
        let embeddings = br#"{"object":"list","data":[{"embedding":[0.1]}],"model":"emb-3"}"#;
        assert_eq!(Answered::body(embeddings), answered("emb-3", &[]));
        let messages = br#"{"id":"msg","type":"message","model":"claude-x","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3}}"#;
        assert_eq!(
            Answered::body(messages),
            answered("claude-x", &["end_turn"])
        );
        let responses = br#"{"id":"resp","object":"response","model":"gpt-5","status":"completed","output":[]}"#;
        assert_eq!(Answered::body(responses), answered("gpt-5", &["completed"]));
        let cut = br#"{"model":"gpt-5","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"}}"#;
        assert_eq!(
            Answered::body(cut),
            answered("gpt-5", &["max_output_tokens"])
        );
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
            "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"model\":\"gpt-5\",\"status\":\"in_progress\"}}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-5\",\"status\":\"completed\"}}\n\n",
        ] {
            responses.chunk(frame.as_bytes());
        }
        assert_eq!(responses.finished(), answered("gpt-5", &["completed"]));
    }
}
