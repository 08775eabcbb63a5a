#!/usr/bin/env bash
# Benchmark of snapshot distribution: propagation time from admin API response to all proxies,
# and the cost of swapping a 100,000-key snapshot under load. Prints figures; not a test.
# Knobs: BENCH_CHANGES (200), BENCH_KEYS (100000).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v oha >/dev/null || cargo install oha --locked
cargo build --release -q --workspace --bins
SWITCHYARD_BIN_DIR="$PWD/target/release" exec target/release/bench-control-plane
