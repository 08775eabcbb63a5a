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
