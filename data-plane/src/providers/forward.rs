//! What pass-through shares across wires: the client's body goes upstream with only its top
//! level edited ([`Edit`]: the value of `model` replaced, or `model` removed where the URL names
//! the model, and a member the provider requires added), and the answer comes back byte for
//! byte, upstream SSE events relayed as the frames they were through the one stream driver.
//! Each wire says only what it reads on the way ([`Wire`]): the usage of a whole answer, and
//! per stream event its usage, whether it ends the stream, or the error it reports.
//!
//! A stream that ends without the wire's end event, or with an error event, ends with an
//! error, so the relay reports it in the client's dialect and meters it as failed.

use std::ops::Range;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderName, HeaderValue, StatusCode};
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
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

/// Where a pass-through request goes: the URL, the headers that travel with it (the client's
/// the wire defines, per-request auth), how the family re-shapes an upstream error, and how
/// the body is edited (by default: the model replaced).
pub struct Target<'h> {
    url: reqwest::Url,
    headers: &'h [(HeaderName, HeaderValue)],
    adapt: fn(&str, UpstreamError) -> UpstreamError,
    edit: Edit,
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
            edit: Edit::default(),
        }
    }

    /// The body is edited by `edit` instead of the default.
    pub fn edit(self, edit: Edit) -> Self {
        Self { edit, ..self }
    }
}

/// Sends the client's own request to `to`, edited as `to` says (by default: the deployment's
/// model spliced in), and relays the answer as it came, reading only what `W` reads.
pub async fn pass_through<W: Wire>(
    up: &Upstream,
    call: &Call<'_>,
    request: NativeRequest<'_>,
    to: Target<'_>,
) -> ChatResult {
    let start = Instant::now();
    let body = to
        .edit
        .apply(&request.body, call.deployment.model_json.get())
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

/// How pass-through edits the client's body: at its top level only, every other byte as the
/// client sent it (key order, whitespace, escapes, fields the gateway does not know).
#[derive(Debug, Clone, Copy, Default)]
pub struct Edit {
    /// `model` is removed (the provider reads the model from the URL) instead of having its
    /// value replaced by the deployment's.
    pub drop_model: bool,
    /// A member (name, raw JSON value) added first, unless the body has one of that name.
    pub default: Option<(&'static str, &'static str)>,
}

impl Edit {
    /// `body` edited, with `model` (raw JSON) as the deployment's model. With duplicate
    /// `model` keys the last one is replaced (the one JSON parsers, and the gateway's routing,
    /// use), or all are removed. `None` if `body` is not a JSON object with `model`.
    pub fn apply(self, body: &[u8], model: &str) -> Option<Vec<u8>> {
        let Members(members) = serde_json::from_slice(body).ok()?;
        let spans = members
            .iter()
            .map(|(_, value)| span(body, value))
            .collect::<Option<Vec<_>>>()?;
        let last_model = members.iter().rposition(|(name, _)| name == "model")?;
        let open = body.iter().position(|b| *b == b'{')?;
        let add = self
            .default
            .filter(|(name, _)| !members.iter().any(|(n, _)| n == name));
        let mut out = Vec::with_capacity(body.len() + model.len() + 64);
        out.extend_from_slice(&body[..=open]);
        let mut written = 0;
        if let Some((name, value)) = add {
            out.extend_from_slice(format!("{}:{value}", serde_json::Value::from(name)).as_bytes());
            written += 1;
        }
        // Member i's slot runs from the end of the previous value (or the `{`) to the end of
        // its own value: its separating comma, key and value.
        let mut slot_start = open + 1;
        for (i, ((name, _), value)) in members.iter().zip(&spans).enumerate() {
            let slot = slot_start..value.end;
            slot_start = value.end;
            let is_model = name == "model";
            if is_model && self.drop_model {
                continue;
            }
            let mut from = slot.start;
            if i > 0 && written == 0 {
                // The first member written: without the comma that separated it.
                from = comma_after(body, from)?;
            } else if i == 0 && written > 0 {
                out.push(b',');
            }
            if is_model && i == last_model {
                out.extend_from_slice(&body[from..value.start]);
                out.extend_from_slice(model.as_bytes());
            } else {
                out.extend_from_slice(&body[from..value.end]);
            }
            written += 1;
        }
        out.extend_from_slice(&body[slot_start..]);
        Some(out)
    }
}

/// The byte range of `value` in `body` (it borrows from it: its offset there is the distance
/// between the two addresses).
fn span(body: &[u8], value: &RawValue) -> Option<Range<usize>> {
    let raw = value.get();
    let at = (raw.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let end = at.checked_add(raw.len()).filter(|end| *end <= body.len())?;
    Some(at..end)
}

/// The offset just past the comma at or after `from` (only whitespace may precede it).
fn comma_after(body: &[u8], from: usize) -> Option<usize> {
    let rest = body.get(from..)?;
    let comma = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    (rest.get(comma) == Some(&b',')).then_some(from + comma + 1)
}

/// A JSON object's top-level members in order, duplicates kept, each value as its raw text in
/// the body.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
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

    fn with_model(body: &[u8], model: &str) -> Option<Vec<u8>> {
        Edit::default().apply(body, model)
    }

    fn text(bytes: Option<Vec<u8>>) -> String {
        String::from_utf8(bytes.unwrap()).unwrap()
    }

    #[test]
    fn only_the_top_level_model_value_changes() {
        let body = br#"{ "metadata":{"model":"keep"},
  "model" :  "claude" , "z\u00e9":[1.50,{"cache_control":{"type":"ephemeral"}}],"model":"last"}"#;
        let out = with_model(body, r#""claude-x-1""#);
        let expected = r#"{ "metadata":{"model":"keep"},
  "model" :  "claude" , "z\u00e9":[1.50,{"cache_control":{"type":"ephemeral"}}],"model":"claude-x-1"}"#;
        assert_eq!(text(out), expected);

        let same = br#"{"model":"m","x":1e3}"#;
        assert_eq!(with_model(same, r#""m""#).unwrap(), same);
        assert!(with_model(br#"{"x":1}"#, r#""m""#).is_none());
        assert!(with_model(b"[1]", r#""m""#).is_none());
    }

    const VERSION: Edit = Edit {
        drop_model: true,
        default: Some(("anthropic_version", r#""v-1""#)),
    };

    #[test]
    fn the_model_can_go_and_a_default_member_come() {
        let model = r#""unused""#;
        // `model` first, in the middle, last, alone, twice; values and spacing kept.
        let cases: [(&[u8], &str); 6] = [
            (
                br#"{ "model" : "m" , "max_tokens":1.0,"system":[{"cache_control":{"type":"ephemeral"}}] }"#,
                r#"{"anthropic_version":"v-1" , "max_tokens":1.0,"system":[{"cache_control":{"type":"ephemeral"}}] }"#,
            ),
            (
                br#"{"a":1, "model":"m", "b":"x\u00e9"}"#,
                r#"{"anthropic_version":"v-1","a":1, "b":"x\u00e9"}"#,
            ),
            (br#"{"a":1,"model":"m"}"#, r#"{"anthropic_version":"v-1","a":1}"#),
            (br#" {"model":"m"} "#, r#" {"anthropic_version":"v-1"} "#),
            (
                br#"{"model":"a","model":"b","c":[]}"#,
                r#"{"anthropic_version":"v-1","c":[]}"#,
            ),
            (
                br#"{"anthropic_version":"mine","model":"m","c":{}}"#,
                r#"{"anthropic_version":"mine","c":{}}"#,
            ),
        ];
        for (body, expected) in cases {
            let out = text(VERSION.apply(body, model));
            assert_eq!(out, expected);
            let _: serde_json::Value = serde_json::from_str(&out).unwrap();
        }
        let without_default = Edit {
            default: None,
            ..VERSION
        };
        assert_eq!(
            text(without_default.apply(br#"{"model":"m" , "a":1}"#, model)),
            r#"{ "a":1}"#
        );
        // Kept model, added member: Vertex's token count.
        let count = Edit {
            drop_model: false,
            ..VERSION
        };
        assert_eq!(
            text(count.apply(br#"{"model":"m","a":1}"#, r#""claude-x@1""#)),
            r#"{"anthropic_version":"v-1","model":"claude-x@1","a":1}"#
        );
        assert!(VERSION.apply(br#"{"a":1}"#, model).is_none());
    }
}
