//! `mock-provider`: the scripted mock OpenAI-compatible provider as a process.
//!
//! Binds `--listen`, writes the bound `IP:PORT` atomically to `--addr-file` (if given), prints
//! `listening on IP:PORT`, and serves until SIGTERM or SIGINT. Behaviour is documented in
//! `switchyard_tests::mock`.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use switchyard_tests::mock::{serve, MockOptions};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How long open connections may drain after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Parser)]
#[command(
    name = "mock-provider",
    about = "Scripted mock OpenAI-compatible LLM provider"
)]
struct Cli {
    /// Address to bind; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// File to write the bound address to (written to a temporary file, then renamed).
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Require this key (`Authorization: Bearer KEY`, Azure routes `api-key: KEY`).
    #[arg(long)]
    api_key: Option<String>,
    /// Do not record requests (for benchmarks).
    #[arg(long)]
    no_record: bool,
    /// Google service-account JSON key file whose JWTs `POST /token` accepts (Vertex AI).
    #[arg(long)]
    google_service_account: Option<PathBuf>,
    /// Lifetime in seconds of the access tokens `POST /token` issues.
    #[arg(long, default_value_t = 3600)]
    token_ttl_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    let listener = TcpListener::bind(&cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    let addr = listener.local_addr()?;
    if let Some(path) = &cli.addr_file {
        write_atomically(path, &addr.to_string())?;
    }
    println!("listening on {addr}");

    let google_service_account = match &cli.google_service_account {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let options = MockOptions {
        api_key: cli.api_key,
        record: !cli.no_record,
        google_service_account,
        google_token_ttl_secs: cli.token_ttl_secs,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let mut server = tokio::spawn(serve(listener, options, async {
        let _ = stopped.await;
    }));
    tokio::select! {
        result = &mut server => return Ok(result??),
        () = shutdown_signal() => {}
    }
    let _ = stop.send(());
    match tokio::time::timeout(DRAIN_TIMEOUT, &mut server).await {
        Ok(result) => Ok(result??),
        Err(_) => {
            tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; exiting");
            server.abort();
            Ok(())
        }
    }
}

/// Writes `contents` to a sibling temporary file and renames it over `path`, so readers never
/// see a partial address.
fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM ({e}); only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
