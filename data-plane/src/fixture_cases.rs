//! Test-only: the JSON wire samples of a translation module (`fixtures/*.json`), read in name
//! order, so every table test loads them the same way.

use std::path::Path;

use serde_json::Value;

/// Every `*.json` case below `dir` (relative to the crate root) as `(file name, case)`; at
/// least `min` of them, so a fixture directory that goes missing fails loudly.
pub fn load(dir: &str, min: usize) -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= min, "fixtures missing in {}", dir.display());
    paths
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            let case = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, case)
        })
        .collect()
}

/// A case's `in` as a request body.
pub fn body(v: &Value) -> crate::providers::JsonBody {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not an object: {e}"))
}

/// A `chat_request` case: `translate(in)` must equal `out`.
pub fn check_request<E: std::fmt::Display>(
    name: &str,
    case: &Value,
    translate: impl Fn(&crate::providers::JsonBody) -> Result<Value, E>,
) {
    let out = translate(&body(&case["in"])).unwrap_or_else(|e| panic!("{name}: refused: {e}"));
    assert_eq!(out, case["out"], "{name}");
}

/// A `chat_response` case: `translate(in)` must equal `out`, and the reported usage must add
/// up to `out.usage.total_tokens`.
pub fn check_response<E: std::fmt::Debug>(
    name: &str,
    case: &Value,
    translate: impl Fn(&Value) -> Result<(Value, Option<crate::providers::Usage>), E>,
) {
    let expected = &case["out"];
    let (out, usage) = translate(&case["in"]).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    assert_eq!(&out, expected, "{name}");
    assert_eq!(
        usage.map(|u| u.prompt_tokens + u.completion_tokens),
        expected["usage"]["total_tokens"].as_u64(),
        "{name}: reported usage"
    );
}

/// A dialect `request` case: `input` (the client's body) → `expected` (the internal chat
/// body), or `error` (the 400's message must contain it); `dropped` lists the fields the
/// translation drops (none when absent).
pub fn check_dialect_request(
    name: &str,
    case: &Value,
    translate: fn(
        crate::providers::JsonBody,
    ) -> Result<crate::providers::JsonBody, crate::error::ApiError>,
    dropped: fn(&crate::providers::JsonBody) -> Vec<String>,
) {
    let input = body(&case["input"]);
    let names = serde_json::to_value(dropped(&input)).unwrap_or_default();
    let none = Value::Array(Vec::new());
    assert_eq!(
        &names,
        case.get("dropped").unwrap_or(&none),
        "{name}: dropped fields"
    );
    match (translate(input), case.get("error")) {
        (Ok(out), None) => {
            let out = serde_json::to_value(out).unwrap_or_default();
            assert_eq!(out, case["expected"], "{name}");
        }
        (Err(e), Some(expected)) => {
            let text = e.to_string();
            assert!(
                text.contains(expected.as_str().unwrap_or("?")),
                "{name}: {text}"
            );
            assert_eq!(e.status(), http::StatusCode::BAD_REQUEST, "{name}");
        }
        (got, _) => panic!("{name}: unexpected {got:?}"),
    }
}

/// Checks every case of dialect `D` in `dir` (at least `min` of them) by its `kind`:
/// `request` with [`check_dialect_request`], `response` and `stream` with the dialect's own
/// checks; an unknown `kind` fails.
pub fn check_dialect<D: crate::dialect::ChatDialect>(
    dir: &str,
    min: usize,
    response: fn(&str, &Value),
    stream: fn(&str, &Value),
) {
    for (name, case) in load(dir, min) {
        match case["kind"].as_str() {
            Some("request") => check_dialect_request(&name, &case, D::request, D::dropped),
            Some("response") => response(&name, &case),
            Some("stream") => stream(&name, &case),
            other => panic!("{name}: unknown kind {other:?}"),
        }
    }
}

/// A dialect `response` case: `input` (an internal chat completion) through `translate` with
/// the case's `model` (`default_model` when absent), as JSON.
pub fn dialect_response(
    name: &str,
    case: &Value,
    default_model: &str,
    translate: impl Fn(&[u8], &str) -> Option<bytes::Bytes>,
) -> Value {
    let input = serde_json::to_vec(&case["input"]).unwrap_or_default();
    let model = case["model"].as_str().unwrap_or(default_model);
    let out = translate(&input, model).unwrap_or_else(|| panic!("{name}: None"));
    serde_json::from_slice(&out).unwrap_or_default()
}

/// A dialect `stream` case: `input` (internal chunks, in order) through the dialect's
/// `writer`, then the end, or a failure with `error` (written with `code`), as
/// `{"event", "data"}` pairs.
pub fn dialect_stream<W: crate::dialect::frames::EventWriter>(
    mut writer: W,
    case: &Value,
    code: &str,
) -> Vec<Value> {
    let mut out = Vec::new();
    for chunk in case["input"].as_array().into_iter().flatten() {
        out.extend_from_slice(&writer.chunk(chunk.to_string().as_bytes()));
    }
    match case["error"].as_str() {
        Some(message) => out.extend_from_slice(&writer.error(code, message)),
        None => out.extend_from_slice(&writer.done()),
    }
    sse_events(&out)
}

/// SSE frames (`event:` and `data:` lines) back into `{"event", "data"}` pairs, in order.
pub fn sse_events(frames: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(frames)
        .split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let mut lines = f.lines();
            let event = lines.next().unwrap_or_default().trim_start_matches("event: ");
            let data = lines.next().unwrap_or_default().trim_start_matches("data: ");
            serde_json::json!({"event": event, "data": serde_json::from_str::<Value>(data).unwrap_or_default()})
        })
        .collect()
}
