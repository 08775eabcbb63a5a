#!/usr/bin/env bash
# Benchmark: what OpenTelemetry traces and the `full` request log cost the data plane, with
# 1 KB request bodies.
#
# Four data planes on the same mock and NATS (usage events and request-log bodies go to
# JetStream), same routes and key secret, loaded one at a time:
#   off     log_payloads: metadata, traces off        (the baseline)
#   full    log_payloads: full,     traces off
#   traces  log_payloads: metadata, traces on
#   both    log_payloads: full,     traces on         (the issue's "both on")
# Traces on: every span sampled (OTEL_TRACES_SAMPLER=always_on), exported over OTLP
# (HTTP/protobuf) to `otlp-receiver`, a local receiver that decodes every export and counts
# the spans, on the same machine.
#
# Each round runs every proxy at maximum throughput (BENCH_CONNECTIONS connections) in the
# order off, full, traces, both, both, traces, full, off, so each proxy's two runs straddle
# the others'; then each once at a fixed rate, with the proxy's own overhead metric
# (`switchyard_gateway_overhead_seconds`) read before and after. Prints req/s per proxy
# (mean over rounds), the ratios to `off`, p50/p99 and the in-proxy overhead at the fixed
# rate, and how many spans the receiver got per traced request (2 when nothing was dropped:
# the request span and its attempt). Where the CPU went: each process's CPU time per request
# during the maximum-throughput runs (proxy, nats-server, the receiver, the mock), from
# /proc/PID/stat.
#
# Knobs: BENCH_DURATION (default 10s per run), BENCH_CONNECTIONS (64), BENCH_RATE (1000
# req/s), BENCH_ROUNDS (2).
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
RATE=${BENCH_RATE:-1000}
ROUNDS=${BENCH_ROUNDS:-2}

# shellcheck source=tests/bench/lib.sh
source tests/bench/lib.sh
MOCK_PID=${pids[0]}

NATS_PORT=$(free_port)
nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$work/nats" >"$work/nats.log" 2>&1 &
NATS_PID=$!
pids+=($NATS_PID)
for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$NATS_PORT) 2>/dev/null && break; sleep 0.1; done

"$BIN/otlp-receiver" --addr-file "$work/otlp.addr" >"$work/otlp.log" 2>&1 &
OTLP_PID=$!
pids+=($OTLP_PID)
wait_file "$work/otlp.addr"
OTLP=$(cat "$work/otlp.addr")

NAMES=(off full traces both)
for name in "${NAMES[@]}"; do
  case $name in off | traces) log=metadata ;; *) log=full ;; esac
  cat >"$work/$name.yaml" <<YAML
providers:
  - { id: mock, kind: openai_compatible, base_url: "http://$MOCK/v1" }
routes:
  - { alias: bench-chat, deployments: [{ provider: mock, model: mock-chat }] }
keys:
  - { name: bench, id: key-1, team: team-1, sha256: "$HASH", models: ["*"], log_payloads: $log }
YAML
  args=(--config "$work/$name.yaml" --nats "nats://127.0.0.1:$NATS_PORT"
        --spool-dir "$work/spool-$name" --snapshot-cache "$work/cache-$name.json")
  case $name in
    traces | both)
      OTEL_EXPORTER_OTLP_ENDPOINT="http://$OTLP" OTEL_TRACES_SAMPLER=always_on \
        start_data_plane "$name" "$BIN/data-plane" "${args[@]}" ;;
    *) start_data_plane "$name" "$BIN/data-plane" "${args[@]}" ;;
  esac
  echo "$DP_PID" >"$work/$name.pid"
done
addr() { addr_field "$work/$1.addr" "$2"; }

# A chat request of 1,024 bytes.
BODY=$(python3 -c '
import json
body = {"model": "bench-chat", "messages": [{"role": "user", "content": ""}], "max_tokens": 16}
room = 1024 - len(json.dumps(body, separators=(",", ":")))
body["messages"][0]["content"] = ("the quick brown fox jumps over the lazy dog " * 30)[:room]
print(json.dumps(body, separators=(",", ":")))
')
echo "request body: ${#BODY} bytes" >&2

load() { # out url extra...
  local out=$1 url=$2; shift 2
  oha --no-tui --output-format json -m POST -T application/json -H "Authorization: Bearer $KEY" \
    -d "$BODY" "$@" "$url" >"$work/$out.json"
}
spans() { curl -fsS "http://$OTLP/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["spans"])'; }
# CPU ticks (user + system) of the proxy NAME, nats-server, the receiver and the mock.
ticks() { for p in "$(cat "$work/$1.pid")" "$NATS_PID" "$OTLP_PID" "$MOCK_PID"; do awk '{printf "%d ", $14 + $15}' "/proc/$p/stat"; done; }
for name in "${NAMES[@]}"; do
  url="http://$(addr "$name" listen)/v1/chat/completions"
  code=$(curl -s -o "$work/check-$name.txt" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
    -H 'content-type: application/json' -d "$BODY" "$url")
  [ "$code" = 200 ] || { echo "$name proxy answered $code: $(cat "$work/check-$name.txt")" >&2; exit 1; }
  load "warm-$name" "$url" -z 3s -c 16
done

for r in $(seq 1 "$ROUNDS"); do
  for name in off full traces both both traces full off; do
    run=$( [ -e "$work/max-$name-$r-a.json" ] && echo b || echo a )
    echo "round $r: $name at max throughput for $DURATION" >&2
    before=$(spans)
    cpu_before=$(ticks "$name")
    load "max-$name-$r-$run" "http://$(addr "$name" listen)/v1/chat/completions" -z "$DURATION" -c "$CONNECTIONS"
    echo "$cpu_before $(ticks "$name")" >"$work/cpu-$name-$r-$run.txt"
    # The last spans leave within the batch processor's schedule (OTEL_BSP_SCHEDULE_DELAY, 5 s).
    case $name in traces | both) sleep 6 ;; esac
    echo "$before $(spans)" >"$work/spans-$name-$r-$run.txt"
  done
done
for name in "${NAMES[@]}"; do
  echo "fixed rate: $name @ $RATE req/s for $DURATION" >&2
  curl -fsS "http://$(addr "$name" ops)/metrics" >"$work/m-$name-before.txt"
  load "fixed-$name" "http://$(addr "$name" listen)/v1/chat/completions" -z "$DURATION" -q "$RATE" --latency-correction -c 32
  curl -fsS "http://$(addr "$name" ops)/metrics" >"$work/m-$name-after.txt"
done

python3 - "$work" "$ROUNDS" "$RATE" "$CONNECTIONS" "${#BODY}" "$(getconf CLK_TCK)" <<'PY'
import json, os, platform, sys
work, rounds, rate, conns, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
tick_us = 1e6 / int(sys.argv[6])
names = ["off", "full", "traces", "both"]
def run(name):
    d = json.load(open(os.path.join(work, name + ".json")))
    codes = d.get("statusCodeDistribution", {})
    p = d["latencyPercentiles"]
    return d["summary"]["requestsPerSec"], p["p50"] * 1e3, p["p99"] * 1e3, codes.get("200", 0), sum(codes.values())
def overhead(name):
    def read(path):
        s = c = 0.0
        for line in open(path):
            if line.startswith("switchyard_gateway_overhead_seconds_sum"):
                s += float(line.rsplit(" ", 1)[1])
            elif line.startswith("switchyard_gateway_overhead_seconds_count"):
                c += float(line.rsplit(" ", 1)[1])
        return s, c
    s0, c0 = read(os.path.join(work, f"m-{name}-before.txt"))
    s1, c1 = read(os.path.join(work, f"m-{name}-after.txt"))
    return (s1 - s0) / (c1 - c0) * 1e6 if c1 > c0 else float("nan")
cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip(); break
print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {cpu}; request body {size} bytes")
print(f"max throughput ({conns} connections), req/s per run and mean:")
mean = {}
for name in names:
    runs = [run(f"max-{name}-{r}-{x}") for r in range(1, rounds + 1) for x in "ab"]
    bad = sum(t - ok for _, _, _, ok, t in runs)
    mean[name] = sum(r[0] for r in runs) / len(runs)
    spans = []
    for r in range(1, rounds + 1):
        for x in "ab":
            a, b = map(int, open(os.path.join(work, f"spans-{name}-{r}-{x}.txt")).read().split())
            spans.append((b - a) / run(f"max-{name}-{r}-{x}")[4])
    per = f"; spans received per request {min(spans):.2f}-{max(spans):.2f}" if name in ("traces", "both") else ""
    print(f"  {name:<7}" + "".join(f"{r[0]:>9.0f}" for r in runs) + f"   mean {mean[name]:>8.0f}  ({mean[name] / mean['off'] * 100:5.1f}% of off; {bad} non-200){per}")
print("CPU time per request during those runs, us (proxy, nats-server, receiver, mock):")
for name in names:
    per = [0.0] * 4
    n = 0
    for r in range(1, rounds + 1):
        for x in "ab":
            t = list(map(int, open(os.path.join(work, f"cpu-{name}-{r}-{x}.txt")).read().split()))
            for i in range(4):
                per[i] += (t[4 + i] - t[i]) * tick_us
            n += run(f"max-{name}-{r}-{x}")[4]
    print(f"  {name:<7}" + "".join(f"{p / n:>9.1f}" for p in per) + f"   total {sum(per) / n:6.1f}")
print(f"fixed rate {rate} req/s:")
print(f"  {'proxy':<7}{'p50 ms':>9}{'p99 ms':>9}{'in-proxy us':>13}")
for name in names:
    _, p50, p99, ok, total = run(f"fixed-{name}")
    print(f"  {name:<7}{p50:>9.3f}{p99:>9.3f}{overhead(name):>13.1f}   ({ok}/{total} ok)")
both = mean["both"] / mean["off"]
print(f"throughput cost of log_payloads full + traces on: {(1 - both) * 100:.1f}% (both/off = {both:.3f}; target: at most 10%)")
print(f"  of which full alone: {(1 - mean['full'] / mean['off']) * 100:.1f}%, traces alone: {(1 - mean['traces'] / mean['off']) * 100:.1f}%")
PY
