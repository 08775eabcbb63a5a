//! The scripted mock LLM provider, run as its real binary on a port of its own choosing.
//!
//! Guarantees: [`MockProvider::start`] returns only once the mock has bound its port (it writes
//! the address file atomically after binding); the process is killed when the value drops.
//! The control-API helpers fail on any non-2xx answer, with the body in the error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use reqwest::Method;

use super::binaries;
use super::fsutil::{self, STARTUP_TIMEOUT};
use super::process::{extra_env_and_args, ChildProcess, ProcessSpec};

/// How to start one mock provider.
#[derive(Clone, Debug, Default)]
pub struct MockProviderOptions {
    api_key: Option<String>,
    envs: Vec<(String, String)>,
    args: Vec<String>,
}

impl MockProviderOptions {
    /// Defaults: no API key check, no extra environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the mock require this key (`--api-key`).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    extra_env_and_args!();
}

/// A running mock provider.
#[derive(Debug)]
pub struct MockProvider {
    process: ChildProcess,
    addr: SocketAddr,
    http: reqwest::Client,
}

impl MockProvider {
    /// Starts `mock-provider` with its files in `<parent>/<name>` and waits until it listens.
    pub async fn start(
        parent: &Path,
        name: &str,
        options: MockProviderOptions,
    ) -> anyhow::Result<Self> {
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let addr_file = dir.join("addr");
        let mut args: Vec<String> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--addr-file".into(),
            addr_file.display().to_string(),
        ];
        if let Some(key) = options.api_key {
            args.push("--api-key".into());
            args.push(key);
        }
        args.extend(options.args);
        let spec = ProcessSpec {
            name: name.to_owned(),
            program: binaries::binary("mock-provider")?,
            args: args.into_iter().map(Into::into).collect(),
            envs: options.envs,
            log_dir: dir,
        };
        let mut process = ChildProcess::spawn(spec)?;
        let text = fsutil::wait_for_file(&addr_file, &mut process, STARTUP_TIMEOUT).await?;
        let addr = parse_addr(&text)
            .with_context(|| format!("parsing mock address file {}", addr_file.display()))?;
        Ok(Self {
            process,
            addr,
            http: reqwest::Client::new(),
        })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash and no path: provider configs append their
    /// own (`/v1`, ...).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Installs a script: `POST /__mock/script` with the given JSON (a `serde_json::Value` or
    /// any of the mock's typed script structs).
    pub async fn script(&self, script: &impl serde::Serialize) -> anyhow::Result<()> {
        let json = serde_json::to_value(script).context("POST /__mock/script: the script")?;
        self.control(Method::POST, "script", Some(json))
            .await
            .map(|_| ())
    }

    /// The requests the mock has received so far (`GET /__mock/requests`), oldest first.
    pub async fn requests(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let body = self.control(Method::GET, "requests", None).await?;
        let json: serde_json::Value =
            serde_json::from_str(&body).context("GET /__mock/requests: body is not JSON")?;
        match json {
            serde_json::Value::Array(items) => Ok(items),
            serde_json::Value::Object(mut map) => match map.remove("requests") {
                Some(serde_json::Value::Array(items)) => Ok(items),
                _ => anyhow::bail!("GET /__mock/requests: no `requests` array in {body}"),
            },
            _ => anyhow::bail!("GET /__mock/requests: unexpected body {body}"),
        }
    }

    /// Drops every queued script (`DELETE /__mock/script`).
    pub async fn clear_scripts(&self) -> anyhow::Result<()> {
        self.control(Method::DELETE, "script", None)
            .await
            .map(|_| ())
    }

    /// Forgets the recorded requests (`DELETE /__mock/requests`).
    pub async fn clear(&self) -> anyhow::Result<()> {
        self.control(Method::DELETE, "requests", None)
            .await
            .map(|_| ())
    }

    /// SIGKILL the mock, as in a provider outage; the port then refuses connections.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.process.kill()
    }

    /// The OS process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.id()
    }

    /// Paths of the captured stdout and stderr.
    pub fn log_paths(&self) -> (PathBuf, PathBuf) {
        (self.process.stdout_path(), self.process.stderr_path())
    }

    /// Calls the control API: `method` on `/__mock/{what}`, with `json` as the body if any.
    /// The answer's body; an error naming the call unless it is 2xx.
    async fn control(
        &self,
        method: Method,
        what: &str,
        json: Option<serde_json::Value>,
    ) -> anyhow::Result<String> {
        let call = format!("{method} /__mock/{what}");
        let url = format!("{}/__mock/{what}", self.base_url());
        let mut request = self.http.request(method, url);
        if let Some(json) = json {
            request = request.json(&json);
        }
        let resp = request.send().await.with_context(|| call.clone())?;
        check(resp, &call).await
    }
}

/// Accepts `127.0.0.1:PORT` or a JSON object with a `listen` / `addr` field.
fn parse_addr(text: &str) -> anyhow::Result<SocketAddr> {
    let text = text.trim();
    if text.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(text)?;
        let field = ["listen", "addr", "address"]
            .iter()
            .find_map(|k| json.get(k).and_then(|v| v.as_str()))
            .with_context(|| format!("no listen/addr field in {text}"))?;
        return field
            .parse()
            .with_context(|| format!("bad address {field:?}"));
    }
    text.parse()
        .with_context(|| format!("bad address {text:?}"))
}

async fn check(resp: reqwest::Response, what: &str) -> anyhow::Result<String> {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{what}: {status}: {body}");
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_json_address_files() {
        assert_eq!(parse_addr("127.0.0.1:5000\n").unwrap().port(), 5000);
        assert_eq!(
            parse_addr(r#"{"listen":"127.0.0.1:5001"}"#).unwrap().port(),
            5001
        );
        assert!(parse_addr("nonsense").is_err());
    }
}
