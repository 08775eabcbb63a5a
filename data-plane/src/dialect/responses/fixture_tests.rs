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

use super::response::{self, Ids};
use super::stream::Events;
use super::Responses;
use crate::fixture_cases::{check_dialect, dialect_response, dialect_stream};

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
    let out = dialect_response(name, case, "m", |input, model| {
        response::to_response(input, model, &ids())
    });
    match case.get("expected") {
        Some(expected) => assert_eq!(&out, expected, "{name}"),
        None => assert!(holds(&out, &case["expected_subset"]), "{name}: {out:#}"),
    }
}

fn run_stream(name: &str, case: &Value) {
    let events = Events::new(ids(), case["model"].as_str().unwrap_or("m").into());
    let got = dialect_stream(events, case, "server_error");
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
    check_dialect::<Responses>(
        "src/dialect/responses/fixtures",
        12,
        run_response,
        run_stream,
    );
}

#[test]
fn ids_are_derived_from_the_request_id() {
    let id = uuid::Uuid::from_u128(0xabc);
    let ids = Ids::new(id);
    assert_eq!(ids.response, format!("resp_{}", id.simple()));
    assert_eq!(ids.call(2), format!("fc_{}_2", id.simple()));
}
