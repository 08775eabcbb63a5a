//! Process configuration: every environment variable the control plane reads, in one place.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Postgres connection string.
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";
/// NATS server URL(s) for snapshot publishing.
pub const ENV_NATS_URL: &str = "NATS_URL";
/// The bootstrap admin token (global scope).
pub const ENV_ADMIN_TOKEN: &str = "SWITCHYARD_ADMIN_TOKEN";
/// Base64 32-byte key sealing provider credentials (shared with the data planes).
pub const ENV_SEAL_KEY: &str = "SWITCHYARD_SEAL_KEY";
/// Admin API listener.
pub const ENV_ADMIN_LISTEN: &str = "SWITCHYARD_ADMIN_LISTEN";
/// Days the request log keeps bodies.
pub const ENV_REQUEST_LOG_RETENTION_DAYS: &str = "SWITCHYARD_REQUEST_LOG_RETENTION_DAYS";
/// How often expired request-log partitions are looked for (seconds).
pub const ENV_REQUEST_LOG_SWEEP_SECS: &str = "SWITCHYARD_REQUEST_LOG_SWEEP_SECS";
/// `tracing` filter.
pub const ENV_LOG: &str = "SWITCHYARD_LOG";
/// `json` for JSON log lines.
pub const ENV_LOG_FORMAT: &str = "SWITCHYARD_LOG_FORMAT";

/// The servers of a comma-separated NATS URL list (`nats://a:4222,nats://b:4222`): the client
/// connects to any of them and reconnects to the others. An entry that does not parse is left
/// out here; [`check_nats_urls`] refuses such a list at start-up.
pub fn nats_servers(urls: &str) -> Vec<async_nats::ServerAddr> {
    urls.split(',')
        .map(str::trim)
        .filter_map(|u| u.parse().ok())
        .collect()
}

/// Refuses a NATS URL list with an entry that does not parse, or no entry (the message names
/// the entry's position, never its text, which may hold credentials).
pub fn check_nats_urls(urls: &str) -> anyhow::Result<()> {
    let entries: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    anyhow::ensure!(!entries.is_empty(), "{ENV_NATS_URL} names no server");
    for (i, u) in entries.iter().enumerate() {
        if let Err(e) = u.parse::<async_nats::ServerAddr>() {
            anyhow::bail!("{ENV_NATS_URL}: entry {} is not a NATS URL: {e}", i + 1);
        }
    }
    Ok(())
}

#[derive(Debug, Parser)]
#[command(name = "control-plane", version, about = "Switchyard control plane")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the admin API and publish snapshots (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Rebuild every projection from the event log and exit.
    RebuildProjections,
    /// Apply a declarative config file (the data plane's YAML shape) and exit.
    Apply {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Keep what the store holds beyond the file (default: delete and revoke it).
        #[arg(long)]
        no_prune: bool,
    },
    /// Validate a config file without applying it.
    Check {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[arg(long, env = ENV_DATABASE_URL, global = true)]
    pub database_url: Option<String>,
    #[arg(long, env = ENV_NATS_URL, global = true)]
    pub nats_url: Option<String>,
    /// Copies JetStream keeps of each stream, bucket and object store this plane creates
    /// (1 to 5); unset: 3 when the NATS server is in a cluster of 3 or more, else 1.
    #[arg(long, env = proto::NATS_REPLICAS_ENV, global = true,
          value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_replicas: Option<u8>,
    #[arg(long, env = ENV_ADMIN_LISTEN, default_value = "0.0.0.0:8081")]
    pub listen: SocketAddr,
    /// Write `{"listen": "..."}` here once bound (for port 0).
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
    /// Days the request log keeps bodies (`full` requests): older daily partitions are
    /// dropped whole. 0 keeps them forever.
    #[arg(long, env = ENV_REQUEST_LOG_RETENTION_DAYS, default_value_t = 30)]
    pub request_log_retention_days: u32,
    /// How often expired request-log partitions are looked for, in seconds.
    #[arg(long, env = ENV_REQUEST_LOG_SWEEP_SECS, default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_log_sweep_secs: u64,
}
