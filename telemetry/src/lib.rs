//! OpenTelemetry traces for both planes, set up one way: configured from the standard
//! `OTEL_*` variables ([`env`]), encoded straight to OTLP protobuf ([`otlp`]) and exported over
//! HTTP by the SDK's batch span processor off the request path ([`export`]), with W3C trace context taken from callers and
//! passed on ([`propagate`]).
//!
//! Off by default: [`init`] then yields a [`Tracer`] that is `None` inside, so a plane that
//! asks `tracer.get()` before building anything pays one branch per request and nothing else.
//! On, spans are handed to a bounded queue and exported from the processor's own thread
//! (encoding and sending both; at the plane's background priority if it gives one, so
//! requests get the cores first); an unreachable collector loses spans, never slows or fails
//! a request.
//!
//! Which spans exist and what they carry is each plane's business (`data_plane::spans`,
//! `control_plane::spans`); this crate holds only what both would otherwise repeat. It is a
//! crate of its own because `proto` must stay free of I/O.

pub mod env;
pub mod export;
pub mod otlp;
pub mod propagate;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{InstrumentationScope, Key, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

pub use env::Settings;
pub use opentelemetry;

/// Why traces could not be set up (a configuration mistake: the plane does not start).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("OpenTelemetry: {0}")]
    Client(#[from] export::ClientError),
    #[error("OpenTelemetry: cannot start the exporting thread")]
    Thread,
}

/// Who is tracing: the plane's default `service.name` (`OTEL_SERVICE_NAME` or a
/// `service.name` in `OTEL_RESOURCE_ATTRIBUTES` win) and, if it has one, the instance's id.
#[derive(Debug, Clone, Copy)]
pub struct Service<'a> {
    pub name: &'static str,
    pub instance: Option<&'a str>,
    /// Run first on the thread that starts the exporting thread, which inherits what it sets
    /// (the data plane lowers its scheduling priority, as for its other background work).
    pub background: fn(),
}

/// The process's tracing: the provider (kept for the flush at shutdown) and its tracer.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    tracer: Tracer,
}

/// A cheap handle to the tracer, `None` inside when traces are off.
#[derive(Debug, Clone, Default)]
pub struct Tracer(Option<SdkTracer>);

impl Tracer {
    /// The tracer, if traces are on.
    pub fn get(&self) -> Option<&SdkTracer> {
        self.0.as_ref()
    }
}

/// Sets traces up as the environment says (see [`env`]).
pub fn init(service: Service<'_>) -> Result<Telemetry, Error> {
    let export = match Settings::read(|name| std::env::var(name).ok()) {
        Settings::Off(why) => {
            tracing::debug!(reason = why, "OpenTelemetry traces are off");
            return Ok(Telemetry::default());
        }
        Settings::On(export) => export,
    };
    if let Some(protocol) = &export.ignored_protocol {
        tracing::warn!(
            protocol,
            used = env::PROTOCOL,
            "this OTLP protocol is not supported; exporting traces over HTTP/protobuf"
        );
    }
    let exporter = export::Exporter::new(&export)?;
    // The builder's default configuration reads the sampler from OTEL_TRACES_SAMPLER(_ARG);
    // the batch processor reads OTEL_BSP_* and starts its thread here, on a thread of ours
    // whose priority it inherits.
    let resource = resource(service);
    let provider = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                (service.background)();
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build()
            })
            .join()
    })
    .map_err(|_| Error::Thread)?;
    let scope = InstrumentationScope::builder(service.name)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let tracer = provider.tracer_with_scope(scope);
    tracing::info!(
        endpoint = export.endpoint,
        sampler = std::env::var("OTEL_TRACES_SAMPLER")
            .as_deref()
            .unwrap_or("parentbased_always_on"),
        "exporting OpenTelemetry traces over OTLP"
    );
    Ok(Telemetry {
        provider: Some(provider),
        tracer: Tracer(Some(tracer)),
    })
}

/// `service.name` from the environment if it names one, else the plane's; the SDK's own
/// attributes and `OTEL_RESOURCE_ATTRIBUTES` as the SDK reads them.
fn resource(service: Service<'_>) -> Resource {
    let named = Resource::builder()
        .build()
        .get(&Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    let mut builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if !named {
        builder = builder.with_service_name(service.name);
    }
    if let Some(id) = service.instance {
        builder = builder.with_attribute(KeyValue::new("service.instance.id", id.to_owned()));
    }
    builder.build()
}

impl Telemetry {
    /// The tracer handle request paths hold.
    pub fn tracer(&self) -> Tracer {
        self.tracer.clone()
    }

    /// Exports what is queued and stops, waiting at most `within` (a collector that does not
    /// answer loses those spans; shutdown goes on). Call it while the runtime still runs: the
    /// last exports are sent on it.
    pub async fn shutdown(self, within: Duration) {
        let Some(provider) = self.provider else {
            return;
        };
        drop(self.tracer);
        let (done, finished) = tokio::sync::oneshot::channel();
        // The SDK's shutdown blocks until the processor's thread is done; it runs on a thread
        // of its own so that this runtime stays free to send the last exports.
        let spawned = std::thread::Builder::new()
            .name("otel-shutdown".into())
            .spawn(move || {
                let _ = done.send(provider.shutdown_with_timeout(within));
            });
        if spawned.is_err() {
            tracing::warn!("cannot start the thread that flushes traces; queued spans are lost");
            return;
        }
        match tokio::time::timeout(within + Duration::from_secs(1), finished).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "flushing traces at shutdown failed"),
            Ok(Err(_)) | Err(_) => tracing::warn!("flushing traces at shutdown did not finish"),
        }
    }
}
