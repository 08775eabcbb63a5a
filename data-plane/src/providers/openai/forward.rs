//! Pass-through for clients that speak OpenAI's Responses API (`/v1/responses`, and its
//! compaction `/v1/responses/compact`, routed to an OpenAI or Azure OpenAI deployment): the
//! client's body goes upstream byte for byte except for the value of its top-level `model`,
//! and the answer comes back byte for byte. Only usage is read on the way: from the top-level
//! `usage` of a response or a `response.compaction`, or in a stream from the terminal event
//! (`response.completed`, `response.incomplete` or `response.failed`), which is the chunk
//! that carries it to the relay's metering.
//!
//! A stream that ends without a terminal event, or with an `error` event, ends with an
//! error, so the relay reports it (as `response.failed`) and meters it as failed.

use serde::Deserialize;

use super::OpenAiFamily;
use crate::providers::common::same_error;
use crate::providers::forward::{pass_through, Seen, Target, Wire};
use crate::providers::{Call, ChatResult, NativeRequest, ResponsesUsage, Usage};

/// A response object, or a stream event (which nests it under `response`).
#[derive(Deserialize)]
struct Probe {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    usage: Option<ResponsesUsage>,
    #[serde(default)]
    response: Option<Box<Probe>>,
    #[serde(default)]
    message: Option<String>,
}

impl OpenAiFamily {
    /// Sends the client's own Responses (or compaction) request to the endpoint its wire
    /// names; the value of `model` is replaced by the deployment's.
    pub async fn forward(&self, call: &Call<'_>, request: NativeRequest<'_>) -> ChatResult {
        let Some(url) = self.responses_url(request.wire) else {
            return Err(self
                .upstream
                .bad("the deployment does not speak the Responses API"));
        };
        let to = Target::new(url, &[], same_error);
        pass_through::<Responses>(&self.upstream, call, request, to).await
    }
}

/// The Responses wire: usage only in the terminal event, which ends the stream.
#[derive(Default)]
struct Responses;

impl Wire for Responses {
    type Probe = Probe;

    fn body_usage(response: Probe) -> Option<Usage> {
        response.usage.map(Usage::from)
    }

    fn event(&mut self, probe: Option<Probe>) -> Seen {
        let kind = probe.as_ref().and_then(|p| p.kind.as_deref());
        let terminal = matches!(
            kind,
            Some("response.completed" | "response.incomplete" | "response.failed")
        );
        if kind == Some("error") {
            let message = probe
                .and_then(|p| p.message)
                .unwrap_or_else(|| "stream error".into());
            return Seen::Error(message);
        }
        let usage = terminal
            .then(|| probe.and_then(|p| p.response?.usage).map(Usage::from))
            .flatten()
            .or(terminal.then(Usage::default));
        Seen::Relay {
            usage,
            last: terminal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::forward::relay_verbatim;

    #[test]
    fn frames_pass_unchanged_and_usage_comes_from_the_terminal_event() {
        let (u, last) = relay_verbatim(
            &mut Responses,
            "response.created",
            r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","usage":null}}"#,
        );
        assert!(!last && u == Ok(None));
        let (u, last) = relay_verbatim(
            &mut Responses,
            "response.completed",
            r#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":8},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":64},"total_tokens":123}}}"#,
        );
        let u = u.ok().flatten().unwrap_or_default();
        assert!(last);
        let tokens = (u.prompt_tokens, u.completion_tokens);
        assert_eq!(
            (tokens, u.cached_tokens, u.reasoning_tokens),
            ((36, 87), 8, 64)
        );
        let (u, last) = relay_verbatim(
            &mut Responses,
            "error",
            r#"{"type":"error","code":"server_error","message":"The server had an error","sequence_number":3}"#,
        );
        assert!(last && u.is_err_and(|e| e.contains("The server had an error")));
    }
}
