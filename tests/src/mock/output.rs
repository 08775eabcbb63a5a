//! What one generation request is answered with, whatever wire it came in: the scripted
//! reasoning first (if any), then either tool calls or the reply text, and the completion
//! tokens each part costs. Every wire builds its blocks, parts or items from one [`Output`], so
//! all of them answer a behaviour with the same content, in the same order, and bill it the
//! same way.
//!
//! Tokens, by the mock's word rule: the reasoning costs its words and is never cut; the reply
//! costs its words after the request's output limit; a call costs what its wire's rule says
//! ([`ToolCall::tokens`] for a scripted one). [`Output::completion_tokens`] is what a reply
//! bills; each wire reports the reasoning its own way inside or beside its output count.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::script::{Behaviour, ToolCall};
use super::tokens::{Reply, DEFAULT_REPLY};

/// One tool call of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call<'a> {
    pub name: &'a str,
    /// The arguments as JSON text (a JSON object).
    pub arguments: String,
    /// Completion tokens the call costs.
    pub tokens: u64,
}

impl<'a> Call<'a> {
    /// A scripted call: its name and arguments, one token plus the words of the arguments.
    pub(crate) fn scripted(call: &'a ToolCall) -> Self {
        Self {
            name: &call.name,
            arguments: call.arguments_json(),
            tokens: call.tokens(),
        }
    }

    /// The arguments as a JSON object (the `input` / `args` the non-OpenAI wires carry).
    pub(crate) fn input(&self) -> Value {
        serde_json::from_str(&self.arguments).unwrap_or_else(|_| Value::Object(Map::new()))
    }
}

/// What follows the reasoning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content<'a> {
    /// The reply text, cut at the request's limit.
    Text(Reply<'a>),
    /// One or several calls, in order (parallel tool calls).
    Calls(Vec<Call<'a>>),
}

/// The whole answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Output<'a> {
    /// The scripted reasoning's words (`None` when none is scripted).
    pub reasoning: Option<Reply<'a>>,
    pub content: Content<'a>,
}

impl<'a> Output<'a> {
    /// The answer to a request with `behaviour`: `calls` when there are some, else the reply
    /// text cut at `limit` words.
    pub(crate) fn new(
        behaviour: &'a Behaviour,
        calls: Option<Vec<Call<'a>>>,
        limit: Option<u64>,
    ) -> Self {
        let reasoning = behaviour
            .reasoning
            .as_deref()
            .map(|text| Reply::new(text, None))
            .filter(|r| !r.words.is_empty());
        let content = match calls {
            Some(calls) if !calls.is_empty() => Content::Calls(calls),
            _ => {
                let text = behaviour.reply.as_deref().unwrap_or(DEFAULT_REPLY);
                Content::Text(Reply::new(text, limit))
            }
        };
        Self { reasoning, content }
    }

    /// Scripted calls (where they apply) as the answer's calls.
    pub(crate) fn scripted(calls: Option<&'a [ToolCall]>) -> Option<Vec<Call<'a>>> {
        calls.map(|calls| calls.iter().map(Call::scripted).collect())
    }

    /// The reasoning text (words joined by single spaces).
    pub(crate) fn reasoning_text(&self) -> Option<String> {
        self.reasoning.as_ref().map(Reply::text)
    }

    /// Completion tokens of the reasoning.
    pub(crate) fn reasoning_tokens(&self) -> u64 {
        self.reasoning.as_ref().map_or(0, Reply::completion_tokens)
    }

    /// Completion tokens of what follows the reasoning.
    pub(crate) fn content_tokens(&self) -> u64 {
        match &self.content {
            Content::Text(reply) => reply.completion_tokens(),
            Content::Calls(calls) => calls.iter().map(|c| c.tokens).sum(),
        }
    }

    /// Every completion token: what the answer bills.
    pub(crate) fn completion_tokens(&self) -> u64 {
        self.reasoning_tokens() + self.content_tokens()
    }

    /// The calls (none for a text answer).
    pub(crate) fn calls(&self) -> &[Call<'a>] {
        match &self.content {
            Content::Calls(calls) => calls,
            Content::Text(_) => &[],
        }
    }

    /// The reply text was cut at the limit.
    pub(crate) fn cut(&self) -> bool {
        matches!(&self.content, Content::Text(r) if r.finish_reason == "length")
    }
}

/// The id of call `i` of answer `seq` in a wire whose ids are `{prefix}{seq}` (Anthropic's
/// `toolu_mock`, Bedrock's `tooluse_mock`): the first call has the bare id, later ones `_{i}`.
pub(crate) fn call_id(prefix: &str, seq: u64, i: usize) -> String {
    if i == 0 {
        format!("{prefix}{seq:08x}")
    } else {
        format!("{prefix}{seq:08x}_{i}")
    }
}

/// The signature on answer `seq`'s reasoning (Anthropic's `thinking` block, Bedrock's
/// `reasoningText`): opaque base64, as the providers' are; clients send it back unread.
pub(crate) fn signature(seq: u64) -> String {
    STANDARD.encode(format!("switchyard mock reasoning signature {seq:08x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behaviour(json: serde_json::Value) -> Behaviour {
        serde_json::from_value(json).unwrap_or_default()
    }

    #[test]
    fn reasoning_comes_first_and_every_part_is_billed() {
        let b = behaviour(serde_json::json!({
            "reasoning": " Two  calls at once. ",
            "tool_calls": [{"name": "a", "arguments": {"x": "one two"}}, {"name": "b"}],
        }));
        let calls = Output::scripted(b.tool_calls.as_deref());
        let out = Output::new(&b, calls, Some(1));
        assert_eq!(out.reasoning_text().as_deref(), Some("Two calls at once."));
        // a: 1 + words of {"x":"one two"} (2); b: 1 + words of {} (1).
        assert_eq!((out.reasoning_tokens(), out.content_tokens()), (4, 3 + 2));
        assert_eq!(out.completion_tokens(), 9);
        assert_eq!(out.calls()[1].input(), serde_json::json!({}));
        assert!(!out.cut());

        let text = Output::new(&b, None, Some(2));
        assert_eq!(text.completion_tokens(), 4 + 2);
        assert!(text.cut());
        let unscripted = Behaviour::default();
        let plain = Output::new(&unscripted, Some(Vec::new()), None);
        assert_eq!(
            (plain.reasoning_tokens(), plain.completion_tokens()),
            (0, 5)
        );
    }

    #[test]
    fn ids_keep_the_first_call_bare() {
        assert_eq!(call_id("toolu_mock", 3, 0), "toolu_mock00000003");
        assert_eq!(call_id("toolu_mock", 3, 2), "toolu_mock00000003_2");
        assert_ne!(signature(1), signature(2));
    }
}
