//! A NATS server with JetStream per test, for the usage stream and snapshot delivery.
//!
//! The first start lets the server pick its ports (`-p -1 -m -1`) and reads them from its ports
//! file, so parallel tests never clash; [`Nats::restart`] reuses the same ports and store
//! directory, so chaos tests see the "same" server come back with its streams intact.
//! Guarantees: the server is killed and reaped when [`Nats`] drops.
//!
//! [`Nats::start_cluster`] starts several servers as one cluster (`cluster { routes }` on
//! loopback, JetStream clustered): each node keeps its ports and store across a kill and
//! restart, like a single server.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use super::binaries;
use super::fsutil::STARTUP_TIMEOUT;
use super::process::{ChildProcess, ProcessSpec};

/// Overrides the `nats-server` program.
pub const ENV_NATS_SERVER: &str = "SWITCHYARD_NATS_SERVER";

/// How long [`Nats::stop`] waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running (or stopped, between [`Nats::stop`] and [`Nats::restart`]) NATS server.
#[derive(Debug)]
pub struct Nats {
    process: ChildProcess,
    dir: PathBuf,
    ports_dir: PathBuf,
    client_port: u16,
    monitor_port: u16,
    /// This node's place in a cluster, if it is in one.
    cluster: Option<ClusterNode>,
}

/// A node's cluster settings: its name, its route port and every node's route port.
#[derive(Debug, Clone)]
struct ClusterNode {
    name: String,
    port: u16,
    routes: Vec<u16>,
}

impl Nats {
    /// Starts `nats-server -js` in `<parent>/nats` on ports of its own choosing and waits until
    /// JetStream answers on the monitoring port.
    pub async fn start(parent: &Path) -> anyhow::Result<Self> {
        Self::start_node(parent.join("nats"), None).await
    }

    /// Starts `size` servers as one JetStream cluster in `<parent>/nats-1`, `nats-2`, ... and
    /// waits until the cluster has elected its JetStream leader with every node in it.
    pub async fn start_cluster(parent: &Path, size: usize) -> anyhow::Result<Vec<Self>> {
        let routes = (0..size)
            .map(|_| super::ports::free_port())
            .collect::<anyhow::Result<Vec<u16>>>()?;
        let mut nodes = Vec::with_capacity(size);
        for (i, port) in routes.iter().enumerate() {
            let node = ClusterNode {
                name: format!("nats-{}", i + 1),
                port: *port,
                routes: routes.clone(),
            };
            let dir = parent.join(&node.name);
            nodes.push(Self::start_node(dir, Some(node)).await?);
        }
        nodes[0].wait_for_cluster(size).await?;
        Ok(nodes)
    }

    /// The comma-separated client URLs of `nodes`, as both planes take them.
    pub fn urls(nodes: &[Self]) -> String {
        nodes.iter().map(Self::url).collect::<Vec<_>>().join(",")
    }

    async fn start_node(dir: PathBuf, cluster: Option<ClusterNode>) -> anyhow::Result<Self> {
        let ports_dir = dir.join("ports");
        std::fs::create_dir_all(&ports_dir)
            .with_context(|| format!("creating {}", ports_dir.display()))?;
        let program = match std::env::var_os(ENV_NATS_SERVER) {
            Some(p) => PathBuf::from(p),
            None => binaries::system_program("nats-server").context(
                "nats-server not found: install it (`apt-get install nats-server`; \
                 deploy/local/test.sh does) or set SWITCHYARD_NATS_SERVER",
            )?,
        };
        let spec = ProcessSpec {
            name: cluster.as_ref().map_or("nats", |c| &c.name).to_owned(),
            program,
            args: server_args(&dir, &ports_dir, -1, -1, cluster.as_ref()),
            envs: Vec::new(),
            log_dir: dir.clone(),
        };
        let mut nats = Self {
            process: ChildProcess::spawn(spec)?,
            dir,
            ports_dir,
            client_port: 0,
            monitor_port: 0,
            cluster,
        };
        let (client, monitor) = nats.wait_for_ports().await?;
        nats.client_port = client;
        nats.monitor_port = monitor;
        // Later starts must come back on the same ports.
        nats.process.spec_mut().args = server_args(
            &nats.dir,
            &nats.ports_dir,
            i32::from(client),
            i32::from(monitor),
            nats.cluster.as_ref(),
        );
        nats.wait_for_jetstream().await?;
        Ok(nats)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    /// `http://127.0.0.1:PORT` of the monitoring endpoint (`/varz`, `/jsz`, ...).
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.client_port
    }

    /// The JetStream store directory, kept across restarts.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("js")
    }

    /// A new client connection.
    pub async fn client(&self) -> anyhow::Result<async_nats::Client> {
        async_nats::connect(self.url())
            .await
            .with_context(|| format!("connecting to {}", self.url()))
    }

    /// A JetStream context over a new client connection.
    pub async fn jetstream(&self) -> anyhow::Result<async_nats::jetstream::Context> {
        Ok(async_nats::jetstream::new(self.client().await?))
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.process.ensure_running().is_ok()
    }

    /// Graceful stop: SIGTERM, then SIGKILL after a few seconds.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.process.terminate(STOP_GRACE).await.map(|_| ())
    }

    /// Abrupt stop: SIGKILL, as in a crash.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.process.kill()
    }

    /// Stops the server if it runs, then starts it again on the same ports and store directory
    /// and waits until JetStream is ready.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        clear_dir(&self.ports_dir)?;
        self.process.respawn()?;
        self.wait_for_ports().await?;
        self.wait_for_jetstream().await?;
        if self.cluster.is_some() {
            self.wait_for_health().await?;
        }
        Ok(())
    }

    /// Waits until the node's `/healthz` says it is healthy: in a cluster, that its JetStream
    /// assets have caught up with their peers.
    async fn wait_for_health(&mut self) -> anyhow::Result<()> {
        let url = format!("{}/healthz", self.monitor_url());
        let http = reqwest::Client::new();
        let waiting = format!("not healthy at {url}");
        self.process
            .wait_for(STARTUP_TIMEOUT * 2, &waiting, || async {
                let healthy = http
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                Ok(healthy.then_some(()))
            })
            .await
    }

    /// Paths of the captured stdout and stderr.
    pub fn log_paths(&self) -> (PathBuf, PathBuf) {
        (self.process.stdout_path(), self.process.stderr_path())
    }

    /// Waits for the ports file the server writes once it accepts clients; returns
    /// (client, monitoring) ports.
    async fn wait_for_ports(&mut self) -> anyhow::Result<(u16, u16)> {
        let dir = &self.ports_dir;
        let waiting = "nats-server wrote no ports file";
        self.process
            .wait_for(STARTUP_TIMEOUT, waiting, || {
                std::future::ready(read_ports_file(dir))
            })
            .await
    }

    /// Waits until this node sees a JetStream meta leader in a cluster of `size`.
    async fn wait_for_cluster(&mut self, size: usize) -> anyhow::Result<()> {
        let url = format!("{}/jsz", self.monitor_url());
        let http = reqwest::Client::new();
        let waiting = format!("no JetStream cluster of {size} with a leader at {url}");
        self.process
            .wait_for(STARTUP_TIMEOUT * 3, &waiting, || async {
                let Ok(resp) = http.get(&url).send().await else {
                    return Ok(None);
                };
                let jsz: serde_json::Value = resp.json().await.unwrap_or_default();
                let meta = &jsz["meta_cluster"];
                let led = meta["leader"].as_str().is_some_and(|l| !l.is_empty());
                let whole = meta["cluster_size"].as_u64() == Some(size as u64);
                Ok((led && whole).then_some(()))
            })
            .await
    }

    async fn wait_for_jetstream(&mut self) -> anyhow::Result<()> {
        let url = format!("{}/jsz", self.monitor_url());
        let http = reqwest::Client::new();
        let waiting = format!("JetStream not ready at {url}");
        self.process
            .wait_for(STARTUP_TIMEOUT, &waiting, || async {
                let ready = match http.get(&url).send().await {
                    Ok(resp) if resp.status().is_success() => resp
                        .json::<serde_json::Value>()
                        .await
                        .map(|v| v.get("config").is_some_and(|c| !c.is_null()))
                        .unwrap_or(false),
                    _ => false,
                };
                Ok(ready.then_some(()))
            })
            .await
    }
}

/// Arguments for `nats-server`; `-1` lets the server pick a port.
fn server_args(
    dir: &Path,
    ports_dir: &Path,
    client: i32,
    monitor: i32,
    cluster: Option<&ClusterNode>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-js", "-a", "127.0.0.1"].map(OsString::from).to_vec();
    args.push("-sd".into());
    args.push(dir.join("js").into_os_string());
    args.push("-p".into());
    args.push(client.to_string().into());
    args.push("-m".into());
    args.push(monitor.to_string().into());
    args.push("--ports_file_dir".into());
    args.push(ports_dir.as_os_str().to_owned());
    if let Some(node) = cluster {
        let routes: Vec<String> = node
            .routes
            .iter()
            .filter(|p| **p != node.port)
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        for arg in [
            "-n".to_owned(),
            node.name.clone(),
            "--cluster_name".to_owned(),
            "switchyard".to_owned(),
            "--cluster".to_owned(),
            format!("nats://127.0.0.1:{}", node.port),
            "--routes".to_owned(),
            routes.join(","),
        ] {
            args.push(arg.into());
        }
    }
    args
}

/// Reads `nats-server_<pid>.ports` (`{"nats":["nats://h:p"],"monitoring":["http://h:p"]}`).
/// A killed server leaves its file behind, so [`Nats::restart`] empties the directory first.
fn read_ports_file(ports_dir: &Path) -> anyhow::Result<Option<(u16, u16)>> {
    let entries =
        std::fs::read_dir(ports_dir).with_context(|| format!("listing {}", ports_dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "ports") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue; // Being written right now.
        };
        let port_of = |key: &str| {
            json.get(key)?
                .as_array()?
                .first()?
                .as_str()?
                .rsplit(':')
                .next()?
                .parse::<u16>()
                .ok()
        };
        if let (Some(client), Some(monitor)) = (port_of("nats"), port_of("monitoring")) {
            return Ok(Some((client, monitor)));
        }
    }
    Ok(None)
}

fn clear_dir(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}
