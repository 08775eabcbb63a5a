//! A request body rewritten for the provider: every value a policy looks for, in the texts
//! the provider would see, replaced by a typed placeholder (`[EMAIL_1]`), masked, or reported
//! for a refusal.
//!
//! The body is the client's own, in its own dialect: the rewritten bytes are what both the
//! pass-through (a provider of the client's wire) and the translation (any other) start from,
//! so no attempt can send the original. [`body`] says which strings are read (the members
//! that carry text, minus identifiers and opaque blobs) and writes the replacements back,
//! the rest of the body byte for byte. An object member whose name says secret
//! (`"password": "…"`) has its whole value judged as an assigned secret.
//!
//! One [`Session`] per request numbers placeholders per class (the same value gets the same
//! placeholder everywhere in the request), keeps the reversible ones for the answer, and counts
//! detections by class.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use proto::{GuardAction, GuardClass};

use super::detect::{secret_name, Kind};
use super::{body, check, Effective};

/// What became of a body.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing to change.
    Unchanged,
    /// The body to send instead.
    Changed(Bytes),
    /// A class whose action is `block` was found (class names, sorted).
    Blocked(Vec<String>),
}

/// One request's redaction state.
#[derive(Debug)]
pub struct Session {
    pub effective: Effective,
    /// (kind, value) → its placeholder.
    seen: HashMap<(Kind, String), String>,
    /// Placeholders handed out per tag.
    numbers: HashMap<String, u32>,
    /// Reversible placeholders and their values, for the answer.
    pub reversible: Vec<(String, String)>,
    /// Detections per (class, action).
    pub detections: BTreeMap<(String, &'static str), u64>,
    /// Detections in the answer (output checks), per (class, action).
    pub output_detections: BTreeMap<(String, &'static str), u64>,
    blocked: BTreeSet<String>,
}

impl Session {
    pub fn new(effective: Effective) -> Self {
        Self {
            effective,
            seen: HashMap::new(),
            numbers: HashMap::new(),
            reversible: Vec::new(),
            detections: BTreeMap::new(),
            output_detections: BTreeMap::new(),
            blocked: BTreeSet::new(),
        }
    }

    /// Detections per class (for the usage event).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for ((class, _), n) in &self.detections {
            *counts.entry(class.clone()).or_default() += n;
        }
        counts
    }

    /// Rewrites a JSON request body (an object), in place (see [`body`]): a body that is not
    /// a JSON object is left to the dialect's parser to refuse.
    pub fn redact_body(&mut self, bytes: &[u8]) -> Outcome {
        let rewritten = body::rewrite(bytes, |text, parent| self.redact_member(text, parent));
        if !self.blocked.is_empty() {
            return Outcome::Blocked(self.blocked.iter().cloned().collect());
        }
        match rewritten {
            Ok(Some(bytes)) => Outcome::Changed(Bytes::from(bytes)),
            Ok(None) | Err(body::NotAnObject) => Outcome::Unchanged,
        }
    }

    /// A text of the body under member `parent`, with what it holds replaced; a member whose
    /// name says secret (`"password": "…"`) has its whole value judged as an assigned secret.
    fn redact_member(&mut self, text: &str, parent: Option<&str>) -> Option<String> {
        if parent.is_some_and(secret_name) {
            let kind = Kind::Builtin(GuardClass::SecretAssignment);
            if let Some(action) = self.effective.action(kind) {
                if !text.starts_with('[') && check::secret_value(text.as_bytes()) {
                    return Some(self.replace(kind, action, text, false));
                }
            }
        }
        self.redact_text(text)
    }

    /// `text` with every value found replaced; `None` if nothing was found.
    pub fn redact_text(&mut self, text: &str) -> Option<String> {
        self.redact_text_as(text, false)
    }

    /// [`Self::redact_text`] on a request's text, or on an answer's (`output`: a value is
    /// redacted where its action is `block` or `reversible`, and counted apart).
    pub(super) fn redact_text_as(&mut self, text: &str, output: bool) -> Option<String> {
        let e = &self.effective;
        let found = e.detector.find(text.as_bytes(), |k| e.action(k).is_some());
        if found.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in found {
            let (Some(before), Some(value)) =
                (text.get(at..f.span.start), text.get(f.span.clone()))
            else {
                continue;
            };
            let Some(action) = self.effective.action(f.kind) else {
                continue;
            };
            out.push_str(before);
            let replaced = self.replace(f.kind, action, value, output);
            out.push_str(&replaced);
            at = f.span.end;
        }
        out.push_str(text.get(at..).unwrap_or_default());
        Some(out)
    }

    /// Counts one detection of `value` and returns what replaces it.
    fn replace(&mut self, kind: Kind, action: GuardAction, value: &str, output: bool) -> String {
        let class = self.effective.name(kind).to_owned();
        let action = match action {
            GuardAction::Block | GuardAction::Reversible if output => GuardAction::Redact,
            other => other,
        };
        let counts = if output {
            &mut self.output_detections
        } else {
            &mut self.detections
        };
        *counts.entry((class.clone(), action.name())).or_default() += 1;
        match action {
            GuardAction::Mask => mask(value),
            GuardAction::Block => {
                self.blocked.insert(class.clone());
                self.placeholder(kind, &class, value, false)
            }
            GuardAction::Redact => self.placeholder(kind, &class, value, false),
            GuardAction::Reversible => self.placeholder(kind, &class, value, true),
        }
    }

    fn placeholder(&mut self, kind: Kind, class: &str, value: &str, reversible: bool) -> String {
        if let Some(p) = self.seen.get(&(kind, value.to_owned())) {
            return p.clone();
        }
        let tag = class.to_ascii_uppercase();
        let n = self.numbers.entry(tag.clone()).or_default();
        *n += 1;
        let p = format!("[{tag}_{n}]");
        self.seen.insert((kind, value.to_owned()), p.clone());
        if reversible {
            self.reversible.push((p.clone(), value.to_owned()));
        }
        p
    }
}

/// All but the last 4 characters as `*` (a value of 4 or fewer is all `*`).
pub fn mask(value: &str) -> String {
    let n = value.chars().count();
    let keep = if n > 4 { 4 } else { 0 };
    value
        .chars()
        .enumerate()
        .map(|(i, c)| if i + keep < n { '*' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::Guards;
    use super::*;

    fn session(yaml: &str) -> Session {
        let p: proto::GuardrailPolicy = serde_yaml::from_str(yaml).unwrap();
        let g = Guards::compile(vec![p]).unwrap();
        Session::new(g.effective(Some("k"), None, "r").unwrap())
    }

    fn text_of(o: Outcome) -> String {
        match o {
            Outcome::Changed(b) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_dialect_s_texts_are_redacted_and_identifiers_are_not() {
        let mut s = session(
            "{id: g, applies_to: {keys: [k]}, default_action: redact, classes: {phone: mask, email: reversible}}",
        );
        let body = r#"{"model":"m","system":[{"type":"text","text":"admin is ann@corp.example"}],
          "messages":[{"role":"user","content":"mail ann@corp.example, call +1-555-123-4567"},
            {"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"to\":\"bob@corp.example\"}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"sent to 10.1.2.3"},
            {"role":"assistant","content":[{"type":"thinking","thinking":"ann@corp.example","signature":"sig"},
              {"type":"tool_use","id":"tu_1","name":"db","input":{"password":"hX9$kq2Lp!zR","q":"x"}}]}],
          "input":[{"type":"function_call_output","call_id":"c","output":"key AKIAIOSFODNN7EXAMPLE"}]}"#;
        let out = text_of(s.redact_body(body.as_bytes()));
        assert_eq!(
            out.matches("ann@corp.example").count(),
            1,
            "only in thinking"
        );
        for original in [
            "bob@corp.example",
            "555-123",
            "10.1.2.3",
            "hX9$",
            "AKIAIOSFODNN7EXAMPLE",
        ] {
            assert!(!out.contains(original), "{original} in {out}");
        }
        assert!(out.contains("admin is [EMAIL_1]") && out.contains("mail [EMAIL_1],"));
        assert!(out.contains("[EMAIL_2]") && out.contains("[IPV4_1]"));
        assert!(out.contains("***********4567"), "{out}");
        assert!(
            out.contains(r#""password":"[SECRET_ASSIGNMENT_1]""#),
            "{out}"
        );
        assert!(
            out.contains(r#""thinking":"ann@corp.example""#),
            "thinking is signed"
        );
        assert!(out.contains("[AWS_ACCESS_KEY_1]"));
        assert_eq!(s.reversible.len(), 2);
        assert_eq!(s.counts()["email"], 3);
        assert_eq!(s.counts()["phone"], 1);
    }

    #[test]
    fn block_names_the_class_and_clean_bodies_are_left_alone() {
        let mut s = session(
            "{id: g, applies_to: {keys: [k]}, classes: {aws_access_key: block, email: redact}}",
        );
        let clean = r#"{"model":"m","messages":[{"role":"user","content":"hello v1.2.3"}]}"#;
        assert!(matches!(
            s.redact_body(clean.as_bytes()),
            Outcome::Unchanged
        ));
        let body = r#"{"messages":[{"role":"user","content":"AKIAIOSFODNN7EXAMPLE a@b.example"}]}"#;
        match s.redact_body(body.as_bytes()) {
            Outcome::Blocked(c) => assert_eq!(c, ["aws_access_key"]),
            other => panic!("{other:?}"),
        }
        let escaped = r#"{"messages":[{"role":"user","content":"x\u0040y.example is me: xy\u0040corp.example"}]}"#;
        let out = text_of(
            session("{id: g, applies_to: {keys: [k]}, classes: {email: redact}}")
                .redact_body(escaped.as_bytes()),
        );
        assert!(
            out.contains("[EMAIL_1]") && out.contains("[EMAIL_2]"),
            "{out}"
        );
    }

    #[test]
    fn mask_keeps_the_last_four() {
        assert_eq!(mask("4111111111111111"), "************1111");
        assert_eq!(mask("abc"), "***");
    }
}
