#!/usr/bin/env bash
# Shared set-up of the load benchmarks (run.sh, admission.sh): source it from the repository root
# after `set -euo pipefail`. It installs oha if missing, builds the release binaries (BIN is
# their directory), makes a work directory ($work) that is removed on exit, when every process
# whose id is in `pids` is killed, starts the mock provider (MOCK is its host:port) and makes a
# fresh key (KEY) and its hash (HASH).

command -v oha >/dev/null || cargo install oha --locked
cargo build --release -q -p switchyard-data-plane -p switchyard-tests --bins
BIN=target/release

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Waits up to 10 s for a file to be written (a process's address file).
wait_file() { for _ in $(seq 1 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timed out waiting for $1" >&2; exit 1; }

# A TCP port free on 127.0.0.1 right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A field (`listen`, `ops`) of a data plane's JSON address file.
addr_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# Starts a data plane binary in the background and waits until it listens:
# `start_data_plane NAME PROGRAM ARGS...`. Its address file is $work/NAME.addr, its log
# $work/NAME.log; ARGS give its config and spool, cache or NATS. Sets DP_PID to its process id.
start_data_plane() {
  local name=$1 program=$2; shift 2
  SWITCHYARD_LOG=warn "$program" --listen 127.0.0.1:0 --ops-listen 127.0.0.1:0 \
    --addr-file "$work/$name.addr" "$@" >"$work/$name.log" 2>&1 &
  DP_PID=$!
  pids+=($DP_PID)
  wait_file "$work/$name.addr"
}

"$BIN/mock-provider" --listen 127.0.0.1:0 --addr-file "$work/mock.addr" --no-record >"$work/mock.log" 2>&1 &
pids+=($!)
wait_file "$work/mock.addr"
MOCK=$(cat "$work/mock.addr")

KEY="sk-sy-bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
HASH=$("$BIN/data-plane" hash-key "$KEY")
