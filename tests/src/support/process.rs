//! One child process of a test, with its output captured to files.
//!
//! Guarantees: a [`ChildProcess`] is killed and reaped when it is dropped (also while a test
//! panics), and if the drop happens during a panic the tail of its stdout and stderr is printed
//! to stderr, so a failing test in CI shows why without anyone re-running it. One started with
//! [`ChildProcess::spawn_group`] is killed with every process it started (its process group).

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::future::Future;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use super::logs;

/// How to start a child: program, arguments and the extra environment it gets.
#[derive(Clone, Debug)]
pub struct ProcessSpec {
    /// Short name used for the log file names and in failure output (`mock-0`, `nats`).
    pub name: String,
    /// Program to run.
    pub program: PathBuf,
    /// Arguments after the program.
    pub args: Vec<OsString>,
    /// Variables added to (or overriding) the test's own environment.
    pub envs: Vec<(String, String)>,
    /// Directory for `<name>.stdout.log` and `<name>.stderr.log`.
    pub log_dir: PathBuf,
}

/// The `env` and `arg` builder methods of a harness spec (a type with `envs: Vec<(String,
/// String)>` and `args: Vec<String>` fields), for use inside its `impl` block.
macro_rules! extra_env_and_args {
    () => {
        /// Adds an environment variable for the process.
        pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
            self.envs.push((key.into(), value.into()));
            self
        }

        /// Adds a command-line argument after the ones the harness passes.
        pub fn arg(mut self, arg: impl Into<String>) -> Self {
            self.args.push(arg.into());
            self
        }
    };
}
pub(crate) use extra_env_and_args;

/// A running (or exited) child process whose output goes to log files.
#[derive(Debug)]
pub struct ChildProcess {
    spec: ProcessSpec,
    child: Option<Child>,
    /// Whether the process leads a process group of its own, killed whole.
    group: bool,
}

impl ChildProcess {
    /// Spawns the process; output is appended to the log files, so a restart keeps the history.
    pub fn spawn(spec: ProcessSpec) -> anyhow::Result<Self> {
        Self::start(spec, false)
    }

    /// Spawns the process as the leader of a new process group, so that [`kill`](Self::kill)
    /// (and the drop) also ends what it started: chromedriver's Chromium and its renderers,
    /// which would outlive a plain kill.
    pub fn spawn_group(spec: ProcessSpec) -> anyhow::Result<Self> {
        Self::start(spec, true)
    }

    fn start(spec: ProcessSpec, group: bool) -> anyhow::Result<Self> {
        let stdout = open_log(&stdout_path(&spec))?;
        let stderr = open_log(&stderr_path(&spec))?;
        let mut command = Command::new(&spec.program);
        command
            .args(&spec.args)
            .envs(spec.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        if group {
            command.process_group(0);
        }
        let child = command
            .spawn()
            .with_context(|| format!("spawning {} ({})", spec.name, spec.program.display()))?;
        Ok(Self {
            spec,
            child: Some(child),
            group,
        })
    }

    /// Starts the same program again after [`kill`](Self::kill) or an exit.
    pub fn respawn(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        let fresh = Self::start(self.spec.clone(), self.group)?;
        *self = fresh;
        Ok(())
    }

    /// The spec this process was started from.
    pub fn spec(&self) -> &ProcessSpec {
        &self.spec
    }

    /// Changes how the next [`respawn`](Self::respawn) starts the program.
    pub fn spec_mut(&mut self) -> &mut ProcessSpec {
        &mut self.spec
    }

    /// The OS process id, while the process has not been reaped.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` once the process has exited (reaping it), `None` while it runs.
    pub fn try_exit_status(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let status = child
            .try_wait()
            .with_context(|| format!("polling {}", self.spec.name))?;
        if status.is_some() {
            self.child = None;
        }
        Ok(status)
    }

    /// Fails with the log tails if the process has already exited; used while waiting for it
    /// to become ready so a crash on start is reported at once instead of as a timeout.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if self.child.is_none() {
            anyhow::bail!("{} is not running", self.spec.name);
        }
        match self.try_exit_status()? {
            None => Ok(()),
            Some(status) => anyhow::bail!(
                "{} exited early with {status}\n{}",
                self.spec.name,
                self.log_tails(logs::TAIL_LINES)
            ),
        }
    }

    /// SIGKILL (the whole group for [`spawn_group`](Self::spawn_group)) and reap; a no-op
    /// when the process is not running.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            if self.group {
                // The group's id is the leader's pid; kill(1) because unsafe is forbidden. The
                // leader is not reaped yet, so the id cannot have been reused.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            // An already-exited child makes kill() fail with InvalidInput; wait() still reaps.
            let _ = child.kill();
            child
                .wait()
                .with_context(|| format!("waiting for {}", self.spec.name))?;
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL if the process is still running after `grace`. Returns the exit
    /// status when the process ended by itself within the grace period.
    pub async fn terminate(&mut self, grace: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let Some(pid) = self.id() else {
            return Ok(None);
        };
        // std has no way to send SIGTERM and the workspace forbids unsafe, so use kill(1).
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if sent {
            let deadline = tokio::time::Instant::now() + grace;
            while tokio::time::Instant::now() < deadline {
                if let Some(status) = self.try_exit_status()? {
                    return Ok(Some(status));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.kill()?;
        Ok(None)
    }

    /// Path of the captured stdout.
    pub fn stdout_path(&self) -> PathBuf {
        stdout_path(&self.spec)
    }

    /// Path of the captured stderr.
    pub fn stderr_path(&self) -> PathBuf {
        stderr_path(&self.spec)
    }

    /// The last `lines` lines of stdout and stderr, with headers, for error messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for (stream, path) in [
            ("stdout", self.stdout_path()),
            ("stderr", self.stderr_path()),
        ] {
            out.push_str(&logs::tail_section(
                &format!("{} {stream}", self.spec.name),
                &path,
                lines,
            ));
        }
        out
    }

    /// Polls `probe` every 20 ms until it yields a value. Fails early, with the log tails, if
    /// the process exits first, and with them too once `timeout` passes; `waiting` says what
    /// did not happen ("nats-server wrote no ports file").
    pub async fn wait_for<T, F, Fut>(
        &mut self,
        timeout: Duration,
        waiting: &str,
        mut probe: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Option<T>>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(value) = probe().await? {
                return Ok(value);
            }
            self.ensure_running()?;
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{waiting} within {timeout:?}\n{}",
                self.log_tails(logs::TAIL_LINES)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Err(err) = self.kill() {
            eprintln!("switchyard test harness: {err:#}");
        }
        if std::thread::panicking() {
            eprint!("{}", self.log_tails(logs::TAIL_LINES));
        }
    }
}

fn stdout_path(spec: &ProcessSpec) -> PathBuf {
    spec.log_dir.join(format!("{}.stdout.log", spec.name))
}

fn stderr_path(spec: &ProcessSpec) -> PathBuf {
    spec.log_dir.join(format!("{}.stderr.log", spec.name))
}

fn open_log(path: &Path) -> anyhow::Result<std::fs::File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log file {}", path.display()))
}
