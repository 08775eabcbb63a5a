#!/usr/bin/env bash
# Benchmark: the response cache's and the guardrails' in-process figures, in one run (issue
# 16's four): the redaction pass on 8 KB prompts (`bench-guard`), then the exact lookup, a
# proxy's memory with 100,000 entries, the embedding time and the semantic index search over
# 100,000 records (`bench-cache`). Release builds; the model is fetched as the tests do.
#
# Knobs: BENCH_ITERATIONS (20000, for the redaction pass).
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --release -q -p switchyard-tests --bin bench-guard --bin bench-cache
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== redaction pass (bench-guard)"
target/release/bench-guard "${BENCH_ITERATIONS:-20000}"
echo "== response cache (bench-cache)"
target/release/bench-cache
