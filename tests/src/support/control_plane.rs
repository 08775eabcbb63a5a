//! The control-plane binary, run for real against the environment's Postgres and NATS.
//!
//! Guarantees: [`ControlPlane::start`] returns once the admin API is bound (the binary writes
//! its address file after binding, and it binds only after migrating); the process is killed
//! when the value drops. Requests helpers use the bootstrap token unless told otherwise.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use super::binaries;
use super::fsutil::{self, STARTUP_TIMEOUT};
use super::process::{ChildProcess, ProcessSpec};

/// The bootstrap admin token every test control plane runs with.
pub const ADMIN_TOKEN: &str = "test-bootstrap-admin-token-0123456789";
/// The seal key (base64 of 32 bytes) shared by test control planes and data planes.
pub const SEAL_KEY: &str = "c3dpdGNoeWFyZC10ZXN0LXNlYWwta2V5LTMyYnl0ZXM=";

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    process: ChildProcess,
    addr: SocketAddr,
    addr_file: PathBuf,
    http: reqwest::Client,
}

/// An admin API answer: status and JSON body (`Value::Null` when empty).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub etag: Option<String>,
}

impl ControlPlane {
    /// Runs a command of the control-plane binary (`apply -f FILE`, `rebuild-projections`)
    /// against the database at `database_url`, with the harness's seal key, to its end.
    pub fn run_cli(database_url: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
        std::process::Command::new(binaries::binary("control-plane")?)
            .args(args)
            .env("DATABASE_URL", database_url)
            .env("SWITCHYARD_SEAL_KEY", SEAL_KEY)
            .output()
            .context("running the control-plane command line")
    }

    /// Starts `control-plane` with files in `<parent>/<name>`.
    pub async fn start(
        parent: &Path,
        name: &str,
        database_url: &str,
        nats_url: Option<&str>,
        envs: Vec<(String, String)>,
    ) -> anyhow::Result<Self> {
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let addr_file = dir.join("addr.json");
        let mut all_envs = vec![
            ("DATABASE_URL".to_owned(), database_url.to_owned()),
            ("SWITCHYARD_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()),
            ("SWITCHYARD_SEAL_KEY".to_owned(), SEAL_KEY.to_owned()),
        ];
        if let Some(url) = nats_url {
            all_envs.push(("NATS_URL".to_owned(), url.to_owned()));
        }
        all_envs.extend(envs);
        let spec = ProcessSpec {
            name: name.to_owned(),
            program: binaries::binary("control-plane")?,
            args: vec![
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--addr-file".into(),
                addr_file.clone().into(),
            ],
            envs: all_envs,
            log_dir: dir,
        };
        let mut process = ChildProcess::spawn(spec)?;
        let addr = read_addr(&addr_file, &mut process).await?;
        Ok(Self {
            process,
            addr,
            addr_file,
            http: reqwest::Client::new(),
        })
    }

    /// `http://127.0.0.1:PORT` of the admin API.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills the process (no graceful shutdown: as if it crashed).
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.process.kill()
    }

    /// Starts it again (it may get a new port) and waits until it listens.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.process.kill()?;
        let _ = std::fs::remove_file(&self.addr_file);
        self.process.respawn()?;
        self.addr = read_addr(&self.addr_file, &mut self.process).await?;
        Ok(())
    }

    /// Sends a request with `token` (the bootstrap token if `None`).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base_url()))
            .bearer_auth(token.unwrap_or(ADMIN_TOKEN))
            .timeout(Duration::from_secs(30));
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Answer { status, body, etag })
    }

    /// POST with the bootstrap token, expecting 2xx; returns the body.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        expect_ok(
            self.call(reqwest::Method::POST, path, None, Some(body))
                .await?,
            path,
        )
    }

    /// GET with the bootstrap token, expecting 2xx.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        expect_ok(
            self.call(reqwest::Method::GET, path, None, None).await?,
            path,
        )
    }

    /// PATCH with the bootstrap token, expecting 2xx.
    pub async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        expect_ok(
            self.call(reqwest::Method::PATCH, path, None, Some(body))
                .await?,
            path,
        )
    }

    /// The process's stderr so far.
    pub fn stderr(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(self.process.stderr_path())?)
    }
}

fn expect_ok(answer: Answer, path: &str) -> anyhow::Result<Value> {
    anyhow::ensure!(
        (200..300).contains(&answer.status),
        "{path} answered {}: {}",
        answer.status,
        answer.body
    );
    Ok(answer.body)
}

async fn read_addr(file: &Path, process: &mut ChildProcess) -> anyhow::Result<SocketAddr> {
    let text = fsutil::wait_for_file(file, process, STARTUP_TIMEOUT).await?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    v["listen"]
        .as_str()
        .context("no `listen` in the address file")?
        .parse()
        .context("bad address")
}
