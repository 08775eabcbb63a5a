//! Token estimates, used only where the provider's own count is not available.
//!
//! - Before the call (admission's reservation): the prompt is estimated from the request body
//!   size as `bytes / 3 + 16`. English text averages about four bytes per token and the JSON
//!   around it (keys, quotes, roles) only adds bytes, so this overestimates on purpose: a
//!   reservation that is too large is settled back, one that is too small lets a hard budget
//!   be overspent. It costs nothing (no tokenizer, no parse).
//! - After a stream that ended without a usage report (broken or cut off): the completion is
//!   estimated from the text that was streamed (delta `content`, `refusal`,
//!   `reasoning_content` and tool-call `arguments`) as the larger of its whitespace-separated
//!   word count and its character count / 4, rounded up. Words undercount code and
//!   punctuation-heavy text, chars / 4 undercounts short words; the larger of the two is
//!   rarely below the real count. The prompt is then the pre-call estimate above.

use std::borrow::Cow;

use serde::Deserialize;

/// Tokens added to every prompt estimate (message framing, short bodies).
const PROMPT_BASE: u64 = 16;

/// A deliberately generous prompt estimate from the request body size.
pub fn prompt_tokens(body_bytes: usize) -> u64 {
    body_bytes as u64 / 3 + PROMPT_BASE
}

/// Streamed completion text, counted as it passes (the text itself is not kept).
#[derive(Debug, Default, Clone)]
pub struct StreamedText {
    words: u64,
    chars: u64,
    /// The last character counted was part of a word (words may span chunks).
    in_word: bool,
}

impl StreamedText {
    /// Counts one piece of text.
    pub fn push(&mut self, text: &str) {
        for c in text.chars() {
            self.chars += 1;
            if c.is_whitespace() {
                self.in_word = false;
            } else if !self.in_word {
                self.in_word = true;
                self.words += 1;
            }
        }
    }

    /// Counts the generated text of one OpenAI chat chunk (the JSON after `data: `). A chunk
    /// that does not parse counts nothing.
    pub fn push_chunk(&mut self, chunk: &[u8]) {
        let Ok(probe) = serde_json::from_slice::<ChunkText<'_>>(chunk) else {
            return;
        };
        for choice in probe.choices.unwrap_or_default() {
            let Some(delta) = choice.delta else { continue };
            for text in [delta.content, delta.refusal, delta.reasoning_content]
                .into_iter()
                .flatten()
            {
                self.push(&text);
            }
            for call in delta.tool_calls.unwrap_or_default() {
                if let Some(args) = call.function.and_then(|f| f.arguments) {
                    self.push(&args);
                }
            }
        }
    }

    /// Whitespace-separated words seen.
    pub fn words(&self) -> u64 {
        self.words
    }

    /// The completion-token estimate: max(words, ceil(chars / 4)).
    pub fn tokens(&self) -> u64 {
        self.words.max(self.chars.div_ceil(4))
    }
}

#[derive(Deserialize)]
struct ChunkText<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceText<'a>>>,
}

#[derive(Deserialize)]
struct ChoiceText<'a> {
    #[serde(borrow, default)]
    delta: Option<DeltaText<'a>>,
}

#[derive(Deserialize)]
struct DeltaText<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallText<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallText<'a> {
    #[serde(borrow, default)]
    function: Option<FunctionText<'a>>,
}

#[derive(Deserialize)]
struct FunctionText<'a> {
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_estimate_is_generous() {
        // "say hello to me" in a minimal chat body: 4 real tokens.
        let body = br#"{"model":"chat","messages":[{"role":"user","content":"say hello to me"}]}"#;
        let estimate = prompt_tokens(body.len());
        assert_eq!(estimate, body.len() as u64 / 3 + 16);
        assert!(estimate >= 4 * 4);
        assert_eq!(prompt_tokens(0), 16);
    }

    #[test]
    fn words_span_chunks_and_chars_bound_from_below() {
        let mut t = StreamedText::default();
        for piece in ["Hel", "lo", " from", " the", "  mock\n"] {
            t.push(piece);
        }
        assert_eq!(t.words(), 4);
        assert_eq!(t.tokens(), 6, "22 chars / 4 rounds up to 6 > 4 words");
        let mut short = StreamedText::default();
        short.push("a b c d e");
        assert_eq!(short.tokens(), 5);
        assert_eq!(StreamedText::default().tokens(), 0);
    }

    #[test]
    fn chunk_text_is_found_in_deltas_and_tool_calls() {
        let mut t = StreamedText::default();
        t.push_chunk(br#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#);
        t.push_chunk(br#"{"choices":[{"index":0,"delta":{"content":"Hello \"you\""}}]}"#);
        t.push_chunk(br#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\": 1}"}}]}}]}"#);
        t.push_chunk(br#"{"choices":[],"usage":{"prompt_tokens":1}}"#);
        t.push_chunk(b"not json");
        // `Hello`, `"you"{"a":` (text runs on from one chunk to the next), `1}`.
        assert_eq!(t.words(), 3);
    }
}
