#!/usr/bin/env bash
# Benchmark: latency the admission step adds (budgets + rate limits on) over the plain proxy.
#
# Two data planes on the same mock, same routes, same key secret; one with no limits, one whose
# key has rpm, tpm, a per-request cap and a hard key budget, whose team has rpm/tpm and whose
# deployment has rpm/tpm (every pool kind is checked on every request). Both run standalone
# (file snapshot, no NATS): pools are granted locally, which is the fast path a proxy with
# leases in hand also takes; usage events go to each proxy's spool directory.
# Runs the two alternately at a fixed rate and prints p50/p99 of each, the differences, and
# the proxies' own overhead histograms (time in the gateway, excluding the upstream).
#
# Knobs: BENCH_DURATION (default 15s per run), BENCH_RATE (1000 req/s), BENCH_ROUNDS (3).
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${BENCH_DURATION:-15s}
RATE=${BENCH_RATE:-1000}
ROUNDS=${BENCH_ROUNDS:-3}

# shellcheck source=tests/bench/lib.sh
source tests/bench/lib.sh

cat >"$work/plain.yaml" <<YAML
providers:
  - { id: mock, kind: openai_compatible, base_url: "http://$MOCK/v1" }
routes:
  - { alias: bench-chat, deployments: [{ provider: mock, model: mock-chat }] }
keys:
  - { name: bench, id: key-1, team: team-1, sha256: "$HASH", models: ["*"] }
YAML
cat >"$work/limits.yaml" <<YAML
providers:
  - { id: mock, kind: openai_compatible, base_url: "http://$MOCK/v1" }
routes:
  - alias: bench-chat
    deployments: [{ provider: mock, model: mock-chat, rpm: 1000000000, tpm: 1000000000000 }]
keys:
  - name: bench
    id: key-1
    team: team-1
    sha256: "$HASH"
    models: ["*"]
    rpm: 1000000000
    tpm: 1000000000000
    max_request_cost_usd: "10"
teams:
  - { id: team-1, rpm: 1000000000, tpm: 1000000000000 }
budgets:
  - { id: b-1, name: bench-budget, scope: key, target: key-1, amount_usd: "1000000000", period: monthly, hard: true }
pricing:
  - { model: mock-chat, input_per_mtok: "0.15", output_per_mtok: "0.60" }
YAML

for name in plain limits; do
  start_data_plane "$name" "$BIN/data-plane" --config "$work/$name.yaml" \
    --spool-dir "$work/spool-$name" --snapshot-cache "$work/cache-$name.json"
done
addr() { addr_field "$work/$1.addr" "$2"; }

BODY='{"model":"bench-chat","messages":[{"role":"user","content":"Say hello to the benchmark"}],"max_tokens":16}'
load() { # out url extra...
  local out=$1 url=$2; shift 2
  oha --no-tui --output-format json -m POST -T application/json -H "Authorization: Bearer $KEY" \
    -d "$BODY" "$@" "$url" >"$work/$out.json"
}
for name in plain limits; do
  code=$(curl -s -o "$work/check-$name.txt" -w '%{http_code}' -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
    -d "$BODY" "http://$(addr $name listen)/v1/chat/completions")
  [ "$code" = 200 ] || { echo "$name proxy answered $code: $(cat "$work/check-$name.txt")" >&2; exit 1; }
  load "warm-$name" "http://$(addr $name listen)/v1/chat/completions" -z 3s -c 16
done
for r in $(seq 1 "$ROUNDS"); do
  for name in plain limits; do
    echo "round $r: $name @ $RATE req/s for $DURATION" >&2
    curl -fsS "http://$(addr $name ops)/metrics" >"$work/m-$name-$r-before.txt"
    load "$name-$r" "http://$(addr $name listen)/v1/chat/completions" -z "$DURATION" -q "$RATE" --latency-correction -c 32
    curl -fsS "http://$(addr $name ops)/metrics" >"$work/m-$name-$r-after.txt"
  done
done
grep -h 'x-ratelimit-limit-requests' "$work"/*.log >/dev/null 2>&1 || true

python3 - "$work" "$ROUNDS" "$RATE" <<'PY'
import json, os, platform, re, sys, statistics
work, rounds, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def lat(name):
    d = json.load(open(os.path.join(work, name + ".json")))
    p = d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution", {})
    return p["p50"] * 1e6, p["p99"] * 1e6, codes.get("200", 0), sum(codes.values())
def overhead(name, r):
    # Mean of switchyard_gateway_overhead_seconds over the run (sum/count deltas).
    def read(path):
        s = c = 0.0
        for line in open(path):
            if line.startswith("switchyard_gateway_overhead_seconds_sum"):
                s += float(line.rsplit(" ", 1)[1])
            elif line.startswith("switchyard_gateway_overhead_seconds_count"):
                c += float(line.rsplit(" ", 1)[1])
        return s, c
    s0, c0 = read(os.path.join(work, f"m-{name}-{r}-before.txt"))
    s1, c1 = read(os.path.join(work, f"m-{name}-{r}-after.txt"))
    return (s1 - s0) / (c1 - c0) * 1e6 if c1 > c0 else float("nan")
cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip(); break
print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {cpu}; fixed rate {rate} req/s")
print(f"{'run':<14}{'p50 us':>10}{'p99 us':>10}{'in-proxy mean us':>18}{'ok/total':>16}")
rows = {"plain": [], "limits": []}
for r in range(1, rounds + 1):
    for name in ("plain", "limits"):
        p50, p99, ok, total = lat(f"{name}-{r}")
        o = overhead(name, r)
        rows[name].append((p50, p99, o))
        print(f"{name + ' #' + str(r):<14}{p50:>10.0f}{p99:>10.0f}{o:>18.1f}{str(ok) + '/' + str(total):>16}")
med = lambda name, i: statistics.median(x[i] for x in rows[name])
print(f"median p50 added by admission: {med('limits', 0) - med('plain', 0):+.0f} us "
      f"(p99 {med('limits', 1) - med('plain', 1):+.0f} us; in-proxy mean {med('limits', 2) - med('plain', 2):+.1f} us); target <= 20 us p50")
PY
