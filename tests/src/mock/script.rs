//! Per-request behaviours: what the mock does instead of (or on top of) a normal reply.
//!
//! A behaviour comes from two places, merged per field with headers winning:
//! `x-mock-*` request headers, and the FIFO queue filled by `POST /__mock/script`. A queued
//! script is consumed by every request it matches (its `model` is unset, or equals the body's
//! `model` or the Azure deployment name) until its `times` run out, even when headers
//! override some of its fields.

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use axum::http::{HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};

/// A failure injected at the connection or body level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Close the connection (with a TCP reset) before any response byte.
    Reset,
    /// Send headers and the first two content chunks, then abort the connection mid-body.
    ResetMidStream,
    /// Send the first two content chunks, then end the body cleanly with no finish chunk,
    /// usage or `[DONE]` (a non-stream request gets half of its JSON body).
    TruncateStream,
    /// Answer 200 with a body that is not valid JSON (for streams: one bad `data:` event).
    Malformed,
}

/// Content events a stream sends before `reset_mid_stream` / `truncate_stream` cut it.
const EVENTS_BEFORE_CUT: usize = 2;

impl Fault {
    /// The fault cuts a stream short after its first content events.
    pub fn cuts(fault: Option<Self>) -> bool {
        matches!(fault, Some(Self::ResetMidStream | Self::TruncateStream))
    }

    /// The content events a stream sends under `fault`: the first two when it cuts the
    /// stream, else all of them.
    pub fn shown<T>(fault: Option<Self>, events: &[T]) -> &[T] {
        if Self::cuts(fault) {
            &events[..events.len().min(EVENTS_BEFORE_CUT)]
        } else {
            events
        }
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reset" => Ok(Self::Reset),
            "reset_mid_stream" => Ok(Self::ResetMidStream),
            "truncate_stream" => Ok(Self::TruncateStream),
            "malformed" => Ok(Self::Malformed),
            other => Err(format!("unknown fault {other:?}")),
        }
    }
}

/// What to do for one request; every field is optional and unset means "behave normally".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Response status; 400..=599 answers with an OpenAI error body instead of a completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Seconds for a `Retry-After` response header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Delay before the response headers are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Delay between two SSE events of a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_delay_ms: Option<u64>,
    /// Connection or body fault to inject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// Reply text instead of [`super::DEFAULT_REPLY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// `error.message` of an error status response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Answer with all these tool calls, in order (in every dialect; several are parallel
    /// calls), unless the conversation already ends with a tool result, which gets the reply
    /// text: one scripted tool round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Reasoning the answer carries before its text or calls, in every dialect's own form
    /// (`reasoning_content`, a `reasoning` item, a `thinking` block, a thought part, a
    /// `reasoningContent` block); its words are reasoning tokens, billed as completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// Prompt tokens to report as read from the provider's cache (see `cache.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_tokens: Option<u64>,
    /// Prompt tokens to report as written to the cache for 5 minutes (Anthropic, Bedrock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_5m_tokens: Option<u64>,
    /// Prompt tokens to report as written to the cache for 1 hour (Anthropic; Bedrock reports
    /// writes without their lifetime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_1h_tokens: Option<u64>,
}

/// One tool call the mock answers with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    /// The tool's name.
    pub name: String,
    /// The arguments (a JSON object).
    #[serde(default = "empty_object")]
    pub arguments: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl ToolCall {
    /// The arguments as the JSON text chat and Responses carry.
    pub fn arguments_json(&self) -> String {
        self.arguments.to_string()
    }

    /// Completion tokens the call costs: one for the call plus the words of its arguments.
    pub fn tokens(&self) -> u64 {
        1 + super::tokens::count_words(&self.arguments_json())
    }
}

const H_STATUS: HeaderName = HeaderName::from_static("x-mock-status");
const H_RETRY_AFTER: HeaderName = HeaderName::from_static("x-mock-retry-after");
const H_LATENCY: HeaderName = HeaderName::from_static("x-mock-latency-ms");
const H_CHUNK_DELAY: HeaderName = HeaderName::from_static("x-mock-chunk-delay-ms");
const H_FAULT: HeaderName = HeaderName::from_static("x-mock-fault");
const H_REPLY: HeaderName = HeaderName::from_static("x-mock-reply");
const H_ERROR_MESSAGE: HeaderName = HeaderName::from_static("x-mock-error-message");
const H_TOOL_CALLS: HeaderName = HeaderName::from_static("x-mock-tool-calls");
const H_REASONING: HeaderName = HeaderName::from_static("x-mock-reasoning");
const H_CACHE_READ: HeaderName = HeaderName::from_static("x-mock-cache-read-tokens");
const H_CACHE_WRITE_5M: HeaderName = HeaderName::from_static("x-mock-cache-write-5m-tokens");
const H_CACHE_WRITE_1H: HeaderName = HeaderName::from_static("x-mock-cache-write-1h-tokens");

impl Behaviour {
    /// Reads the `x-mock-*` headers; an unparseable value is an error, not silently ignored.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, String> {
        let text = |name: &HeaderName| -> Result<Option<String>, String> {
            headers
                .get(name)
                .map(|v| {
                    v.to_str()
                        .map(str::to_owned)
                        .map_err(|_| format!("{name} is not visible ASCII"))
                })
                .transpose()
        };
        fn parsed<T: FromStr>(name: &HeaderName, v: Option<String>) -> Result<Option<T>, String> {
            v.map(|s| {
                s.trim()
                    .parse()
                    .map_err(|_| format!("invalid {name}: {s:?}"))
            })
            .transpose()
        }
        let behaviour = Self {
            status: parsed(&H_STATUS, text(&H_STATUS)?)?,
            retry_after: parsed(&H_RETRY_AFTER, text(&H_RETRY_AFTER)?)?,
            latency_ms: parsed(&H_LATENCY, text(&H_LATENCY)?)?,
            chunk_delay_ms: parsed(&H_CHUNK_DELAY, text(&H_CHUNK_DELAY)?)?,
            fault: text(&H_FAULT)?.map(|s| s.trim().parse()).transpose()?,
            reply: text(&H_REPLY)?,
            error_message: text(&H_ERROR_MESSAGE)?,
            tool_calls: text(&H_TOOL_CALLS)?
                .map(|s| {
                    serde_json::from_str(&s).map_err(|e| format!("invalid {H_TOOL_CALLS}: {e}"))
                })
                .transpose()?,
            reasoning: text(&H_REASONING)?,
            cache_read_tokens: parsed(&H_CACHE_READ, text(&H_CACHE_READ)?)?,
            cache_write_5m_tokens: parsed(&H_CACHE_WRITE_5M, text(&H_CACHE_WRITE_5M)?)?,
            cache_write_1h_tokens: parsed(&H_CACHE_WRITE_1H, text(&H_CACHE_WRITE_1H)?)?,
        };
        behaviour.validate()?;
        Ok(behaviour)
    }

    /// Rejects statuses that cannot be a final HTTP response.
    pub fn validate(&self) -> Result<(), String> {
        match self.status {
            Some(s) if !(200..=599).contains(&s) => Err(format!("status {s} is not in 200..=599")),
            _ => Ok(()),
        }
    }

    /// `self` with every field that `top` sets replaced by `top`'s value.
    pub fn overlaid_with(self, top: Self) -> Self {
        Self {
            status: top.status.or(self.status),
            retry_after: top.retry_after.or(self.retry_after),
            latency_ms: top.latency_ms.or(self.latency_ms),
            chunk_delay_ms: top.chunk_delay_ms.or(self.chunk_delay_ms),
            fault: top.fault.or(self.fault),
            reply: top.reply.or(self.reply),
            error_message: top.error_message.or(self.error_message),
            tool_calls: top.tool_calls.or(self.tool_calls),
            reasoning: top.reasoning.or(self.reasoning),
            cache_read_tokens: top.cache_read_tokens.or(self.cache_read_tokens),
            cache_write_5m_tokens: top.cache_write_5m_tokens.or(self.cache_write_5m_tokens),
            cache_write_1h_tokens: top.cache_write_1h_tokens.or(self.cache_write_1h_tokens),
        }
    }
}

/// The JSON body of `POST /__mock/script`: which requests it applies to, and the behaviour's
/// fields beside those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ScriptJson")]
pub struct Script {
    /// Only requests for this model (body `model` or Azure deployment) consume the script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// How many matching requests it applies to (at least 1).
    #[serde(default = "one")]
    pub times: u32,
    /// Applies to a matching request only with this probability (1-100 %); a request it
    /// passes over goes on to later scripts and uses none of its `times`. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// What a request it applies to gets.
    #[serde(flatten)]
    pub behaviour: Behaviour,
}

/// A [`Script`] as sent. serde's `flatten` cannot refuse unknown fields, so the fields beside
/// `model`, `times` and `percent` are collected here and read as a [`Behaviour`], which
/// refuses any it does not know.
#[derive(Deserialize)]
struct ScriptJson {
    #[serde(default)]
    model: Option<String>,
    #[serde(default = "one")]
    times: u32,
    #[serde(default)]
    percent: Option<u8>,
    #[serde(flatten)]
    behaviour: serde_json::Map<String, serde_json::Value>,
}

impl TryFrom<ScriptJson> for Script {
    type Error = serde_json::Error;

    fn try_from(json: ScriptJson) -> Result<Self, Self::Error> {
        Ok(Self {
            model: json.model,
            times: json.times,
            percent: json.percent,
            behaviour: Behaviour::deserialize(serde_json::Value::Object(json.behaviour))?,
        })
    }
}

fn one() -> u32 {
    1
}

impl Script {
    fn matches(&self, body_model: Option<&str>, deployment: Option<&str>) -> bool {
        match self.model.as_deref() {
            None => true,
            Some(m) => body_model == Some(m) || deployment == Some(m),
        }
    }
}

/// FIFO of pending scripts; `times` of the stored copy counts what is left.
#[derive(Debug, Default)]
pub(crate) struct ScriptQueue {
    /// Mirrors the queue length so unscripted requests (the benchmark case) skip the lock.
    len: AtomicUsize,
    queue: Mutex<VecDeque<Script>>,
    /// xorshift state for `percent` draws.
    dice: Mutex<u64>,
}

impl ScriptQueue {
    pub(crate) fn push(&self, script: Script) -> Result<usize, String> {
        if script.times == 0 {
            return Err("times must be at least 1".to_owned());
        }
        if script.percent.is_some_and(|p| p == 0 || p > 100) {
            return Err("percent must be 1-100".to_owned());
        }
        script.behaviour.validate()?;
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.push_back(script);
        self.len.store(queue.len(), Ordering::Release);
        Ok(queue.len())
    }

    /// Consumes one use of the first script matching the request, if any.
    pub(crate) fn take(
        &self,
        body_model: Option<&str>,
        deployment: Option<&str>,
    ) -> Option<Behaviour> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let index = queue.iter().position(|s| {
            s.matches(body_model, deployment) && s.percent.is_none_or(|p| self.roll() < p)
        })?;
        let script = queue.get_mut(index)?;
        let behaviour = script.behaviour.clone();
        script.times -= 1;
        if script.times == 0 {
            queue.remove(index);
        }
        self.len.store(queue.len(), Ordering::Release);
        Some(behaviour)
    }

    /// Uniform in 0..100.
    fn roll(&self) -> u8 {
        let mut x = self.dice.lock().unwrap_or_else(PoisonError::into_inner);
        if *x == 0 {
            *x = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9E37_79B9, |d| d.as_nanos() as u64)
                | 1;
        }
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x % 100) as u8
    }

    pub(crate) fn pending(&self) -> Vec<Script> {
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.iter().cloned().collect()
    }

    pub(crate) fn clear(&self) -> usize {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let n = queue.len();
        queue.clear();
        self.len.store(0, Ordering::Release);
        n
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn script(json: &str) -> Script {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn queue_is_fifo_per_model_and_counts_times() {
        let q = ScriptQueue::default();
        q.push(script(r#"{"model":"b","status":500}"#)).unwrap();
        q.push(script(r#"{"times":2,"status":429,"retry_after":3}"#))
            .unwrap();
        assert_eq!(q.take(Some("a"), None).unwrap().status, Some(429));
        assert_eq!(q.take(None, Some("b")).unwrap().status, Some(500));
        assert_eq!(q.take(Some("b"), None).unwrap().retry_after, Some(3));
        assert_eq!(q.take(Some("b"), None), None);
        assert!(q.push(script(r#"{"times":0}"#)).is_err());
        assert!(q.push(script(r#"{"status":99}"#)).is_err());
        assert!(serde_json::from_str::<Script>(r#"{"stauts":500}"#).is_err());
        let listed = script(r#"{"model":"m","times":2,"reply":"hi","fault":"reset"}"#);
        let json = serde_json::to_value(&listed).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"model": "m", "times": 2, "reply": "hi", "fault": "reset"})
        );
        assert_eq!(serde_json::from_value::<Script>(json).unwrap(), listed);
    }

    #[test]
    fn percent_applies_to_about_that_share_and_passes_the_rest_on() {
        let q = ScriptQueue::default();
        q.push(script(r#"{"times":100000,"percent":30,"status":500}"#))
            .unwrap();
        q.push(script(r#"{"times":100000,"status":429}"#)).unwrap();
        let hits = (0..10_000)
            .filter(|_| q.take(Some("m"), None).unwrap().status == Some(500))
            .count();
        assert!((2_700..3_300).contains(&hits), "{hits}");
        assert!(q.push(script(r#"{"percent":0}"#)).is_err());
    }

    #[test]
    fn headers_win_per_field() {
        let mut headers = HeaderMap::new();
        headers.insert(H_STATUS, "503".parse().unwrap());
        headers.insert(H_FAULT, "reset_mid_stream".parse().unwrap());
        let from_headers = Behaviour::from_headers(&headers).unwrap();
        let scripted = script(r#"{"status":429,"reply":"hi there"}"#).behaviour;
        let merged = scripted.overlaid_with(from_headers);
        assert_eq!(merged.status, Some(503));
        assert_eq!(merged.fault, Some(Fault::ResetMidStream));
        assert_eq!(merged.reply.as_deref(), Some("hi there"));
        headers.insert(
            H_TOOL_CALLS,
            r#"[{"name":"Bash","arguments":{"command":"ls -l"}}]"#
                .parse()
                .unwrap(),
        );
        let calls = Behaviour::from_headers(&headers)
            .unwrap()
            .tool_calls
            .unwrap();
        assert_eq!(calls[0].name, "Bash");
        assert_eq!(calls[0].arguments_json(), r#"{"command":"ls -l"}"#);
        assert_eq!(calls[0].tokens(), 3);
        headers.insert(H_LATENCY, "soon".parse().unwrap());
        assert!(Behaviour::from_headers(&headers).is_err());
        headers.remove(H_LATENCY);
        headers.insert(H_TOOL_CALLS, "[{\"nam\":1}]".parse().unwrap());
        assert!(Behaviour::from_headers(&headers).is_err());
        headers.remove(H_TOOL_CALLS);
        headers.insert(H_CACHE_WRITE_1H, "30".parse().unwrap());
        let cached = script(r#"{"cache_read_tokens":5,"cache_write_1h_tokens":7}"#)
            .behaviour
            .overlaid_with(Behaviour::from_headers(&headers).unwrap());
        assert_eq!(
            (
                cached.cache_read_tokens,
                cached.cache_write_5m_tokens,
                cached.cache_write_1h_tokens
            ),
            (Some(5), None, Some(30))
        );
        headers.insert(H_CACHE_READ, "-1".parse().unwrap());
        assert!(Behaviour::from_headers(&headers).is_err());
    }
}
