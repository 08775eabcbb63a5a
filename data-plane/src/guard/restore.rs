//! The answer, on its way to the client: reversible placeholders put back (one Aho-Corasick
//! automaton over the request's placeholders), and with output checks on, values of the
//! policies' classes redacted (`block` and `reversible` act as `redact` there: the answer
//! already exists).
//!
//! A complete answer is one JSON body. A stream is a sequence of SSE frames in the client's
//! dialect, and a model may well write a placeholder over two events (`[EMA`, `IL_1]`): the
//! [`Restorer`] holds back a frame whose text ends with the start of a placeholder, and when
//! the next frame continues the same text (the same JSON path: `choices.0.delta.content`,
//! `delta.text`, `delta`) it moves that tail into it, so the placeholder is whole in one
//! string; if the next frame does not continue it, the held frame goes out as it was. At most
//! one frame is held, and only while its text ends with a placeholder's first characters.

use aho_corasick::AhoCorasick;
use bytes::Bytes;
use serde_json::Value;

use super::redact::Session;

/// A JSON path: member names and array indexes.
type Path = Vec<String>;

/// Puts placeholders back (and checks output) in one request's answer.
#[derive(Debug)]
pub struct Restorer {
    /// Placeholders, in the automaton's pattern order, and their values.
    automaton: Option<AhoCorasick>,
    values: Vec<String>,
    placeholders: Vec<String>,
    /// Output checks: the request's session, reused so numbering goes on.
    output: Option<Session>,
    held: Option<Held>,
}

/// A frame held back because its text ends with the start of a placeholder.
#[derive(Debug)]
struct Held {
    /// The frame as it would go out whole (placeholders restored, tail included).
    whole: Bytes,
    /// The frame's events with the tail cut off the string at `path`.
    events: Vec<Event>,
    path: Path,
    tail: String,
}

/// One SSE event: its lines other than `data:`, and its data (JSON, or text kept as is).
#[derive(Debug, Clone)]
struct Event {
    lines: Vec<String>,
    data: Option<Data>,
}

#[derive(Debug, Clone)]
enum Data {
    Json(Value),
    Text(String),
}

impl Restorer {
    /// A restorer for `session`'s placeholders, with output checks if its policies ask;
    /// `None` if there is nothing to do on the answer.
    pub fn new(session: Session) -> Option<Self> {
        let output = session.effective.output;
        if session.reversible.is_empty() && !output {
            return None;
        }
        let (placeholders, values): (Vec<String>, Vec<String>) =
            session.reversible.iter().cloned().unzip();
        let automaton = if placeholders.is_empty() {
            None
        } else {
            AhoCorasick::new(&placeholders).ok()
        };
        Some(Self {
            automaton,
            values,
            placeholders,
            output: output.then_some(session),
            held: None,
        })
    }

    /// A complete JSON answer, restored and checked.
    pub fn body(&mut self, body: Bytes) -> Bytes {
        if !self.worth_parsing(&body) {
            return body;
        }
        let Ok(mut value) = serde_json::from_slice::<Value>(&body) else {
            return body;
        };
        let mut path = Vec::new();
        if !self.fix(&mut value, &mut path, &mut |_, _| {}) {
            return body;
        }
        serde_json::to_vec(&value).map_or(body, Bytes::from)
    }

    /// A stream frame: what to send now (none, one or two frames, in order).
    pub fn frame(&mut self, frame: Bytes) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.held.is_none() && !self.worth_parsing(&frame) && !self.may_split(&frame) {
            out.push(frame);
            return out;
        }
        let mut events = parse(&frame);
        if let Some(held) = self.held.take() {
            if prepend(&mut events, &held.path, &held.tail) {
                out.push(write(&held.events));
            } else {
                out.push(held.whole);
            }
        }
        let mut changed = false;
        for e in &mut events {
            if let Some(Data::Json(v)) = &mut e.data {
                changed |= self.fix(v, &mut Vec::new(), &mut |_, _| {});
            }
        }
        if let Some((path, tail)) = self.partial_tail(&events) {
            let whole = write(&events);
            cut(&mut events, &path, tail.len());
            self.held = Some(Held {
                whole,
                events,
                path,
                tail,
            });
            return out;
        }
        out.push(if changed || !out.is_empty() {
            write(&events)
        } else {
            frame
        });
        out
    }

    /// Detections the output checks made, per (class, action).
    pub fn output_detections(&self) -> impl Iterator<Item = (&(String, &'static str), &u64)> {
        self.output.iter().flat_map(|s| s.output_detections.iter())
    }

    /// The held frame, if any, when the stream ends.
    pub fn flush(&mut self) -> Option<Bytes> {
        self.held.take().map(|h| h.whole)
    }

    fn worth_parsing(&self, bytes: &[u8]) -> bool {
        self.output.is_some() || self.automaton.as_ref().is_some_and(|a| a.is_match(bytes))
    }

    /// A frame whose text may end with the start of a placeholder (`[` then capitals).
    fn may_split(&self, bytes: &[u8]) -> bool {
        self.automaton.is_some()
            && bytes
                .windows(2)
                .any(|w| w[0] == b'[' && (w[1].is_ascii_uppercase() || w[1] == b'"'))
    }

    /// Restores (and checks) every string under `value`; true if any changed.
    fn fix(
        &mut self,
        value: &mut Value,
        path: &mut Path,
        seen: &mut dyn FnMut(&Path, &str),
    ) -> bool {
        match value {
            Value::String(s) => {
                let mut changed = false;
                // Checked before the placeholders are put back: a restored value is the
                // client's own.
                if let Some(session) = self.output.as_mut() {
                    if let Some(new) = session.redact_output(s) {
                        *s = new;
                        changed = true;
                    }
                }
                if let Some(a) = &self.automaton {
                    if a.is_match(s.as_str()) {
                        *s = a.replace_all(s, &self.values);
                        changed = true;
                    }
                }
                seen(path, s);
                changed
            }
            Value::Array(items) => {
                let mut changed = false;
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(i.to_string());
                    changed |= self.fix(item, path, seen);
                    path.pop();
                }
                changed
            }
            Value::Object(map) => {
                let mut changed = false;
                for (k, v) in map.iter_mut() {
                    path.push(k.clone());
                    changed |= self.fix(v, path, seen);
                    path.pop();
                }
                changed
            }
            _ => false,
        }
    }

    /// The first string in `events` that ends with the start of a placeholder: its path and
    /// that start.
    fn partial_tail(&self, events: &[Event]) -> Option<(Path, String)> {
        self.automaton.as_ref()?;
        let mut found = None;
        for e in events {
            if let Some(Data::Json(v)) = &e.data {
                visit(v, &mut Vec::new(), &mut |path, s| {
                    if found.is_none() {
                        if let Some(tail) = self.tail_of(s) {
                            found = Some((path.clone(), tail.to_owned()));
                        }
                    }
                });
            }
        }
        found
    }

    /// The longest end of `s` that is a proper start of some placeholder.
    fn tail_of<'s>(&self, s: &'s str) -> Option<&'s str> {
        let start = s.rfind('[')?;
        let tail = &s[start..];
        self.placeholders
            .iter()
            .any(|p| p.len() > tail.len() && p.starts_with(tail))
            .then_some(tail)
    }
}

impl Session {
    /// Output checks on one text of the answer: values redacted (masked where the action is
    /// `mask`); `None` if nothing was found.
    pub fn redact_output(&mut self, text: &str) -> Option<String> {
        self.redact_text_as(text, true)
    }
}

fn visit(value: &Value, path: &mut Path, f: &mut dyn FnMut(&Path, &str)) {
    match value {
        Value::String(s) => f(path, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                visit(item, path, f);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                path.push(k.clone());
                visit(v, path, f);
                path.pop();
            }
        }
        _ => {}
    }
}

fn string_at<'v>(value: &'v mut Value, path: &[String]) -> Option<&'v mut String> {
    let mut v = value;
    for p in path {
        v = match v {
            Value::Object(map) => map.get_mut(p)?,
            Value::Array(items) => items.get_mut(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match v {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// Puts `tail` in front of the first string at `path`; false if no event has one.
fn prepend(events: &mut [Event], path: &[String], tail: &str) -> bool {
    for e in events {
        if let Some(Data::Json(v)) = &mut e.data {
            if let Some(s) = string_at(v, path) {
                s.insert_str(0, tail);
                return true;
            }
        }
    }
    false
}

/// Cuts `n` bytes off the end of the first string at `path`.
fn cut(events: &mut [Event], path: &[String], n: usize) {
    for e in events {
        if let Some(Data::Json(v)) = &mut e.data {
            if let Some(s) = string_at(v, path) {
                s.truncate(s.len().saturating_sub(n));
                return;
            }
        }
    }
}

/// The events of a frame (`\n\n`-separated; a frame with no blank line is one event).
fn parse(frame: &[u8]) -> Vec<Event> {
    let text = String::from_utf8_lossy(frame);
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut lines = Vec::new();
            let mut data = None;
            for line in e.split('\n') {
                match line
                    .strip_prefix("data: ")
                    .or_else(|| line.strip_prefix("data:"))
                {
                    Some(d) if data.is_none() => {
                        data = Some(match serde_json::from_str::<Value>(d) {
                            Ok(v) if v.is_object() => Data::Json(v),
                            _ => Data::Text(d.to_owned()),
                        });
                        lines.push(String::new());
                    }
                    _ => lines.push(line.to_owned()),
                }
            }
            Event { lines, data }
        })
        .collect()
}

/// The frame's bytes again (the data line where it was).
fn write(events: &[Event]) -> Bytes {
    let mut out = String::new();
    for e in events {
        for line in &e.lines {
            if line.is_empty() {
                if let Some(d) = &e.data {
                    out.push_str("data: ");
                    match d {
                        Data::Json(v) => out.push_str(&v.to_string()),
                        Data::Text(t) => out.push_str(t),
                    }
                }
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        out.push('\n');
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::super::redact::Outcome;
    use super::super::Guards;
    use super::*;

    fn restorer(output: bool) -> Restorer {
        let yaml = format!(
            "{{id: g, applies_to: {{keys: [k]}}, classes: {{email: reversible, phone: redact}}, output: {output}}}"
        );
        let p: proto::GuardrailPolicy = serde_yaml::from_str(&yaml).unwrap();
        let g = Guards::compile(vec![p]).unwrap();
        let mut s = Session::new(g.effective(Some("k"), None, "r").unwrap());
        let body = r#"{"messages":[{"role":"user","content":"I am ann@corp.example"}]}"#;
        assert!(matches!(
            s.redact_body(body.as_bytes()),
            Outcome::Changed(_)
        ));
        Restorer::new(s).unwrap()
    }

    fn sse(delta: &str) -> Bytes {
        let v = serde_json::json!({"choices":[{"index":0,"delta":{"content":delta}}]});
        Bytes::from(format!("data: {v}\n\n"))
    }

    fn texts(frames: &[Bytes]) -> String {
        frames
            .iter()
            .flat_map(|f| parse(f))
            .filter_map(|e| match e.data {
                Some(Data::Json(v)) => v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_placeholder_split_over_stream_events_is_restored() {
        let mut r = restorer(false);
        let mut sent = Vec::new();
        for d in ["Hi ", "[EMA", "IL_", "1] and [", "x] bye"] {
            sent.extend(r.frame(sse(d)));
        }
        sent.extend(r.flush());
        assert_eq!(texts(&sent), "Hi ann@corp.example and [x] bye");
        let done = Bytes::from_static(b"data: [DONE]\n\n");
        assert_eq!(r.frame(done.clone()), vec![done]);
        let body = Bytes::from(r#"{"content":[{"type":"text","text":"to [EMAIL_1]."}]}"#);
        assert_eq!(
            r.body(body),
            Bytes::from(r#"{"content":[{"text":"to ann@corp.example.","type":"text"}]}"#)
        );
    }

    #[test]
    fn a_held_tail_that_is_not_continued_goes_out_unchanged() {
        let mut r = restorer(false);
        assert!(r.frame(sse("see [EM")).is_empty());
        let stop = Bytes::from(
            r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.to_owned()
                + "\n\n",
        );
        let out = r.frame(stop);
        assert_eq!(out.len(), 2);
        assert_eq!(texts(&out), "see [EM");
    }

    #[test]
    fn output_checks_redact_the_answer() {
        let mut r = restorer(true);
        let out = r.body(Bytes::from(
            r#"{"choices":[{"message":{"content":"[EMAIL_1] or +1-555-123-4567"}}]}"#,
        ));
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.contains("ann@corp.example or [PHONE_1]"), "{text}");
        let counts: Vec<_> = r.output_detections().collect();
        assert_eq!(counts, [(&("phone".to_owned(), "redact"), &1)]);
    }
}
