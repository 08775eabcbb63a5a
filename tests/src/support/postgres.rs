//! A throwaway PostgreSQL 15 cluster per test, on a free port, in the test's temp dir.
//!
//! Guarantees: the cluster is stopped (`pg_ctl stop -m immediate`) when [`Postgres`] drops,
//! also while a test panics, and then its log tail is printed. Because `pg_ctl` detaches the
//! server into its own session, a watchdog (also detached) stops it should the test process die
//! without running destructors (SIGKILL, OOM), so a timed-out test does not leak a cluster.
//!
//! Postgres refuses to run as root, so as root every Postgres program runs as the `postgres`
//! user through `runuser` and the cluster's directories are chowned to it. `initdb` runs once
//! per machine into a shared template that each test copies (≈ 0.1 s instead of ≈ 1.2 s).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;

use super::{logs, ports};

/// Where the Postgres 15 programs live (Debian's layout).
pub const DEFAULT_PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// Overrides [`DEFAULT_PG_BIN_DIR`].
pub const ENV_PG_BIN_DIR: &str = "SWITCHYARD_PG_BIN_DIR";

/// Bumped whenever the initdb flags change, so an old template is not reused.
const TEMPLATE_VERSION: u32 = 1;
/// Attempts to find a port nobody else grabbed between picking and binding it.
const START_ATTEMPTS: usize = 5;
/// Durability is pointless for a cluster that lives as long as one test.
const SERVER_SETTINGS: &[&str] = &[
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "shared_buffers=32MB",
];

/// A running Postgres 15 cluster owned by one test.
#[derive(Debug)]
pub struct Postgres {
    data_dir: PathBuf,
    sock_dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    as_postgres_user: bool,
    running: bool,
    watchdog: Option<Child>,
}

impl Postgres {
    /// Creates a cluster in `<parent>/postgres` and starts it on a free port.
    pub async fn start(parent: &Path) -> anyhow::Result<Self> {
        let as_postgres_user = running_as_root()?;
        let dir = parent.join("postgres");
        let sock_dir = dir.join("sock");
        std::fs::create_dir_all(&sock_dir)
            .with_context(|| format!("creating {}", sock_dir.display()))?;
        let template = ensure_template(as_postgres_user).await?;
        let data_dir = dir.join("data");
        run(tokio::process::Command::new("cp")
            .arg("-a")
            .arg(template.join("data"))
            .arg(&data_dir))
        .await
        .context("copying the Postgres template cluster")?;
        if as_postgres_user {
            run(tokio::process::Command::new("chown")
                .arg("postgres:")
                .arg(&dir)
                .arg(&sock_dir))
            .await?;
        }
        let mut pg = Self {
            data_dir,
            sock_dir,
            log_path: dir.join("postgres.log"),
            port: 0,
            as_postgres_user,
            running: false,
            watchdog: None,
        };
        pg.start_server().await?;
        pg.watchdog = pg.spawn_watchdog();
        Ok(pg)
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres` (trust auth, no password).
    pub fn database_url(&self) -> String {
        self.database_url_for("postgres")
    }

    /// Connection URL for another database of this cluster.
    pub fn database_url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.sock_dir
    }

    /// Path of the server log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// A client connected to the `postgres` database.
    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        self.client_for("postgres").await
    }

    /// A client connected to `database`. The connection task is spawned on the current runtime
    /// and ends when the client is dropped.
    pub async fn client_for(&self, database: &str) -> anyhow::Result<tokio_postgres::Client> {
        let url = self.database_url_for(database);
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                eprintln!("switchyard test harness: postgres connection ended: {err}");
            }
        });
        Ok(client)
    }

    /// Creates a database (name: lowercase letters, digits, `_`) and returns its URL.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        anyhow::ensure!(valid, "invalid database name {name:?}");
        self.client()
            .await?
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("creating database {name}"))?;
        Ok(self.database_url_for(name))
    }

    /// Stops the server at once (`-m immediate`); the data directory stays.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if self.running {
            run(&mut tokio::process::Command::from(self.stop_command())).await?;
            self.running = false;
        }
        Ok(())
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.pg_ctl_start(self.port).await
    }

    async fn start_server(&mut self) -> anyhow::Result<()> {
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = ports::free_port()?;
            match self.pg_ctl_start(port).await {
                Ok(()) => return Ok(()),
                Err(err) if logs::tail(&self.log_path, 20).contains("Address already in use") => {
                    last_error = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("postgres never started")))
            .context(format!("no free port after {START_ATTEMPTS} attempts"))
    }

    async fn pg_ctl_start(&mut self, port: u16) -> anyhow::Result<()> {
        let mut options = format!("-p {port} -k {}", self.sock_dir.display());
        for setting in SERVER_SETTINGS {
            options.push_str(" -c ");
            options.push_str(setting);
        }
        let mut cmd = self.pg_program("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_path)
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        let result = run(&mut tokio::process::Command::from(cmd)).await;
        if let Err(err) = result {
            return Err(err.context(format!(
                "starting postgres on port {port}\n{}",
                logs::tail_section("postgres", &self.log_path, 20)
            )));
        }
        self.port = port;
        self.running = true;
        Ok(())
    }

    /// A command running a Postgres program, as the `postgres` user when we are root.
    fn pg_program(&self, program: &str) -> Command {
        pg_program(self.as_postgres_user, program)
    }

    fn stop_command(&self) -> Command {
        let mut cmd = self.pg_program("pg_ctl");
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "stop"]);
        cmd
    }

    /// A detached `sh` that waits for this test process to disappear, then stops the cluster.
    /// Killed in `Drop` once the cluster is stopped the normal way.
    fn spawn_watchdog(&self) -> Option<Child> {
        let stop = self.stop_command();
        let script = r#"while kill -0 "$0" 2>/dev/null; do sleep 1; done; exec "$@""#;
        Command::new("setsid")
            .args(["sh", "-c", script])
            .arg(std::process::id().to_string())
            .arg(stop.get_program())
            .args(stop.get_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if self.running {
            let status = self
                .stop_command()
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !matches!(status, Ok(s) if s.success()) {
                eprintln!(
                    "switchyard test harness: stopping postgres in {} failed: {status:?}",
                    self.data_dir.display()
                );
            }
            self.running = false;
        }
        if std::thread::panicking() {
            eprint!(
                "{}",
                logs::tail_section("postgres", &self.log_path, logs::TAIL_LINES)
            );
        }
    }
}

fn pg_bin_dir() -> PathBuf {
    std::env::var_os(ENV_PG_BIN_DIR)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PG_BIN_DIR))
}

fn pg_program(as_postgres_user: bool, program: &str) -> Command {
    let path = pg_bin_dir().join(program);
    if as_postgres_user {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(path);
        // The test's working directory may not be readable by `postgres`.
        cmd.current_dir("/");
        cmd
    } else {
        Command::new(path)
    }
}

fn running_as_root() -> anyhow::Result<bool> {
    // /proc/self belongs to the process's effective uid; std offers no getuid without unsafe.
    Ok(std::fs::metadata("/proc/self")
        .context("reading /proc/self to learn our uid")?
        .uid()
        == 0)
}

/// Returns a directory whose `data/` is a freshly initdb'd, shut-down cluster, creating it once
/// per machine and user. Concurrent tests may race to create it: each builds its own staging
/// copy and renames it into place; a loser's rename fails and it uses the winner's.
async fn ensure_template(as_postgres_user: bool) -> anyhow::Result<PathBuf> {
    let initdb = pg_bin_dir().join("initdb");
    anyhow::ensure!(
        initdb.is_file(),
        "{} not found: install postgresql-15 (deploy/local/test.sh does) or set {ENV_PG_BIN_DIR}",
        initdb.display()
    );
    let uid = std::fs::metadata("/proc/self")?.uid();
    let tmp = std::env::temp_dir();
    let template = tmp.join(format!(
        "switchyard-pg15-template-v{TEMPLATE_VERSION}-{uid}"
    ));
    if template.join("data").join("PG_VERSION").is_file() {
        return Ok(template);
    }
    let staging = tempfile::Builder::new()
        .prefix("switchyard-pg15-staging-")
        .tempdir_in(&tmp)
        .context("creating a staging dir for the Postgres template")?;
    if as_postgres_user {
        run(tokio::process::Command::new("chown")
            .arg("postgres:")
            .arg(staging.path()))
        .await?;
    }
    let mut cmd = pg_program(as_postgres_user, "initdb");
    cmd.arg("-D")
        .arg(staging.path().join("data"))
        .args(["-A", "trust", "-E", "UTF8", "--no-locale", "-U", "postgres"])
        .args(["--no-sync", "--no-instructions"]);
    run(&mut tokio::process::Command::from(cmd))
        .await
        .context("initdb for the Postgres template")?;
    if std::fs::rename(staging.path(), &template).is_err() {
        anyhow::ensure!(
            template.join("data").join("PG_VERSION").is_file(),
            "could not move the Postgres template into {}",
            template.display()
        );
    }
    Ok(template)
}

/// Runs a command to completion, failing with its output when it does not succeed.
async fn run(cmd: &mut tokio::process::Command) -> anyhow::Result<()> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {:?}", cmd.as_std()))?;
    anyhow::ensure!(
        output.status.success(),
        "{:?} failed with {}\nstdout: {}\nstderr: {}",
        cmd.as_std(),
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}
