//! Incremental decoder for AWS's binary event stream (`application/vnd.amazon.eventstream`),
//! the framing of Bedrock's `converse-stream` answers.
//!
//! A frame is: total length (u32 BE), headers length (u32 BE), CRC32 of those 8 bytes, the
//! headers (name length u8, name, value type u8, value), the payload, and the CRC32 of
//! everything before it. Bytes go in as the network delivers them; a frame comes out as soon as
//! its last byte has arrived, wherever the chunk boundaries fall.
//!
//! Guarantees: both CRCs are checked before a frame is handed out (a mismatch is an error, never
//! a guess); a frame larger than the decoder's bound is refused as soon as its prelude is read,
//! so a corrupt length cannot make the gateway buffer without limit. Only string headers are
//! kept (`:event-type`, `:message-type`, `:exception-type`, `:content-type`); others are
//! skipped by their declared size.

use bytes::{Buf, Bytes, BytesMut};

use crate::providers::stream::{Body, Decode};
use crate::providers::UpstreamError;

/// Prelude (12 bytes) plus the message CRC (4 bytes).
const MIN_FRAME: usize = 16;
/// Largest frame accepted: AWS caps event stream messages at 16 MiB.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// String headers, in wire order.
    pub headers: Vec<(String, String)>,
    pub payload: Bytes,
}

impl Frame {
    /// The value of a string header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why the byte stream is not a valid event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("event stream prelude checksum mismatch")]
    PreludeCrc,
    #[error("event stream message checksum mismatch")]
    MessageCrc,
    #[error("event stream frame length out of bounds")]
    Length,
    #[error("event stream headers are malformed")]
    Headers,
}

/// Decoder state: bytes received but not yet part of a complete frame.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    max_frame: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(MAX_FRAME)
    }
}

impl Decoder {
    /// A decoder that refuses frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_frame,
        }
    }

    /// Appends bytes from the network.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that are not yet a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed. After an error the
    /// stream cannot be resynchronised; the caller ends it.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < 12 {
            return Ok(None);
        }
        let total = be32(&self.buf[0..4]);
        let headers_len = be32(&self.buf[4..8]);
        if crc32fast::hash(&self.buf[0..8]) != be32(&self.buf[8..12]) as u32 {
            return Err(FrameError::PreludeCrc);
        }
        if total < MIN_FRAME || total > self.max_frame || headers_len > total - MIN_FRAME {
            return Err(FrameError::Length);
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let frame = self.buf.split_to(total).freeze();
        let body_end = total - 4;
        if crc32fast::hash(&frame[..body_end]) != be32(&frame[body_end..]) as u32 {
            return Err(FrameError::MessageCrc);
        }
        let headers = parse_headers(&frame[12..12 + headers_len])?;
        let payload = frame.slice(12 + headers_len..body_end);
        Ok(Some(Frame { headers, payload }))
    }
}

fn be32(b: &[u8]) -> usize {
    let mut word = [0u8; 4];
    word.copy_from_slice(&b[..4]);
    u32::from_be_bytes(word) as usize
}

fn parse_headers(mut b: &[u8]) -> Result<Vec<(String, String)>, FrameError> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let name_len = usize::from(b[0]);
        let name = b.get(1..1 + name_len).ok_or(FrameError::Headers)?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| FrameError::Headers)?;
        b = &b[1 + name_len..];
        let (&kind, rest) = b.split_first().ok_or(FrameError::Headers)?;
        b = rest;
        let fixed = match kind {
            0 | 1 => Some(0),
            2 => Some(1),
            3 => Some(2),
            4 => Some(4),
            5 | 8 => Some(8),
            9 => Some(16),
            6 | 7 => None,
            _ => return Err(FrameError::Headers),
        };
        match fixed {
            Some(n) => {
                if b.len() < n {
                    return Err(FrameError::Headers);
                }
                b.advance(n);
            }
            None => {
                let len = b.get(0..2).ok_or(FrameError::Headers)?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let value = b.get(2..2 + len).ok_or(FrameError::Headers)?;
                if kind == 7 {
                    let value =
                        String::from_utf8(value.to_vec()).map_err(|_| FrameError::Headers)?;
                    out.push((name, value));
                }
                b = &b[2 + len..];
            }
        }
    }
    Ok(out)
}

/// Frames read off an upstream event-stream response as its bytes arrive; a bad frame, a body
/// that ends mid-frame or breaks off is an error.
pub type FrameBody = Body<Decoder>;

impl Decode for Decoder {
    type Event = Frame;

    fn feed(&mut self, bytes: &[u8]) {
        self.push(bytes);
    }

    fn decoded(&mut self, provider: &str) -> Result<Option<Frame>, UpstreamError> {
        self.next_frame().map_err(|e| {
            tracing::warn!(provider, error = %e, "bad event stream frame");
            UpstreamError::BadResponse {
                provider: provider.to_owned(),
                detail: "invalid event stream frame",
            }
        })
    }

    fn ended(&self, provider: &str) -> Result<(), UpstreamError> {
        if self.pending() == 0 {
            Ok(())
        } else {
            Err(UpstreamError::Interrupted {
                provider: provider.to_owned(),
            })
        }
    }
}

/// Encodes one frame with string headers (tests build upstream streams with it).
#[cfg(test)]
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = (MIN_FRAME + h.len() + payload.len()) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// An event frame as Bedrock sends it.
#[cfg(test)]
pub fn event(kind: &str, payload: &str) -> Vec<u8> {
    encode(
        &[
            (":event-type", kind),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(d: &mut Decoder) -> Result<Vec<Frame>, FrameError> {
        let mut out = Vec::new();
        while let Some(f) = d.next_frame()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn frames_come_out_whole_wherever_the_bytes_are_split() {
        let mut wire = event("messageStart", r#"{"role":"assistant"}"#);
        wire.extend(event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
        ));
        wire.extend(encode(&[], b""));
        for split in 0..wire.len() {
            let mut d = Decoder::default();
            d.push(&wire[..split]);
            let mut frames = drain(&mut d).unwrap_or_else(|e| panic!("{e}"));
            d.push(&wire[split..]);
            frames.extend(drain(&mut d).unwrap_or_else(|e| panic!("{e}")));
            assert_eq!(frames.len(), 3, "split at {split}");
            assert_eq!(frames[0].header(":event-type"), Some("messageStart"));
            assert_eq!(frames[0].header(":message-type"), Some("event"));
            assert_eq!(
                frames[1].payload.as_ref(),
                br#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#
            );
            assert!(frames[2].headers.is_empty() && frames[2].payload.is_empty());
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn a_bad_checksum_is_an_error() {
        let mut wire = event("messageStop", r#"{"stopReason":"end_turn"}"#);
        let last = wire.len() - 6;
        wire[last] ^= 1;
        let mut d = Decoder::default();
        d.push(&wire);
        assert_eq!(d.next_frame(), Err(FrameError::MessageCrc));

        let mut wire = event("messageStop", "{}");
        wire[2] ^= 1;
        let mut d = Decoder::default();
        d.push(&wire);
        assert_eq!(d.next_frame(), Err(FrameError::PreludeCrc));
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_prelude() {
        let wire = event("contentBlockDelta", &"x".repeat(100));
        let mut d = Decoder::new(64);
        d.push(&wire[..12]);
        assert_eq!(d.next_frame(), Err(FrameError::Length));
    }

    #[test]
    fn non_string_headers_are_skipped() {
        // A bool header (type 0) and a 4-byte int header (type 4) before a string one.
        let mut h = vec![1, b'a', 0, 1, b'b', 4, 0, 0, 0, 7];
        h.extend([2, b':', b'x', 7, 0, 1, b'y']);
        let mut frame = Vec::new();
        let total = (16 + h.len()) as u32;
        frame.extend(total.to_be_bytes());
        frame.extend((h.len() as u32).to_be_bytes());
        frame.extend(crc32fast::hash(&frame).to_be_bytes());
        frame.extend(&h);
        frame.extend(crc32fast::hash(&frame).to_be_bytes());
        let mut d = Decoder::default();
        d.push(&frame);
        let f = d.next_frame().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            f.map(|f| f.headers),
            Some(vec![(":x".to_owned(), "y".to_owned())])
        );
    }
}
