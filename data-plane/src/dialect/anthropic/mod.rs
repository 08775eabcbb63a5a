//! Anthropic's Messages API as an inbound dialect (`POST /v1/messages`).
//!
//! - [`request`]: an Anthropic Messages body → the internal OpenAI chat body.
//! - [`response`]: an internal OpenAI completion → an Anthropic message.
//! - [`stream`]: internal OpenAI chunks → Anthropic's SSE events (`message_start` …
//!   `message_stop`).
//! - [`error`]: the gateway's errors in Anthropic's error shape.
//!
//! Translation goes through the OpenAI dialect for every provider (including Anthropic ones),
//! so fields with no OpenAI counterpart (`top_k`, `thinking`, cache control) are dropped.

pub mod error;
pub mod request;
pub mod response;
pub mod stream;

#[cfg(test)]
mod fixture_tests;

/// Anthropic `stop_reason` for an OpenAI `finish_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}
