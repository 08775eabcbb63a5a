#!/usr/bin/env bash
# Benchmark: the mock provider direct vs. through the data plane, on this machine.
#
# Prints requests/s and p50/p99 latency for non-streaming chat at a fixed rate and at maximum
# throughput, time to first streamed chunk, the ratios, and the data plane's peak RSS after
# all requests. Load generator: oha (installed from crates.io if missing). Everything runs on
# this one machine: generator, mock and proxy share its cores, as the README states.
#
# Knobs: BENCH_DURATION (default 20s per run), BENCH_RATE (1000 req/s), BENCH_CONNECTIONS (64
# for max throughput), BENCH_STREAMS (2000 sequential streams).
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${BENCH_DURATION:-20s}
RATE=${BENCH_RATE:-1000}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
STREAMS=${BENCH_STREAMS:-2000}

command -v oha >/dev/null || cargo install oha --locked
cargo build --release -q -p switchyard-data-plane -p switchyard-tests --bins
BIN=target/release

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

wait_file() { for _ in $(seq 1 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timed out waiting for $1" >&2; exit 1; }

"$BIN/mock-provider" --listen 127.0.0.1:0 --addr-file "$work/mock.addr" --no-record >"$work/mock.log" 2>&1 &
pids+=($!)
wait_file "$work/mock.addr"
MOCK=$(cat "$work/mock.addr")

KEY="sk-sy-bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
HASH=$("$BIN/data-plane" hash-key "$KEY")
cat >"$work/config.yaml" <<YAML
providers:
  - id: mock
    kind: openai_compatible
    base_url: http://$MOCK/v1
routes:
  - alias: bench-chat
    deployments: [{ provider: mock, model: mock-chat }]
keys:
  - name: bench
    sha256: "$HASH"
    models: ["*"]
YAML
SWITCHYARD_LOG=warn "$BIN/data-plane" --config "$work/config.yaml" --listen 127.0.0.1:0 --ops-listen 127.0.0.1:0 \
  --addr-file "$work/dp.addr" >"$work/dp.log" 2>&1 &
DP_PID=$!
pids+=($DP_PID)
wait_file "$work/dp.addr"
PROXY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listen"])' "$work/dp.addr")

DIRECT_URL="http://$MOCK/v1/chat/completions"
PROXY_URL="http://$PROXY/v1/chat/completions"
BODY_DIRECT='{"model":"mock-chat","messages":[{"role":"user","content":"Say hello to the benchmark"}],"max_tokens":16}'
BODY_PROXY='{"model":"bench-chat","messages":[{"role":"user","content":"Say hello to the benchmark"}],"max_tokens":16}'

load() { # name url body extra-args...
  local name=$1 url=$2 body=$3; shift 3
  oha --no-tui --output-format json -m POST -T application/json -H "Authorization: Bearer $KEY" \
    -d "$body" "$@" "$url" >"$work/$name.json"
}

echo "warming up..." >&2
load warm-direct "$DIRECT_URL" "$BODY_DIRECT" -z 3s -c 16
load warm-proxy "$PROXY_URL" "$BODY_PROXY" -z 3s -c 16

echo "fixed rate: $RATE req/s for $DURATION, direct then proxy..." >&2
load fixed-direct "$DIRECT_URL" "$BODY_DIRECT" -z "$DURATION" -q "$RATE" --latency-correction -c 32
load fixed-proxy "$PROXY_URL" "$BODY_PROXY" -z "$DURATION" -q "$RATE" --latency-correction -c 32
echo "max throughput: $CONNECTIONS connections for $DURATION, direct then proxy..." >&2
load max-direct "$DIRECT_URL" "$BODY_DIRECT" -z "$DURATION" -c "$CONNECTIONS"
load max-proxy "$PROXY_URL" "$BODY_PROXY" -z "$DURATION" -c "$CONNECTIONS"

echo "streaming: $STREAMS sequential streams, direct then proxy..." >&2
"$BIN/stream-ttfb" --url "$DIRECT_URL" --key "$KEY" --model mock-chat --requests "$STREAMS" >"$work/ttfb-direct.json"
"$BIN/stream-ttfb" --url "$PROXY_URL" --key "$KEY" --model bench-chat --requests "$STREAMS" >"$work/ttfb-proxy.json"

RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$DP_PID/status")

python3 - "$work" "$RSS_KB" "$RATE" "$DURATION" "$CONNECTIONS" <<'PY'
import json, os, platform, sys
work, rss_kb, rate, duration, conns = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def load(name):
    with open(os.path.join(work, name + ".json")) as f:
        return json.load(f)
def stats(name):
    d = load(name)
    s = d["summary"]
    p = d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution", {})
    total = sum(codes.values())
    ok = codes.get("200", 0)
    return {"rps": s["requestsPerSec"], "p50": p["p50"] * 1e3, "p99": p["p99"] * 1e3, "total": total, "ok": ok}
fd, fp = stats("fixed-direct"), stats("fixed-proxy")
md, mp = stats("max-direct"), stats("max-proxy")
td, tp = load("ttfb-direct"), load("ttfb-proxy")
proxied = sum(stats(n)["total"] for n in ["warm-proxy", "fixed-proxy", "max-proxy"]) + tp["n"]
cpu = "unknown"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip(); break
except OSError:
    pass
print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {cpu}")
print(f"{'run':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'ok/total':>16}")
for label, r in [(f"direct @ {rate}/s", fd), (f"proxy  @ {rate}/s", fp), (f"direct max (c={conns})", md), (f"proxy  max (c={conns})", mp)]:
    print(f"{label:<28}{r['rps']:>10.0f}{r['p50']:>10.3f}{r['p99']:>10.3f}{str(r['ok'])+'/'+str(r['total']):>16}")
print(f"added latency @ {rate}/s: p50 {(fp['p50']-fd['p50'])*1e3:.0f} us, p99 {(fp['p99']-fd['p99'])*1e3:.0f} us")
print(f"max throughput ratio proxy/direct: {mp['rps']/md['rps']*100:.1f}%")
print(f"stream time to first chunk: direct p50 {td['p50_ms']:.3f} ms p99 {td['p99_ms']:.3f} ms; proxy p50 {tp['p50_ms']:.3f} ms p99 {tp['p99_ms']:.3f} ms (added p50 {(tp['p50_ms']-td['p50_ms'])*1e3:.0f} us)")
print(f"data plane peak RSS after {proxied} proxied requests: {rss_kb/1024:.1f} MB")
PY
