//! Pass-through for clients that already speak Anthropic's Messages API (`/v1/messages`
//! routed to an Anthropic deployment): the client's body goes upstream byte for byte except
//! for the value of its top-level `model` (spliced in place: key order, whitespace, escapes and
//! fields the gateway does not know are kept as sent), with the client's `anthropic-version` /
//! `anthropic-beta` headers, and the answer comes back byte for byte. Only usage is read on the way: from the message's `usage`, or in a
//! stream from `message_start` (input, cache) and `message_delta` (output), which is the chunk
//! that carries it to the relay's metering.
//!
//! A stream that ends without `message_stop` or with an `error` event ends with an error, so
//! the relay reports it in the client's dialect and meters it as failed.

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::response::AnthropicUsage;
use super::{error, Anthropic};
use crate::providers::forward::{pass_through, Seen, Target, Wire};
use crate::providers::{Call, ChatResult, NativeRequest, Usage};

/// The client's beta features (`anthropic-beta`), which Claude on Vertex AI takes too.
pub(in crate::providers) const BETA: HeaderName = HeaderName::from_static("anthropic-beta");

/// The client headers that travel upstream (they replace the adapter's defaults of the same
/// name).
const FORWARDED: [HeaderName; 2] = [HeaderName::from_static("anthropic-version"), BETA];

/// The client's headers of [`FORWARDED`] it sent, to send upstream.
pub(super) fn forwarded_headers(client: &http::HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    client_headers(client, &FORWARDED)
}

/// The headers named in `names` that the client sent.
pub(in crate::providers) fn client_headers(
    client: &http::HeaderMap,
    names: &[HeaderName],
) -> Vec<(HeaderName, HeaderValue)> {
    names
        .iter()
        .filter_map(|name| Some((name.clone(), client.get(name)?.clone())))
        .collect()
}

/// What the Messages wire reads of an answer or a stream event.
#[derive(Deserialize)]
pub(in crate::providers) struct Probe {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    #[serde(default)]
    message: Option<Box<Probe>>,
    #[serde(default)]
    error: Option<ErrorProbe>,
}

#[derive(Deserialize)]
struct ErrorProbe {
    #[serde(default)]
    message: Option<String>,
}

impl Anthropic {
    /// Sends the client's own Messages request; the value of `model` is replaced by the
    /// deployment's.
    pub async fn forward(&self, call: &Call<'_>, request: NativeRequest<'_>) -> ChatResult {
        let headers = forwarded_headers(request.headers);
        let url = call.deployment.endpoints.chat.clone();
        let to = Target::new(url, &headers, error::adapt);
        pass_through::<Messages>(&self.upstream, call, request, to).await
    }
}

/// The Messages wire: the usage so far (`message_start` holds input and cache,
/// `message_delta` output); `message_stop` ends the stream.
#[derive(Default)]
pub(in crate::providers) struct Messages {
    usage: AnthropicUsage,
}

impl Wire for Messages {
    type Probe = Probe;

    fn body_usage(message: Probe) -> Option<Usage> {
        message.usage.map(AnthropicUsage::normalised)
    }

    fn event(&mut self, probe: Option<Probe>) -> Seen {
        let kind = probe.as_ref().and_then(|p| p.kind.as_deref());
        let mut reported = None;
        match kind {
            Some("message_start") => {
                if let Some(u) = probe.as_ref().and_then(|p| p.message.as_ref()?.usage) {
                    self.usage.update(u);
                }
            }
            Some("message_delta") => {
                if let Some(u) = probe.as_ref().and_then(|p| p.usage) {
                    self.usage.update(u);
                }
                reported = Some(self.usage.normalised());
            }
            Some("error") => {
                let message = probe
                    .and_then(|p| p.error?.message)
                    .unwrap_or_else(|| "stream error".into());
                return Seen::Error(message);
            }
            _ => {}
        }
        let last = kind == Some("message_stop");
        Seen::Relay {
            usage: reported,
            last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::forward::relay_verbatim;

    #[test]
    fn frames_pass_unchanged_and_usage_comes_from_start_and_delta() {
        let mut wire = Messages::default();
        let (u, last) = relay_verbatim(
            &mut wire,
            "message_start",
            r#"{"type":"message_start","message":{"usage":{"input_tokens":7,"cache_read_input_tokens":3,"cache_creation_input_tokens":9,"cache_creation":{"ephemeral_5m_input_tokens":4,"ephemeral_1h_input_tokens":5},"output_tokens":1}}}"#,
        );
        assert!(!last && u == Ok(None));
        let (u, _) = relay_verbatim(
            &mut wire,
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":12}}"#,
        );
        let u = u.ok().flatten().unwrap_or_default();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.cached_tokens),
            (19, 12, 3)
        );
        assert_eq!((u.cache_write_5m_tokens, u.cache_write_1h_tokens), (4, 5));
        let (u, last) = relay_verbatim(&mut wire, "message_stop", r#"{"type":"message_stop"}"#);
        assert!(u.is_ok() && last);
        let (u, last) = relay_verbatim(
            &mut wire,
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert!(last && u.is_err_and(|e| e.contains("Overloaded")));
    }
}
