//! The OTLP exporter: spans encoded by [`crate::otlp`] and posted (HTTP/protobuf) by the
//! workspace's reqwest, driven by a small runtime of its own on the thread that exports.
//!
//! The SDK's batch span processor exports from a thread of its own and waits there for each
//! export. The request runs on that same thread, on a single-threaded tokio runtime this
//! exporter owns, so neither the encoding nor the sending of spans ever runs on the plane's
//! request workers, and a slow or dead collector holds up only that thread: spans queue in
//! the processor (a bounded queue; when full, new spans are dropped, never waited for). A
//! failed export is not retried: its spans are lost and the failure is logged by the SDK.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use tokio::runtime::Runtime;

use crate::otlp::Encoder;

/// Largest collector answer read (an OTLP answer is a few bytes; this only bounds a wrong one).
const MAX_ANSWER: usize = 1 << 20;

/// Posts each batch of spans within `timeout` for the whole exchange, on its own runtime.
#[derive(Debug)]
pub struct Exporter {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    headers: HeaderMap,
    encoder: Encoder,
    /// `None` only while dropping.
    runtime: Option<Runtime>,
    shut: AtomicBool,
}

/// Why the exporter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the export client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("cannot start the export runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("the OTLP endpoint {0:?} is not a URL")]
    Endpoint(String),
    #[error("the OTLP header {0:?} is not a valid HTTP header")]
    Header(String),
}

impl Exporter {
    pub fn new(export: &crate::env::Export) -> Result<Self, ClientError> {
        let endpoint = reqwest::Url::parse(&export.endpoint)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| ClientError::Endpoint(export.endpoint.clone()))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &export.headers {
            let header = HeaderName::try_from(name.as_str())
                .ok()
                .zip(HeaderValue::try_from(value.as_str()).ok());
            // The value may be a credential: only the name goes into the error.
            let (name, value) = header.ok_or_else(|| ClientError::Header(name.clone()))?;
            headers.append(name, value);
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        let http = reqwest::Client::builder().timeout(export.timeout).build()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("otel-export")
            .build()?;
        Ok(Self {
            http,
            endpoint,
            headers,
            encoder: Encoder::default(),
            runtime: Some(runtime),
            shut: AtomicBool::new(false),
        })
    }

    /// The timeout the client was built with is the whole exchange's; this is for the log.
    fn send(&self, body: Vec<u8>) -> Result<(), String> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or("the OTLP exporter is shut down")?;
        if tokio::runtime::Handle::try_current().is_ok() {
            // The SDK exports from its own thread; a runtime worker must never wait here.
            return Err("exports run on the batch processor's thread, not on a runtime".into());
        }
        let request = self
            .http
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .body(body);
        runtime.block_on(async {
            let mut answer = request.send().await.map_err(|e| e.to_string())?;
            let status = answer.status();
            let mut body = BytesMut::new();
            while let Some(chunk) = answer.chunk().await.map_err(|e| e.to_string())? {
                if body.len() + chunk.len() > MAX_ANSWER {
                    return Err("the collector's answer is too large".to_owned());
                }
                body.extend_from_slice(&chunk);
            }
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("the collector answered {status}"))
            }
        })
    }
}

impl SpanExporter for Exporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.shut.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let body = self.encoder.request(&batch);
        drop(batch);
        self.send(body).map_err(OTelSdkError::InternalFailure)
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        if self.shut.swap(true, Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.encoder = Encoder::new(resource);
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        // Never blocks, wherever the exporter happens to be dropped.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
