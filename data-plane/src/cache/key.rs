//! The exact cache's key: a SHA-256 over a canonical form of what determines the answer.
//!
//! The input is the internal (OpenAI chat) body, which every dialect is translated to first,
//! so the same conversation asked in chat, Responses or Messages form has one key, and the
//! stored answer (internal form too) is replayed in whichever dialect asks. Every top-level
//! field counts (messages, tools, tool_choice, response_format, temperature, top_p, max
//! tokens, stop, seed, n, reasoning effort, and any field the gateway does not know: an
//! unknown field may change the answer, so it splits the key rather than risk a wrong hit),
//! except those in [`IGNORED`], which change how the answer is delivered or labelled, never
//! what it says. Object members are sorted and numbers and strings written in one form, so
//! two bodies that differ only in spacing or member order have one key.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::providers::JsonBody;

/// Fields that never change the answer: the model is replaced by the route in the scope,
/// `stream` and `stream_options` only change its delivery (a streamed and a non-streamed
/// request share an entry), the rest label or store the request, or are hints for the
/// provider's own prompt cache.
pub const IGNORED: &[&str] = &[
    "model",
    "stream",
    "stream_options",
    "user",
    "metadata",
    "store",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
];

/// Where an entry may answer: the policy (and its purge epoch), the team unless shared, and
/// the route that serves the request.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub policy: &'a str,
    pub epoch: u64,
    /// `None`: shared beyond the team.
    pub team: Option<Option<&'a str>>,
    pub route: &'a str,
}

/// The key (64 hex digits) of `body` within `scope`; `None` if a field is not JSON.
///
/// The canonical bytes go straight into the hash as they are written, never gathered first.
pub fn key(scope: Scope<'_>, body: &JsonBody) -> Option<String> {
    let mut hash = Hashing(Sha256::new());
    hash.0.update(b"switchyard-cache-v1\0");
    let team = match scope.team {
        None => "*shared*".to_owned(),
        Some(None) => "*no-team*".to_owned(),
        Some(Some(team)) => format!("team:{team}"),
    };
    for part in [scope.policy, &scope.epoch.to_string(), &team, scope.route] {
        hash.0.update(part.as_bytes());
        hash.0.update([0]);
    }
    // A `BTreeMap`: members come in name order.
    for (name, raw) in body {
        if IGNORED.contains(&name.as_str()) {
            continue;
        }
        let value: Value = serde_json::from_str(raw.get()).ok()?;
        if value.is_null() {
            continue;
        }
        string(name, &mut hash);
        hash.0.update(b":");
        canonical(&value, &mut hash);
        hash.0.update([0]);
    }
    Some(hex::encode(hash.0.finalize()))
}

/// A writer that hashes what it is given.
struct Hashing(Sha256);

impl std::io::Write for Hashing {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `v` with object members sorted by name, whatever the map type's own order.
fn canonical(v: &Value, out: &mut Hashing) {
    match v {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.0.update(b"{");
            for (i, (name, value)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.0.update(b",");
                }
                string(name, out);
                out.0.update(b":");
                canonical(value, out);
            }
            out.0.update(b"}");
        }
        Value::Array(items) => {
            out.0.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.0.update(b",");
                }
                canonical(item, out);
            }
            out.0.update(b"]");
        }
        Value::String(s) => string(s, out),
        other => scalar(other, out),
    }
}

/// Writes `s` as a JSON string, as serde_json does: a string with nothing to escape (no `"`,
/// `\` or control character: a prompt's usual text) is its own bytes in quotes, hashed
/// without a pass of the escaper.
fn string(s: &str, out: &mut Hashing) {
    // In blocks, so the test vectorises.
    let plain = !s.as_bytes().chunks(64).any(|block| {
        block.iter().fold(false, |any, &b| {
            any | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    });
    if plain {
        out.0.update(b"\"");
        out.0.update(s.as_bytes());
        out.0.update(b"\"");
    } else {
        scalar(s, out);
    }
}

/// Numbers, booleans, strings to escape: serde_json writes each in one form (the compact form
/// `Value`'s `Display` writes too).
fn scalar(v: &(impl serde::Serialize + ?Sized), out: &mut Hashing) {
    // Writing into a hash cannot fail, nor can serialising a `Value`'s string or number.
    let _ = serde_json::to_writer(out, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> JsonBody {
        serde_json::from_str(json).unwrap()
    }

    const SCOPE: Scope<'static> = Scope {
        policy: "p",
        epoch: 0,
        team: Some(Some("t1")),
        route: "chat",
    };

    #[test]
    fn what_does_not_change_the_answer_does_not_change_the_key() {
        let a = key(
            SCOPE,
            &body(
                r#"{"model":"chat","messages":[{"role":"user","content":"hi"}],"temperature":0}"#,
            ),
        );
        let b = key(
            SCOPE,
            &body(
                r#"{"temperature":0, "messages":[{"content":"hi","role":"user"}],"model":"other","stream":true,"stream_options":{"include_usage":true},"user":"u","metadata":{"a":"b"},"store":false,"tools":null}"#,
            ),
        );
        assert_eq!(a, b);
        assert!(a.is_some_and(|k| k.len() == 64));
    }

    /// Keys already stored stay valid: the canonical form is fixed (this key was written by
    /// the first version, which built the canonical bytes through `serde_json::Value`s).
    #[test]
    fn the_key_of_a_body_does_not_change() {
        let json = r#"{"model":"m","messages":[{"role":"user","content":"h\u00e9 \"q\"\n","name":"x"}],"temperature":0.5,"max_tokens":100,"stop":["a","b"],"tools":[{"type":"function","function":{"name":"f","parameters":{"z":1,"a":[true,null,-1.5e3]}}}],"x_unknown":{"b":{},"a":[]},"user":"u"}"#;
        assert_eq!(
            key(SCOPE, &body(json)).unwrap(),
            "4af8725fdbfbbdc54d3bead90a463ac094bc3cb4ab115c7a3d57d78a6c60933a"
        );
    }

    #[test]
    fn a_string_is_hashed_as_serde_json_writes_it() {
        let long = "plain text ".repeat(20);
        for s in [
            "",
            "plain",
            "é ✓ \u{7f}",
            "q\"uote",
            "back\\slash",
            "tab\t",
            "\u{1f}",
            &long,
        ] {
            let mut fast = Hashing(Sha256::new());
            string(s, &mut fast);
            let written = serde_json::to_vec(s).unwrap();
            assert_eq!(fast.0.finalize(), Sha256::digest(&written), "{s:?}");
        }
    }

    #[test]
    fn what_changes_the_answer_changes_the_key() {
        let base = r#"{"messages":[{"role":"user","content":"hi"}]}"#;
        let k = |json: &str, scope: Scope<'_>| key(scope, &body(json)).unwrap();
        let reference = k(base, SCOPE);
        let variants = [
            r#"{"messages":[{"role":"user","content":"hi!"}]}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"top_p":0.5}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"stop":["x"]}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"seed":1}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"n":2}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"reasoning_effort":"high"}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"tool_choice":"required"}"#,
            r#"{"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}}"#,
        ];
        for v in variants {
            assert_ne!(k(v, SCOPE), reference, "{v}");
        }
        for scope in [
            Scope {
                team: Some(Some("t2")),
                ..SCOPE
            },
            Scope {
                team: Some(None),
                ..SCOPE
            },
            Scope {
                team: None,
                ..SCOPE
            },
            Scope { epoch: 1, ..SCOPE },
            Scope {
                policy: "q",
                ..SCOPE
            },
            Scope {
                route: "other",
                ..SCOPE
            },
        ] {
            assert_ne!(k(base, scope), reference, "{scope:?}");
        }
    }
}
