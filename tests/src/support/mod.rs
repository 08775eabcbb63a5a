//! The real-services test harness: Postgres, NATS, mock providers, data planes, Prometheus
//! and a headless Chromium as real processes on free ports, in a temp dir per test, stopped
//! when the test ends; an in-process OTLP receiver ([`OtlpReceiver`]) for the planes' traces.
//!
//! Start with [`TestEnv::builder`]; wait with [`eventually`] or
//! [`assert_eventually!`](crate::assert_eventually), never with sleeps; drive Python SDK
//! clients with [`run_python`]. Workspace binaries must be built first
//! (`cargo build --workspace --bins`, which deploy/local/test.sh runs).

mod agents;
mod binaries;
mod browser;
mod control_plane;
mod data_plane;
mod env;
mod eventually;
mod fsutil;
mod logs;
mod mock_provider;
mod models;
mod nats;
mod otlp;
mod ports;
mod postgres;
mod process;
mod prometheus;
mod python;

pub use crate::assert_eventually;

pub use agents::{agent, run_agent, AgentRun, AGENT_TIMEOUT, ENV_AGENTS_BIN};
pub use binaries::{bin_dir, binary, system_program, workspace_root, ENV_BIN_DIR};
pub use browser::{Browser, Element, ENV_CHROMEDRIVER, ENV_CHROMIUM};
pub use control_plane::{Answer, ControlPlane, ADMIN_TOKEN, SEAL_KEY};
pub use data_plane::{wait_until_served, DataPlane, DataPlaneSpec};
pub use env::{TestEnv, TestEnvBuilder};
pub use eventually::{eventually, Attempt, DEFAULT_TIMEOUT};
pub use fsutil::write_atomic;
pub use mock_provider::{MockProvider, MockProviderOptions};
pub use models::{minilm, ENV_EMBED_MODEL};
pub use nats::Nats;
pub use otlp::{Keep, OtlpReceiver, ReceivedSpan};
pub use ports::{free_port, is_listening};
pub use postgres::Postgres;
pub use process::{ChildProcess, ProcessSpec};
pub use prometheus::{promtool, Prometheus, ENV_PROMETHEUS, ENV_PROMTOOL};
pub use python::{
    decimal, last_json, openai_sdk, py_script, python, run_python, run_python_source, PythonOutput,
    ENV_PYTHON, PYTHON_TIMEOUT,
};
