//! Runs every sample in `fixtures/`: one JSON file per case, `kind` says which direction. The
//! samples follow OpenAI's Responses API reference (request items, the response object and
//! the stream events) and the shapes Codex CLI sends.
//!
//! - `request`: `input` (Responses body) → `expected` (internal chat body), or `error` (the
//!   400's message must contain it); `dropped` lists the fields the translation drops.
//! - `response`: `input` (chat completion), `model` → `expected` (the whole `response`
//!   object), or `expected_subset` (the fields named must match).
//! - `stream`: `input` (chat chunks, in order; the stream then ends, or fails with `error`) →
//!   `expected`: the events as `{"event", "data"}`, in order, each `data` holding at least
//!   the fields named; every event's `type` is its event name and its `sequence_number` its
//!   position.

use serde_json::{json, Value};

use super::request;
use super::response::{self, Ids};
use super::stream::Events;
use crate::fixture_cases::{check_dialect_request, sse_events};

fn ids() -> Ids {
    Ids::from_base("test")
}

/// `actual` holds `expected`: objects member by member (extra members allowed), arrays
/// element by element (same length), anything else equal.
fn holds(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|got| holds(got, v))),
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(got, v)| holds(got, v))
        }
        _ => actual == expected,
    }
}

fn run_response(name: &str, case: &Value) {
    let input = serde_json::to_vec(&case["input"]).unwrap_or_default();
    let model = case["model"].as_str().unwrap_or("m");
    let out = response::to_response(&input, model, &ids()).unwrap_or_else(|| panic!("{name}"));
    let out: Value = serde_json::from_slice(&out).unwrap_or_default();
    match case.get("expected") {
        Some(expected) => assert_eq!(&out, expected, "{name}"),
        None => assert!(holds(&out, &case["expected_subset"]), "{name}: {out:#}"),
    }
}

fn run_stream(name: &str, case: &Value) {
    let mut t = Events::new(ids(), case["model"].as_str().unwrap_or("m").into());
    let mut out = Vec::new();
    for chunk in case["input"].as_array().into_iter().flatten() {
        out.extend_from_slice(&t.chunk(chunk.to_string().as_bytes()));
    }
    match case["error"].as_str() {
        Some(message) => out.extend_from_slice(&t.error("server_error", message)),
        None => out.extend_from_slice(&t.done()),
    }
    let got = sse_events(&out);
    let expected = case["expected"].as_array().cloned().unwrap_or_default();
    assert_eq!(got.len(), expected.len(), "{name}: {got:#?}");
    for (i, (got, want)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(got["event"], want["event"], "{name}: event {i}");
        assert_eq!(got["data"]["type"], want["event"], "{name}: event {i} type");
        assert_eq!(
            got["data"]["sequence_number"],
            json!(i),
            "{name}: event {i}"
        );
        assert!(
            holds(&got["data"], &want["data"]),
            "{name}: event {i}: {got:#}"
        );
    }
}

#[test]
fn every_fixture_translates_as_the_reference_shows() {
    for (name, case) in crate::fixture_cases::load("src/dialect/responses/fixtures", 12) {
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

#[test]
fn ids_are_derived_from_the_request_id() {
    let id = uuid::Uuid::from_u128(0xabc);
    let ids = Ids::new(id);
    assert_eq!(ids.response, format!("resp_{}", id.simple()));
    assert_eq!(ids.call(2), format!("fc_{}_2", id.simple()));
}
