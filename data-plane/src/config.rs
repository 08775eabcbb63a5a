//! Process configuration, read once at start from flags and environment variables.
//!
//! Every environment variable the data plane reads is a named constant here, so operators find
//! them all in one place (the README's configuration table is generated from this list by hand).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Path of the YAML snapshot file.
pub const ENV_CONFIG: &str = "SWITCHYARD_CONFIG";
/// NATS server URL(s) to take snapshots from (instead of a file), comma-separated.
pub const ENV_NATS_URL: &str = "SWITCHYARD_NATS_URL";
/// Where the last good snapshot from NATS is kept, to serve from after a restart.
pub const ENV_SNAPSHOT_CACHE: &str = "SWITCHYARD_SNAPSHOT_CACHE";
/// Id of this proxy in usage events and budget leases (default: a new UUIDv7 per process).
pub const ENV_PROXY_ID: &str = "SWITCHYARD_PROXY_ID";
/// Directory of the usage-event spool (events not yet acknowledged by NATS).
pub const ENV_SPOOL_DIR: &str = "SWITCHYARD_SPOOL_DIR";
/// Most bytes the usage spool may hold; events beyond are dropped, counted and logged.
pub const ENV_LOG_PAYLOAD_MAX_BYTES: &str = "SWITCHYARD_LOG_PAYLOAD_MAX_BYTES";
pub const ENV_SPOOL_MAX_BYTES: &str = "SWITCHYARD_SPOOL_MAX_BYTES";
/// Base64 of the 32-byte key that opens sealed provider credentials (never a flag: argv is
/// visible to every user of the machine).
pub const ENV_SEAL_KEY: &str = "SWITCHYARD_SEAL_KEY";
/// Address of the client-facing API listener.
pub const ENV_LISTEN: &str = "SWITCHYARD_LISTEN";
/// Address of the operations listener (`/healthz`, `/readyz`, `/metrics`).
pub const ENV_OPS_LISTEN: &str = "SWITCHYARD_OPS_LISTEN";
/// Largest request body accepted, in bytes.
pub const ENV_MAX_BODY_BYTES: &str = "SWITCHYARD_MAX_BODY_BYTES";
/// How often the snapshot file is checked for changes, in milliseconds.
pub const ENV_CONFIG_POLL_MS: &str = "SWITCHYARD_CONFIG_POLL_MS";
/// Default upstream timeout when neither route nor provider sets one, in milliseconds.
pub const ENV_UPSTREAM_TIMEOUT_MS: &str = "SWITCHYARD_UPSTREAM_TIMEOUT_MS";
/// Upstream TCP/TLS connect timeout, in milliseconds.
pub const ENV_CONNECT_TIMEOUT_MS: &str = "SWITCHYARD_CONNECT_TIMEOUT_MS";
/// Most response-cache entries a proxy keeps in memory (default 10,000).
pub const ENV_CACHE_MAX_ENTRIES: &str = "SWITCHYARD_CACHE_MAX_ENTRIES";
/// Most bytes of response-cache entries a proxy keeps in memory (default 64 MiB).
pub const ENV_CACHE_MAX_BYTES: &str = "SWITCHYARD_CACHE_MAX_BYTES";
/// Directory of the semantic cache's embedding model (all-MiniLM-L6-v2: `config.json`,
/// `tokenizer.json`, `model.safetensors`); unset: no semantic cache.
pub const ENV_EMBED_MODEL: &str = "SWITCHYARD_EMBED_MODEL";
/// How long stored Responses API responses live, in seconds (default 30 days).
pub const ENV_RESPONSES_TTL_SECS: &str = "SWITCHYARD_RESPONSES_TTL_SECS";
/// How long open requests and streams may run after a shutdown signal, in seconds.
pub const ENV_SHUTDOWN_GRACE_SECS: &str = "SWITCHYARD_SHUTDOWN_GRACE_SECS";
/// Number of request workers, each a thread with its own single-threaded runtime and listening
/// socket (default: one per CPU core).
pub const ENV_WORKER_THREADS: &str = "SWITCHYARD_WORKER_THREADS";

/// How many request workers to run: `SWITCHYARD_WORKER_THREADS`, else one per CPU core.
pub fn worker_threads() -> usize {
    std::env::var(ENV_WORKER_THREADS)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}
/// `tracing` filter directives, e.g. `info,data_plane=debug`.
pub const ENV_LOG: &str = "SWITCHYARD_LOG";
/// `json` for JSON log lines, anything else for human-readable text.
pub const ENV_LOG_FORMAT: &str = "SWITCHYARD_LOG_FORMAT";

/// Command line of the `data-plane` binary.
#[derive(Debug, Parser)]
#[command(name = "data-plane", version, about = "Switchyard data-plane proxy")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands besides serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the SHA-256 hash of a virtual key, as the snapshot's `keys[].sha256` expects.
    HashKey {
        /// The secret key, e.g. `sk-sy-...`.
        key: String,
    },
}

/// Settings for serving traffic.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// YAML snapshot file; hot-reloaded when it changes. With `--nats` too, the snapshot comes
    /// from this file and NATS carries only usage events and budget leases.
    #[arg(long, env = ENV_CONFIG)]
    pub config: Option<PathBuf>,
    /// NATS server URL(s), comma-separated: take snapshots from the control plane (unless
    /// `--config` is also given) and publish usage events. The value is never printed (it may
    /// hold credentials).
    #[arg(long = "nats", env = ENV_NATS_URL, value_name = "URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    /// Copies JetStream keeps of each stream and bucket this proxy creates (1 to 5); unset: 3
    /// when the NATS server is in a cluster of 3 or more, else 1.
    #[arg(long, env = proto::NATS_REPLICAS_ENV,
          value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_replicas: Option<u8>,
    /// With `--nats`: file holding the last good snapshot, served at start until NATS answers.
    #[arg(long, env = ENV_SNAPSHOT_CACHE, default_value = "switchyard-snapshot.json")]
    pub snapshot_cache: PathBuf,
    /// Id of this proxy in usage events and budget leases; a new UUIDv7 per process when unset.
    #[arg(long, env = ENV_PROXY_ID)]
    pub proxy_id: Option<String>,
    /// Directory where usage events wait while NATS is unreachable (append-only JSON-lines
    /// segments, replayed and deleted once acknowledged). Without `--nats` every event stays
    /// here.
    #[arg(long, env = ENV_SPOOL_DIR, default_value = "switchyard-spool")]
    pub spool_dir: PathBuf,
    /// Most bytes the spool may hold; further events are dropped, counted
    /// (`switchyard_usage_spool_dropped_total`) and logged as errors.
    #[arg(long, env = ENV_SPOOL_MAX_BYTES, default_value_t = 256 * 1024 * 1024)]
    pub spool_max_bytes: u64,
    /// Most bytes of each body (request, response) a `full` request-log entry keeps; a longer
    /// body is cut there and flagged as truncated. At most 262144 (a JetStream message holds
    /// both bodies).
    #[arg(long, env = ENV_LOG_PAYLOAD_MAX_BYTES, default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u32).range(0..=262_144))]
    pub log_payload_max_bytes: u32,
    /// Client-facing API listener.
    #[arg(long, env = ENV_LISTEN, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Operations listener for health and metrics.
    #[arg(long, env = ENV_OPS_LISTEN, default_value = "0.0.0.0:9090")]
    pub ops_listen: SocketAddr,
    /// Once both listeners are bound, write their addresses here as JSON
    /// (`{"listen": "...", "ops": "..."}`); useful with port 0.
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes (larger bodies get 413).
    #[arg(long, env = ENV_MAX_BODY_BYTES, default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// How often the snapshot file is checked for changes, in milliseconds.
    #[arg(long, env = ENV_CONFIG_POLL_MS, default_value_t = 500)]
    pub config_poll_ms: u64,
    /// Upstream timeout when neither route nor provider sets one (ms).
    #[arg(long, env = ENV_UPSTREAM_TIMEOUT_MS, default_value_t = 600_000)]
    pub upstream_timeout_ms: u64,
    /// Upstream connect timeout (ms).
    #[arg(long, env = ENV_CONNECT_TIMEOUT_MS, default_value_t = 10_000)]
    pub connect_timeout_ms: u64,
    /// Grace period for open requests after SIGTERM/SIGINT (s).
    #[arg(long, env = ENV_SHUTDOWN_GRACE_SECS, default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// How long a stored Responses API response (`store: true`) can be read or continued (s).
    /// With NATS it is the `switchyard_responses` bucket's max age (set when the bucket is
    /// created).
    #[arg(long, env = ENV_RESPONSES_TTL_SECS, default_value_t = 30 * 24 * 3600)]
    pub responses_ttl_secs: u64,
    /// Most response-cache entries kept in this proxy's memory, in front of the shared NATS
    /// bucket (the least recently used go first).
    #[arg(long, env = ENV_CACHE_MAX_ENTRIES, default_value_t = 10_000)]
    pub cache_max_entries: usize,
    /// Most bytes of response-cache entries kept in this proxy's memory.
    #[arg(long, env = ENV_CACHE_MAX_BYTES, default_value_t = 64 << 20)]
    pub cache_max_bytes: usize,
    /// The semantic cache's embedding model directory (all-MiniLM-L6-v2); without it, cache
    /// policies with `semantic` enabled cache exactly only.
    #[arg(long, env = ENV_EMBED_MODEL)]
    pub embed_model: Option<std::path::PathBuf>,
}

impl ServeArgs {
    /// Default upstream timeout as a duration.
    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_timeout_ms)
    }
}
