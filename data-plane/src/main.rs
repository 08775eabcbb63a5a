//! `data-plane` binary: parse the command line, set up logging and metrics, run the library.

use std::process::ExitCode;

use clap::Parser;
use data_plane::config::{Cli, Command, ENV_LOG, ENV_LOG_FORMAT};

/// mimalloc: the proxy allocates many short-lived buffers across threads, where glibc's malloc
/// spends measurable time in arena locks (seen in profiles under load).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::HashKey { key }) = cli.command {
        #[allow(clippy::print_stdout)]
        {
            println!("{}", hex::encode(data_plane::pipeline::auth::digest(&key)));
        }
        return ExitCode::SUCCESS;
    }
    init_logging();
    // The main runtime runs the background work (usage publishing, NATS, probes, the ops
    // listener); requests are served by one single-threaded runtime per core of their own
    // (`data_plane::server::workers`).
    let mut builder = tokio::runtime::Builder::new_current_thread();
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let metrics = match data_plane::metrics::install() {
        Ok(handle) => handle,
        Err(e) => {
            tracing::error!(error = %e, "cannot install the metrics recorder");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(data_plane::run(cli.serve, metrics)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "data plane stopped");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env(ENV_LOG)
        // The NATS client logs every failed reconnect attempt at info; the data plane's own
        // connected/lost lines say what matters.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,async_nats=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var(ENV_LOG_FORMAT).is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
