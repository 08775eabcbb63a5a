//! The HTTP client the OTLP exporter sends with: the workspace's reqwest, its requests run on
//! the plane's own tokio runtime.
//!
//! The SDK's batch span processor exports from a thread of its own and waits there for each
//! export; the request itself is spawned onto the runtime (reqwest needs one) and only the
//! processor's thread waits for it. So an export, slow or failing, never runs on a request's
//! task, and a dead collector costs the requests nothing: spans queue in the processor (a
//! bounded queue; when full, new spans are dropped, never waited for) while it retries.

use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use tokio::runtime::Handle;

/// Largest collector answer read (an OTLP answer is a few bytes; this only bounds a wrong one).
const MAX_ANSWER: usize = 1 << 20;

/// Sends each export request on `runtime`, within `timeout` for the whole exchange.
#[derive(Debug)]
pub struct RuntimeClient {
    http: reqwest::Client,
    runtime: Handle,
}

impl RuntimeClient {
    pub fn new(runtime: Handle, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Self { http, runtime })
    }
}

#[async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let http = self.http.clone();
        let exchange = self.runtime.spawn(async move {
            let mut answer = http.execute(request).await?;
            let mut body = BytesMut::new();
            while let Some(chunk) = answer.chunk().await? {
                if body.len() + chunk.len() > MAX_ANSWER {
                    return Err::<_, HttpError>("the collector's answer is too large".into());
                }
                body.extend_from_slice(&chunk);
            }
            let mut response = Response::new(body.freeze());
            *response.status_mut() = answer.status();
            *response.headers_mut() = std::mem::take(answer.headers_mut());
            Ok(response)
        });
        // A runtime that is shutting down cancels the task: the export fails, nothing waits.
        exchange.await?
    }
}
