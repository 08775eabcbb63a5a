//! Deterministic token counting and reply truncation.
//!
//! The mock does not tokenize: one token is one whitespace-separated word (see the rules in the
//! parent module's doc). Counting happens while the request body is deserialized
//! ([`ContentWords`]), so no message text is kept or copied after parsing.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The reply used when neither a script nor `x-mock-reply` sets one (5 words).
pub const DEFAULT_REPLY: &str = "Hello from the mock provider.";

/// Inside a reply word, a point where a stream splits the word over two deltas (and which
/// the text leaves out): a test scripts `[EMA\u{2063}IL_1]` to see a placeholder split across
/// stream events.
pub const SPLIT: char = '\u{2063}';

/// Tokens in `text`: its whitespace-separated words.
pub fn count_words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The reply actually generated for one request, after `max_tokens` truncation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<'a> {
    /// Words of the reply in order; each is one completion token and one stream chunk.
    pub words: Vec<&'a str>,
    /// `"stop"`, or `"length"` when the limit cut the reply short.
    pub finish_reason: &'static str,
}

impl<'a> Reply<'a> {
    /// Splits `text` into words and keeps at most `limit` of them.
    pub fn new(text: &'a str, limit: Option<u64>) -> Self {
        let mut words: Vec<&str> = text.split_whitespace().collect();
        let limit = limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        let finish_reason = if words.len() > limit {
            words.truncate(limit);
            "length"
        } else {
            "stop"
        };
        Self {
            words,
            finish_reason,
        }
    }

    /// Completion tokens: the number of words kept.
    pub fn completion_tokens(&self) -> u64 {
        self.words.len() as u64
    }

    /// The reply text, words joined by single spaces ([`SPLIT`] marks left out).
    pub fn text(&self) -> String {
        self.words.join(" ").replace(SPLIT, "")
    }

    /// The words as stream deltas: the first as it is, each later one with a leading space,
    /// so the deltas concatenate to [`Self::text`]; a word with [`SPLIT`] marks is several
    /// deltas, split there.
    pub fn deltas(&self) -> impl Iterator<Item = Cow<'a, str>> + '_ {
        self.words.iter().enumerate().flat_map(|(i, word)| {
            word.split(SPLIT).enumerate().map(move |(j, piece)| {
                if i == 0 || j > 0 {
                    Cow::Borrowed(piece)
                } else {
                    Cow::Owned(format!(" {piece}"))
                }
            })
        })
    }
}

/// The word count of a chat message's `content`, computed during deserialization.
///
/// Accepts a string, `null`, or an array of content parts where only `{"type":"text"}` parts
/// count (by their `text`); images, audio and other parts count zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContentWords(pub u64);

impl<'de> Deserialize<'de> for ContentWords {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ContentVisitor)
    }
}

struct ContentVisitor;

impl<'de> Visitor<'de> for ContentVisitor {
    type Value = ContentWords;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, null, or an array of content parts")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(ContentWords(count_words(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(ContentWords(0))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(ContentWords(0))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut total = 0;
        while let Some(part) = seq.next_element::<PartWords>()? {
            total += part.0;
        }
        Ok(ContentWords(total))
    }
}

/// Words of one content part: its `text` when `type` is `"text"`, else zero.
struct PartWords(u64);

impl<'de> Deserialize<'de> for PartWords {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(PartVisitor)
    }
}

/// Keys of a content part, matched without allocating.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum PartField {
    Type,
    Text,
    #[serde(other)]
    Other,
}

struct PartVisitor;

impl<'de> Visitor<'de> for PartVisitor {
    type Value = PartWords;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a content part object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Field order is not fixed, so count `text` eagerly and decide on `type` at the end.
        let mut is_text = false;
        let mut words = 0;
        while let Some(key) = map.next_key::<PartField>()? {
            match key {
                PartField::Type => is_text = map.next_value::<Cow<'de, str>>()? == "text",
                PartField::Text => words = map.next_value::<ContentWords>()?.0,
                PartField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(PartWords(if is_text { words } else { 0 }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Msg {
        content: Option<ContentWords>,
    }

    fn words_of(json: &str) -> u64 {
        let msg: Msg = serde_json::from_str(json).unwrap();
        msg.content.unwrap_or_default().0
    }

    #[test]
    fn counts_whitespace_separated_words() {
        assert_eq!(count_words(DEFAULT_REPLY), 5);
        assert_eq!(count_words("  a\tb\n c  "), 3);
        assert_eq!(count_words(""), 0);
    }

    #[test]
    fn counts_string_null_and_parts() {
        assert_eq!(words_of(r#"{"content":"one two three"}"#), 3);
        assert_eq!(words_of(r#"{"content":null}"#), 0);
        let parts = r#"{"content":[
            {"type":"text","text":"a b"},
            {"type":"image_url","image_url":{"url":"http://x/y z"}},
            {"text":"c d e","type":"text"}]}"#;
        assert_eq!(words_of(parts), 5);
        // Via serde_json::Value too (the recording path deserializes from a parsed Value).
        let value: serde_json::Value = serde_json::from_str(parts).unwrap();
        let msg = Msg::deserialize(&value).unwrap();
        assert_eq!(msg.content.unwrap().0, 5);
    }

    #[test]
    fn truncates_to_limit() {
        let full = Reply::new(DEFAULT_REPLY, None);
        assert_eq!((full.completion_tokens(), full.finish_reason), (5, "stop"));
        assert_eq!(full.text(), DEFAULT_REPLY);
        assert_eq!(full.deltas().collect::<String>(), DEFAULT_REPLY);
        let exact = Reply::new(DEFAULT_REPLY, Some(5));
        assert_eq!(exact.finish_reason, "stop");
        let cut = Reply::new(DEFAULT_REPLY, Some(2));
        assert_eq!(
            (cut.text().as_str(), cut.finish_reason),
            ("Hello from", "length")
        );
    }
}
