//! Runs every wire sample in `fixtures/`: one JSON file per case, `kind` says which direction.
//!
//! - `request`: `input` (OpenAI chat body), `model`, `stream` → `expected` (Anthropic body), or
//!   `error` (the 400 message).
//! - `response`: `input` (Anthropic message) → `expected` (OpenAI completion, `created` =
//!   [`CREATED`]) and `usage` (normalised).
//! - `stream`: `input` (the SSE lines Anthropic sent, joined with `\n`) → `expected` (the
//!   OpenAI chunks, in order), `usage` (on the usage-only chunk) and, when the stream must fail,
//!   `error` (the error's `code()`).

use serde_json::Value;

use super::stream::Translator;
use super::{request, response};
use crate::providers::sse::SseDecoder;
use crate::providers::{JsonBody, Usage};

const CREATED: u64 = 1_700_000_000;

fn usage_of(v: &Value) -> Usage {
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    Usage {
        prompt_tokens: n("prompt_tokens"),
        completion_tokens: n("completion_tokens"),
        cached_tokens: n("cached_tokens"),
        reasoning_tokens: 0,
        cache_write_5m_tokens: n("cache_write_5m_tokens"),
        cache_write_1h_tokens: n("cache_write_1h_tokens"),
    }
}

fn run_request(name: &str, case: &Value) {
    let body: JsonBody = serde_json::from_value(case["input"].clone())
        .unwrap_or_else(|e| panic!("{name}: input: {e}"));
    let model = case["model"].as_str().unwrap_or("claude-test");
    let stream = case["stream"].as_bool().unwrap_or(false);
    match (
        request::messages_body(&body, model, stream),
        case.get("error"),
    ) {
        (Ok(out), None) => assert_eq!(out, case["expected"], "{name}"),
        (Err(e), Some(expected)) => {
            assert_eq!(e.to_string(), expected.as_str().unwrap_or(""), "{name}")
        }
        (got, _) => panic!("{name}: unexpected {got:?}"),
    }
}

fn run_response(name: &str, case: &Value) {
    let input = serde_json::to_vec(&case["input"]).unwrap_or_default();
    let reply = response::chat("p", &input, CREATED).unwrap_or_else(|e| panic!("{name}: {e}"));
    let out: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    assert_eq!(out, case["expected"], "{name}");
    assert_eq!(reply.usage, Some(usage_of(&case["usage"])), "{name}");
}

fn run_stream(name: &str, case: &Value) {
    let lines: Vec<&str> = case["input"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: input must be an array of lines"))
        .iter()
        .map(|l| l.as_str().unwrap_or_default())
        .collect();
    let mut decoder = SseDecoder::default();
    decoder.push(format!("{}\n", lines.join("\n")).as_bytes());
    let mut translator = Translator::new("p".into(), CREATED);
    let mut chunks = Vec::new();
    let mut error = None;
    while let Ok(Some(event)) = decoder.next_event() {
        match translator.event(&event.data) {
            Ok(out) => chunks.extend(out),
            Err(e) => {
                error = Some(e.code());
                break;
            }
        }
    }
    let got: Vec<Value> = chunks
        .iter()
        .map(|c| serde_json::from_slice(&c.data).unwrap_or_default())
        .collect();
    assert_eq!(Value::Array(got.clone()), case["expected"], "{name}");
    for (c, v) in chunks.iter().zip(&got) {
        let empty = v["choices"].as_array().is_some_and(Vec::is_empty);
        assert_eq!(
            c.usage_only, empty,
            "{name}: usage_only marks the choices: [] chunk"
        );
        assert_eq!(
            c.usage.is_some(),
            empty,
            "{name}: usage rides on that chunk only"
        );
    }
    let usage = chunks.iter().find_map(|c| c.usage);
    if case.get("usage").is_some() {
        assert_eq!(usage, Some(usage_of(&case["usage"])), "{name}");
    }
    assert_eq!(error, case["error"].as_str(), "{name}");
    if error.is_none() {
        assert!(translator.ended, "{name}: stream must end at message_stop");
    }
}

#[test]
fn all_fixtures() {
    for (name, case) in crate::fixture_cases::load("src/providers/anthropic/fixtures", 6) {
        match case["kind"].as_str() {
            Some("request") => run_request(&name, &case),
            Some("response") => run_response(&name, &case),
            Some("stream") => run_stream(&name, &case),
            other => panic!("{name}: unknown kind {other:?}"),
        }
    }
}
