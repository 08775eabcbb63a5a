//! The HTTP client the OTLP exporter sends with: the workspace's reqwest, driven by a small
//! runtime of its own on the thread that exports.
//!
//! The SDK's batch span processor exports from a thread of its own and waits there for each
//! export. The request runs on that same thread, on a single-threaded tokio runtime this
//! client owns, so neither the encoding nor the sending of spans ever runs on the plane's
//! request workers, and a slow or dead collector holds up only that thread: spans queue in
//! the processor (a bounded queue; when full, new spans are dropped, never waited for) while
//! it retries.

use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use tokio::runtime::Runtime;

/// Largest collector answer read (an OTLP answer is a few bytes; this only bounds a wrong one).
const MAX_ANSWER: usize = 1 << 20;

/// Sends each export request within `timeout` for the whole exchange, on its own runtime.
#[derive(Debug)]
pub struct ExportClient {
    http: reqwest::Client,
    /// `None` only while dropping.
    runtime: Option<Runtime>,
}

/// Why the export client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the export client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("cannot start the export runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

impl ExportClient {
    pub fn new(timeout: Duration) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("otel-export")
            .build()?;
        Ok(Self {
            http,
            runtime: Some(runtime),
        })
    }
}

impl Drop for ExportClient {
    fn drop(&mut self) {
        // Never blocks, wherever the exporter happens to be dropped.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or("the export client is shut down")?;
        if tokio::runtime::Handle::try_current().is_ok() {
            // The SDK exports from its own thread; a runtime worker must never wait here.
            return Err("exports run on the batch processor's thread, not on a runtime".into());
        }
        let request = reqwest::Request::try_from(request)?;
        runtime.block_on(exchange(&self.http, request))
    }
}

async fn exchange(
    http: &reqwest::Client,
    request: reqwest::Request,
) -> Result<Response<Bytes>, HttpError> {
    let mut answer = http.execute(request).await?;
    let mut body = BytesMut::new();
    while let Some(chunk) = answer.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err("the collector's answer is too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    let mut response = Response::new(body.freeze());
    *response.status_mut() = answer.status();
    *response.headers_mut() = std::mem::take(answer.headers_mut());
    Ok(response)
}
