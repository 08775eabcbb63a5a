//! The data-plane binary, run for real with a YAML config written into the test's temp dir, or
//! with `--nats` and no config at all ([`DataPlaneSpec::nats`]).
//!
//! Guarantees: [`DataPlane::start`] returns once both the proxy and ops listeners are bound
//! (the binary writes its address file atomically after binding both); the process is killed
//! when the value drops. [`DataPlane::rewrite_config`] replaces the file atomically, so a
//! hot-reloading data plane never reads half a config.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use super::binaries;
use super::fsutil::{self, STARTUP_TIMEOUT};
use super::process::{extra_env_and_args, ChildProcess, ProcessSpec};
use super::TestEnv;

type ConfigFn = Box<dyn FnOnce(&TestEnv) -> String + Send>;

/// Where a data plane takes its snapshot from; each is built once the environment runs.
enum Source {
    /// YAML config text, written to `config.yaml` and passed as `--config`.
    Config(ConfigFn),
    /// NATS URL, passed as `--nats` (with `--snapshot-cache` in the data plane's directory).
    Nats(ConfigFn),
}

/// How to start one data plane: its snapshot source (a config, fixed or built from the running
/// environment, or NATS) plus extra environment variables (provider API keys, `RUST_LOG`) and
/// arguments.
pub struct DataPlaneSpec {
    source: Source,
    envs: Vec<(String, String)>,
    args: Vec<String>,
}

impl std::fmt::Debug for DataPlaneSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlaneSpec")
            .field("envs", &self.envs)
            .field("args", &self.args)
            .finish_non_exhaustive()
    }
}

impl DataPlaneSpec {
    /// A data plane with this YAML config text.
    pub fn new(config_yaml: impl Into<String>) -> Self {
        let yaml = config_yaml.into();
        Self::from_fn(move |_| yaml)
    }

    /// A data plane whose config is built once the rest of the environment runs, e.g.
    /// `DataPlaneSpec::from_fn(|env| format!("... base_url: {}", env.mock().base_url()))`.
    pub fn from_fn(config: impl FnOnce(&TestEnv) -> String + Send + 'static) -> Self {
        Self {
            source: Source::Config(Box::new(config)),
            envs: Vec::new(),
            args: Vec::new(),
        }
    }

    /// A data plane without a config file that takes its snapshots from the environment's NATS
    /// (`--nats`), keeping its snapshot cache in its own directory. Needs `.nats()`.
    pub fn nats() -> Self {
        Self {
            source: Source::Nats(Box::new(|env| env.nats_urls())),
            envs: Vec::new(),
            args: Vec::new(),
        }
    }

    /// [`Self::nats`] holding the harness's [`SEAL_KEY`](super::SEAL_KEY), so it opens the
    /// provider credentials a harness control plane sealed into its snapshots.
    pub fn nats_sealed() -> Self {
        Self::nats().env("SWITCHYARD_SEAL_KEY", super::SEAL_KEY)
    }

    extra_env_and_args!();

    /// The config text (`None` for NATS), environment and arguments.
    pub(crate) fn render(
        self,
        env: &TestEnv,
    ) -> (Option<String>, Vec<(String, String)>, Vec<String>) {
        match self.source {
            Source::Config(config) => (Some(config(env)), self.envs, self.args),
            Source::Nats(url) => {
                let mut args = vec!["--nats".to_owned(), url(env)];
                args.extend(self.args);
                (None, self.envs, args)
            }
        }
    }
}

impl From<String> for DataPlaneSpec {
    fn from(yaml: String) -> Self {
        Self::new(yaml)
    }
}

impl From<&str> for DataPlaneSpec {
    fn from(yaml: &str) -> Self {
        Self::new(yaml)
    }
}

/// A running data plane.
#[derive(Debug)]
pub struct DataPlane {
    process: ChildProcess,
    config_path: PathBuf,
    snapshot_cache: PathBuf,
    addr_file: PathBuf,
    spool_dir: PathBuf,
    listen: SocketAddr,
    ops: SocketAddr,
}

impl DataPlane {
    /// Writes `config_yaml` to `<parent>/<name>/config.yaml` (without one, the extra arguments
    /// name the source, e.g. `--nats`, and the snapshot cache goes to
    /// `<parent>/<name>/snapshot-cache.json`), starts `data-plane` on ports of its own choosing
    /// and waits until both listeners are bound.
    pub async fn start(
        parent: &Path,
        name: &str,
        config_yaml: Option<&str>,
        envs: Vec<(String, String)>,
        extra_args: Vec<String>,
    ) -> anyhow::Result<Self> {
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let config_path = dir.join("config.yaml");
        let snapshot_cache = dir.join("snapshot-cache.json");
        let mut args: Vec<String> = match config_yaml {
            Some(yaml) => {
                fsutil::write_atomic(&config_path, yaml.as_bytes())?;
                vec!["--config".into(), config_path.display().to_string()]
            }
            None => vec![
                "--snapshot-cache".into(),
                snapshot_cache.display().to_string(),
            ],
        };
        let addr_file = dir.join("addr.json");
        // The usage spool lives in the data plane's own directory unless the test names one.
        let spool_dir = match extra_args.iter().position(|a| a == "--spool-dir") {
            Some(i) => extra_args
                .get(i + 1)
                .map_or(dir.join("spool"), PathBuf::from),
            None => {
                let spool = dir.join("spool");
                args.extend(["--spool-dir".into(), spool.display().to_string()]);
                spool
            }
        };
        args.extend([
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--ops-listen".into(),
            "127.0.0.1:0".into(),
            "--addr-file".into(),
            addr_file.display().to_string(),
        ]);
        args.extend(extra_args);
        let spec = ProcessSpec {
            name: name.to_owned(),
            program: binaries::binary("data-plane")?,
            args: args.into_iter().map(Into::into).collect(),
            envs,
            log_dir: dir,
        };
        let process = ChildProcess::spawn(spec)?;
        let unbound = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut dp = Self {
            process,
            config_path,
            snapshot_cache,
            addr_file,
            spool_dir,
            listen: unbound,
            ops: unbound,
        };
        dp.wait_until_bound().await?;
        Ok(dp)
    }

    /// `http://127.0.0.1:PORT` of the proxy listener, without `/v1`: OpenAI-style clients take
    /// `format!("{}/v1", dp.base_url())`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// `base_url()` joined with `path` (which starts with `/`), e.g. `dp.url("/v1/models")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// `http://127.0.0.1:PORT` of the ops listener (health, readiness, metrics).
    pub fn ops_url(&self) -> String {
        format!("http://{}", self.ops)
    }

    /// The Prometheus text of its `/metrics`.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let url = format!("{}/metrics", self.ops_url());
        let response = reqwest::get(&url)
            .await
            .with_context(|| format!("GET {url}"))?;
        Ok(response.text().await?)
    }

    /// The proxy listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// The ops listener's address.
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops
    }

    /// The config file the process was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Where a data plane started without a config keeps its last good snapshot.
    pub fn snapshot_cache_path(&self) -> &Path {
        &self.snapshot_cache
    }

    /// The usage-event spool directory (`--spool-dir`; `<dir>/spool` unless the test set one).
    pub fn spool_dir(&self) -> &Path {
        &self.spool_dir
    }

    /// Replaces the config file atomically (write a temp file, rename over), for hot reload.
    pub fn rewrite_config(&self, config_yaml: &str) -> anyhow::Result<()> {
        fsutil::write_atomic(&self.config_path, config_yaml.as_bytes())
    }

    /// SIGKILL, as in a crash; the ports then refuse connections.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.process.kill()
    }

    /// SIGTERM and wait up to `grace` for a graceful exit (SIGKILL after). Returns the exit
    /// status if the process ended by itself.
    pub async fn terminate(
        &mut self,
        grace: Duration,
    ) -> anyhow::Result<Option<std::process::ExitStatus>> {
        self.process.terminate(grace).await
    }

    /// Starts the process again (killing it first if it runs) with the same config file,
    /// environment and arguments. The new process binds new ports: read `base_url()` again.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.process.kill()?;
        match std::fs::remove_file(&self.addr_file) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).context("removing the old address file"),
        }
        self.process.respawn()?;
        self.wait_until_bound().await
    }

    /// The exit status once the process has exited by itself, `None` while it runs.
    pub fn try_exit_status(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        self.process.try_exit_status()
    }

    /// The OS process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.id()
    }

    /// Everything the process wrote to stderr so far (its logs), e.g. to assert on a warning.
    pub fn stderr(&self) -> anyhow::Result<String> {
        let path = self.process.stderr_path();
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// Everything the process wrote to stdout so far.
    pub fn stdout(&self) -> anyhow::Result<String> {
        let path = self.process.stdout_path();
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    async fn wait_until_bound(&mut self) -> anyhow::Result<()> {
        let text =
            fsutil::wait_for_file(&self.addr_file, &mut self.process, STARTUP_TIMEOUT).await?;
        let (listen, ops) = parse_addr_file(&text).with_context(|| {
            format!(
                "parsing data-plane address file {}",
                self.addr_file.display()
            )
        })?;
        self.listen = listen;
        self.ops = ops;
        Ok(())
    }
}

/// `{"listen":"127.0.0.1:P","ops":"127.0.0.1:Q"}`.
fn parse_addr_file(text: &str) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let json: serde_json::Value = serde_json::from_str(text.trim())?;
    let field = |key: &str| -> anyhow::Result<SocketAddr> {
        let value = json
            .get(key)
            .and_then(|v| v.as_str())
            .with_context(|| format!("no `{key}` string in {text}"))?;
        value
            .parse()
            .with_context(|| format!("bad `{key}` address {value:?}"))
    };
    Ok((field("listen")?, field("ops")?))
}

/// Waits (up to 30 s) until the data plane at `base_url` serves `alias` to `key`: a new
/// snapshot has reached it.
pub async fn wait_until_served(base_url: &str, key: &str, alias: &str) -> anyhow::Result<()> {
    let url = format!("{base_url}/v1/models/{alias}");
    super::eventually(Duration::from_secs(30), || async {
        let status = reqwest::Client::new()
            .get(&url)
            .bearer_auth(key)
            .timeout(Duration::from_secs(3))
            .send()
            .await?
            .status();
        anyhow::ensure!(status == 200, "{url} answers {status}");
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_addresses() {
        let (listen, ops) =
            parse_addr_file(r#"{"listen":"127.0.0.1:4000","ops":"127.0.0.1:4001"}"#).unwrap();
        assert_eq!(listen.port(), 4000);
        assert_eq!(ops.port(), 4001);
        assert!(parse_addr_file(r#"{"listen":"127.0.0.1:4000"}"#).is_err());
    }
}
