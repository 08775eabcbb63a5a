#!/usr/bin/env bash
# The one test command (README and .ci/run call it). On a fresh Debian bookworm machine it
# installs what is missing (nats-server, PostgreSQL 15, Prometheus, python3-venv, docker-compose,
# Chromium and chromedriver, the Python SDK venv, the coding agents from npm),
# then runs format check, clippy, builds the binaries the e2e tests spawn, and runs all tests.
# Extra arguments go to the test runner, e.g. `deploy/local/test.sh -E 'test(smoke)'` with
# nextest or `deploy/local/test.sh smoke` with cargo test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=deploy/local/lib.sh
source deploy/local/lib.sh

ensure_system_deps
ensure_test_browser
ensure_deploy_tools
ensure_rust_components
ensure_pyvenv target/pyvenv tests/py/requirements.txt
export SWITCHYARD_PYTHON="$PWD/target/pyvenv/bin/python"
ensure_agents target/agents tests/agents/package.json
export SWITCHYARD_AGENTS_BIN="$PWD/target/agents/node_modules/.bin"

log "cargo fmt --check"
cargo fmt --all --check
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
log "cargo build --bins"
cargo build --workspace --bins

if cargo nextest --version >/dev/null 2>&1; then
  log "cargo nextest run"
  cargo nextest run --workspace --no-fail-fast "$@"
else
  log "cargo test (cargo-nextest not installed)"
  cargo test --workspace --no-fail-fast "$@"
fi
