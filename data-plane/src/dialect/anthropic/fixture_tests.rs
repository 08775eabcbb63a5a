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
use super::{response, Messages};
use crate::fixture_cases::{check_dialect, dialect_response, dialect_stream};

const ID: &str = "msg_test";

fn run_response(name: &str, case: &Value) {
    let out = dialect_response(name, case, "claude", |input, model| {
        response::to_message(input, model, ID)
    });
    assert_eq!(out, case["expected"], "{name}");
}

fn run_stream(name: &str, case: &Value) {
    let estimate = case["prompt_estimate"].as_u64().unwrap_or(0);
    let model = case["model"].as_str().unwrap_or("claude");
    let events = Events::new(ID.into(), model.into(), estimate);
    let got = dialect_stream(events, case, "api_error");
    assert_eq!(Value::Array(got), case["expected"], "{name}");
}

#[test]
fn every_fixture_translates_as_recorded() {
    check_dialect::<Messages>(
        "src/dialect/anthropic/fixtures",
        8,
        run_response,
        run_stream,
    );
}
