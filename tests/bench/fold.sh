#!/usr/bin/env bash
# Benchmark of usage folding: a backlog of BENCH_EVENTS (200000) usage events published to
# JetStream, then folded by a freshly started control plane; prints events/s. Not a test.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p switchyard-control-plane -p switchyard-tests --bins
SWITCHYARD_BIN_DIR="$PWD/target/release" exec target/release/bench-fold
