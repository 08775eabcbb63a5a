#!/usr/bin/env bash
# Benchmark: the mock provider direct vs. through the data plane, on this machine.
#
# Prints requests/s and p50/p99 latency for non-streaming chat at a fixed rate and at maximum
# throughput, time to first streamed chunk, the ratios, and the data plane's peak RSS after
# all requests. Load generator: oha (installed from crates.io if missing). Everything runs on
# this one machine: generator, mock, nats-server (usage events) and proxy share its cores, as
# the README states.
#
# Knobs: BENCH_DURATION (default 20s per run), BENCH_RATE (1000 req/s), BENCH_CONNECTIONS (64
# for max throughput), BENCH_STREAMS (2000 sequential streams).
#
# BENCH_BASELINE=/path/to/an/older/data-plane also runs that binary, with the same config and
# the same NATS, in the same run: each proxy load is run twice per binary in the order
# this, baseline, baseline, this, and the summary compares the two (ratios), so a change is
# judged against its parent on the same machine at the same time.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${BENCH_DURATION:-20s}
RATE=${BENCH_RATE:-1000}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
STREAMS=${BENCH_STREAMS:-2000}

# shellcheck source=tests/bench/lib.sh
source tests/bench/lib.sh

# Usage events go to a JetStream server, as in production (without one they would all go to the
# on-disk spool).
NATS_PORT=$(free_port)
nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$work/nats" >"$work/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$NATS_PORT) 2>/dev/null && break; sleep 0.1; done

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
proxy_args=(--config "$work/config.yaml" --nats "nats://127.0.0.1:$NATS_PORT")
start_data_plane dp "$BIN/data-plane" "${proxy_args[@]}" --spool-dir "$work/spool"
PROXY_PID=$DP_PID
PROXY=$(addr_field "$work/dp.addr" listen)
OPS=$(addr_field "$work/dp.addr" ops)

BASE_URL=""
BASE_PID=""
if [ -n "${BENCH_BASELINE:-}" ]; then
  start_data_plane base "$BENCH_BASELINE" "${proxy_args[@]}" --spool-dir "$work/spool-base"
  BASE_PID=$DP_PID
  BASE_URL="http://$(addr_field "$work/base.addr" listen)/v1/chat/completions"
fi

# Reference: nginx as a plain reverse proxy to the same mock (if installed), to show what one
# extra HTTP hop costs on this machine regardless of what the proxy does.
NGINX_URL=""
if command -v nginx >/dev/null 2>&1; then
  NGINX_PORT=$(free_port)
  mkdir -p "$work/nginx"
  cat >"$work/nginx.conf" <<NGINX
daemon off;
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  upstream mock { server $MOCK; keepalive 256; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
}
NGINX
  nginx -p "$work/nginx" -c "$work/nginx.conf" -e "$work/nginx/error.log" >"$work/nginx.log" 2>&1 &
  pids+=($!)
  sleep 0.5
  NGINX_URL="http://127.0.0.1:$NGINX_PORT/v1/chat/completions"
fi

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
[ -n "$BASE_URL" ] && load warm-base "$BASE_URL" "$BODY_PROXY" -z 3s -c 16

# this, baseline, baseline, this: each binary's two runs straddle the other's.
compare() { # name extra-args...
  local name=$1; shift
  [ -n "$BASE_URL" ] || return 0
  load "$name-proxy-1" "$PROXY_URL" "$BODY_PROXY" "$@"
  load "$name-base-1" "$BASE_URL" "$BODY_PROXY" "$@"
  load "$name-base-2" "$BASE_URL" "$BODY_PROXY" "$@"
  load "$name-proxy-2" "$PROXY_URL" "$BODY_PROXY" "$@"
}

echo "fixed rate: $RATE req/s for $DURATION, direct then proxy..." >&2
load fixed-direct "$DIRECT_URL" "$BODY_DIRECT" -z "$DURATION" -q "$RATE" --latency-correction -c 32
curl -fsS "http://$OPS/metrics" >"$work/metrics-before.txt"
load fixed-proxy "$PROXY_URL" "$BODY_PROXY" -z "$DURATION" -q "$RATE" --latency-correction -c 32
curl -fsS "http://$OPS/metrics" >"$work/metrics-after.txt"
if [ -n "$NGINX_URL" ]; then
  load fixed-nginx "$NGINX_URL" "$BODY_DIRECT" -z "$DURATION" -q "$RATE" --latency-correction -c 32
fi
compare cmp-fixed -z "$DURATION" -q "$RATE" --latency-correction -c 32
echo "max throughput: $CONNECTIONS connections for $DURATION, direct then proxy..." >&2
load max-direct "$DIRECT_URL" "$BODY_DIRECT" -z "$DURATION" -c "$CONNECTIONS"
load max-proxy "$PROXY_URL" "$BODY_PROXY" -z "$DURATION" -c "$CONNECTIONS"

if [ -n "$NGINX_URL" ]; then
  load max-nginx "$NGINX_URL" "$BODY_DIRECT" -z "$DURATION" -c "$CONNECTIONS"
fi
compare cmp-max -z "$DURATION" -c "$CONNECTIONS"
echo "streaming: $STREAMS sequential streams, direct then proxy..." >&2
"$BIN/stream-ttfb" --url "$DIRECT_URL" --key "$KEY" --model mock-chat --requests "$STREAMS" >"$work/ttfb-direct.json"
"$BIN/stream-ttfb" --url "$PROXY_URL" --key "$KEY" --model bench-chat --requests "$STREAMS" >"$work/ttfb-proxy.json"
if [ -n "$BASE_URL" ]; then
  "$BIN/stream-ttfb" --url "$BASE_URL" --key "$KEY" --model bench-chat --requests "$STREAMS" >"$work/ttfb-base.json"
  "$BIN/stream-ttfb" --url "$PROXY_URL" --key "$KEY" --model bench-chat --requests "$STREAMS" >"$work/ttfb-proxy-2.json"
fi

RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$PROXY_PID/status")
BASE_RSS_KB=0
[ -n "$BASE_PID" ] && BASE_RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$BASE_PID/status")

python3 - "$work" "$RSS_KB" "$RATE" "$DURATION" "$CONNECTIONS" "$BASE_RSS_KB" <<'PY'
import json, os, platform, sys
work, rss_kb, rate, duration, conns = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
base_rss_kb = int(sys.argv[6])
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
if os.path.exists(os.path.join(work, "fixed-nginx.json")):
    fn, mn = stats("fixed-nginx"), stats("max-nginx")
    print(f"{'reference: nginx @ '+rate+'/s':<28}{fn['rps']:>10.0f}{fn['p50']:>10.3f}{fn['p99']:>10.3f}{str(fn['ok'])+'/'+str(fn['total']):>16}")
    print(f"{'reference: nginx max':<28}{mn['rps']:>10.0f}{mn['p50']:>10.3f}{mn['p99']:>10.3f}{str(mn['ok'])+'/'+str(mn['total']):>16}")
    print(f"nginx (plain reverse proxy, no parsing) adds @ {rate}/s: p50 {(fn['p50']-fd['p50'])*1e3:.0f} us, p99 {(fn['p99']-fd['p99'])*1e3:.0f} us; max throughput {mn['rps']/md['rps']*100:.1f}% of direct")
def scrape(name):
    out = {}
    for line in open(os.path.join(work, name)):
        if line.startswith(("switchyard_gateway_overhead_seconds_sum", "switchyard_gateway_overhead_seconds_count",
                            "switchyard_request_duration_seconds_sum", "switchyard_request_duration_seconds_count")) and 'endpoint="chat"' in line:
            key = line.split("{")[0]
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out
before, after = scrape("metrics-before.txt"), scrape("metrics-after.txt")
d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
n = d.get("switchyard_gateway_overhead_seconds_count", 0.0)
if n:
    gw = d["switchyard_gateway_overhead_seconds_sum"] / n * 1e6
    inside = d["switchyard_request_duration_seconds_sum"] / d["switchyard_request_duration_seconds_count"] * 1e6
    print(f"inside the proxy @ {rate}/s (its own metrics): mean {inside:.0f} us from request head to response, of which {gw:.0f} us gateway work and {inside-gw:.0f} us waiting on the upstream hop")
print(f"added latency @ {rate}/s: p50 {(fp['p50']-fd['p50'])*1e3:.0f} us, p99 {(fp['p99']-fd['p99'])*1e3:.0f} us")
print(f"max throughput ratio proxy/direct: {mp['rps']/md['rps']*100:.1f}%")
print(f"stream time to first chunk: direct p50 {td['p50_ms']:.3f} ms p99 {td['p99_ms']:.3f} ms; proxy p50 {tp['p50_ms']:.3f} ms p99 {tp['p99_ms']:.3f} ms (added p50 {(tp['p50_ms']-td['p50_ms'])*1e3:.0f} us)")
print(f"data plane peak RSS after {proxied} proxied requests: {rss_kb/1024:.1f} MB")
if os.path.exists(os.path.join(work, "cmp-fixed-base-1.json")):
    def pooled(prefix):
        runs = [stats(f"{prefix}-{i}") for i in (1, 2)]
        return {k: sum(r[k] for r in runs) / len(runs) for k in ("rps", "p50", "p99")}
    tb = load("ttfb-base")
    tp2 = load("ttfb-proxy-2")
    rows = []
    for label, kind in [(f"@ {rate}/s", "cmp-fixed"), (f"max (c={conns})", "cmp-max")]:
        this, base = pooled(f"{kind}-proxy"), pooled(f"{kind}-base")
        rows.append((f"{label} req/s", this["rps"], base["rps"], "higher is better"))
        rows.append((f"{label} p50 ms", this["p50"], base["p50"], "lower is better"))
        rows.append((f"{label} p99 ms", this["p99"], base["p99"], "lower is better"))
    this_ttfb = (tp["p50_ms"] + tp2["p50_ms"]) / 2
    rows.append(("stream first chunk p50 ms", this_ttfb, tb["p50_ms"], "lower is better"))
    rows.append(("peak RSS MB", rss_kb / 1024, base_rss_kb / 1024, "lower is better"))
    print(f"this build vs the baseline binary, same run (each proxy load run as this, baseline, baseline, this; means):")
    print(f"{'measure':<28}{'this':>12}{'baseline':>12}{'this/base':>12}")
    for name, a, b, note in rows:
        print(f"{name:<28}{a:>12.3f}{b:>12.3f}{(a / b if b else float('nan')):>12.3f}  ({note})")
PY
