//! AWS event-stream frames (`application/vnd.amazon.eventstream`) as the mock sends them.
//!
//! Layout: total length (u32 BE), headers length (u32 BE), CRC32 of those 8 bytes, headers
//! (name length u8, name, type 7 = string, value length u16 BE, value), payload, CRC32 of
//! everything before it. Every frame the mock builds has correct CRCs unless it asks for a
//! corrupt one (the `malformed` fault).

use bytes::Bytes;
use serde_json::Value;

/// One frame with string headers.
pub(crate) fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = u32::try_from(16 + h.len() + payload.len()).unwrap_or(u32::MAX);
    let headers_len = u32::try_from(h.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(16 + h.len() + payload.len());
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&headers_len.to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A ConverseStream event frame (`:message-type: event`).
pub(crate) fn event(kind: &str, payload: &Value) -> Bytes {
    Bytes::from(encode(
        &[
            (":event-type", kind),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    ))
}

/// An event frame whose message CRC is wrong.
pub(crate) fn corrupt(kind: &str, payload: &Value) -> Bytes {
    let mut frame = event(kind, payload).to_vec();
    if let Some(last) = frame.last_mut() {
        *last ^= 0xff;
    }
    Bytes::from(frame)
}

/// A decoded frame (tests): string headers and payload.
#[cfg(test)]
pub(crate) type Decoded = (Vec<(String, String)>, Vec<u8>);

/// Decodes a whole body of frames (tests): `(headers, payload)` each, or `None` on a bad CRC.
#[cfg(test)]
pub(crate) fn decode_all(mut b: &[u8]) -> Option<Vec<Decoded>> {
    let be = |s: &[u8]| -> Option<usize> {
        Some(u32::from_be_bytes(s.get(..4)?.try_into().ok()?) as usize)
    };
    let mut out = Vec::new();
    while !b.is_empty() {
        let total = be(b)?;
        let headers_len = be(b.get(4..)?)?;
        let frame = b.get(..total)?;
        if crc32fast::hash(&frame[..8]) != be(&frame[8..])? as u32
            || crc32fast::hash(&frame[..total - 4]) != be(&frame[total - 4..])? as u32
        {
            return None;
        }
        let mut h = &frame[12..12 + headers_len];
        let mut headers = Vec::new();
        while !h.is_empty() {
            let n = usize::from(h[0]);
            let name = String::from_utf8_lossy(&h[1..1 + n]).into_owned();
            let len = usize::from(u16::from_be_bytes([h[2 + n], h[3 + n]]));
            let value = String::from_utf8_lossy(&h[4 + n..4 + n + len]).into_owned();
            headers.push((name, value));
            h = &h[4 + n + len..];
        }
        out.push((headers, frame[12 + headers_len..total - 4].to_vec()));
        b = &b[total..];
    }
    Some(out)
}
