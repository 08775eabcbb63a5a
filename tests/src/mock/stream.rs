//! Response bodies sent piece by piece: SSE streams and faulty non-stream bodies.
//!
//! Every piece is its own body frame and the body returns `Pending` between two pieces (a
//! timer for `chunk_delay_ms`, else one scheduler yield), so hyper flushes each SSE event in
//! its own write instead of coalescing the whole stream. Each handed-over event is stamped
//! into the request's record.

use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::Response;
use bytes::Bytes;

use super::admit::Admitted;
use super::openai::json_response;
use super::record::RecordHandle;
use super::script::Fault;

/// How a piecewise body ends after its last piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Clean end of body.
    Clean,
    /// An I/O error: hyper aborts the connection and the client sees a broken body.
    Abort,
}

/// A body made of pieces sent one by one.
#[derive(Debug)]
pub(crate) struct Piecewise {
    pub pieces: Vec<Bytes>,
    pub ending: Ending,
    pub delay: Duration,
    /// Whether each piece is an SSE event to stamp into `chunk_sent_at_ms`.
    pub sse: bool,
    pub record: RecordHandle,
}

struct State {
    plan: Piecewise,
    next: usize,
    done: bool,
}

impl Piecewise {
    pub(crate) fn into_body(self) -> Body {
        let state = State {
            plan: self,
            next: 0,
            done: false,
        };
        Body::from_stream(futures_util::stream::unfold(state, step))
    }
}

/// The streamed reply to `admitted`: `pieces` one by one at its scripted chunk delay, each
/// stamped as an event, then `ending`; with its status, and its content type left to the
/// dialect.
pub(crate) fn event_stream<T>(
    admitted: &Admitted<T>,
    pieces: Vec<Bytes>,
    ending: Ending,
) -> Response {
    let plan = Piecewise {
        pieces,
        ending,
        delay: Duration::from_millis(admitted.behaviour.chunk_delay_ms.unwrap_or(0)),
        sse: true,
        record: admitted.record.clone(),
    };
    let mut response = Response::new(plan.into_body());
    *response.status_mut() = admitted.status;
    response
}

/// [`event_stream`] as server-sent events.
pub(crate) fn sse_stream<T>(
    admitted: &Admitted<T>,
    pieces: Vec<Bytes>,
    ending: Ending,
) -> Response {
    let mut response = event_stream(admitted, pieces, ending);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// One content block of a block-structured stream (Anthropic's, Bedrock's): the events that
/// open it, its deltas, and the event that closes it.
#[derive(Debug, Default)]
pub(crate) struct StreamBlock {
    pub opening: Vec<Bytes>,
    pub deltas: Vec<Bytes>,
    pub closing: Bytes,
}

/// Content deltas a stream cut by a scripted fault sends.
const DELTAS_BEFORE_CUT: usize = 2;

/// The events of `blocks` in order. Under a fault that cuts the stream only up to its first
/// two deltas (nothing after them); the stream then ends as the fault says, and `Some` is that
/// ending: the caller sends no closing events.
pub(crate) fn block_events(
    blocks: Vec<StreamBlock>,
    fault: Option<Fault>,
    pieces: &mut Vec<Bytes>,
) -> Option<Ending> {
    let limit = if Fault::cuts(fault) {
        DELTAS_BEFORE_CUT
    } else {
        usize::MAX
    };
    let mut sent = 0;
    'blocks: for block in blocks {
        pieces.extend(block.opening);
        for delta in block.deltas {
            pieces.push(delta);
            sent += 1;
            if sent == limit {
                break 'blocks;
            }
        }
        pieces.push(block.closing);
    }
    match fault {
        Some(Fault::ResetMidStream) => Some(Ending::Abort),
        Some(Fault::TruncateStream) => Some(Ending::Clean),
        _ => None,
    }
}

/// The complete JSON reply to `admitted`, or its scripted body fault applied to `json`: cut in
/// half (`truncate_stream`), cut in half and then the connection reset (`reset_mid_stream`), or
/// `malformed` sent instead (`malformed`).
pub(crate) fn json_reply<T>(
    admitted: &Admitted<T>,
    mut json: Vec<u8>,
    malformed: &'static [u8],
) -> Response {
    let record = &admitted.record;
    match admitted.behaviour.fault {
        Some(Fault::Malformed) => json = malformed.to_vec(),
        Some(Fault::TruncateStream) => json.truncate(json.len() / 2),
        Some(Fault::ResetMidStream) => {
            json.truncate(json.len() / 2);
            let plan = Piecewise {
                pieces: vec![Bytes::from(json)],
                ending: Ending::Abort,
                delay: Duration::ZERO,
                sse: false,
                record: record.clone(),
            };
            return json_response(admitted.status, plan.into_body());
        }
        Some(Fault::Reset) | None => {}
    }
    record.completed();
    json_response(admitted.status, json)
}

async fn step(mut st: State) -> Option<(Result<Bytes, io::Error>, State)> {
    let total = st.plan.pieces.len();
    if st.done || (st.next >= total && st.plan.ending == Ending::Clean) {
        return None;
    }
    if st.next > 0 {
        if st.plan.delay.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(st.plan.delay).await;
        }
    }
    let Some(piece) = st.plan.pieces.get(st.next).cloned() else {
        // Past the last piece with `Ending::Abort`.
        st.done = true;
        st.plan.record.completed();
        let error = io::Error::new(
            io::ErrorKind::ConnectionReset,
            "mock fault: reset_mid_stream",
        );
        return Some((Err(error), st));
    };
    st.next += 1;
    st.plan.record.sent(&piece);
    if st.plan.sse {
        st.plan.record.chunk_sent();
    }
    if st.next == total && st.plan.ending == Ending::Clean {
        st.plan.record.completed();
    }
    Some((Ok(piece), st))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    #[test]
    fn block_streams_are_cut_after_two_deltas_whatever_block_they_are_in() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let blocks = || {
            vec![
                StreamBlock {
                    opening: vec![b("start0"), b("ping")],
                    deltas: vec![b("a")],
                    closing: b("stop0"),
                },
                StreamBlock {
                    opening: vec![b("start1")],
                    deltas: vec![b("b"), b("c")],
                    closing: b("stop1"),
                },
            ]
        };
        let mut whole = Vec::new();
        assert_eq!(block_events(blocks(), None, &mut whole), None);
        let names = ["start0", "ping", "a", "stop0", "start1", "b", "c", "stop1"];
        assert_eq!(whole, names.map(b));
        let mut cut = Vec::new();
        let ending = block_events(blocks(), Some(Fault::ResetMidStream), &mut cut);
        assert_eq!(ending, Some(Ending::Abort));
        assert_eq!(cut, ["start0", "ping", "a", "stop0", "start1", "b"].map(b));
        let mut truncated = Vec::new();
        let ending = block_events(blocks(), Some(Fault::TruncateStream), &mut truncated);
        assert_eq!((ending, truncated.len()), (Some(Ending::Clean), 6));
    }

    #[tokio::test]
    async fn pieces_then_abort() {
        let plan = Piecewise {
            pieces: vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
            ending: Ending::Abort,
            delay: Duration::ZERO,
            sse: true,
            record: RecordHandle::default(),
        };
        let mut stream = plan.into_body().into_data_stream();
        assert_eq!(stream.next().await.unwrap().unwrap(), "a");
        assert_eq!(stream.next().await.unwrap().unwrap(), "b");
        assert!(stream.next().await.unwrap().is_err());
        assert!(stream.next().await.is_none());
    }
}
