//! Running the real coding agents (Claude Code and Codex CLI, from npm) non-interactively
//! against the stack, each in its own HOME and working directory.
//!
//! deploy/local/test.sh installs the pinned versions of tests/agents/package.json into
//! `target/agents`. An agent that outlives [`AGENT_TIMEOUT`] is killed, so a hung agent fails
//! the test instead of stalling CI.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;

use super::binaries::workspace_root;

/// Overrides the folder holding the agents' binaries (`claude`, `codex`).
pub const ENV_AGENTS_BIN: &str = "SWITCHYARD_AGENTS_BIN";

/// The longest one agent run may take.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(180);

/// `$SWITCHYARD_AGENTS_BIN/<name>`, else `<workspace>/target/agents/node_modules/.bin/<name>`.
pub fn agent(name: &str) -> PathBuf {
    std::env::var_os(ENV_AGENTS_BIN)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/agents/node_modules/.bin"))
        .join(name)
}

/// What an agent run left behind.
#[derive(Debug)]
pub struct AgentRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs agent `name` with `args` in `workdir`, with a fresh HOME under `home` and only the
/// given environment on top of PATH (nothing of the caller's leaks in).
pub async fn run_agent(
    name: &str,
    args: &[&str],
    home: &Path,
    workdir: &Path,
    envs: &[(&str, &str)],
) -> anyhow::Result<AgentRun> {
    let bin = agent(name);
    anyhow::ensure!(
        bin.exists(),
        "{} is not installed: run deploy/local/test.sh (it installs tests/agents/package.json)",
        bin.display()
    );
    std::fs::create_dir_all(home)?;
    std::fs::create_dir_all(workdir)?;
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args(args)
        .current_dir(workdir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let output = tokio::time::timeout(AGENT_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("{name} ran longer than {AGENT_TIMEOUT:?}"))??;
    Ok(AgentRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
