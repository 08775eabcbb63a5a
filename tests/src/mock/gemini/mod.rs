//! Gemini API (AI Studio) routes of the mock, in Gemini's own wire format:
//! `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse` and
//! `:batchEmbedContents`, authenticated by `x-goog-api-key`.
//!
//! They go through the same admission as the OpenAI routes ([`super::admit`]: recording,
//! scripting by `x-mock-*` headers and `/__mock/script` — a script's `model` matches the model
//! in the path — latency, faults), and count tokens by the same rules: prompt = words of the
//! text parts of `contents` and `systemInstruction`; reply = the scripted reply (or
//! [`super::DEFAULT_REPLY`]) cut to `generationConfig.maxOutputTokens` words (`MAX_TOKENS`).
//!
//! Parts of the answer (built in `reply.rs`), in order:
//! - Scripted reasoning: a thought part (`{"text", "thought": true}`) first. Gemini counts
//!   thoughts apart from the answer: `thoughtsTokenCount` is the reasoning's words,
//!   `candidatesTokenCount` the rest, `totalTokenCount` both plus the prompt; the mock bills
//!   both as completion tokens, as Gemini charges them.
//! - Scripted tool calls answer a request that declares functions, unless its last turn
//!   carries a `functionResponse` (one scripted round trip): one `functionCall` part per call
//!   with the scripted name and args, each costing one token plus the words of the args'
//!   JSON. Otherwise, when `toolConfig.functionCallingConfig.mode` is `ANY`, one
//!   `functionCall` of the first allowed (else first declared) function with
//!   `args: {"query": <text of the last user turn>}`, costing 1 token. `finishReason` is
//!   `STOP` either way.
//! - Otherwise the reply text.
//!
//! Streams (`alt=sse`): one `data: <GenerateContentResponse>\r\n\r\n` event for the thought
//! part, then one per reply word (words after the first carry a leading space) or one with
//! every call, each with the running `usageMetadata`; the last carries `finishReason`. There
//! is no `[DONE]`: the body ends. A scripted cut sends the first two events, without a finish
//! reason.
//!
//! Errors use Gemini's `{"error":{"code","message","status"}}`; a wrong or missing key is
//! Gemini's 400 `INVALID_ARGUMENT` with reason `API_KEY_INVALID`.

mod reply;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value};

use super::admit::{admit, Admitted, ApiRequest, Dialect, Inbound};
use super::embedding::{self, Item, DEFAULT_DIMENSIONS, MAX_DIMENSIONS};
use super::google_error::{error_from, gemini_error};
use super::output::Call;
use super::stream::json_reply;
use super::tokens::count_words;
use reply::generate;

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
    /// The call the answer makes unscripted, when the request forces one (`mode: ANY`).
    fn forced_call(&self) -> Option<Call<'_>> {
        let name = self.forced_function()?;
        let arguments = json!({ "query": self.last_user_text() }).to_string();
        Some(Call {
            name,
            arguments,
            tokens: 1,
        })
    }

    /// The function the request forces a call of (`mode: ANY`).
    fn forced_function(&self) -> Option<&str> {
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
mod tests;
