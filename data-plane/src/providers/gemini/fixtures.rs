//! Table test over the wire samples in `fixtures/`: each file is one case, by `kind`:
//! - `chat_request`: OpenAI body `in` → Gemini body `out`;
//! - `chat_response`: Gemini response `in` → OpenAI completion `out`;
//! - `stream`: Gemini SSE events `in` → OpenAI chunks `out` (the last one usage-only when
//!   Gemini reported usage);
//! - `embeddings`: OpenAI body `in` → Gemini body `out`, Gemini `response_in` → OpenAI
//!   `response_out`.
//!
//! Translations run with id `chatcmpl-test`, model `gemini-2.5-flash` (or
//! `gemini-embedding-001` for embeddings) and `created` 1700000000 unless the sample overrides.

use serde_json::Value;

use super::response::Meta;
use super::{embeddings, request, response, stream};
use crate::fixture_cases::{body, check_request, check_response};

fn meta() -> Meta {
    Meta {
        id: "chatcmpl-test".into(),
        model: "gemini-2.5-flash".into(),
        created: 1_700_000_000,
    }
}

fn run(name: &str, case: &Value) {
    let input = &case["in"];
    let expected = &case["out"];
    match case["kind"].as_str() {
        Some("chat_request") => check_request(name, case, request::chat_request),
        Some("chat_response") => {
            check_response(name, case, |input| response::chat_response(input, &meta()))
        }
        Some("stream") => {
            let mut translator = stream::Translator::new(meta());
            let mut out = Vec::new();
            for event in input.as_array().into_iter().flatten() {
                let data = event.to_string();
                out.extend(
                    translator
                        .event(data.as_bytes())
                        .unwrap_or_else(|e| panic!("{name}: {e:?}")),
                );
            }
            assert!(translator.finished(), "{name}: no finish reason seen");
            if let Some((chunk, _)) = translator.end() {
                out.push(chunk);
            }
            assert_eq!(&Value::Array(out), expected, "{name}");
        }
        Some("embeddings") => {
            let (out, texts) = embeddings::embeddings_request(&body(input), "gemini-embedding-001")
                .unwrap_or_else(|e| panic!("{name}: refused: {e}"));
            assert_eq!(&out, expected, "{name}");
            let reply = embeddings::embeddings_response(
                &case["response_in"],
                &texts,
                "gemini-embedding-001",
                false,
            );
            assert_eq!(reply.as_ref(), Some(&case["response_out"]), "{name}");
        }
        other => panic!("{name}: unknown kind {other:?}"),
    }
}

#[test]
fn every_fixture_translates_as_recorded() {
    for (name, case) in crate::fixture_cases::load("src/providers/gemini/fixtures", 8) {
        run(&name, &case);
    }
}

#[test]
fn stream_errors_and_garbage_end_the_stream() {
    let mut t = stream::Translator::new(meta());
    assert_eq!(
        t.event(br#"{"error":{"code":500,"message":"internal","status":"INTERNAL"}}"#),
        Err(stream::EventError::Upstream)
    );
    assert_eq!(t.event(b"{not json"), Err(stream::EventError::Malformed));
    assert!(!t.finished());
}

#[test]
fn base64_embeddings_are_little_endian_f32() {
    let response = serde_json::json!({"embeddings": [{"values": [1.0, -2.0]}]});
    let out = embeddings::embeddings_response(&response, &["x".into()], "m", true)
        .unwrap_or_else(|| panic!("translated"));
    // 1.0f32 = 00 00 80 3f, -2.0f32 = 00 00 00 c0.
    assert_eq!(out["data"][0]["embedding"], "AACAPwAAAMA=");
}
