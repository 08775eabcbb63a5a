//! Incremental Server-Sent Events decoder.
//!
//! Bytes go in as the network delivers them; complete events come out as soon as their
//! terminating blank line has arrived, so a relay never waits for more than one event. Handles
//! `\n`, `\r\n` and `\r` line endings, multi-line `data:` fields, comments and `event:` names.
//! [`SseBody`] feeds the decoder from an upstream response, for every streaming adapter.

use bytes::{Buf, Bytes, BytesMut};

use super::stream::{Body, Decode};
use super::UpstreamError;

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: Bytes,
}

/// The buffer grew past this without an event boundary: the peer is not speaking SSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event larger than {0} bytes")]
pub struct EventTooLarge(pub usize);

/// Decoder state: bytes received but not yet part of a complete event.
#[derive(Debug)]
pub struct SseDecoder {
    buf: BytesMut,
    max_event: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new(8 * 1024 * 1024)
    }
}

impl SseDecoder {
    /// A decoder that refuses single events larger than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_event,
        }
    }

    /// Appends bytes from the network.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, `Ok(None)` if more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, EventTooLarge> {
        loop {
            let Some((end, skip)) = find_boundary(&self.buf) else {
                if self.buf.len() > self.max_event {
                    return Err(EventTooLarge(self.max_event));
                }
                return Ok(None);
            };
            let block = self.buf.split_to(end);
            self.buf.advance(skip);
            if let Some(event) = parse_block(&block) {
                return Ok(Some(event));
            }
        }
    }
}

/// Events read off an upstream SSE response as its bytes arrive; an oversized event or a
/// body that breaks off is an error, and a body that ends mid-event simply ends (the
/// default [`Decode::ended`]).
pub type SseBody = Body<SseDecoder>;

impl Decode for SseDecoder {
    type Event = SseEvent;

    fn feed(&mut self, bytes: &[u8]) {
        self.push(bytes);
    }

    fn decoded(&mut self, provider: &str) -> Result<Option<SseEvent>, UpstreamError> {
        self.next_event().map_err(|_| UpstreamError::BadResponse {
            provider: provider.to_owned(),
            detail: "stream event too large",
        })
    }
}

/// Position of the first blank line: (end of the event block, length of the separator).
fn find_boundary(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        match buf[i] {
            b'\n' => {
                if buf.get(i + 1) == Some(&b'\n') {
                    return Some((i, 2));
                }
                if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                    return Some((i, 3));
                }
            }
            b'\r' => match (buf.get(i + 1), buf.get(i + 2), buf.get(i + 3)) {
                (Some(b'\n'), Some(b'\r'), Some(b'\n')) => return Some((i, 4)),
                (Some(b'\r'), _, _) => return Some((i, 2)),
                _ => {}
            },
            _ => {}
        }
        i += 1;
    }
    None
}

fn parse_block(block: &[u8]) -> Option<SseEvent> {
    let mut event = None;
    let mut data: Option<Vec<u8>> = None;
    for line in block
        .split(|&b| b == b'\n' || b == b'\r')
        .filter(|l| !l.is_empty())
    {
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => continue, // comment, e.g. keep-alive `: ping`
            Some(p) => {
                let value = &line[p + 1..];
                (&line[..p], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                let d = data.get_or_insert_with(Vec::new);
                if !d.is_empty() {
                    d.push(b'\n');
                }
                d.extend_from_slice(value);
            }
            b"event" => event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
    }
    data.map(|d| SseEvent {
        event,
        data: Bytes::from(d),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(d: &mut SseDecoder) -> Vec<SseEvent> {
        let mut out = Vec::new();
        while let Ok(Some(e)) = d.next_event() {
            out.push(e);
        }
        out
    }

    #[test]
    fn events_come_out_as_soon_as_complete_even_when_split_anywhere() {
        let wire =
            b"data: {\"a\":1}\n\n: ping\n\nevent: message_stop\r\ndata: x\r\n\r\ndata: [DONE]\n\n";
        for split in 0..wire.len() {
            let mut d = SseDecoder::default();
            d.push(&wire[..split]);
            let mut events = drain(&mut d);
            d.push(&wire[split..]);
            events.extend(drain(&mut d));
            let data: Vec<&[u8]> = events.iter().map(|e| e.data.as_ref()).collect();
            assert_eq!(
                data,
                [&b"{\"a\":1}"[..], b"x", b"[DONE]"],
                "split at {split}"
            );
            assert_eq!(events[1].event.as_deref(), Some("message_stop"));
        }
    }

    #[test]
    fn multi_line_data_is_joined() {
        let mut d = SseDecoder::default();
        d.push(b"data: one\ndata:two\n\n");
        assert_eq!(drain(&mut d)[0].data.as_ref(), b"one\ntwo");
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut d = SseDecoder::new(16);
        d.push(b"data: 0123456789abcdefghij");
        assert_eq!(d.next_event(), Err(EventTooLarge(16)));
    }

    #[test]
    fn an_incomplete_event_waits() {
        let mut d = SseDecoder::default();
        d.push(b"data: {\"a\":1}\n");
        assert_eq!(d.next_event(), Ok(None));
        d.push(b"\n");
        assert!(matches!(d.next_event(), Ok(Some(_))));
    }
}
