//! `otlp-receiver`: the harness's OTLP/HTTP receiver as a process, for benchmarks: decodes
//! every `POST /v1/traces` (protobuf) and counts the spans; `GET /stats` says how many.
//!
//! Binds `--listen`, writes the bound `IP:PORT` atomically to `--addr-file` (if given), and
//! serves until SIGTERM or SIGINT.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use switchyard_tests::support::{write_atomic, Keep, OtlpReceiver};

#[derive(Debug, Parser)]
#[command(name = "otlp-receiver", about = "Counting OTLP/HTTP trace receiver")]
struct Cli {
    /// Address to bind; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// File to write the bound address to (written to a temporary file, then renamed).
    #[arg(long)]
    addr_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let receiver = OtlpReceiver::serve(cli.listen, Keep::Count)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    if let Some(path) = &cli.addr_file {
        write_atomic(path, receiver.addr().to_string().as_bytes())?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
