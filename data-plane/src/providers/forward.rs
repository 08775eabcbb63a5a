//! What pass-through shares across wires: the client's body with only the value of its
//! top-level `model` replaced, and upstream SSE events relayed as the frames they were.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::value::RawValue;

use super::sse::SseEvent;

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
