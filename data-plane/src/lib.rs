//! Switchyard data plane: a stateless streaming proxy in front of LLM providers.
//!
//! Its only inputs are a configuration snapshot and client requests; its only outputs are
//! responses and usage events. See `docs/ARCHITECTURE.md` for the layout, and `pipeline` for the
//! stages of a request.
//!
//! Sources: `--config FILE` (snapshot from the file), `--nats URL` (snapshot from the control
//! plane), or both (snapshot from the file, usage events and budget leases over NATS). Without
//! NATS usage events stay in the spool directory.

pub mod admission;
pub mod background;
pub mod cache;
pub mod config;
pub mod dialect;
pub mod error;
#[cfg(test)]
mod fixture_cases;
pub mod guard;
pub mod metrics;
pub mod pipeline;
pub mod providers;
pub mod routing;
pub mod seal;
pub mod server;
pub mod snapshot;
pub mod spans;
pub mod state;
pub mod stored;
pub mod usage;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServeArgs;
use crate::seal::SealKey;
use crate::snapshot::SnapshotStore;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "no snapshot source: pass --config FILE (or set {}) or --nats URL (or set {})",
        config::ENV_CONFIG,
        config::ENV_NATS_URL
    )]
    NoSource,
    #[error(transparent)]
    Snapshot(#[from] snapshot::file::LoadError),
    #[error(transparent)]
    NatsUrl(#[from] snapshot::nats::BadUrl),
    #[error(transparent)]
    SealKey(#[from] seal::BadKey),
    #[error(transparent)]
    SpoolInUse(#[from] usage::SpoolInUse),
    #[error(transparent)]
    Embedder(#[from] cache::embed::EmbedError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("cannot write {path}: {source}")]
    AddrFile {
        path: String,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Telemetry(#[from] telemetry::Error),
}

/// How long a clean shutdown tries to replay the usage spool before leaving it for next time.
const SHUTDOWN_REPLAY: Duration = Duration::from_secs(5);
/// How long a clean shutdown waits for the last spans to reach the collector.
const SHUTDOWN_TRACES: Duration = Duration::from_secs(5);

/// Runs the proxy until SIGINT/SIGTERM, then drains open requests for the grace period and
/// flushes usage events.
pub async fn run(args: ServeArgs, metrics: PrometheusHandle) -> Result<(), StartError> {
    // What this proxy knows of its deployments' health lives as long as the proxy: every
    // snapshot it compiles, the health listener, the probes and the requests share it.
    let health = Arc::new(routing::Health::default());
    let ctx = snapshot::Context {
        seal_key: SealKey::from_env()?,
        health: Arc::clone(&health),
    };
    let snapshots = Arc::new(SnapshotStore::default());
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    start_snapshot_source(&args, ctx, &snapshots, &tasks, &cancel)?;
    let proxy_id: Arc<str> = match &args.proxy_id {
        Some(id) if !id.trim().is_empty() => Arc::from(id.trim()),
        _ => Arc::from(uuid::Uuid::now_v7().to_string()),
    };
    tracing::info!(proxy_id = %proxy_id, "proxy identity");
    let telemetry = telemetry::init(telemetry::Service {
        name: "switchyard-data-plane",
        instance: Some(&proxy_id),
        // Exporting spans is background work: nice 19, like compiling snapshots.
        background: snapshot::lower_priority,
    })?;
    proto::set_replicas_setting(args.nats_replicas.map(usize::from));
    // A client of its own on this runtime for usage events and leases; the snapshot source
    // keeps its own on its isolated runtime.
    let nats = match &args.nats_url {
        Some(urls) => usage::connect(snapshot::nats::parse_servers(urls)?).await,
        None => None,
    };
    if let Some(client) = &nats {
        routing::health::start(
            client.clone(),
            Arc::clone(&proxy_id),
            Arc::clone(&health),
            &tasks,
            &cancel,
        )
        .await;
    }
    let admission = Arc::new(admission::Admission::new(
        nats.clone(),
        proxy_id.to_string(),
    ));
    let stored = Arc::new(stored::StoredResponses::new(
        nats.clone(),
        Duration::from_secs(args.responses_ttl_secs),
    ));
    let cache = Arc::new(cache::Cache::new(
        nats.clone(),
        args.cache_max_entries,
        args.cache_max_bytes,
    ));
    let embedder = match &args.embed_model {
        Some(dir) => {
            let embedder = cache::embed::Embedder::load(dir)?;
            tracing::info!(model = %dir.display(), "semantic cache embedder loaded");
            Some(embedder)
        }
        None => None,
    };
    // The index serves policies that embed by a route even without the in-process model.
    let semantic = Arc::new(cache::semantic::Semantic::new(embedder, nats.clone()));
    if let Some(client) = &nats {
        semantic.follow(client.clone(), &tasks, cancel.clone());
    }
    let (usage_sink, usage) = usage::start(
        &usage::USAGE,
        nats.clone(),
        usage::Spool::open_exclusive(
            &args.spool_dir,
            args.spool_max_bytes,
            &metrics::USAGE_STREAM,
        )?,
    );
    let (log_sink, request_log) = usage::start(
        &usage::REQUESTS,
        nats,
        usage::Spool::open_exclusive(
            &args.spool_dir.join("requests"),
            args.spool_max_bytes,
            &metrics::REQUEST_LOG_STREAM,
        )?,
    );
    {
        let metrics = metrics.clone();
        let mut ticks = background::Ticks::new(
            Duration::from_secs(5),
            tokio::time::MissedTickBehavior::Burst,
            cancel.clone(),
        );
        tasks.spawn(async move {
            while ticks.next().await {
                metrics.run_upkeep();
            }
        });
    }

    let http_client = || {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(args.connect_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()
    };
    let http = http_client()?;
    tasks.spawn(routing::probe::run(
        Arc::clone(&snapshots),
        Arc::clone(&health),
        http.clone(),
        args.upstream_timeout(),
        cancel.clone(),
    ));
    let parts = server::Parts {
        snapshots: Arc::clone(&snapshots),
        http,
        max_body: args.max_body_bytes,
        default_timeout: args.upstream_timeout(),
        tasks: tasks.clone(),
        admission: Arc::clone(&admission),
        usage: usage_sink,
        request_log: log_sink,
        log_payload_max_bytes: args.log_payload_max_bytes as usize,
        proxy_id,
        health,
        stored,
        cache,
        semantic,
        tracer: telemetry.tracer(),
    };

    let count = config::worker_threads();
    let api = server::workers::bind(args.listen, count).map_err(|source| StartError::Bind {
        addr: args.listen,
        source,
    })?;
    let ops = bind(args.ops_listen).await?;
    let api_addr = api
        .first()
        .and_then(|l| l.local_addr().ok())
        .unwrap_or(args.listen);
    let ops_addr = local(&ops, args.ops_listen);
    let grace = Duration::from_secs(args.shutdown_grace_secs);
    let mut workers = server::workers::Workers::start(
        api,
        &server::workers::Start {
            parts: &parts,
            http: &http_client,
            cancel: &cancel,
            tasks: &tasks,
            grace,
        },
    )?;
    drop(parts);
    if let Some(file) = &args.addr_file {
        write_addr_file(file, api_addr, ops_addr)?;
    }
    tracing::info!(api = %api_addr, ops = %ops_addr, workers = count, "listening");

    let ops_server = axum::serve(ops, server::ops_router(snapshots, metrics))
        .with_graceful_shutdown(cancel.clone().cancelled_owned());
    tasks.spawn(async move {
        if let Err(e) = ops_server.await {
            tracing::error!(error = %e, "ops listener failed");
        }
    });

    let early = tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutting down: no new connections, draining open requests");
            Ok(())
        }
        r = workers.first() => {
            tracing::error!("a request worker stopped serving; shutting down");
            r
        }
    };
    cancel.cancel();
    // The workers give open requests the grace period, then report.
    let rest = workers.all(grace + Duration::from_secs(1)).await;
    let served = early.and(rest).map_err(StartError::Serve);
    tasks.close();
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        tracing::warn!("background tasks still running after the grace period");
    }
    // Every relay has ended (or the grace is over): their events are queued or spooled.
    usage.shutdown(SHUTDOWN_REPLAY).await;
    request_log.shutdown(SHUTDOWN_REPLAY).await;
    admission.release_all().await;
    telemetry.shutdown(SHUTDOWN_TRACES).await;
    served
}

/// Installs the first snapshot (from the file, or the NATS cache if there is one) and spawns the
/// task that follows the source. With both a file and NATS, the file is the snapshot source.
fn start_snapshot_source(
    args: &ServeArgs,
    ctx: snapshot::Context,
    snapshots: &Arc<SnapshotStore>,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
) -> Result<(), StartError> {
    match (&args.config, &args.nats_url) {
        (None, None) => Err(StartError::NoSource),
        (Some(path), _) => {
            // Stamped before it is read: the watcher (on a low-priority thread that may start
            // late) then sees any change made after this read.
            let loaded = snapshot::file::stamp(path);
            let initial = snapshot::file::load(path, &ctx)?;
            tracing::info!(path = %path.display(), version = initial.version, keys = initial.key_count(), routes = initial.aliases().len(), "snapshot loaded");
            // The store is empty, so nothing can be newer.
            let _ = snapshots.install(initial);
            spawn_isolated(
                tasks,
                "snapshot-file",
                snapshot::file::watch(
                    path.clone(),
                    loaded,
                    Arc::clone(snapshots),
                    ctx,
                    Duration::from_millis(args.config_poll_ms.max(10)),
                    cancel.clone(),
                ),
            );
            Ok(())
        }
        (None, Some(urls)) => {
            let servers = snapshot::nats::parse_servers(urls)?;
            let cache = &args.snapshot_cache;
            let mut parts = snapshot::parts::HeldParts::default();
            match snapshot::cache::load(cache, &ctx) {
                Ok(Some(cached)) => {
                    let s = &cached.snapshot;
                    tracing::info!(path = %cache.display(), version = s.version, keys = s.key_count(), routes = s.aliases().len(), "serving the cached snapshot until NATS answers");
                    if snapshots.install(cached.snapshot).is_ok() {
                        parts = cached.parts;
                        metrics::snapshot_published(cached.published_at_ms);
                    }
                }
                Ok(None) => {
                    tracing::info!(path = %cache.display(), "no snapshot cache yet; not ready until NATS delivers a snapshot");
                }
                Err(e) => {
                    metrics::snapshot_reload("invalid");
                    tracing::warn!(reason = %e, "ignoring the snapshot cache; not ready until NATS delivers a snapshot");
                }
            }
            let source = snapshot::nats::Source {
                servers,
                cache: cache.clone(),
                ctx,
                parts,
            };
            spawn_isolated(
                tasks,
                "snapshot-nats",
                snapshot::nats::watch(source, Arc::clone(snapshots), cancel.clone()),
            );
            Ok(())
        }
    }
}

/// Runs background work on its own thread and single-threaded runtime, at a lower scheduling
/// priority (nice 19, also for the runtime's blocking threads), so that it never competes with
/// request handling: receiving a 15 MB snapshot from NATS, decoding it and dropping the
/// replaced one take tens of milliseconds of CPU each, and on a busy machine the requests should
/// get the cores first. The tracker still owns it: shutdown waits for it to end.
fn spawn_isolated<F>(tasks: &TaskTracker, name: &str, work: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    // Its blocking threads are named after it (`snapshot-nats:b`), so they can be told apart
    // from request workers in `top -H` and /proc.
    let blocking = format!("{name}:b");
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            snapshot::lower_priority();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(blocking)
                .on_thread_start(snapshot::lower_priority)
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(work),
                Err(e) => tracing::error!(error = %e, "cannot start a background runtime"),
            }
            let _ = done_tx.send(());
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, thread = name, "cannot start a background thread");
        return;
    }
    tasks.spawn(async move {
        let _ = done_rx.await;
    });
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn local(listener: &TcpListener, asked: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(asked)
}

/// Writes `{"listen": ..., "ops": ...}` atomically (temp file + rename).
fn write_addr_file(path: &Path, api: SocketAddr, ops: SocketAddr) -> Result<(), StartError> {
    let err = |source| StartError::AddrFile {
        path: path.display().to_string(),
        source,
    };
    let text = serde_json::json!({"listen": api.to_string(), "ops": ops.to_string()}).to_string();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
