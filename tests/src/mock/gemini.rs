//! Gemini API (AI Studio) routes of the mock, in Gemini's own wire format:
//! `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse` and
//! `:batchEmbedContents`, authenticated by `x-goog-api-key`.
//!
//! They go through the same admission as the OpenAI routes ([`super::admit`]: recording,
//! scripting by `x-mock-*` headers and `/__mock/script` — a script's `model` matches the model
//! in the path — latency, faults), and count tokens by the same rules: prompt = words of the
//! text parts of `contents` and `systemInstruction`; reply = the scripted reply (or
//! [`DEFAULT_REPLY`]) cut to `generationConfig.maxOutputTokens` words (`MAX_TOKENS`).
//!
//! Tool calls: a scripted one (the first of `x-mock-tool-calls` / a script's `tool_calls`) is
//! the answer to a request that declares functions, unless its last turn carries a
//! `functionResponse`: one `functionCall` with the scripted name and args, costing one token
//! plus the words of the args' JSON. Otherwise, when
//! `toolConfig.functionCallingConfig.mode` is `ANY`, the answer is one
//! `functionCall` of the first allowed (else first declared) function with
//! `args: {"query": <text of the last user turn>}`, `finishReason: STOP` and 1 completion
//! token.
//!
//! Streams (`alt=sse`): one `data: <GenerateContentResponse>\r\n\r\n` event per reply word
//! (words after the first carry a leading space), each with the running `usageMetadata`; the
//! last carries `finishReason`. There is no `[DONE]`: the body ends.
//!
//! Errors use Gemini's `{"error":{"code","message","status"}}`; a wrong or missing key is
//! Gemini's 400 `INVALID_ARGUMENT` with reason `API_KEY_INVALID`.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::admit::{admit, Admitted, ApiRequest, Dialect, Inbound};
use super::cache::CacheTokens;
use super::embedding::{self, Item, DEFAULT_DIMENSIONS, MAX_DIMENSIONS};
use super::google_error::{error_from, gemini_error};
use super::script::Fault;
use super::stream::{json_reply, sse_stream, Ending};
use super::tokens::{count_words, Reply, DEFAULT_REPLY};

/// A `GenerateContentRequest` as `countTokens` carries it.
pub(crate) type GenerateRequest = Generate<false>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    #[serde(default)]
    text: Option<String>,
    /// Only whether it is there: a tool's result ends a scripted round trip.
    #[serde(default)]
    function_response: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Content {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    parts: Vec<Part>,
}

impl Content {
    pub(crate) fn words(&self) -> u64 {
        self.parts
            .iter()
            .filter_map(|p| p.text.as_deref())
            .map(count_words)
            .sum()
    }

    fn text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| p.text.as_deref())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(default)]
    max_output_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tool {
    #[serde(default)]
    function_declarations: Vec<FunctionDeclaration>,
}

#[derive(Debug, Deserialize)]
struct FunctionDeclaration {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig {
    #[serde(default)]
    function_calling_config: Option<CallingConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallingConfig {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    allowed_function_names: Vec<String>,
}

/// A `GenerateContentRequest`; `STREAM` tells which action it arrived on.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Generate<const STREAM: bool> {
    contents: Vec<Content>,
    #[serde(default)]
    system_instruction: Option<Content>,
    #[serde(default)]
    generation_config: Option<GenerationConfig>,
    #[serde(default)]
    tools: Vec<Tool>,
    #[serde(default)]
    tool_config: Option<ToolConfig>,
}

impl<const STREAM: bool> Generate<STREAM> {
    /// The function to call when the request forces one (`mode: ANY`).
    fn forced_call(&self) -> Option<&str> {
        let config = self
            .tool_config
            .as_ref()?
            .function_calling_config
            .as_ref()?;
        if config.mode.as_deref() != Some("ANY") {
            return None;
        }
        config
            .allowed_function_names
            .first()
            .map(String::as_str)
            .or_else(|| {
                self.tools
                    .iter()
                    .flat_map(|t| &t.function_declarations)
                    .map(|f| f.name.as_str())
                    .next()
            })
    }

    fn last_user_text(&self) -> String {
        self.contents
            .iter()
            .rev()
            .find(|c| c.role.as_deref() != Some("model"))
            .map(Content::text)
            .unwrap_or_default()
    }
}

impl<const STREAM: bool> ApiRequest for Generate<STREAM> {
    /// Scripted tool calls apply: functions are declared and the last turn carries no
    /// function response.
    fn takes_tool_calls(&self) -> bool {
        self.tools
            .iter()
            .any(|t| !t.function_declarations.is_empty())
            && !self
                .contents
                .last()
                .is_some_and(|c| c.parts.iter().any(|p| p.function_response.is_some()))
    }
    fn stream(&self) -> bool {
        STREAM
    }
    fn prompt_tokens(&self) -> u64 {
        self.contents.iter().map(Content::words).sum::<u64>()
            + self.system_instruction.as_ref().map_or(0, Content::words)
    }
    fn validate(&self) -> Result<(), String> {
        if self.contents.is_empty() {
            return Err("* GenerateContentRequest.contents: contents is not specified".into());
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmbedRequest {
    #[serde(default)]
    model: Option<String>,
    content: Content,
    #[serde(default)]
    output_dimensionality: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct BatchEmbed {
    requests: Vec<EmbedRequest>,
}

impl ApiRequest for BatchEmbed {
    fn prompt_tokens(&self) -> u64 {
        self.requests.iter().map(|r| r.content.words()).sum()
    }
    fn validate(&self) -> Result<(), String> {
        if self.requests.is_empty() {
            return Err("* BatchEmbedContentsRequest.requests: requests is not specified".into());
        }
        if let Some(d) = self
            .requests
            .iter()
            .filter_map(|r| r.output_dimensionality)
            .find(|d| !(1..=MAX_DIMENSIONS).contains(d))
        {
            return Err(format!(
                "outputDimensionality {d} is not in 1..={MAX_DIMENSIONS}"
            ));
        }
        Ok(())
    }
}

/// `POST /v1beta/models/{model}:{action}`.
pub(crate) async fn models_action(Path(target): Path<String>, inbound: Inbound) -> Response {
    let Some((model, action)) = target.rsplit_once(':') else {
        return not_found(&target);
    };
    let dialect = Dialect::Gemini { model };
    match action {
        "countTokens" => super::count::gemini(&inbound, dialect).await,
        "batchEmbedContents" => google_answer(&inbound, dialect, embed).await,
        _ => generate_action(&inbound, dialect, action)
            .await
            .unwrap_or_else(|| not_found(&target)),
    }
}

/// `generateContent` / `streamGenerateContent` for the Gemini API and Vertex AI routes (the
/// dialect says which auth admission checks); `None` for any other action.
pub(crate) async fn generate_action(
    inbound: &Inbound,
    dialect: Dialect<'_>,
    action: &str,
) -> Option<Response> {
    Some(match action {
        "generateContent" => google_answer(inbound, dialect, generate::<false>).await,
        "streamGenerateContent" => {
            if !inbound
                .uri
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "alt=sse"))
            {
                return Some(gemini_error(
                    StatusCode::BAD_REQUEST,
                    "the mock streams with alt=sse only",
                    None,
                ));
            }
            google_answer(inbound, dialect, generate::<true>).await
        }
        _ => return None,
    })
}

/// Admits a Gemini API or Vertex AI request and answers it with `reply`, or with the Google
/// error its rejection calls for.
pub(crate) async fn google_answer<T: ApiRequest>(
    inbound: &Inbound,
    dialect: Dialect<'_>,
    reply: fn(&Admitted<T>) -> Response,
) -> Response {
    admit::<T>(inbound, dialect)
        .await
        .map_or_else(error_from, |admitted| reply(&admitted))
}

/// What one answer holds: reply words or a function call, and the token counts.
struct Answer<'a> {
    reply: Reply<'a>,
    call: Option<Value>,
    prompt: u64,
    completion: u64,
    /// Scripted cache reads (part of `prompt`, as Gemini counts them).
    cached: u64,
}

fn generate<const STREAM: bool>(admitted: &Admitted<Generate<STREAM>>) -> Response {
    let request = &admitted.request;
    let reply_text = admitted.behaviour.reply.as_deref().unwrap_or(DEFAULT_REPLY);
    let limit = request
        .generation_config
        .as_ref()
        .and_then(|c| c.max_output_tokens);
    let scripted = admitted.tool_calls().and_then(<[_]>::first);
    let call = match scripted {
        Some(c) => Some((json!({ "functionCall": { "name": c.name, "args": c.arguments } }), c.tokens())),
        None => request.forced_call().map(|name| {
            (json!({ "functionCall": { "name": name, "args": { "query": request.last_user_text() } } }), 1)
        }),
    };
    let reply = Reply::new(reply_text, limit);
    let (call, completion) = match call {
        Some((call, tokens)) => (Some(call), tokens),
        None => (None, reply.completion_tokens()),
    };
    let answer = Answer {
        completion,
        prompt: request.prompt_tokens(),
        cached: CacheTokens::of(&admitted.behaviour, request.prompt_tokens()).read,
        reply,
        call,
    };
    admitted.bill(answer.prompt, answer.completion);
    let id = format!("mock{:08x}", admitted.seq);
    let event = |parts: Value, finish: Option<&str>, completion: u64| {
        let mut candidate = json!({ "content": { "parts": parts, "role": "model" }, "index": 0 });
        if let (Some(f), Some(c)) = (finish, candidate.as_object_mut()) {
            c.insert("finishReason".into(), json!(f));
        }
        let mut usage = json!({
            "promptTokenCount": answer.prompt,
            "candidatesTokenCount": completion,
            "totalTokenCount": answer.prompt + completion,
            "promptTokensDetails": [{ "modality": "TEXT", "tokenCount": answer.prompt }],
        });
        if answer.cached > 0 {
            usage["cachedContentTokenCount"] = json!(answer.cached);
        }
        json!({
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": admitted.model,
            "responseId": id,
        })
    };
    let finish = if answer.reply.finish_reason == "length" && answer.call.is_none() {
        "MAX_TOKENS"
    } else {
        "STOP"
    };
    if !STREAM {
        let parts = match &answer.call {
            Some(call) => json!([call]),
            None => json!([{ "text": answer.reply.text() }]),
        };
        let body = event(parts, Some(finish), answer.completion).to_string();
        return non_stream(admitted, body.into_bytes());
    }
    let sse = |v: Value| Bytes::from(format!("data: {v}\r\n\r\n"));
    let mut pieces = Vec::new();
    let fault = admitted.behaviour.fault;
    let mut ending = Ending::Clean;
    if fault == Some(Fault::Malformed) {
        pieces.push(Bytes::from_static(
            b"data: {\"candidates\": [{\"content\": <malformed>\r\n\r\n",
        ));
    } else if let Some(call) = &answer.call {
        // A call arrives whole: a cut stream sends none of it.
        match fault {
            None => pieces.push(sse(event(json!([call]), Some(finish), answer.completion))),
            Some(Fault::ResetMidStream) => ending = Ending::Abort,
            Some(_) => {}
        }
    } else {
        let words = &answer.reply.words;
        let cut = Fault::cuts(fault);
        for (i, word) in Fault::shown(fault, words).iter().enumerate() {
            let text = if i == 0 {
                (*word).to_owned()
            } else {
                format!(" {word}")
            };
            let last = !cut && i + 1 == words.len();
            pieces.push(sse(event(
                json!([{ "text": text }]),
                last.then_some(finish),
                i as u64 + 1,
            )));
        }
        if words.is_empty() && !cut {
            pieces.push(sse(event(json!([{ "text": "" }]), Some(finish), 0)));
        }
        if fault == Some(Fault::ResetMidStream) {
            ending = Ending::Abort;
        }
    }
    sse_stream(admitted, pieces, ending)
}

fn embed(admitted: &Admitted<BatchEmbed>) -> Response {
    let expected = format!("models/{}", admitted.model);
    if let Some(other) = admitted
        .request
        .requests
        .iter()
        .filter_map(|r| r.model.as_deref())
        .find(|m| *m != expected)
    {
        admitted.record.completed();
        let message = format!(
            "* BatchEmbedContentsRequest.requests: model `{other}` does not match the URL model `{expected}`"
        );
        return gemini_error(StatusCode::BAD_REQUEST, &message, None);
    }
    let embeddings: Vec<Value> = admitted
        .request
        .requests
        .iter()
        .map(|r| {
            let text = r.content.text();
            let dims = r.output_dimensionality.unwrap_or(DEFAULT_DIMENSIONS);
            json!({ "values": embedding::vector(Item::Text(&text), dims) })
        })
        .collect();
    admitted.report_usage(admitted.request.prompt_tokens(), 0);
    let body = json!({ "embeddings": embeddings }).to_string();
    non_stream(admitted, body.into_bytes())
}

/// A complete JSON body, or the scripted body fault applied to it.
pub(crate) fn non_stream<T>(admitted: &Admitted<T>, json: Vec<u8>) -> Response {
    json_reply(admitted, json, b"{\"candidates\": [ <malformed by mock>")
}

fn not_found(target: &str) -> Response {
    let message = format!("models/{target} is not found for API version v1beta");
    gemini_error(StatusCode::NOT_FOUND, &message, None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{json, Value};

    use super::super::test_client::TestMock;

    #[tokio::test]
    async fn gemini_routes_speak_the_gemini_wire_format() {
        const KEY: (&str, &str) = ("x-goog-api-key", "g-key");
        let mock = TestMock::start(Some("g-key")).await;
        let url = |action: &str| format!("/v1beta/models/gem-1:{action}");
        let body = json!({
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "contents": [{"role": "user", "parts": [{"text": "hi there you"}]}],
            "generationConfig": {"maxOutputTokens": 2},
        });

        let wrong = mock
            .post(
                &url("generateContent"),
                &[("x-goog-api-key", "nope")],
                &body,
            )
            .await;
        assert_eq!(wrong.status(), 400);
        let wrong: Value = wrong.json().await.unwrap();
        assert_eq!(wrong["error"]["details"][0]["reason"], "API_KEY_INVALID");

        let ok = mock.post_json(&url("generateContent"), &[KEY], &body).await;
        assert_eq!(
            ok["candidates"][0]["content"]["parts"][0]["text"],
            "Hello from"
        );
        assert_eq!(ok["candidates"][0]["finishReason"], "MAX_TOKENS");
        assert_eq!(ok["usageMetadata"]["promptTokenCount"], 5);
        assert_eq!(ok["usageMetadata"]["candidatesTokenCount"], 2);
        assert_eq!(ok["modelVersion"], "gem-1");

        // A script for the model in the path applies; the stream ends after the finish reason.
        mock.script(&json!({"model": "gem-1", "reply": "a b c"}))
            .await;
        let stream = format!("{}?alt=sse", url("streamGenerateContent"));
        let text = mock
            .post(
                &stream,
                &[KEY],
                &json!({"contents": [{"parts": [{"text": "x"}]}]}),
            )
            .await
            .text()
            .await
            .unwrap();
        let events: Vec<Value> = text
            .split("\r\n\r\n")
            .filter(|e| !e.is_empty())
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
            .collect();
        let words: Vec<&str> = events
            .iter()
            .map(|e| {
                e["candidates"][0]["content"]["parts"][0]["text"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(words, ["a", " b", " c"]);
        assert_eq!(events[2]["candidates"][0]["finishReason"], "STOP");
        assert!(events[1]["candidates"][0].get("finishReason").is_none());
        assert_eq!(events[2]["usageMetadata"]["totalTokenCount"], 4);

        let forced = mock
            .post_json(
                &url("generateContent"),
                &[KEY, ("x-mock-status", "429")],
                &body,
            )
            .await;
        assert_eq!(forced["error"]["status"], "RESOURCE_EXHAUSTED");

        let embed = json!({"requests": [
            {"model": "models/gem-1", "content": {"parts": [{"text": "one"}]}, "outputDimensionality": 4},
            {"model": "models/gem-1", "content": {"parts": [{"text": "two"}]}}
        ]});
        let embedded = mock
            .post_json(&url("batchEmbedContents"), &[KEY], &embed)
            .await;
        assert_eq!(
            embedded["embeddings"][0]["values"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
        assert_eq!(
            embedded["embeddings"][1]["values"]
                .as_array()
                .unwrap()
                .len(),
            8
        );

        let records = mock.records().await;
        assert_eq!(records[1]["model"], "gem-1");
        assert_eq!(
            records[1]["billed"],
            json!({"prompt_tokens": 5, "completion_tokens": 2})
        );
        assert_eq!(records[2]["stream"], true);
    }
}
