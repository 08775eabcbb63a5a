//! A request body walked in place: the strings a provider sees as conversation text are
//! handed out, decoded, with the name of the member they sit under, and those given a
//! replacement are written back; every other byte of the client's body is kept as it was.
//!
//! Which strings: under the top-level members that carry text (`messages`, `system`,
//! `input`, `instructions`, `prompt`), every string except under members that are
//! identifiers, structure or opaque data (ids, roles, types, signatures, encrypted reasoning,
//! base64 data, thinking blocks, whose signature covers their text) and `data:` URLs. The
//! walk reads the body once, without building its value, so a body with nothing to find
//! costs one pass over its bytes and the searches of its texts.

use std::borrow::Cow;
use std::ops::Range;

use super::strings;

/// Top-level members whose text a provider sees as the conversation.
const TEXT_MEMBERS: [&str; 5] = ["messages", "system", "input", "instructions", "prompt"];

/// Members that are identifiers, structure or opaque data, never looked at.
const SKIPPED: [&str; 17] = [
    "model",
    "role",
    "type",
    "id",
    "call_id",
    "tool_call_id",
    "tool_use_id",
    "signature",
    "encrypted_content",
    "thinking",
    "data",
    "file_data",
    "name",
    "status",
    "media_type",
    "cache_control",
    "previous_response_id",
];

/// Nesting deeper than this is refused (as serde_json does).
const MAX_DEPTH: usize = 128;

/// A body that is not a JSON object (or nests deeper than serde_json allows).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the body is not a JSON object")]
pub struct NotAnObject;

/// Calls `f` with every text of `json` (an object) and the member it sits under (`None` at
/// the top), in document order, and returns the body with the texts `f` replaced, `Ok(None)`
/// if it replaced none, or [`NotAnObject`] (what was replaced before the fault is dropped).
pub fn rewrite(
    json: &[u8],
    f: impl FnMut(&str, Option<&str>) -> Option<String>,
) -> Result<Option<Vec<u8>>, NotAnObject> {
    let mut walk = Walk {
        json,
        at: 0,
        out: Vec::new(),
        copied: 0,
        f,
    };
    walk.top().ok_or(NotAnObject)?;
    if walk.copied == 0 {
        return Ok(None);
    }
    walk.out.extend_from_slice(&json[walk.copied..]);
    Ok(Some(walk.out))
}

/// What a value is to the walk: skipped, or looked at under a member name.
type Look<'k> = Option<Option<&'k str>>;

struct Walk<'a, F> {
    json: &'a [u8],
    at: usize,
    /// The rewritten body up to `copied` (empty until a first replacement).
    out: Vec<u8>,
    copied: usize,
    f: F,
}

impl<'a, F: FnMut(&str, Option<&str>) -> Option<String>> Walk<'a, F> {
    fn blanks(&mut self) {
        while matches!(self.json.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.blanks();
        (self.json.get(self.at) == Some(&b)).then(|| self.at += 1)
    }

    /// The string literal at the cursor: its text, decoded, and its span (quotes included).
    fn string(&mut self) -> Option<(Cow<'a, str>, Range<usize>)> {
        self.eat(b'"')?;
        let open = self.at - 1;
        let (close, escaped) = strings::literal_end(self.json, open)?;
        self.at = close + 1;
        let raw = &self.json[open + 1..close];
        let text = if escaped {
            let mut decoded = Vec::with_capacity(raw.len());
            strings::decode(raw, &mut decoded)?;
            Cow::Owned(String::from_utf8(decoded).ok()?)
        } else {
            Cow::Borrowed(std::str::from_utf8(raw).ok()?)
        };
        Some((text, open..close + 1))
    }

    fn top(&mut self) -> Option<()> {
        self.members(true, false, 0)?;
        self.blanks();
        (self.at == self.json.len()).then_some(())
    }

    /// The members of the object at the cursor: at the `top`, the text members are looked at;
    /// below, those not skipped if the object is (`look`).
    fn members(&mut self, top: bool, look: bool, depth: usize) -> Option<()> {
        self.eat(b'{')?;
        self.blanks();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let (name, _) = self.string()?;
            self.eat(b':')?;
            let child: Look<'_> = if top {
                TEXT_MEMBERS.contains(&name.as_ref()).then_some(None)
            } else {
                (look && !SKIPPED.contains(&name.as_ref())).then_some(Some(&name))
            };
            self.value(child, depth + 1)?;
            if self.eat(b',').is_none() {
                return self.eat(b'}');
            }
        }
    }

    fn value(&mut self, look: Look<'_>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.blanks();
        match self.json.get(self.at)? {
            b'"' => {
                let (text, span) = self.string()?;
                let Some(parent) = look else {
                    return Some(());
                };
                if parent == Some("url") && text.starts_with("data:") {
                    return Some(());
                }
                if let Some(new) = (self.f)(&text, parent) {
                    self.out
                        .extend_from_slice(&self.json[self.copied..span.start]);
                    serde_json::to_writer(&mut self.out, &new).ok()?;
                    self.copied = span.end;
                }
                Some(())
            }
            b'{' => self.members(false, look.is_some(), depth),
            b'[' => {
                self.at += 1;
                self.blanks();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.value(look, depth + 1)?;
                    if self.eat(b',').is_none() {
                        return self.eat(b']');
                    }
                }
            }
            _ => {
                // A number, `true`, `false` or `null`.
                let start = self.at;
                while self
                    .json
                    .get(self.at)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
                {
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_texts_are_handed_out_and_the_rest_is_kept_byte_for_byte() {
        let body = br#"{ "model":"m", "messages":[{"role":"user","content":"a\nb",
            "x":{"name":"n","url":"data:q","text":"t","data":{"k":"v"}}}], "stop":["s"],
            "system":"sys", "n": -1.5e3, "ok": true}"#;
        let mut seen = Vec::new();
        let out = rewrite(body, |text, parent| {
            seen.push(format!("{parent:?}={text}"));
            (text == "t").then(|| "T\"".to_owned())
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            seen,
            [
                r#"Some("content")=a
b"#,
                r#"Some("text")=t"#,
                "None=sys"
            ]
        );
        let expected = String::from_utf8_lossy(body).replace(r#""text":"t""#, r#""text":"T\"""#);
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        assert_eq!(rewrite(br#"{"messages":"x"}"#, |_, _| None), Ok(None));
        for bad in [
            &br#"["x"]"#[..],
            br#"{"a":1"#,
            br#"{"a":1} x"#,
            b"{\"a\":\"\\q\"}",
        ] {
            assert_eq!(
                rewrite(bad, |_, _| None),
                Err(NotAnObject),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
