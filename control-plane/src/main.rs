//! `control-plane` binary: parse the command line, set up logging, run the library.

use std::process::ExitCode;

use clap::Parser;
use control_plane::config::{Cli, Command, ENV_DATABASE_URL, ENV_LOG, ENV_LOG_FORMAT};
use control_plane::serve::{self, Settings};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "control plane stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let database_url = || {
        cli.serve
            .database_url
            .clone()
            .ok_or_else(|| anyhow::anyhow!("{ENV_DATABASE_URL} is required"))
    };
    proto::set_replicas_setting(cli.serve.nats_replicas.map(usize::from));
    if let Some(urls) = &cli.serve.nats_url {
        control_plane::config::check_nats_urls(urls)?;
    }
    match cli.command {
        None | Some(Command::Serve) => {
            let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok();
            let settings = Settings {
                database_url: database_url()?,
                nats_url: cli.serve.nats_url.clone(),
                listen: cli.serve.listen,
                addr_file: cli.serve.addr_file.clone(),
                request_log: control_plane::requestlog::Retention {
                    days: cli.serve.request_log_retention_days,
                    sweep_every: std::time::Duration::from_secs(cli.serve.request_log_sweep_secs),
                },
            };
            serve::serve(settings, metrics).await
        }
        Some(Command::Migrate) => {
            let store = serve::open_store(&database_url()?).await?;
            tracing::info!(head = store.head().await?, "database is migrated");
            Ok(())
        }
        Some(Command::RebuildProjections) => {
            let store = serve::open_store(&database_url()?).await?;
            let streams = control_plane::store::rebuild::rebuild(&store).await?;
            tracing::info!(streams, "projections rebuilt from the event log");
            Ok(())
        }
        Some(Command::Apply { file, no_prune }) => {
            let snapshot = control_plane::check_file(&file)?;
            let store = serve::open_store(&database_url()?).await?;
            let seal = serve::seal_key()?;
            let report = control_plane::declarative::apply(
                &store,
                seal.as_ref(),
                "cli",
                &snapshot,
                !no_prune,
            )
            .await
            .map_err(|e| match e {
                // Name every refused field, as the API's `details` do.
                control_plane::api::ApiError::Invalid(fields) => anyhow::anyhow!(
                    "validation failed: {}",
                    fields
                        .iter()
                        .map(|f| format!("{}: {}", f.path, f.reason))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                other => anyhow::anyhow!("{other}"),
            })?;
            tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "applied");
            Ok(())
        }
        Some(Command::Check { file }) => {
            let s = control_plane::check_file(&file)?;
            tracing::info!(
                providers = s.providers.len(),
                routes = s.routes.len(),
                keys = s.keys.len(),
                "valid"
            );
            Ok(())
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env(ENV_LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var(ENV_LOG_FORMAT).is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
