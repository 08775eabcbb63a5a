//! OpenAI's chat completions as an inbound dialect: the internal dialect itself, so requests
//! and answers pass unchanged; streams are written as `data:` events ending with `[DONE]`, and
//! errors as OpenAI error objects (`crate::error`, the one error-to-response edge).

use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};

use super::{Answer, ChatDialect, Frames};
use crate::error::{error_json, ApiError};
use crate::pipeline::body::ChatFields;
use crate::providers::{Chunk, JsonBody, UpstreamError, Wire};

/// `POST /v1/chat/completions`.
#[derive(Debug)]
pub struct Chat;

impl ChatDialect for Chat {
    const ENDPOINT: &'static str = "chat";
    const NATIVE: Option<Wire> = None;

    fn request(body: JsonBody) -> Result<JsonBody, ApiError> {
        Ok(body)
    }

    fn reply(body: Bytes, _: &Answer<'_>, _: bool) -> Option<Bytes> {
        Some(body)
    }

    fn frames(fields: &ChatFields, _: &Answer<'_>, _: bool) -> Box<dyn Frames> {
        Box::new(OpenAiFrames {
            include_usage: fields.include_usage,
        })
    }

    fn error(e: ApiError) -> Response {
        e.into_response()
    }
}

/// OpenAI's own stream: chunks as `data:` events, `[DONE]`, errors as OpenAI error objects.
#[derive(Debug)]
pub struct OpenAiFrames {
    /// The client asked for the usage chunk.
    pub include_usage: bool,
}

impl Frames for OpenAiFrames {
    fn chunk(&mut self, chunk: &Chunk) -> Option<Bytes> {
        (!chunk.usage_only || self.include_usage).then(|| data_frame(&chunk.data))
    }

    fn done(&mut self) -> Bytes {
        Bytes::from_static(b"data: [DONE]\n\n")
    }

    fn error(&mut self, e: &UpstreamError) -> Bytes {
        data_frame(&error_json(
            &e.to_string(),
            "upstream_error",
            None,
            Some(e.code()),
        ))
    }
}

fn data_frame(data: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(data.len() + 8);
    frame.put_slice(b"data: ");
    frame.put_slice(data);
    frame.put_slice(b"\n\n");
    frame.freeze()
}
