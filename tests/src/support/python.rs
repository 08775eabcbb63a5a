//! Running Python client scripts (the official `openai` / `anthropic` SDKs) against the stack.
//!
//! The interpreter is the project's venv, which deploy/local/test.sh creates at
//! `target/pyvenv` with tests/py/requirements.txt installed. A script that outlives
//! [`PYTHON_TIMEOUT`] is killed, so a hung client fails the test instead of stalling CI.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use super::binaries::workspace_root;

/// Overrides the Python interpreter.
pub const ENV_PYTHON: &str = "SWITCHYARD_PYTHON";

/// The longest a script may run.
pub const PYTHON_TIMEOUT: Duration = Duration::from_secs(120);

/// What a finished script left behind.
#[derive(Debug)]
pub struct PythonOutput {
    /// The exit status.
    pub status: ExitStatus,
    /// Everything printed to stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything printed to stderr (lossy UTF-8).
    pub stderr: String,
}

impl PythonOutput {
    /// Fails with both streams in the message unless the script exited 0.
    pub fn ensure_success(&self) -> anyhow::Result<&Self> {
        anyhow::ensure!(
            self.status.success(),
            "python exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        Ok(self)
    }
}

/// `$SWITCHYARD_PYTHON`, else `<workspace>/target/pyvenv/bin/python`.
pub fn python() -> PathBuf {
    std::env::var_os(ENV_PYTHON)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/pyvenv/bin/python"))
}

/// `<workspace>/tests/py/<name>`: where the Python client scripts live.
pub fn py_script(name: &str) -> PathBuf {
    workspace_root().join("tests/py").join(name)
}

/// Runs a script file (relative paths are taken from the workspace root) with extra
/// environment variables, e.g. `[("OPENAI_BASE_URL", url)]`.
pub async fn run_python(script: &Path, envs: &[(&str, &str)]) -> anyhow::Result<PythonOutput> {
    let script = workspace_root().join(script);
    anyhow::ensure!(
        script.is_file(),
        "python script {} not found",
        script.display()
    );
    run(&[script.as_os_str()], envs).await
}

/// Runs Python source code given inline (`python -c SOURCE`).
pub async fn run_python_source(
    source: &str,
    envs: &[(&str, &str)],
) -> anyhow::Result<PythonOutput> {
    run(&["-c".as_ref(), source.as_ref()], envs).await
}

async fn run(args: &[&std::ffi::OsStr], envs: &[(&str, &str)]) -> anyhow::Result<PythonOutput> {
    let interpreter = python();
    anyhow::ensure!(
        interpreter.is_file(),
        "python interpreter {} not found: run deploy/local/test.sh (it creates target/pyvenv) \
         or set {ENV_PYTHON}",
        interpreter.display()
    );
    let child = tokio::process::Command::new(&interpreter)
        .args(args)
        .envs(envs.iter().copied())
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawning {}", interpreter.display()))?;
    let output = tokio::time::timeout(PYTHON_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("python did not finish within {PYTHON_TIMEOUT:?}"))?
        .context("waiting for python")?;
    Ok(PythonOutput {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
