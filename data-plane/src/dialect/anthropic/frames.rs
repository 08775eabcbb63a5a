//! Stream writers for `/v1/messages`: translated events for streams from any provider, and the
//! upstream's own events as they are for streams from a deployment that speaks Messages.

use bytes::Bytes;

use super::error;
use super::stream::{error_event, Events};
use crate::dialect::Frames;
use crate::providers::{Chunk, UpstreamError};

/// Internal OpenAI chunks → Anthropic stream events.
#[derive(Debug)]
pub struct Translated(pub Events);

impl Frames for Translated {
    fn chunk(&mut self, chunk: &Chunk) -> Option<Bytes> {
        Some(self.0.chunk(&chunk.data)).filter(|b| !b.is_empty())
    }

    fn done(&mut self) -> Bytes {
        self.0.done()
    }

    fn error(&mut self, e: &UpstreamError) -> Bytes {
        let kind = error::error_type(e.status());
        self.0.error(kind, &e.to_string())
    }
}

/// The events an Anthropic deployment sent, each chunk already a whole SSE frame.
#[derive(Debug)]
pub struct Native;

impl Frames for Native {
    fn chunk(&mut self, chunk: &Chunk) -> Option<Bytes> {
        Some(chunk.data.clone())
    }

    fn done(&mut self) -> Bytes {
        Bytes::new()
    }

    fn error(&mut self, e: &UpstreamError) -> Bytes {
        error_event(error::error_type(e.status()), &e.to_string())
    }
}
