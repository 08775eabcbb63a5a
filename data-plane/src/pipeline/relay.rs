//! Streaming relay: provider chunks to the client as they arrive, metered to the end.
//!
//! A task owned by the app's `TaskTracker` pulls chunks from the adapter and pushes SSE frames
//! into a small bounded channel that is the response body, so a slow client slows the upstream
//! read (backpressure) and nothing is buffered beyond a few frames. If the client goes away the
//! task keeps reading the upstream to its end, so the provider's usage report is still seen.
//! A stream that fails after it started ends with an error event in the client's dialect, never
//! silently. How chunks become frames is the inbound dialect's [`Frames`]; the metering does
//! not depend on it.
//!
//! When the stream really ends (after the drain, if the client left) the relay emits the
//! request's one usage event, with the provider's usage report, or, if none came, an estimate
//! from the text streamed (`usage::estimate`), and settles the admission once. The request's
//! span ends with the relay, after that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use super::billing::Billing;
use crate::dialect::Frames;
use crate::metrics::{self, RequestLabels};
use crate::providers::{ChunkStream, UpstreamError, Usage};
use crate::snapshot::Route;
use crate::spans::RequestSpan;
use crate::state::App;
use crate::usage::estimate::StreamedText;
use crate::usage::End;

/// Frames buffered between the upstream reader and the client.
const CHANNEL_FRAMES: usize = 16;

/// What the relay needs to know about its request.
#[derive(Debug)]
pub struct Relay {
    pub request_id: Uuid,
    pub route: Arc<Route>,
    pub provider: String,
    /// Metric label of the inbound endpoint.
    pub endpoint: &'static str,
    /// Writes the stream in the client's dialect.
    pub frames: Box<dyn Frames>,
    /// Longest wait for the next chunk.
    pub idle: Duration,
    pub started: Instant,
    /// The request's usage event and reservation, settled once when the stream ends.
    pub billing: Billing,
    /// Counts the stream in its deployment's in-flight requests until the relay ends.
    pub inflight: Option<crate::routing::select::InFlight>,
    /// Takes the whole answer of a stream that finished well (a stored Responses turn).
    pub keep: Option<super::chat::Keep>,
    /// Assembles the (internal) stream for the response cache, stored if it finished well.
    pub cache: Option<crate::cache::StreamStore>,
    /// The request's span: it ends with the relay, after the stream's usage is settled.
    pub span: RequestSpan,
    /// Puts reversible placeholders back (a placeholder split over events included) and
    /// checks the output, when the request's guardrails ask.
    pub restorer: Option<crate::guard::restore::Restorer>,
}

/// Starts relaying and returns the response body.
pub fn start(app: &App, chunks: ChunkStream, relay: Relay) -> Body {
    let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_FRAMES);
    app.parts().tasks.spawn(pump(chunks, tx, relay));
    Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>))
}

async fn pump(mut chunks: ChunkStream, tx: mpsc::Sender<Bytes>, mut relay: Relay) {
    let mut client = Some(tx);
    let mut usage: Option<Usage> = None;
    let mut failure: Option<&'static str> = None;
    let mut streamed = StreamedText::default();
    let mut ttft: Option<Duration> = None;
    // What the answer says of itself, read only for a span that records.
    let mut answered = relay.span.stream_reader();
    loop {
        let (frame, last) = match tokio::time::timeout(relay.idle, chunks.next()).await {
            Err(_) => {
                let e = UpstreamError::Timeout {
                    provider: relay.provider.clone(),
                    after: relay.idle,
                };
                failure = Some(e.kind());
                (relay.frames.error(&e), true)
            }
            Ok(None) => (relay.frames.done(), true),
            Ok(Some(Err(e))) => {
                failure = Some(e.kind());
                (relay.frames.error(&e), true)
            }
            Ok(Some(Ok(chunk))) => {
                if let Some(answered) = answered.as_mut() {
                    answered.chunk(&chunk.data);
                }
                if let Some(cache) = relay.cache.as_mut() {
                    cache.push(&chunk.data);
                }
                if chunk.usage.is_some() {
                    usage = chunk.usage;
                } else if usage.is_none() {
                    // Only needed if the stream ends without a report; cheap (one small
                    // borrowed parse per chunk).
                    streamed.push_chunk(&chunk.data);
                }
                let Some(frame) = relay.frames.chunk(&chunk) else {
                    continue;
                };
                (frame, false)
            }
        };
        relay.billing.capture_response(&frame);
        let frames = match relay.restorer.as_mut() {
            None => vec![frame],
            Some(r) => {
                let mut out = Vec::new();
                if last {
                    out.extend(r.flush());
                }
                out.extend(r.frame(frame));
                if last {
                    out.extend(r.flush());
                }
                out
            }
        };
        for frame in frames {
            // An empty frame (a dialect with nothing to write at the end) is not sent.
            if let Some(tx) = client.as_ref().filter(|_| !frame.is_empty()) {
                if tx.send(frame).await.is_ok() {
                    ttft.get_or_insert_with(|| relay.started.elapsed());
                } else {
                    // The client is gone; keep reading so the provider's usage report is seen.
                    client = None;
                    metrics::stream_abandoned(&relay.route.alias);
                    tracing::info!(request_id = %relay.request_id, "client left mid-stream; draining upstream for usage");
                }
            }
        }
        if last {
            if let Some(r) = relay.restorer.as_ref() {
                super::chat::output_checked(r, &mut relay.billing);
            }
            break;
        }
    }
    let labels = RequestLabels {
        endpoint: relay.endpoint,
        route: &relay.route.alias,
        provider: &relay.provider,
    };
    if let Some(u) = usage {
        metrics::tokens(labels, u.prompt_tokens, u.completion_tokens);
    }
    if let Some(kind) = failure {
        metrics::error(relay.endpoint, kind);
        relay.span.stream_failed(kind);
    }
    if let Some(answered) = answered {
        relay.span.answered(&answered.finished());
    }
    if failure.is_none() {
        if let (Some(keep), Some(answer)) = (relay.keep.take(), relay.frames.finished()) {
            keep.run(answer);
        }
        if let Some(cache) = relay.cache.take() {
            cache.finish(usage);
        }
    }
    let status = if failure.is_some() { 502 } else { 200 };
    metrics::request_done(labels, status, relay.started.elapsed());
    // The stream no longer counts as in flight at its deployment.
    drop(relay.inflight.take());
    // The client got 200 and the stream's head; a later failure is in the event's outcome.
    relay.billing.settle(End {
        status: 200,
        ok: failure.is_none(),
        usage,
        estimated_completion: usage.is_none().then(|| streamed.tokens()),
        ttft,
        abandoned: client.is_none(),
    });
    tracing::debug!(
        request_id = %relay.request_id,
        route = %relay.route.alias,
        provider = %relay.provider,
        prompt_tokens = usage.map(|u| u.prompt_tokens),
        completion_tokens = usage.map(|u| u.completion_tokens),
        abandoned = client.is_none(),
        failure,
        "stream finished"
    );
}
