#!/usr/bin/env bash
# Benchmark: what guardrails cost the data plane, in one run.
#
# 1. The redaction pass in process (`bench-guard`): p50/p99 on 8 KB chat bodies, clean, with
#    twelve values to redact, and with a `\u` escape (the issue's figure: p50 at most 50 us).
# 2. Proxy throughput with a guardrail policy on versus off: two data planes on the same mock,
#    same route and key secret, one with a policy (`default_action: redact`, every built-in
#    class) for the key, loaded one after the other in the order off, on, on, off per round,
#    with 8 KB chat bodies that carry values to redact (the policy's worst case: every request
#    is decoded, rewritten and translated again). Prints req/s per run, the means and on/off.
#
# Knobs: BENCH_DURATION (default 10s per run), BENCH_CONNECTIONS (64), BENCH_ROUNDS (2),
# BENCH_ITERATIONS (20000, for the in-process pass).
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
ROUNDS=${BENCH_ROUNDS:-2}
ITERATIONS=${BENCH_ITERATIONS:-20000}

# shellcheck source=tests/bench/lib.sh
source tests/bench/lib.sh
cargo build --release -q -p switchyard-tests --bin bench-guard

"$BIN/bench-guard" "$ITERATIONS"

for name in off on; do
  guard=""
  if [ "$name" = on ]; then
    guard='guardrails:
  - { id: bench, applies_to: { keys: [key-1] }, default_action: redact }'
  fi
  cat >"$work/$name.yaml" <<YAML
providers:
  - { id: mock, kind: openai_compatible, base_url: "http://$MOCK/v1" }
routes:
  - { alias: bench-chat, deployments: [{ provider: mock, model: mock-chat }] }
keys:
  - { name: bench, id: key-1, team: team-1, sha256: "$HASH", models: ["*"] }
$guard
YAML
  start_data_plane "$name" "$BIN/data-plane" --config "$work/$name.yaml" \
    --spool-dir "$work/spool-$name" --snapshot-cache "$work/cache-$name.json"
done
addr() { addr_field "$work/$1.addr" listen; }

# An 8 KB chat request with values of several classes in it.
BODY=$(python3 -c '
import json
pii = ("mail ann.lee@corp.example, call +1-555-123-4567, card 4111 1111 1111 1111, "
       "key AKIAIOSFODNN7EXAMPLE, host 203.0.113.45, password = \"hX9$kq2Lp!zR\". ")
body = {"model": "bench-chat", "messages": [{"role": "user", "content": ""}], "max_tokens": 16}
room = 8192 - len(json.dumps(body, separators=(",", ":")))
text = pii + "Please refactor the retry loop so that backoff doubles up to 30 s. " * 200
body["messages"][0]["content"] = text[:room]
print(json.dumps(body, separators=(",", ":")))
')
echo "request body: ${#BODY} bytes" >&2

load() { # out url extra...
  local out=$1 url=$2; shift 2
  oha --no-tui --output-format json -m POST -T application/json -H "Authorization: Bearer $KEY" \
    -d "$BODY" "$@" "$url" >"$work/$out.json"
}
for name in off on; do
  url="http://$(addr "$name")/v1/chat/completions"
  code=$(curl -s -o "$work/check-$name.txt" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
    -H 'content-type: application/json' -d "$BODY" "$url")
  [ "$code" = 200 ] || { echo "$name proxy answered $code: $(cat "$work/check-$name.txt")" >&2; exit 1; }
  load "warm-$name" "$url" -z 3s -c 16
done
for r in $(seq 1 "$ROUNDS"); do
  for name in off on on off; do
    run=$( [ -e "$work/max-$name-$r-a.json" ] && echo b || echo a )
    echo "round $r: $name at max throughput for $DURATION" >&2
    load "max-$name-$r-$run" "http://$(addr "$name")/v1/chat/completions" -z "$DURATION" -c "$CONNECTIONS"
  done
done

python3 - "$work" "$ROUNDS" "$CONNECTIONS" "${#BODY}" <<'PY'
import json, os, platform, sys
work, rounds, conns, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def run(name):
    d = json.load(open(os.path.join(work, name + ".json")))
    codes = d.get("statusCodeDistribution", {})
    return d["summary"]["requestsPerSec"], codes.get("200", 0), sum(codes.values())
cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip(); break
print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {cpu}; request body {size} bytes")
print(f"proxy throughput ({conns} connections), req/s per run and mean:")
mean = {}
for name in ("off", "on"):
    runs = [run(f"max-{name}-{r}-{x}") for r in range(1, rounds + 1) for x in "ab"]
    bad = sum(t - ok for _, ok, t in runs)
    mean[name] = sum(r[0] for r in runs) / len(runs)
    print(f"  {name:<4}" + "".join(f"{r[0]:>9.0f}" for r in runs) + f"   mean {mean[name]:>8.0f}  ({bad} non-200)")
print(f"guardrails on / off: {mean['on'] / mean['off']:.3f}")
PY
