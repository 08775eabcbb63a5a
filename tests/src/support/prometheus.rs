//! A Prometheus server per test (Debian's `prometheus` package), scraping whatever its config
//! names, on a free port with its own TSDB directory in the test's temp dir; and `promtool`.
//!
//! Guarantees: [`Prometheus::start`] returns once the server answers `/-/ready`; the process is
//! killed and reaped when the value drops (also while a test panics, with its log tail
//! printed). A port another process grabbed between picking and binding is retried.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use super::binaries;
use super::fsutil::{self, STARTUP_TIMEOUT};
use super::logs;
use super::ports;
use super::process::{ChildProcess, ProcessSpec};

/// Overrides the `prometheus` program.
pub const ENV_PROMETHEUS: &str = "SWITCHYARD_PROMETHEUS";
/// Overrides the `promtool` program.
pub const ENV_PROMTOOL: &str = "SWITCHYARD_PROMTOOL";

/// Attempts to find a port nobody else grabbed between picking and binding it.
const START_ATTEMPTS: usize = 5;

/// A running Prometheus server.
#[derive(Debug)]
pub struct Prometheus {
    process: ChildProcess,
    port: u16,
    http: reqwest::Client,
}

impl Prometheus {
    /// Writes `config` (prometheus.yml text) to `<parent>/prometheus/prometheus.yml` and starts
    /// the server on a free port, its TSDB in `<parent>/prometheus/data`.
    pub async fn start(parent: &Path, config: &str) -> anyhow::Result<Self> {
        let dir = parent.join("prometheus");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let config_path = dir.join("prometheus.yml");
        fsutil::write_atomic(&config_path, config.as_bytes())?;
        let program = program(ENV_PROMETHEUS, "prometheus")?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = ports::free_port()?;
            let spec = ProcessSpec {
                name: "prometheus".to_owned(),
                program: program.clone(),
                args: vec![
                    format!("--config.file={}", config_path.display()).into(),
                    format!("--storage.tsdb.path={}", dir.join("data").display()).into(),
                    format!("--web.listen-address=127.0.0.1:{port}").into(),
                    "--storage.tsdb.retention.time=1d".into(),
                ],
                envs: Vec::new(),
                log_dir: dir.clone(),
            };
            let mut prometheus = Self {
                process: ChildProcess::spawn(spec)?,
                port,
                http: reqwest::Client::new(),
            };
            match prometheus.wait_until_ready().await {
                Ok(()) => return Ok(prometheus),
                Err(err) if prometheus.log_tail().contains("address already in use") => {
                    last_error = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("prometheus never started")))
            .context(format!("no free port after {START_ATTEMPTS} attempts"))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// GETs `path` of the HTTP API (`/api/v1/targets`) with `params`; returns its `data`, or
    /// the error Prometheus gave (a query that does not parse, for example).
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.url());
        let body: Value = self
            .http
            .get(&url)
            .query(params)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .with_context(|| format!("GET {url}"))?
            .json()
            .await
            .with_context(|| format!("GET {url}: not JSON"))?;
        match body["status"].as_str() {
            Some("success") => Ok(body["data"].clone()),
            _ => anyhow::bail!(
                "{}: {}",
                body["errorType"].as_str().unwrap_or("error"),
                body["error"].as_str().unwrap_or_default()
            ),
        }
    }

    /// Evaluates `expr` now (`/api/v1/query`); returns the result's `data` (`resultType`,
    /// `result`).
    pub async fn query(&self, expr: &str) -> anyhow::Result<Value> {
        self.api("/api/v1/query", &[("query", expr)]).await
    }

    /// The scrape targets and their health, as `(job, instance, health)`.
    pub async fn targets(&self) -> anyhow::Result<Vec<(String, String, String)>> {
        let data = self.api("/api/v1/targets", &[]).await?;
        let active = data["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(active
            .iter()
            .map(|t| {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                (
                    text(&t["labels"]["job"]),
                    text(&t["labels"]["instance"]),
                    text(&t["health"]),
                )
            })
            .collect())
    }

    fn log_tail(&self) -> String {
        [self.process.stdout_path(), self.process.stderr_path()]
            .iter()
            .map(|p| logs::tail(p, 20))
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let url = format!("{}/-/ready", self.url());
        let http = self.http.clone();
        let waiting = format!("prometheus not ready at {url}");
        self.process
            .wait_for(STARTUP_TIMEOUT, &waiting, || async {
                let ready = http
                    .get(&url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                Ok(ready.then_some(()))
            })
            .await
    }
}

/// The `promtool` program (`check rules`, `test rules`).
pub fn promtool() -> anyhow::Result<PathBuf> {
    program(ENV_PROMTOOL, "promtool")
}

fn program(env: &str, name: &str) -> anyhow::Result<PathBuf> {
    match std::env::var_os(env) {
        Some(p) => Ok(PathBuf::from(p)),
        None => binaries::system_program(name).with_context(|| {
            format!(
                "{name} not found: install it (`apt-get install prometheus`; \
                 deploy/local/test.sh does) or set {env}"
            )
        }),
    }
}
