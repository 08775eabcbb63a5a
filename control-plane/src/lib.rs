//! Switchyard control plane.
//!
//! Owns all configuration as an event log in Postgres (`store`, with the pure rules in
//! `domain`), serves the admin API (`api`) and the web console that reads it (`console`),
//! and publishes snapshots to the data planes over NATS (`outbox`). See
//! `docs/ARCHITECTURE.md`, "Control plane: event-sourced".

pub mod api;
pub mod background;
pub mod config;
pub mod console;
pub mod declarative;
pub mod domain;
pub mod gauges;
pub mod health;
pub mod lease;
pub mod outbox;
pub mod requestlog;
pub mod roles;
pub mod seal;
pub mod serve;
pub mod snapshot;
pub mod spans;
pub mod store;
pub mod usage;

use std::path::Path;

use anyhow::Context;
use proto::Snapshot;

/// Reads and validates a snapshot file in the YAML shape the data plane accepts.
pub fn check_file(path: &Path) -> anyhow::Result<Snapshot> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let snapshot: Snapshot =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if let Err(errors) = snapshot.validate() {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::bail!("{} is invalid:\n  {}", path.display(), lines.join("\n  "));
    }
    Ok(snapshot)
}
