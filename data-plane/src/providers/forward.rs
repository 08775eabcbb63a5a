//! What pass-through shares across wires: the client's body goes upstream with only the value
//! of its top-level `model` replaced, and the answer comes back byte for byte, upstream SSE
//! events relayed as the frames they were through the one stream driver. Each wire says only
//! what it reads on the way ([`Wire`]): the usage of a whole answer, and per stream event its
//! usage, whether it ends the stream, or the error it reports.
//!
//! A stream that ends without the wire's end event, or with an error event, ends with an
//! error, so the relay reports it in the client's dialect and meters it as failed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderName, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::common::Upstream;
use super::sse::{SseBody, SseEvent};
use super::stream::{drive, interrupted, Translate};
use super::{Call, ChatReply, ChatResult, Chunk, JsonReply, NativeRequest, UpstreamError, Usage};

/// What one native wire's pass-through reads on the way; the state lives for one stream.
pub trait Wire: Default + Send + 'static {
    /// What the wire reads of a whole answer or of one stream event's `data`.
    type Probe: DeserializeOwned;
    /// The usage of a whole (non-streamed) answer.
    fn body_usage(answer: Self::Probe) -> Option<Usage>;
    /// What one stream event says (`None`: its data is not what the wire reads).
    fn event(&mut self, probe: Option<Self::Probe>) -> Seen;
}

/// What a stream event says to the relay.
#[derive(Debug, PartialEq)]
pub enum Seen {
    /// An event to relay; `usage`: the usage this chunk carries to the metering; `last`: the
    /// stream is over.
    Relay { usage: Option<Usage>, last: bool },
    /// The upstream reported an error in the stream (its message): the stream ends with it.
    Error(String),
}

/// Where a pass-through request goes: the URL, the client headers that travel with it, and
/// how the family re-shapes an upstream error.
pub struct Target<'h> {
    url: reqwest::Url,
    headers: &'h [(HeaderName, HeaderValue)],
    adapt: fn(&str, UpstreamError) -> UpstreamError,
}

impl<'h> Target<'h> {
    pub fn new(
        url: reqwest::Url,
        headers: &'h [(HeaderName, HeaderValue)],
        adapt: fn(&str, UpstreamError) -> UpstreamError,
    ) -> Self {
        Self {
            url,
            headers,
            adapt,
        }
    }
}

/// Sends the client's own request to `to` with the deployment's model spliced in, and relays
/// the answer as it came, reading only what `W` reads.
pub async fn pass_through<W: Wire>(
    up: &Upstream,
    call: &Call<'_>,
    request: NativeRequest<'_>,
    to: Target<'_>,
) -> ChatResult {
    let start = Instant::now();
    let body = with_model(&request.body, call.deployment.model_json.get())
        .ok_or_else(|| up.bad("request could not be encoded"))?;
    let response = up
        .post_with(call, to.url, body, to.headers, to.adapt)
        .await?;
    if request.stream {
        let response = up.event_stream(response)?;
        let verbatim = Verbatim::<W>::default();
        return Ok(ChatReply::Stream(drive(
            up.id.clone(),
            SseBody::new(response),
            verbatim,
        )));
    }
    let body = up.read_body(call, start, response).await?;
    let usage = serde_json::from_slice(&body).ok().and_then(W::body_usage);
    Ok(ChatReply::Json(JsonReply { body, usage }))
}

/// Relays each event as it came, reading only what the wire reads.
#[derive(Default)]
struct Verbatim<W> {
    wire: W,
    /// The wire's end event was seen.
    stopped: bool,
}

impl<W: Wire> Translate<SseEvent> for Verbatim<W> {
    fn translate(&mut self, provider: &str, event: &SseEvent) -> Result<Vec<Chunk>, UpstreamError> {
        let (chunk, last) = relay(&mut self.wire, provider, event);
        self.stopped = last;
        chunk.map(|c| vec![c])
    }

    fn stopped(&self) -> bool {
        self.stopped
    }

    /// A body that ends before the wire's end event broke off.
    fn finish(&mut self, provider: &str) -> Result<Vec<Chunk>, UpstreamError> {
        Err(interrupted(provider))
    }
}

/// One upstream event → the chunk to relay; `true` once the stream is over.
pub fn relay<W: Wire>(
    wire: &mut W,
    provider: &str,
    event: &SseEvent,
) -> (Result<Chunk, UpstreamError>, bool) {
    match wire.event(serde_json::from_slice(&event.data).ok()) {
        Seen::Relay { usage, last } => {
            let chunk = Chunk {
                data: frame(event),
                usage,
                usage_only: false,
            };
            (Ok(chunk), last)
        }
        Seen::Error(message) => {
            let e = UpstreamError::Failed {
                provider: provider.to_owned(),
                status: StatusCode::BAD_GATEWAY,
                message,
                retry_after: None,
            };
            (Err(e), true)
        }
    }
}

/// `body` with the value of its top-level `model` member replaced by `model` (raw JSON), every
/// other byte as it was. With duplicate `model` keys the last one is replaced, the one JSON
/// parsers (and the gateway's routing) use. `None` if `body` is not a JSON object with `model`.
pub fn with_model(body: &[u8], model: &str) -> Option<Vec<u8>> {
    let members: BTreeMap<Cow<'_, str>, &RawValue> = serde_json::from_slice(body).ok()?;
    let old = members.get("model")?.get();
    // `old` borrows from `body`: its offset there is the distance between the two addresses.
    let at = (old.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let end = at.checked_add(old.len()).filter(|end| *end <= body.len())?;
    let mut out = Vec::with_capacity(body.len() - old.len() + model.len());
    out.extend_from_slice(&body[..at]);
    out.extend_from_slice(model.as_bytes());
    out.extend_from_slice(&body[end..]);
    Some(out)
}

/// An event as the SSE frame it came in (`event:` line if it had one, `data:` lines).
pub fn frame(event: &SseEvent) -> Bytes {
    let mut out = BytesMut::with_capacity(event.data.len() + 32);
    if let Some(name) = &event.event {
        out.put_slice(b"event: ");
        out.put_slice(name.as_bytes());
        out.put_slice(b"\n");
    }
    for line in event.data.split(|b| *b == b'\n') {
        out.put_slice(b"data: ");
        out.put_slice(line);
        out.put_slice(b"\n");
    }
    out.put_slice(b"\n");
    out.freeze()
}

/// For the wires' tests: relays one event named `name` with `data` through `wire`, checks that
/// a relayed frame is the event as it came, and returns the usage it carries (or the error's
/// text) and whether the stream is over.
#[cfg(test)]
pub fn relay_verbatim<W: Wire>(
    wire: &mut W,
    name: &str,
    data: &str,
) -> (Result<Option<Usage>, String>, bool) {
    let event = SseEvent {
        event: Some(name.into()),
        data: Bytes::copy_from_slice(data.as_bytes()),
    };
    let (chunk, last) = relay(wire, "p", &event);
    let usage = chunk.map_err(|e| e.to_string()).map(|c| {
        let want = format!("event: {name}\ndata: {data}\n\n");
        assert_eq!(String::from_utf8_lossy(&c.data), want);
        c.usage
    });
    (usage, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_top_level_model_value_changes() {
        let body = br#"{ "metadata":{"model":"keep"},
  "model" :  "claude" , "z\u00e9":[1.50,{"cache_control":{"type":"ephemeral"}}],"model":"last"}"#;
        let out = with_model(body, r#""claude-x-1""#).unwrap();
        let expected = br#"{ "metadata":{"model":"keep"},
  "model" :  "claude" , "z\u00e9":[1.50,{"cache_control":{"type":"ephemeral"}}],"model":"claude-x-1"}"#;
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(expected.to_vec()).unwrap()
        );

        let same = br#"{"model":"m","x":1e3}"#;
        assert_eq!(with_model(same, r#""m""#).unwrap(), same);
        assert!(with_model(br#"{"x":1}"#, r#""m""#).is_none());
        assert!(with_model(b"[1]", r#""m""#).is_none());
    }
}
