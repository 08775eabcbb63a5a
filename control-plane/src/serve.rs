//! Starting the control plane: database pool, migrations, outbox relay, admin API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState};
use crate::config::{ENV_ADMIN_TOKEN, ENV_DATABASE_URL, ENV_NATS_URL, ENV_SEAL_KEY};
use crate::outbox::relay::{self, RelayConfig};
use crate::seal::SealKey;
use crate::store::{migrate, Store};

/// Everything `serve` needs, resolved from flags and environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub nats_url: Option<String>,
    pub listen: SocketAddr,
    pub addr_file: Option<PathBuf>,
    /// How long the request log keeps bodies.
    pub request_log: crate::requestlog::Retention,
}

/// A connection pool for `url`.
pub fn pool(url: &str) -> anyhow::Result<Pool> {
    let config: tokio_postgres::Config = url
        .parse()
        .with_context(|| format!("{ENV_DATABASE_URL} is not a valid connection string"))?;
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(16)
        .wait_timeout(Some(Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .context("building the database pool")
}

/// Connects and migrates, retrying while the database starts.
pub async fn open_store(url: &str) -> anyhow::Result<Store> {
    let pool = pool(url)?;
    let mut delay = Duration::from_millis(100);
    loop {
        match migrate::migrate(&pool).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(applied = n, "migrations applied");
                }
                return Ok(Store::new(pool));
            }
            Err(migrate::MigrateError::Edited(name)) => {
                anyhow::bail!("migration {name} was edited after it was applied")
            }
            Err(e) if delay < Duration::from_secs(10) => {
                tracing::warn!(error = %e, "database not ready; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads the seal key if configured.
pub fn seal_key() -> anyhow::Result<Option<SealKey>> {
    match std::env::var(ENV_SEAL_KEY) {
        Ok(v) if !v.trim().is_empty() => Ok(Some(
            SealKey::from_base64(&v).map_err(|e| anyhow::anyhow!("{ENV_SEAL_KEY}: {e}"))?,
        )),
        _ => Ok(None),
    }
}

/// Serves until SIGINT/SIGTERM.
pub async fn serve(settings: Settings, metrics: Option<PrometheusHandle>) -> anyhow::Result<()> {
    let bootstrap = std::env::var(ENV_ADMIN_TOKEN).unwrap_or_default();
    anyhow::ensure!(
        bootstrap.len() >= 16,
        "{ENV_ADMIN_TOKEN} must be set to a token of at least 16 characters"
    );
    let seal = seal_key()?;
    if seal.is_none() {
        tracing::warn!("{ENV_SEAL_KEY} is not set: providers can only reference credentials by environment variable");
    }
    let store = open_store(&settings.database_url).await?;
    let telemetry = telemetry::init(telemetry::Service {
        name: "switchyard-control-plane",
        instance: None,
        background: || {},
    })?;
    let tracer = telemetry.tracer();
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    crate::roles::init();
    match &settings.nats_url {
        Some(nats_url) => {
            let config = RelayConfig {
                database_url: settings.database_url.clone(),
                nats_url: nats_url.clone(),
            };
            tasks.spawn(relay::run(store.clone(), config, cancel.clone()));
            let leases = crate::lease::LeaseConfig {
                nats_url: nats_url.clone(),
            };
            tasks.spawn(crate::lease::run(store.clone(), leases, cancel.clone()));
            tasks.spawn(crate::usage::fold::run(
                store.clone(),
                nats_url.clone(),
                tracer.clone(),
                cancel.clone(),
            ));
            tasks.spawn(crate::requestlog::run(
                store.clone(),
                nats_url.clone(),
                settings.request_log,
                cancel.clone(),
            ));
            tasks.spawn(crate::health::run(
                store.clone(),
                nats_url.clone(),
                cancel.clone(),
            ));
        }
        None => {
            tracing::warn!("{ENV_NATS_URL} is not set: snapshots are not published to data planes")
        }
    }
    tasks.spawn(crate::gauges::run(
        store.clone(),
        settings.nats_url.clone(),
        cancel.clone(),
    ));
    if let Some(m) = metrics.clone() {
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let upkeep = || async { m.run_upkeep() };
            crate::background::every(Duration::from_secs(5), &cancel, upkeep).await;
        });
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    if let Some(file) = &settings.addr_file {
        write_addr_file(file, addr)?;
    }
    tracing::info!(%addr, "admin API listening");
    let app = api::router(AppState::new(store, &bootstrap, seal, metrics), tracer);
    let shutdown = {
        let cancel = cancel.clone();
        async move {
            shutdown_signal().await;
            cancel.cancel();
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    cancel.cancel();
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(10), tasks.wait()).await;
    telemetry.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

fn write_addr_file(path: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::json!({"listen": addr.to_string()}).to_string(),
    )?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
