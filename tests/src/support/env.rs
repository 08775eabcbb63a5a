//! [`TestEnv`]: everything one test runs against, started on free ports in one temp dir.
//!
//! Guarantees: every process the environment started is stopped when it drops, also while the
//! test panics (then each component prints its log tail to stderr). Components stop in reverse
//! dependency order (data planes, mocks, NATS, Postgres) and the temp dir goes last. Two
//! environments never share a port or a directory, so tests run in parallel.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::Context as _;

use super::data_plane::{DataPlane, DataPlaneSpec};
use super::mock_provider::{MockProvider, MockProviderOptions};
use super::nats::Nats;
use super::postgres::Postgres;

/// The services of one test. Build it with [`TestEnv::builder`], or start parts one by one on
/// an empty environment ([`TestEnv::new`] then `start_*`).
#[derive(Debug)]
pub struct TestEnv {
    // Field order is drop order: dependents first, the directory they all live in last.
    data_planes: Vec<DataPlane>,
    mocks: Vec<MockProvider>,
    nats: Option<Nats>,
    /// The other nodes when NATS runs as a cluster (`nats` is the first).
    nats_peers: Vec<Nats>,
    postgres: Option<Postgres>,
    dir: tempfile::TempDir,
}

impl TestEnv {
    /// A builder that starts the requested services in [`TestEnvBuilder::build`].
    pub fn builder() -> TestEnvBuilder {
        TestEnvBuilder::default()
    }

    /// An environment with nothing running yet, only its temp dir.
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-test-")
            .tempdir()
            .context("creating the test's temp dir")?;
        // As root, Postgres runs as `postgres`, which must be able to reach its subdirectory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .context("opening the temp dir for the postgres user")?;
        Ok(Self {
            data_planes: Vec::new(),
            mocks: Vec::new(),
            nats: None,
            nats_peers: Vec::new(),
            postgres: None,
            dir,
        })
    }

    /// The temp dir holding every component's files and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts Postgres (if not running yet) and returns it.
    pub async fn start_postgres(&mut self) -> anyhow::Result<&mut Postgres> {
        if self.postgres.is_none() {
            self.postgres = Some(Postgres::start(self.dir.path()).await?);
        }
        self.postgres
            .as_mut()
            .context("postgres vanished right after starting")
    }

    /// Starts NATS (if not running yet) and returns it.
    pub async fn start_nats(&mut self) -> anyhow::Result<&mut Nats> {
        if self.nats.is_none() {
            self.nats = Some(Nats::start(self.dir.path()).await?);
        }
        self.nats
            .as_mut()
            .context("nats vanished right after starting")
    }

    /// Starts one more mock provider (`mock-0`, `mock-1`, ...) and returns it.
    pub async fn start_mock_provider(
        &mut self,
        options: MockProviderOptions,
    ) -> anyhow::Result<&mut MockProvider> {
        let name = format!("mock-{}", self.mocks.len());
        let mock = MockProvider::start(self.dir.path(), &name, options).await?;
        self.mocks.push(mock);
        self.mocks
            .last_mut()
            .context("mock vanished right after starting")
    }

    /// Starts one more data plane (`data-plane-0`, ...). A spec built with
    /// [`DataPlaneSpec::from_fn`] or [`DataPlaneSpec::nats`] sees everything started so far; a
    /// `&str`/`String` is taken as the YAML config itself.
    pub async fn start_data_plane(
        &mut self,
        spec: impl Into<DataPlaneSpec>,
    ) -> anyhow::Result<&mut DataPlane> {
        let (yaml, envs, args) = spec.into().render(self);
        let name = format!("data-plane-{}", self.data_planes.len());
        let dp = DataPlane::start(self.dir.path(), &name, yaml.as_deref(), envs, args).await?;
        self.data_planes.push(dp);
        self.data_planes
            .last_mut()
            .context("data plane vanished right after starting")
    }

    /// The Postgres cluster, if started.
    pub fn try_postgres(&self) -> Option<&Postgres> {
        self.postgres.as_ref()
    }

    /// The NATS server, if started.
    pub fn try_nats(&self) -> Option<&Nats> {
        self.nats.as_ref()
    }

    /// The Postgres cluster.
    ///
    /// # Panics
    /// If it was not started: a mistake in the test itself, not a runtime condition.
    #[track_caller]
    pub fn postgres(&self) -> &Postgres {
        present(self.postgres.as_ref(), "postgres", ".postgres()")
    }

    /// The Postgres cluster, mutably (to stop or restart it). Panics like [`Self::postgres`].
    #[track_caller]
    pub fn postgres_mut(&mut self) -> &mut Postgres {
        present(self.postgres.as_mut(), "postgres", ".postgres()")
    }

    /// Starts a control plane named `name` (its own directory under this environment's) on
    /// this environment's Postgres, publishing to its NATS when it has one.
    pub async fn control_plane(&self, name: &str) -> anyhow::Result<super::ControlPlane> {
        self.control_plane_with(name, vec![]).await
    }

    /// [`Self::control_plane`] with extra environment variables.
    pub async fn control_plane_with(
        &self,
        name: &str,
        envs: Vec<(String, String)>,
    ) -> anyhow::Result<super::ControlPlane> {
        let postgres = self
            .postgres
            .as_ref()
            .context("a control plane needs Postgres: build the env with .postgres()")?;
        let nats = self.nats.as_ref().map(|_| self.nats_urls());
        super::ControlPlane::start(
            self.dir(),
            name,
            &postgres.database_url(),
            nats.as_deref(),
            envs,
        )
        .await
    }

    /// The NATS server. Panics if it was not started.
    #[track_caller]
    pub fn nats(&self) -> &Nats {
        present(self.nats.as_ref(), "nats", ".nats()")
    }

    /// Every NATS node's client URL, comma-separated (one URL without a cluster), as both
    /// planes take them. Panics if NATS was not started.
    #[track_caller]
    pub fn nats_urls(&self) -> String {
        let first = self.nats();
        std::iter::once(first)
            .chain(&self.nats_peers)
            .map(Nats::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `index` of the NATS cluster (0 is [`Self::nats`]), mutably, to kill or restart it.
    /// Panics if there is no such node.
    #[track_caller]
    pub fn nats_node_mut(&mut self, index: usize) -> &mut Nats {
        match index {
            0 => self.nats_mut(),
            i => present(
                self.nats_peers.get_mut(i - 1),
                "such NATS node",
                ".nats_cluster(n)",
            ),
        }
    }

    /// The NATS server, mutably (to stop, kill or restart it). Panics if it was not started.
    #[track_caller]
    pub fn nats_mut(&mut self) -> &mut Nats {
        present(self.nats.as_mut(), "nats", ".nats()")
    }

    /// The first mock provider. Panics if none was started.
    #[track_caller]
    pub fn mock(&self) -> &MockProvider {
        self.mock_at(0)
    }

    /// The `index`th mock provider, in start order. Panics if there is no such mock.
    #[track_caller]
    pub fn mock_at(&self, index: usize) -> &MockProvider {
        present(self.mocks.get(index), "mock provider", ".mock_provider()")
    }

    /// The `index`th mock provider, mutably (to kill it). Panics if there is no such mock.
    #[track_caller]
    pub fn mock_mut(&mut self, index: usize) -> &mut MockProvider {
        present(
            self.mocks.get_mut(index),
            "mock provider",
            ".mock_provider()",
        )
    }

    /// All mock providers, in start order.
    pub fn mocks(&self) -> &[MockProvider] {
        &self.mocks
    }

    /// The first data plane. Panics if none was started.
    #[track_caller]
    pub fn data_plane(&self) -> &DataPlane {
        self.data_plane_at(0)
    }

    /// The `index`th data plane, in start order. Panics if there is no such data plane.
    #[track_caller]
    pub fn data_plane_at(&self, index: usize) -> &DataPlane {
        present(self.data_planes.get(index), "data plane", ".data_plane(..)")
    }

    /// The `index`th data plane, mutably (to kill or restart it). Panics if there is none.
    #[track_caller]
    pub fn data_plane_mut(&mut self, index: usize) -> &mut DataPlane {
        present(
            self.data_planes.get_mut(index),
            "data plane",
            ".data_plane(..)",
        )
    }

    /// All data planes, in start order.
    pub fn data_planes(&self) -> &[DataPlane] {
        &self.data_planes
    }
}

#[allow(
    clippy::panic,
    reason = "asking for a component the test did not start is a bug in the test"
)]
#[track_caller]
fn present<T>(component: Option<T>, what: &str, builder_call: &str) -> T {
    match component {
        Some(c) => c,
        None => panic!("this TestEnv has no {what}: add {builder_call} to its builder"),
    }
}

/// Collects what a [`TestEnv`] should run; nothing starts before [`build`](Self::build).
#[derive(Debug, Default)]
pub struct TestEnvBuilder {
    postgres: bool,
    nats: bool,
    /// Nodes of a NATS cluster (more than 1) instead of one server.
    nats_nodes: usize,
    mocks: Vec<MockProviderOptions>,
    data_planes: Vec<DataPlaneSpec>,
}

impl TestEnvBuilder {
    /// Run a Postgres 15 cluster.
    pub fn postgres(mut self) -> Self {
        self.postgres = true;
        self
    }

    /// Run a NATS server with JetStream.
    pub fn nats(mut self) -> Self {
        self.nats = true;
        self
    }

    /// Run NATS as a JetStream cluster of `nodes` servers on loopback; planes get every
    /// node's URL.
    pub fn nats_cluster(mut self, nodes: usize) -> Self {
        self.nats = true;
        self.nats_nodes = nodes;
        self
    }

    /// Run one more mock provider with default options (call again for more).
    pub fn mock_provider(self) -> Self {
        self.mock_provider_with(MockProviderOptions::new())
    }

    /// Run one more mock provider with these options.
    pub fn mock_provider_with(mut self, options: MockProviderOptions) -> Self {
        self.mocks.push(options);
        self
    }

    /// Run one more data plane with this fixed YAML config.
    pub fn data_plane(self, config_yaml: impl Into<String>) -> Self {
        self.data_plane_spec(DataPlaneSpec::new(config_yaml))
    }

    /// Run one more data plane whose YAML is built from the environment once Postgres, NATS,
    /// the mocks and earlier data planes run: `.data_plane_with(|env| format!(.., env.mock().base_url()))`.
    pub fn data_plane_with(self, config: impl FnOnce(&TestEnv) -> String + Send + 'static) -> Self {
        self.data_plane_spec(DataPlaneSpec::from_fn(config))
    }

    /// Run one more data plane described by a full spec (environment variables, arguments).
    pub fn data_plane_spec(mut self, spec: DataPlaneSpec) -> Self {
        self.data_planes.push(spec);
        self
    }

    /// Starts Postgres, NATS and the mocks concurrently, then the data planes in order. On error
    /// everything started so far is stopped again.
    pub async fn build(self) -> anyhow::Result<TestEnv> {
        let mut env = TestEnv::new()?;
        let dir = env.dir.path().to_owned();
        let postgres = async {
            match self.postgres {
                true => Postgres::start(&dir).await.map(Some),
                false => Ok(None),
            }
        };
        let nats = async {
            match (self.nats, self.nats_nodes) {
                (true, n) if n > 1 => Nats::start_cluster(&dir, n).await.map(Some),
                (true, _) => Nats::start(&dir).await.map(|n| Some(vec![n])),
                (false, _) => Ok(None),
            }
        };
        let mocks = futures_util::future::join_all(self.mocks.into_iter().enumerate().map(
            |(i, options)| {
                let dir = &dir;
                async move { MockProvider::start(dir, &format!("mock-{i}"), options).await }
            },
        ));
        let (postgres, nats, mocks) = tokio::join!(postgres, nats, mocks);
        // Move whatever started into the env first, so an error below still stops it.
        let postgres = postgres.map(|pg| env.postgres = pg);
        let nats = nats.map(|nodes| {
            let mut nodes = nodes.unwrap_or_default().into_iter();
            env.nats = nodes.next();
            env.nats_peers = nodes.collect();
        });
        let mut first_mock_error = None;
        for mock in mocks {
            match mock {
                Ok(mock) => env.mocks.push(mock),
                Err(err) => first_mock_error = first_mock_error.or(Some(err)),
            }
        }
        postgres.context("starting postgres")?;
        nats.context("starting nats")?;
        if let Some(err) = first_mock_error {
            return Err(err.context("starting a mock provider"));
        }
        for spec in self.data_planes {
            env.start_data_plane(spec)
                .await
                .context("starting a data plane")?;
        }
        Ok(env)
    }
}
