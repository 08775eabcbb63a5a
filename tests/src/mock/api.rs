//! Provider API handlers: chat completions and embeddings in the OpenAI and Azure dialects,
//! and the models list. Common checks live in [`super::admit`]; this module builds replies.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::admit::{admit, authorize, Admitted, ApiRequest, Dialect, Inbound};
use super::cache::CacheTokens;
use super::embedding::{self, EmbeddingsRequest, DEFAULT_DIMENSIONS, MAX_DIMENSIONS};
use super::error::error_response;
use super::openai::{
    chunk_event, completion_json, json_response, models_json, tool_call_events,
    tool_calls_completion_json, ChatRequest, ChunkKind, CompletionMeta, Usage, DONE_EVENT,
};
use super::output::{Content, Output};
use super::record::{now_ms, RecordHandle};
use super::script::Fault;
use super::stream::{json_reply, sse_stream, Ending};
use super::Shared;

/// The body sent for `malformed` on non-stream requests.
const MALFORMED_BODY: &[u8] =
    b"{\"object\": \"chat.completion\", \"choices\": [ <malformed by mock>";
/// The event sent for `malformed` on streams, after the role chunk.
const MALFORMED_EVENT: &[u8] = b"data: {\"object\": \"chat.completion.chunk\", <malformed>\n\n";

/// Azure's dialect when the route names a deployment, else OpenAI's.
fn openai_or_azure(deployment: Option<&String>) -> Dialect<'_> {
    deployment.map_or(Dialect::OpenAi, |deployment| Dialect::Azure { deployment })
}

/// `GET /v1/models`.
pub(crate) async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(rejected) = authorize(&shared, Dialect::OpenAi, &headers) {
        return rejected.into_response();
    }
    let body = models_json(now_ms() / 1000).to_string();
    json_response(StatusCode::OK, body)
}

/// Any other path: OpenAI's 404.
pub(crate) async fn not_found(method: Method, uri: Uri) -> Response {
    let message = format!("Invalid URL ({method} {})", uri.path());
    error_response(
        StatusCode::NOT_FOUND,
        &message,
        "invalid_request_error",
        None,
    )
}

impl ApiRequest for ChatRequest {
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
    fn stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }
    fn prompt_tokens(&self) -> u64 {
        ChatRequest::prompt_tokens(self)
    }
    /// Scripted tool calls apply: the request declares tools and its conversation does not
    /// end with a tool's result (the answer to an earlier call).
    fn takes_tool_calls(&self) -> bool {
        let answered = self
            .messages
            .last()
            .is_some_and(|m| m.role.as_deref() == Some("tool"));
        self.tools.as_ref().is_some_and(|t| !t.is_empty()) && !answered
    }
}

impl ApiRequest for EmbeddingsRequest {
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
    fn prompt_tokens(&self) -> u64 {
        self.input.items().iter().map(|i| i.tokens()).sum()
    }
    fn validate(&self) -> Result<(), String> {
        if self.input.items().is_empty() {
            return Err("'$.input' is invalid: it must not be an empty array.".to_owned());
        }
        if let Some(d) = self
            .dimensions
            .filter(|d| !(1..=MAX_DIMENSIONS).contains(d))
        {
            return Err(format!("dimensions {d} is not in 1..={MAX_DIMENSIONS}"));
        }
        match self.encoding_format.as_deref() {
            None | Some("float" | "base64") => Ok(()),
            Some(other) => Err(format!(
                "Invalid encoding_format {other:?}: use 'float' or 'base64'."
            )),
        }
    }
}

/// `POST /v1/chat/completions`, and Azure's `POST /openai/deployments/{deployment}/chat/completions`.
pub(crate) async fn chat(deployment: Option<Path<String>>, inbound: Inbound) -> Response {
    let dialect = openai_or_azure(deployment.as_deref());
    let admitted = match admit::<ChatRequest>(&inbound, dialect).await {
        Ok(admitted) => admitted,
        Err(rejected) => return rejected.into_response(),
    };
    let calls = Output::scripted(admitted.tool_calls());
    let output = Output::new(&admitted.behaviour, calls, admitted.request.token_limit());
    let prompt_tokens = admitted.request.prompt_tokens();
    let cache = CacheTokens::of(&admitted.behaviour, prompt_tokens);
    let usage = Usage::new(prompt_tokens, output.content_tokens())
        .with_cached(cache.read)
        .with_reasoning(output.reasoning_tokens());
    admitted
        .record
        .set_completion_tokens(usage.completion_tokens);
    if !admitted.request.stream() || admitted.request.include_usage() {
        admitted.report_usage(usage.prompt_tokens, usage.completion_tokens);
    }
    let id = format!("chatcmpl-mock{:08x}", admitted.seq);
    let meta = CompletionMeta {
        id: &id,
        created: now_ms() / 1000,
        model: &admitted.model,
    };
    let reasoning = output.reasoning_text();
    let built = match (admitted.request.stream(), &output.content) {
        (true, _) => stream_response(&admitted, meta, &output, usage),
        (false, Content::Calls(calls)) => {
            tool_calls_completion_json(meta, admitted.seq, reasoning.as_deref(), calls, usage)
                .map(|json| non_stream_response(&admitted, json))
        }
        (false, Content::Text(reply)) => completion_json(
            meta,
            &reply.text(),
            reasoning.as_deref(),
            reply.finish_reason,
            usage,
        )
        .map(|json| non_stream_response(&admitted, json)),
    };
    built.unwrap_or_else(|_| serialization_failed(&admitted.record))
}

/// `POST /v1/embeddings`, and Azure's `POST /openai/deployments/{deployment}/embeddings`.
pub(crate) async fn embeddings(deployment: Option<Path<String>>, inbound: Inbound) -> Response {
    let dialect = openai_or_azure(deployment.as_deref());
    let admitted = match admit::<EmbeddingsRequest>(&inbound, dialect).await {
        Ok(admitted) => admitted,
        Err(rejected) => return rejected.into_response(),
    };
    let request = &admitted.request;
    let dimensions = request.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
    let base64 = request.encoding_format.as_deref() == Some("base64");
    let items = request.input.items();
    match embedding::response_json(&items, dimensions, base64, &admitted.model) {
        Ok((json, prompt_tokens)) => {
            admitted.report_usage(prompt_tokens, 0);
            non_stream_response(&admitted, json)
        }
        Err(_) => serialization_failed(&admitted.record),
    }
}

/// A complete JSON body, or the scripted body fault applied to it.
pub(crate) fn non_stream_response<T>(admitted: &Admitted<T>, json: Vec<u8>) -> Response {
    json_reply(admitted, json, MALFORMED_BODY)
}

/// An SSE stream: role chunk, the reasoning chunk, one chunk per word (or two per tool call),
/// finish chunk, usage chunk, `[DONE]`.
fn stream_response(
    admitted: &Admitted<ChatRequest>,
    meta: CompletionMeta<'_>,
    output: &Output<'_>,
    usage: Usage,
) -> Result<Response, serde_json::Error> {
    let include_usage = admitted.request.include_usage();
    let fault = admitted.behaviour.fault;
    let event = |kind: ChunkKind<'_>| chunk_event(meta, kind, include_usage).map(Bytes::from);
    let mut pieces = vec![event(ChunkKind::Role)?];
    if let Some(reasoning) = output.reasoning_text() {
        pieces.push(event(ChunkKind::Reasoning(&reasoning))?);
    }
    let mut ending = Ending::Clean;
    match &output.content {
        _ if fault == Some(Fault::Malformed) => {
            pieces.push(Bytes::from_static(MALFORMED_EVENT));
            pieces.push(Bytes::from_static(DONE_EVENT));
        }
        Content::Calls(calls) => {
            for event in tool_call_events(meta, admitted.seq, calls, include_usage)? {
                pieces.push(Bytes::from(event));
            }
            pieces.push(event(ChunkKind::Finish("tool_calls"))?);
            if include_usage {
                pieces.push(event(ChunkKind::Usage(usage))?);
            }
            pieces.push(Bytes::from_static(DONE_EVENT));
        }
        Content::Text(reply) => {
            let deltas: Vec<_> = reply.deltas().collect();
            for text in Fault::shown(fault, &deltas) {
                pieces.push(event(ChunkKind::Content(text))?);
            }
            if fault == Some(Fault::ResetMidStream) {
                ending = Ending::Abort;
            } else if !Fault::cuts(fault) {
                pieces.push(event(ChunkKind::Finish(reply.finish_reason))?);
                if include_usage {
                    pieces.push(event(ChunkKind::Usage(usage))?);
                }
                pieces.push(Bytes::from_static(DONE_EVENT));
            }
        }
    }
    Ok(sse_stream(admitted, pieces, ending))
}

fn serialization_failed(record: &RecordHandle) -> Response {
    record.completed();
    let message = "The mock provider failed to serialize its response.";
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        message,
        "server_error",
        None,
    )
}
