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

/// The last line a script printed, as JSON (the scripts print one object at the end).
pub fn last_json(output: &PythonOutput) -> anyhow::Result<serde_json::Value> {
    serde_json::from_str(output.stdout.lines().last().unwrap_or_default()).with_context(|| {
        format!(
            "bad output: {}\n--- stderr ---\n{}",
            output.stdout, output.stderr
        )
    })
}

/// Runs one check of `tests/py/openai_sdk.py` (the official `openai` SDK) against the data
/// plane at `base_url` with `key` and `model`, plus `extra` variables; returns what it printed.
pub async fn openai_sdk(
    base_url: &str,
    key: &str,
    model: &str,
    check: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<serde_json::Value> {
    let base = format!("{base_url}/v1");
    let mut vars = vec![
        ("OPENAI_BASE_URL", base.as_str()),
        ("OPENAI_API_KEY", key),
        ("MODEL", model),
        ("CHECK", check),
    ];
    vars.extend_from_slice(extra);
    let out = run_python(&py_script("openai_sdk.py"), &vars).await?;
    out.ensure_success()?;
    last_json(&out)
}

/// A decimal from a JSON string or number (amounts travel as strings).
pub fn decimal(v: &serde_json::Value) -> anyhow::Result<rust_decimal::Decimal> {
    use std::str::FromStr as _;
    let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    rust_decimal::Decimal::from_str(&text).with_context(|| format!("{v} is not a decimal"))
}
