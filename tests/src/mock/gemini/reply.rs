//! The `GenerateContentResponse`s the mock answers `generateContent` and
//! `streamGenerateContent` with, built from one [`Output`] (see the parent module for the
//! parts and counts).

use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{non_stream, Generate};
use crate::mock::admit::{Admitted, ApiRequest as _};
use crate::mock::cache::CacheTokens;
use crate::mock::output::{Content, Output};
use crate::mock::script::Fault;
use crate::mock::stream::{sse_stream, Ending};

/// The token counts every response of one answer shares.
struct Counts {
    prompt: u64,
    /// Scripted cache reads (part of `prompt`, as Gemini counts them).
    cached: u64,
    thoughts: u64,
}

impl Counts {
    /// `usageMetadata` once `candidates` answer tokens are out.
    fn usage(&self, candidates: u64) -> Value {
        let mut usage = json!({
            "promptTokenCount": self.prompt,
            "candidatesTokenCount": candidates,
            "totalTokenCount": self.prompt + candidates + self.thoughts,
            "promptTokensDetails": [{ "modality": "TEXT", "tokenCount": self.prompt }],
        });
        if self.thoughts > 0 {
            usage["thoughtsTokenCount"] = json!(self.thoughts);
        }
        if self.cached > 0 {
            usage["cachedContentTokenCount"] = json!(self.cached);
        }
        usage
    }
}

/// `generateContent` (`STREAM` false) and `streamGenerateContent` (true).
pub(super) fn generate<const STREAM: bool>(admitted: &Admitted<Generate<STREAM>>) -> Response {
    let request = &admitted.request;
    let limit = request
        .generation_config
        .as_ref()
        .and_then(|c| c.max_output_tokens);
    let calls = Output::scripted(admitted.tool_calls())
        .or_else(|| request.forced_call().map(|call| vec![call]));
    let output = Output::new(&admitted.behaviour, calls, limit);
    let prompt = request.prompt_tokens();
    let counts = Counts {
        prompt,
        cached: CacheTokens::of(&admitted.behaviour, prompt).read,
        thoughts: output.reasoning_tokens(),
    };
    admitted.bill(prompt, output.completion_tokens());
    let id = format!("mock{:08x}", admitted.seq);
    let response = |parts: Vec<Value>, finish: Option<&str>, candidates: u64| {
        let mut candidate = json!({ "content": { "parts": parts, "role": "model" }, "index": 0 });
        if let Some(f) = finish {
            candidate["finishReason"] = json!(f);
        }
        json!({
            "candidates": [candidate],
            "usageMetadata": counts.usage(candidates),
            "modelVersion": admitted.model,
            "responseId": id,
        })
    };
    let finish = if output.cut() { "MAX_TOKENS" } else { "STOP" };
    if !STREAM {
        let body = response(parts(&output), Some(finish), output.content_tokens()).to_string();
        return non_stream(admitted, body.into_bytes());
    }
    let slices = slices(&output);
    let fault = admitted.behaviour.fault;
    let sse = |v: Value| Bytes::from(format!("data: {v}\r\n\r\n"));
    if fault == Some(Fault::Malformed) {
        let bad = b"data: {\"candidates\": [{\"content\": <malformed>\r\n\r\n";
        return sse_stream(admitted, vec![Bytes::from_static(bad)], Ending::Clean);
    }
    let shown = Fault::shown(fault, &slices);
    let last = (!Fault::cuts(fault)).then(|| shown.len().saturating_sub(1));
    let pieces = shown
        .iter()
        .enumerate()
        .map(|(i, (parts, candidates))| {
            let finish = (Some(i) == last).then_some(finish);
            sse(response(parts.clone(), finish, *candidates))
        })
        .collect();
    let ending = if fault == Some(Fault::ResetMidStream) {
        Ending::Abort
    } else {
        Ending::Clean
    };
    sse_stream(admitted, pieces, ending)
}

/// The parts of a whole answer: the thought, then the text or the calls.
fn parts(output: &Output<'_>) -> Vec<Value> {
    let mut parts: Vec<Value> = output.reasoning_text().map(thought).into_iter().collect();
    match &output.content {
        Content::Text(reply) => parts.push(json!({ "text": reply.text() })),
        Content::Calls(_) => parts.extend(calls(output)),
    }
    parts
}

/// The answer as the stream slices it: each event's parts, and the answer tokens out once it
/// is sent. The thought, then one text part per word (an empty one for an empty reply) or
/// every call at once.
fn slices(output: &Output<'_>) -> Vec<(Vec<Value>, u64)> {
    let mut slices = Vec::new();
    if let Some(text) = output.reasoning_text() {
        slices.push((vec![thought(text)], 0));
    }
    match &output.content {
        Content::Text(reply) if reply.words.is_empty() => {
            slices.push((vec![json!({ "text": "" })], 0));
        }
        Content::Text(reply) => {
            for (i, text) in reply.deltas().enumerate() {
                slices.push((vec![json!({ "text": text })], i as u64 + 1));
            }
        }
        Content::Calls(_) => slices.push((calls(output), output.content_tokens())),
    }
    slices
}

fn thought(text: String) -> Value {
    json!({ "text": text, "thought": true })
}

fn calls(output: &Output<'_>) -> Vec<Value> {
    output
        .calls()
        .iter()
        .map(|c| json!({ "functionCall": { "name": c.name, "args": c.input() } }))
        .collect()
}
