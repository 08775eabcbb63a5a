//! A headless Chromium per test, driven over the W3C WebDriver protocol (plain JSON over
//! HTTP) through Debian's `chromedriver` (packages `chromium` and `chromium-driver`).
//!
//! Guarantees: [`Browser::start`] returns with a session open in a fresh profile (its own
//! directory in the test's temp dir), chromedriver on a free port, Chromium started with
//! `--headless --no-sandbox --disable-gpu --disable-background-networking`; chromedriver and
//! every Chromium process it started are killed when the value drops (one process group), also
//! while a test panics, with chromedriver's log tail printed then. A port another process
//! grabbed between picking and binding is retried.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::{json, Value};

use super::binaries;
use super::eventually::eventually;
use super::fsutil::STARTUP_TIMEOUT;
use super::ports;
use super::process::{ChildProcess, ProcessSpec};

/// Overrides the `chromedriver` program.
pub const ENV_CHROMEDRIVER: &str = "SWITCHYARD_CHROMEDRIVER";
/// Overrides the Chromium program chromedriver starts.
pub const ENV_CHROMIUM: &str = "SWITCHYARD_CHROMIUM";

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Attempts to find a port nobody else grabbed between picking and binding it.
const START_ATTEMPTS: usize = 5;
/// Longest a single WebDriver command may take (a session start launches Chromium).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A running headless Chromium with one WebDriver session.
#[derive(Debug)]
pub struct Browser {
    process: ChildProcess,
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
}

/// An element of the current page, as WebDriver references it.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a Chromium session, with files in `<parent>/browser`.
    pub async fn start(parent: &Path) -> anyhow::Result<Self> {
        let dir = parent.join("browser");
        let profile = dir.join("profile");
        std::fs::create_dir_all(&profile)
            .with_context(|| format!("creating {}", profile.display()))?;
        let driver = program(ENV_CHROMEDRIVER, "chromedriver")?;
        let chromium = program(ENV_CHROMIUM, "chromium")?;
        let http = reqwest::Client::new();
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = ports::free_port()?;
            let spec = ProcessSpec {
                name: "chromedriver".to_owned(),
                program: driver.clone(),
                args: vec![format!("--port={port}").into()],
                envs: Vec::new(),
                log_dir: dir.clone(),
            };
            let mut process = ChildProcess::spawn_group(spec)?;
            let base = format!("http://127.0.0.1:{port}");
            match ready(&mut process, &http, &base).await {
                Ok(()) => {
                    let session = open_session(&http, &base, &chromium, &profile).await?;
                    return Ok(Self {
                        process,
                        http,
                        session: format!("{base}/session/{session}"),
                    });
                }
                Err(err) => {
                    let log = std::fs::read_to_string(process.stdout_path()).unwrap_or_default();
                    if !log.contains("bind") && !log.contains("in use") {
                        return Err(err);
                    }
                    last_error = Some(err);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("chromedriver never started")))
            .context(format!("no free port after {START_ATTEMPTS} attempts"))
    }

    /// Sends one WebDriver command of the session (`path` after `/session/ID`); returns the
    /// answer's `value`, or fails with WebDriver's error and message.
    pub async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        call(&self.http, method, &format!("{}{path}", self.session), body).await
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .map(drop)
    }

    /// The current URL.
    pub async fn url(&self) -> anyhow::Result<String> {
        let v = self.command(reqwest::Method::GET, "/url", None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// Every element matching the CSS selector now, in document order.
    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(found
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|e| e[ELEMENT].as_str())
                    .map(|id| Element(id.to_owned()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The first element matching the CSS selector once there is one (within `timeout`).
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> anyhow::Result<Element> {
        eventually(timeout, || async {
            match self.find_all(css).await?.into_iter().next() {
                Some(element) => Ok(element),
                None => anyhow::bail!(
                    "nothing matches `{css}` on {}, which shows: {:?}",
                    self.url().await?,
                    self.page_text().await?
                ),
            }
        })
        .await
    }

    /// The rendered text of the first element matching `css` once it contains `needle`
    /// (within `timeout`); fails with the last text seen.
    pub async fn wait_for_text(
        &self,
        css: &str,
        needle: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        eventually(timeout, || async {
            let element = self.wait_for(css, Duration::from_millis(500)).await?;
            let text = self.text(&element).await?;
            anyhow::ensure!(
                text.contains(needle),
                "`{css}` shows {text:?}, not {needle:?}"
            );
            Ok(text)
        })
        .await
    }

    /// The page's rendered text (for failure messages).
    pub async fn page_text(&self) -> anyhow::Result<String> {
        let script = "return document.body ? document.body.innerText : ''";
        let v = self.execute(script, json!([])).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// An element's rendered text.
    pub async fn text(&self, element: &Element) -> anyhow::Result<String> {
        let path = format!("/element/{}/text", element.0);
        let v = self.command(reqwest::Method::GET, &path, None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// An element's attribute, `None` when it has none.
    pub async fn attribute(&self, element: &Element, name: &str) -> anyhow::Result<Option<String>> {
        let path = format!("/element/{}/attribute/{name}", element.0);
        let v = self.command(reqwest::Method::GET, &path, None).await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// Clicks an element (at its centre, as a user would).
    pub async fn click(&self, element: &Element) -> anyhow::Result<()> {
        let path = format!("/element/{}/click", element.0);
        self.command(reqwest::Method::POST, &path, Some(json!({})))
            .await
            .map(drop)
    }

    /// Types `text` into an element, after clearing it.
    pub async fn type_into(&self, element: &Element, text: &str) -> anyhow::Result<()> {
        let clear = format!("/element/{}/clear", element.0);
        self.command(reqwest::Method::POST, &clear, Some(json!({})))
            .await?;
        let path = format!("/element/{}/value", element.0);
        self.command(reqwest::Method::POST, &path, Some(json!({ "text": text })))
            .await
            .map(drop)
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page; returns its
    /// result.
    pub async fn execute(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Takes a screenshot of the viewport, writes it to `path` and returns the PNG bytes.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<Vec<u8>> {
        let v = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .context("the screenshot is not base64")?;
        std::fs::write(path, &png).with_context(|| format!("writing {}", path.display()))?;
        Ok(png)
    }

    /// What the page logged to its console (and the browser's own reports about it, such as
    /// a refused load or a Content-Security-Policy violation) since the last call, as
    /// `(level, message)`.
    pub async fn console(&self) -> anyhow::Result<Vec<(String, String)>> {
        let v = self
            .command(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await?;
        Ok(v.as_array()
            .map(|all| {
                all.iter()
                    .map(|e| {
                        let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                        (text("level"), text("message"))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn quit(mut self) -> anyhow::Result<()> {
        let ended = self
            .command(reqwest::Method::DELETE, "", None)
            .await
            .map(drop);
        self.process.kill()?;
        ended
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = http.request(method.clone(), url).timeout(COMMAND_TIMEOUT);
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = response.status();
    let answer: Value = response
        .json()
        .await
        .with_context(|| format!("{method} {url}: not JSON"))?;
    let value = answer["value"].clone();
    anyhow::ensure!(
        status.is_success(),
        "{method} {url}: {status} {}: {}",
        value["error"].as_str().unwrap_or_default(),
        value["message"].as_str().unwrap_or_default()
    );
    Ok(value)
}

/// Waits for chromedriver's `/status` to say it is ready.
async fn ready(
    process: &mut ChildProcess,
    http: &reqwest::Client,
    base: &str,
) -> anyhow::Result<()> {
    let url = format!("{base}/status");
    let waiting = format!("chromedriver not ready at {url}");
    process
        .wait_for(STARTUP_TIMEOUT, &waiting, || async {
            let status = http.get(&url).timeout(Duration::from_secs(2)).send().await;
            let ready = match status {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            };
            Ok(ready.then_some(()))
        })
        .await
}

/// Opens a session whose Chromium runs headless in `profile`; returns the session id.
async fn open_session(
    http: &reqwest::Client,
    base: &str,
    chromium: &Path,
    profile: &Path,
) -> anyhow::Result<String> {
    let args = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-background-networking".to_owned(),
        // Containers often give /dev/shm only 64 MiB, too little for a renderer.
        "--disable-dev-shm-usage".to_owned(),
        "--no-first-run".to_owned(),
        "--window-size=1400,1000".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let capabilities = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
        "goog:loggingPrefs": {"browser": "ALL"},
    }}});
    let session = call(
        http,
        reqwest::Method::POST,
        &format!("{base}/session"),
        Some(capabilities),
    )
    .await
    .context("starting a Chromium session")?;
    session["sessionId"]
        .as_str()
        .map(str::to_owned)
        .context("no sessionId in chromedriver's answer")
}

fn program(env: &str, name: &str) -> anyhow::Result<PathBuf> {
    match std::env::var_os(env) {
        Some(p) => Ok(PathBuf::from(p)),
        None => binaries::system_program(name).with_context(|| {
            format!(
                "{name} not found: install Debian's `chromium` and `chromium-driver` \
                 (deploy/local/test.sh does) or set {env}"
            )
        }),
    }
}
