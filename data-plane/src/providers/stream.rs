//! The one stream driver every adapter's stream goes through.
//!
//! An upstream stream is a source of events ([`Events`]: SSE events, or Bedrock's eventstream
//! frames) and a translator ([`Translate`]) that turns each event into zero or more [`Chunk`]s
//! and says at the end of the body whether the stream finished. The driver owns the rest, the
//! same for every provider: chunks are handed on one at a time as they arrive, an error ends
//! the stream (after which nothing more is read), a translator that saw its end event stops the
//! reading, and a body that ends before the translator saw the end is an error, so the relay
//! never presents a truncated answer as complete.
//!
//! Both wires' events come off the response the same way ([`Body`]): bytes are fed to the
//! wire's incremental decoder ([`Decode`]: SSE, or Bedrock's eventstream frames) as they
//! arrive, and each whole event is handed on at once.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};

use super::http::classify_read;
use super::{Chunk, ChunkStream, UpstreamError};

/// Where a stream's events come from.
pub trait Events: Send + 'static {
    type Event: Send;
    /// The next event; `None` at the end of the body.
    fn next_event(
        &mut self,
        provider: &str,
    ) -> impl Future<Output = Result<Option<Self::Event>, UpstreamError>> + Send;
}

/// An incremental decoder of a streamed body: bytes go in as the network delivers them, whole
/// events come out as soon as their last byte has arrived.
pub trait Decode: Default + Send + 'static {
    type Event: Send;
    /// Bytes as they arrived.
    fn feed(&mut self, bytes: &[u8]);
    /// The next whole event, `Ok(None)` if more bytes are needed; an error if the bytes are
    /// not the wire format.
    fn decoded(&mut self, provider: &str) -> Result<Option<Self::Event>, UpstreamError>;
    /// The body ended: fine, or the error of a body that ended in the middle of an event. By
    /// default a body may end anywhere (bytes of an unfinished event are dropped).
    fn ended(&self, _provider: &str) -> Result<(), UpstreamError> {
        Ok(())
    }
}

/// Events decoded off an upstream response as its bytes arrive (see [`Decode`]); a body that
/// breaks off is an error. After `Ok(None)` or an error the driver ends the stream.
pub struct Body<D> {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    decoder: D,
}

impl<D: Decode> Body<D> {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            decoder: D::default(),
        }
    }
}

impl<D: Decode> Events for Body<D> {
    type Event = D::Event;

    async fn next_event(&mut self, provider: &str) -> Result<Option<D::Event>, UpstreamError> {
        loop {
            if let Some(event) = self.decoder.decoded(provider)? {
                return Ok(Some(event));
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.decoder.feed(&bytes),
                Some(Err(e)) => return Err(classify_read(provider, e)),
                None => return self.decoder.ended(provider).map(|()| None),
            }
        }
    }
}

/// How one provider's events become chunks in the OpenAI dialect.
pub trait Translate<E>: Send + 'static {
    /// The chunks for one event (maybe none); an error ends the stream.
    fn translate(&mut self, provider: &str, event: &E) -> Result<Vec<Chunk>, UpstreamError>;
    /// The stream's end event was seen: nothing more is read.
    fn stopped(&self) -> bool {
        false
    }
    /// At the end of the body: the last chunks (a usage report), or the error of a stream
    /// that did not finish.
    fn finish(&mut self, provider: &str) -> Result<Vec<Chunk>, UpstreamError>;
}

struct Driver<S, T> {
    provider: String,
    events: S,
    translator: T,
    ready: VecDeque<Chunk>,
    done: bool,
}

/// Drives `events` through `translator` into a chunk stream.
pub fn drive<S, T>(provider: String, events: S, translator: T) -> ChunkStream
where
    S: Events,
    T: Translate<S::Event>,
{
    let driver = Driver {
        provider,
        events,
        translator,
        ready: VecDeque::new(),
        done: false,
    };
    Box::pin(stream::unfold(driver, |mut d| async move {
        let item = d.next().await?;
        Some((item, d))
    }))
}

impl<S: Events, T: Translate<S::Event>> Driver<S, T> {
    async fn next(&mut self) -> Option<Result<Chunk, UpstreamError>> {
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                return Some(Ok(chunk));
            }
            if self.done || self.translator.stopped() {
                return None;
            }
            let translated = match self.events.next_event(&self.provider).await {
                Ok(Some(event)) => self.translator.translate(&self.provider, &event),
                Ok(None) => {
                    self.done = true;
                    self.translator.finish(&self.provider)
                }
                Err(e) => Err(e),
            };
            match translated {
                Ok(chunks) => self.ready.extend(chunks),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// The error of a stream that broke off.
pub fn interrupted(provider: &str) -> UpstreamError {
    UpstreamError::Interrupted {
        provider: provider.to_owned(),
    }
}

/// The end of the body for a translator whose answer is complete once it saw the chunk that
/// `finished` it: nothing more, or the error of a stream that broke off.
pub fn ended(finished: bool, provider: &str) -> Result<Vec<Chunk>, UpstreamError> {
    if finished {
        Ok(Vec::new())
    } else {
        Err(interrupted(provider))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;

    /// Events from a list; `Err` items are the source's own failures.
    struct List(VecDeque<Result<u32, UpstreamError>>);

    impl Events for List {
        type Event = u32;
        async fn next_event(&mut self, _: &str) -> Result<Option<u32>, UpstreamError> {
            self.0.pop_front().transpose()
        }
    }

    /// Each event `n` yields `n` chunks; event 0 ends the stream; 9 is refused.
    struct Count {
        ended: bool,
        seen: u32,
    }

    impl Translate<u32> for Count {
        fn translate(&mut self, provider: &str, n: &u32) -> Result<Vec<Chunk>, UpstreamError> {
            self.seen += 1;
            if *n == 9 {
                return Err(interrupted(provider));
            }
            self.ended = *n == 0;
            Ok((0..*n)
                .map(|i| Chunk {
                    data: bytes::Bytes::from(format!("{n}.{i}")),
                    usage: None,
                    usage_only: false,
                })
                .collect())
        }
        fn stopped(&self) -> bool {
            self.ended
        }
        fn finish(&mut self, provider: &str) -> Result<Vec<Chunk>, UpstreamError> {
            Err(interrupted(provider))
        }
    }

    async fn run(events: Vec<Result<u32, UpstreamError>>) -> Vec<Result<String, String>> {
        let translator = Count {
            ended: false,
            seen: 0,
        };
        drive("p".into(), List(events.into()), translator)
            .map(|r| {
                r.map(|c| String::from_utf8_lossy(&c.data).into_owned())
                    .map_err(|e| e.code().to_owned())
            })
            .collect()
            .await
    }

    #[tokio::test]
    async fn chunks_in_order_until_the_end_event_then_nothing_more_is_read() {
        let got = run(vec![Ok(2), Ok(1), Ok(0), Ok(9)]).await;
        let want: Vec<Result<String, String>> =
            vec![Ok("2.0".into()), Ok("2.1".into()), Ok("1.0".into())];
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_body_that_ends_early_or_fails_ends_with_one_error() {
        let interrupted = || Err("upstream_stream_interrupted".to_owned());
        assert_eq!(
            run(vec![Ok(1)]).await,
            vec![Ok("1.0".into()), interrupted()]
        );
        assert_eq!(run(vec![Ok(9), Ok(1)]).await, vec![interrupted()]);
        let broken = Err(UpstreamError::Unreachable {
            provider: "p".into(),
        });
        assert_eq!(
            run(vec![broken, Ok(1)]).await,
            vec![Err("upstream_unreachable".to_owned())]
        );
    }
}
