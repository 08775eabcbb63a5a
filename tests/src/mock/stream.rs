//! Response bodies sent piece by piece: SSE streams and faulty non-stream bodies.
//!
//! Every piece is its own body frame and the body returns `Pending` between two pieces (a
//! timer for `chunk_delay_ms`, else one scheduler yield), so hyper flushes each SSE event in
//! its own write instead of coalescing the whole stream. Each handed-over event is stamped
//! into the request's record.

use std::io;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;

use super::record::RecordHandle;

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
