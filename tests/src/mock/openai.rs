//! OpenAI wire format: the request fields the mock reads, and the exact JSON it answers with
//! (`chat.completion`, `chat.completion.chunk`, the embeddings list, the models list and the
//! `{"error":{...}}` error object).
//!
//! Responses are serialized from borrowed structs straight to bytes; no `serde_json::Value` is
//! built on the hot path.

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::output::Call;
use super::tokens::ContentWords;

/// `system_fingerprint` of every completion and chunk.
pub const SYSTEM_FINGERPRINT: &str = "fp_mock";

/// The chat request fields the mock uses; everything else is accepted and ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest {
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    /// Only counted: scripted tool calls answer only a request that declares tools.
    #[serde(default)]
    pub tools: Option<Vec<serde::de::IgnoredAny>>,
}

impl ChatRequest {
    pub(crate) fn prompt_tokens(&self) -> u64 {
        self.messages
            .iter()
            .map(|m| m.content.unwrap_or_default().0)
            .sum()
    }

    /// The tighter of `max_tokens` and `max_completion_tokens`.
    pub(crate) fn token_limit(&self) -> Option<u64> {
        match (self.max_tokens, self.max_completion_tokens) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatMessage {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<ContentWords>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// Token usage of a chat completion.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Only when the scripted cache reads are some.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptDetails>,
    /// Only when the answer reasoned (scripted reasoning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<ReasoningTokens>,
}

/// `cached_tokens`: prompt tokens read from the cache (part of `prompt_tokens`, as OpenAI
/// counts them).
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct PromptDetails {
    pub cached_tokens: u64,
}

/// `completion_tokens_details`: the reasoning tokens inside `completion_tokens`.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct ReasoningTokens {
    pub reasoning_tokens: u64,
}

impl Usage {
    pub(crate) fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details: None,
            completion_tokens_details: None,
        }
    }

    /// With `cached` prompt tokens read from the cache (none: unchanged).
    pub(crate) fn with_cached(mut self, cached: u64) -> Self {
        if cached > 0 {
            self.prompt_tokens_details = Some(PromptDetails {
                cached_tokens: cached,
            });
        }
        self
    }

    /// Adds `reasoning` tokens to the completion (and reports them as reasoning).
    pub(crate) fn with_reasoning(mut self, reasoning: u64) -> Self {
        if reasoning > 0 {
            self.completion_tokens += reasoning;
            self.total_tokens += reasoning;
            self.completion_tokens_details = Some(ReasoningTokens {
                reasoning_tokens: reasoning,
            });
        }
        self
    }
}

/// Fields shared by a completion and all chunks of one stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompletionMeta<'a> {
    pub id: &'a str,
    pub created: u64,
    pub model: &'a str,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [CompletionChoice<'a>; 1],
    usage: Usage,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: &'a str,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
}

/// A non-stream `chat.completion` body.
pub(crate) fn completion_json(
    meta: CompletionMeta<'_>,
    content: &str,
    reasoning: Option<&str>,
    finish_reason: &str,
    usage: Usage,
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Completion {
        id: meta.id,
        object: "chat.completion",
        created: meta.created,
        model: meta.model,
        choices: [CompletionChoice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content,
                refusal: None,
                reasoning_content: reasoning,
            },
            logprobs: None,
            finish_reason,
        }],
        usage,
        system_fingerprint: SYSTEM_FINGERPRINT,
    })
}

/// What one `chat.completion.chunk` carries.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ChunkKind<'a> {
    /// First chunk: `delta: {"role":"assistant","content":""}`.
    Role,
    /// `delta: {"content": ...}`.
    Content(&'a str),
    /// `delta: {"reasoning_content": ...}`.
    Reasoning(&'a str),
    /// Empty delta with the finish reason.
    Finish(&'a str),
    /// `choices: []` with the usage (only with `stream_options.include_usage`).
    Usage(Usage),
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    /// Absent without `include_usage`; `null` on every chunk but the usage chunk with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
}

/// One SSE event `data: <chunk json>\n\n`.
pub(crate) fn chunk_event(
    meta: CompletionMeta<'_>,
    kind: ChunkKind<'_>,
    include_usage: bool,
) -> Result<Vec<u8>, serde_json::Error> {
    let empty = Delta {
        role: None,
        content: None,
        reasoning_content: None,
    };
    let (delta, finish_reason, usage) = match kind {
        ChunkKind::Role => (
            Delta {
                role: Some("assistant"),
                content: Some(""),
                reasoning_content: None,
            },
            None,
            None,
        ),
        ChunkKind::Content(text) => (
            Delta {
                content: Some(text),
                ..empty
            },
            None,
            None,
        ),
        ChunkKind::Reasoning(text) => (
            Delta {
                reasoning_content: Some(text),
                ..empty
            },
            None,
            None,
        ),
        ChunkKind::Finish(reason) => (empty, Some(reason), None),
        ChunkKind::Usage(usage) => (empty, None, Some(usage)),
    };
    let choice = ChunkChoice {
        index: 0,
        delta,
        logprobs: None,
        finish_reason,
    };
    let choices = match kind {
        ChunkKind::Usage(_) => &[][..],
        _ => std::slice::from_ref(&choice),
    };
    let mut out = b"data: ".to_vec();
    serde_json::to_writer(
        &mut out,
        &Chunk {
            id: meta.id,
            object: "chat.completion.chunk",
            created: meta.created,
            model: meta.model,
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices,
            usage: include_usage.then_some(usage),
        },
    )?;
    out.extend_from_slice(b"\n\n");
    Ok(out)
}

/// The id of the `i`th tool call of answer `seq`.
pub(crate) fn call_id(seq: u64, i: usize) -> String {
    format!("call_mock{seq:08x}{i}")
}

/// A non-stream `chat.completion` that calls `calls` (`finish_reason` `tool_calls`), after
/// its `reasoning`, if any.
pub(crate) fn tool_calls_completion_json(
    meta: CompletionMeta<'_>,
    seq: u64,
    reasoning: Option<&str>,
    calls: &[Call<'_>],
    usage: Usage,
) -> Result<Vec<u8>, serde_json::Error> {
    let calls: Vec<_> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| serde_json::json!({"id": call_id(seq, i), "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
        .collect();
    let mut message = serde_json::json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": calls});
    if let Some(reasoning) = reasoning {
        message["reasoning_content"] = serde_json::json!(reasoning);
    }
    serde_json::to_vec(&serde_json::json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": "tool_calls"}],
        "usage": usage,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }))
}

/// The stream events that call `calls`: per call, one chunk naming it and one with its
/// arguments (as OpenAI streams them: `index`, then the argument pieces).
pub(crate) fn tool_call_events(
    meta: CompletionMeta<'_>,
    seq: u64,
    calls: &[Call<'_>],
    include_usage: bool,
) -> Result<Vec<Vec<u8>>, serde_json::Error> {
    let mut events = Vec::with_capacity(calls.len() * 2);
    for (i, c) in calls.iter().enumerate() {
        for delta in [
            serde_json::json!({"index": i, "id": call_id(seq, i), "type": "function", "function": {"name": c.name, "arguments": ""}}),
            serde_json::json!({"index": i, "function": {"arguments": c.arguments}}),
        ] {
            let mut chunk = serde_json::json!({
                "id": meta.id,
                "object": "chat.completion.chunk",
                "created": meta.created,
                "model": meta.model,
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [{"index": 0, "delta": {"tool_calls": [delta]}, "logprobs": null, "finish_reason": null}],
            });
            if include_usage {
                chunk["usage"] = serde_json::Value::Null;
            }
            let mut out = b"data: ".to_vec();
            serde_json::to_writer(&mut out, &chunk)?;
            out.extend_from_slice(b"\n\n");
            events.push(out);
        }
    }
    Ok(events)
}

/// The SSE terminator.
pub(crate) const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

/// `GET /v1/models` body: a fixed list.
pub(crate) fn models_json(created: u64) -> serde_json::Value {
    let model = |id: &str| serde_json::json!({"id": id, "object": "model", "created": created, "owned_by": "switchyard-mock"});
    serde_json::json!({
        "object": "list",
        "data": [model("mock-chat"), model("mock-embedding")],
    })
}

/// A response with `Content-Type: application/json`.
pub(crate) fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const META: CompletionMeta<'static> = CompletionMeta {
        id: "chatcmpl-1",
        created: 7,
        model: "m",
    };

    fn event_json(kind: ChunkKind<'_>, include_usage: bool) -> Value {
        let bytes = chunk_event(META, kind, include_usage).unwrap();
        let text = std::str::from_utf8(&bytes).unwrap();
        let json = text
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn chunk_shapes() {
        let role = event_json(ChunkKind::Role, false);
        assert_eq!(role["object"], "chat.completion.chunk");
        assert_eq!(
            role["choices"][0]["delta"],
            json!({"role":"assistant","content":""})
        );
        assert!(role.get("usage").is_none());
        let word = event_json(ChunkKind::Content(" hi"), true);
        assert_eq!(word["choices"][0]["delta"], json!({"content":" hi"}));
        assert_eq!(word["usage"], Value::Null);
        assert!(word.get("usage").is_some());
        let finish = event_json(ChunkKind::Finish("length"), true);
        assert_eq!(finish["choices"][0]["delta"], json!({}));
        assert_eq!(finish["choices"][0]["finish_reason"], "length");
        let usage = event_json(ChunkKind::Usage(Usage::new(2, 3)), true);
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens":2,"completion_tokens":3,"total_tokens":5})
        );
    }

    #[test]
    fn completion_shape() {
        let body = completion_json(META, "a b", None, "stop", Usage::new(1, 2)).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(
            v["choices"][0],
            json!({"index":0,"message":{"role":"assistant","content":"a b","refusal":null},
                   "logprobs":null,"finish_reason":"stop"})
        );
        assert_eq!(v["usage"]["total_tokens"], 3);
        let usage = Usage::new(1, 2).with_reasoning(4);
        let body = completion_json(META, "a b", Some("think hard"), "stop", usage).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["choices"][0]["message"]["reasoning_content"],
            "think hard"
        );
        assert_eq!(v["usage"]["completion_tokens"], 6);
        assert_eq!(
            v["usage"]["completion_tokens_details"]["reasoning_tokens"],
            4
        );
        let thought = event_json(ChunkKind::Reasoning("hmm"), false);
        assert_eq!(
            thought["choices"][0]["delta"],
            json!({"reasoning_content": "hmm"})
        );
        assert_eq!(v["system_fingerprint"], SYSTEM_FINGERPRINT);
    }
}
