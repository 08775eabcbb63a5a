//! Runs every sample in `fixtures/`: one JSON file per case, `kind` says which direction.
//!
//! - `request`: `input` (Anthropic Messages body) → `expected` (internal OpenAI chat body), or
//!   `error` (the 400's message must contain it); `dropped` lists the top-level fields the
//!   translation drops (none when absent).
//! - `response`: `input` (OpenAI completion), `model` → `expected` (Anthropic message, id
//!   [`ID`]).
//! - `stream`: `input` (OpenAI chunks, in order; the stream then ends, or fails with `error`)
//!   → `expected` (the Anthropic events as `{"event", "data"}`, in order); `prompt_estimate`
//!   is the gateway's prompt estimate that `message_start` reports.

use serde_json::Value;

use super::stream::Events;
use super::{request, response};
use crate::fixture_cases::{check_dialect_request, sse_events};

const ID: &str = "msg_test";

fn run_response(name: &str, case: &Value) {
    let input = serde_json::to_vec(&case["input"]).unwrap_or_default();
    let model = case["model"].as_str().unwrap_or("claude");
    let out = response::to_message(&input, model, ID).unwrap_or_else(|| panic!("{name}: None"));
    let out: Value = serde_json::from_slice(&out).unwrap_or_default();
    assert_eq!(out, case["expected"], "{name}");
}

fn run_stream(name: &str, case: &Value) {
    let estimate = case["prompt_estimate"].as_u64().unwrap_or(0);
    let model = case["model"].as_str().unwrap_or("claude");
    let mut t = Events::new(ID.into(), model.into(), estimate);
    let mut out = Vec::new();
    for chunk in case["input"].as_array().into_iter().flatten() {
        out.extend_from_slice(&t.chunk(chunk.to_string().as_bytes()));
    }
    match case["error"].as_str() {
        Some(message) => out.extend_from_slice(&t.error("api_error", message)),
        None => out.extend_from_slice(&t.done()),
    }
    assert_eq!(Value::Array(sse_events(&out)), case["expected"], "{name}");
}

#[test]
fn every_fixture_translates_as_recorded() {
    for (name, case) in crate::fixture_cases::load("src/dialect/anthropic/fixtures", 8) {
        match case["kind"].as_str() {
            Some("request") => {
                check_dialect_request(&name, &case, request::to_chat, request::dropped)
            }
            Some("response") => run_response(&name, &case),
            Some("stream") => run_stream(&name, &case),
            other => panic!("{name}: unknown kind {other:?}"),
        }
    }
}
