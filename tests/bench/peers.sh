#!/usr/bin/env bash
# Benchmark: Switchyard and its peers side by side, in one run, against the same static upstream.
#
# The upstream is nginx answering every POST /v1/chat/completions with a fixed chat completion
# (no parsing, no work: what a provider costs is not measured). In front of it, one at a time:
#   direct           the load generator straight to the upstream
#   nginx            nginx as a plain reverse proxy (what one HTTP hop costs on this machine)
#   switchyard-off   the data plane with its snapshot from a file and no NATS (usage events go
#                    to its on-disk spool): metering off
#   switchyard-on    the data plane publishing usage events to NATS JetStream, the control plane
#                    folding them into Postgres, live: metering on, as in production
#   litellm          LiteLLM's proxy (PyPI litellm[proxy], 2 workers, no database)
#   portkey          Portkey's open-source gateway (npm @portkey-ai/gateway)
# For each: maximum throughput (BENCH_CONNECTIONS connections, BENCH_DURATION), p50/p99 at that
# load, and CPU per request of the proxy's processes (for switchyard-on also nats-server, the
# control plane and Postgres), from /proc; then the ratios. Run order interleaves the
# Switchyard variants (off, on, on, off) so both see the same machine.
#
# Knobs: BENCH_DURATION (10s), BENCH_CONNECTIONS (32), BENCH_MEMORY_REQUESTS (1000000: requests
# through the metering-off proxy before its RSS is read), BENCH_PEERS (1: also LiteLLM and Portkey;
# 0 skips them, they take a minute or two to install the first time).
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
PEERS=${BENCH_PEERS:-1}

# shellcheck source=tests/bench/lib.sh
source tests/bench/lib.sh
# shellcheck source=deploy/local/lib.sh
source deploy/local/lib.sh
ensure_apt_packages nginx-light
ensure_postgres
cargo build --release -q -p switchyard-control-plane --bins

# --- the static upstream -------------------------------------------------------------------
ANSWER='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"static","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the static upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}'
nginx_conf() { # dir listen body
  mkdir -p "$1"
  cat >"$1/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  $3
}
NGINX
}
UP_PORT=$(free_port)
nginx_conf "$work/upstream" "" "server { listen 127.0.0.1:$UP_PORT; keepalive_requests 1000000;
    location / { default_type application/json; return 200 '$ANSWER'; } }"
nginx -p "$work/upstream" -c "$work/upstream/nginx.conf" >"$work/upstream.log" 2>&1 &
UP_PID=$!; pids+=($UP_PID)
UP=127.0.0.1:$UP_PORT

NGX_PORT=$(free_port)
nginx_conf "$work/rproxy" "" "upstream up { server $UP; keepalive 256; }
  server { listen 127.0.0.1:$NGX_PORT; keepalive_requests 1000000;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
nginx -p "$work/rproxy" -c "$work/rproxy/nginx.conf" >"$work/rproxy.log" 2>&1 &
NGX_PID=$!; pids+=($NGX_PID)

# --- Switchyard: metering off and on -----------------------------------------------------
cat >"$work/sy.yaml" <<YAML
providers:
  - { id: up, kind: openai_compatible, base_url: "http://$UP/v1" }
routes:
  - { alias: bench-chat, deployments: [{ provider: up, model: static }] }
keys:
  - { name: bench, id: key-1, team: team-1, sha256: "$HASH", models: ["*"] }
YAML
start_data_plane off "$BIN/data-plane" --config "$work/sy.yaml" --spool-dir "$work/spool-off"
OFF_PID=$DP_PID

# Postgres (as the postgres user when root), NATS, the control plane folding.
PG_PORT=$(free_port)
mkdir -p "$work/pg/sock"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
chmod 755 "$work"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$work/pg"
as_pg "$SWITCHYARD_PG_BIN_DIR_DEFAULT/initdb" -D "$work/pg/data" -U postgres -A trust -E UTF8 --no-locale >"$work/initdb.log" 2>&1
as_pg "$SWITCHYARD_PG_BIN_DIR_DEFAULT/pg_ctl" -D "$work/pg/data" -l "$work/pg/pg.log" -w \
  -o "-p $PG_PORT -k $work/pg/sock -c listen_addresses=127.0.0.1" start >/dev/null
pg_stop() { as_pg "$SWITCHYARD_PG_BIN_DIR_DEFAULT/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true; }
trap 'pg_stop; cleanup' EXIT
PG_PID=$(head -1 "$work/pg/data/postmaster.pid")
NATS_PORT=$(free_port)
nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$work/nats" >"$work/nats.log" 2>&1 &
NATS_PID=$!; pids+=($NATS_PID)
for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$NATS_PORT) 2>/dev/null && break; sleep 0.1; done
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres" NATS_URL="nats://127.0.0.1:$NATS_PORT" \
  SWITCHYARD_ADMIN_TOKEN=bench-admin-token-0123456789 SWITCHYARD_LOG=warn \
  target/release/control-plane --listen 127.0.0.1:0 --addr-file "$work/cp.addr" >"$work/cp.log" 2>&1 &
CP_PID=$!; pids+=($CP_PID)
wait_file "$work/cp.addr"
start_data_plane on "$BIN/data-plane" --config "$work/sy.yaml" --nats "nats://127.0.0.1:$NATS_PORT" \
  --spool-dir "$work/spool-on"
ON_PID=$DP_PID

# --- peers -------------------------------------------------------------------------------
LITELLM_PIDS=""
PORTKEY_PID=""
if [ "$PEERS" = 1 ]; then
  echo 'litellm[proxy]' >"$work/litellm-requirements.txt"
  ensure_pyvenv target/bench-litellm "$work/litellm-requirements.txt"
  LL_PORT=$(free_port)
  cat >"$work/litellm.yaml" <<YAML
model_list:
  - model_name: bench-chat
    litellm_params: { model: openai/static, api_base: "http://$UP/v1", api_key: "sk-static" }
general_settings: { master_key: "$KEY" }
litellm_settings: { telemetry: false }
YAML
  (cd "$work" && env -u DATABASE_URL LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
    "$OLDPWD/target/bench-litellm/bin/litellm" --config "$work/litellm.yaml" --host 127.0.0.1 \
    --port "$LL_PORT" --num_workers 2 >"$work/litellm.log" 2>&1) &
  pids+=($!)
  for _ in $(seq 1 600); do curl -fsS "http://127.0.0.1:$LL_PORT/health/liveliness" >/dev/null 2>&1 && break; sleep 0.2; done
  LITELLM_PIDS=$(pgrep -f "litellm --config $work/litellm.yaml" | tr '\n' ' ')
  LITELLM_PIDS="$LITELLM_PIDS $(for p in $LITELLM_PIDS; do pgrep -P "$p"; done | tr '\n' ' ')"

  mkdir -p target/bench-portkey
  [ -d target/bench-portkey/node_modules/@portkey-ai/gateway ] ||
    (cd target/bench-portkey && npm install --no-audit --no-fund --silent @portkey-ai/gateway >/dev/null)
  PK_PORT=$(free_port)
  node target/bench-portkey/node_modules/@portkey-ai/gateway/build/start-server.js --port="$PK_PORT" --headless \
    >"$work/portkey.log" 2>&1 &
  PORTKEY_PID=$!; pids+=($PORTKEY_PID)
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PK_PORT) 2>/dev/null && break; sleep 0.2; done
fi

# --- load --------------------------------------------------------------------------------
BODY='{"model":"bench-chat","messages":[{"role":"user","content":"Say hello to the benchmark"}],"max_tokens":16}'
cpu_ticks() { # pids... -> utime+stime ticks summed
  local sum=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$sum"
}
run() { # name url "pids" extra-oha-args...
  local name=$1 url=$2 procs=$3; shift 3
  local before after
  # shellcheck disable=SC2086
  before=$(cpu_ticks $procs)
  oha --no-tui --output-format json -m POST -T application/json -H "Authorization: Bearer $KEY" \
    -d "$BODY" "$@" -z "$DURATION" -c "$CONNECTIONS" "$url" >"$work/$name.json"
  # shellcheck disable=SC2086
  after=$(cpu_ticks $procs)
  echo "$((after - before))" >"$work/$name.cpu"
}
# nginx does its work in worker processes, children of the PIDs started above.
UP_PIDS="$UP_PID $(pgrep -P "$UP_PID" | tr '\n' ' ')"
NGX_PIDS="$NGX_PID $(pgrep -P "$NGX_PID" | tr '\n' ' ')"
URL_DIRECT="http://$UP/v1/chat/completions"
URL_NGINX="http://127.0.0.1:$NGX_PORT/v1/chat/completions"
URL_OFF="http://$(addr_field "$work/off.addr" listen)/v1/chat/completions"
URL_ON="http://$(addr_field "$work/on.addr" listen)/v1/chat/completions"

echo "warming up..." >&2
for u in "$URL_DIRECT" "$URL_NGINX" "$URL_OFF" "$URL_ON"; do
  oha --no-tui -m POST -T application/json -H "Authorization: Bearer $KEY" -d "$BODY" -z 2s -c 8 "$u" >/dev/null
done
echo "maximum throughput, $CONNECTIONS connections, $DURATION each..." >&2
run direct "$URL_DIRECT" "$UP_PIDS"
run nginx "$URL_NGINX" "$NGX_PIDS"
run off-1 "$URL_OFF" "$OFF_PID"
run on-1 "$URL_ON" "$ON_PID"
run on-2 "$URL_ON" "$ON_PID"
run off-2 "$URL_OFF" "$OFF_PID"
if [ "$PEERS" = 1 ]; then
  # shellcheck disable=SC2086
  run litellm "http://127.0.0.1:$LL_PORT/v1/chat/completions" "$LITELLM_PIDS"
  run portkey "http://127.0.0.1:$PK_PORT/v1/chat/completions" "$PORTKEY_PID" \
    -H "x-portkey-provider: openai" -H "x-portkey-custom-host: http://$UP/v1" -H "Authorization: Bearer sk-static"
fi
# Memory: BENCH_MEMORY_REQUESTS (1,000,000; 0 skips) more requests through the metering-off
# proxy, then its peak and current RSS.
MEMORY_REQUESTS=${BENCH_MEMORY_REQUESTS:-1000000}
if [ "$MEMORY_REQUESTS" -gt 0 ]; then
  echo "memory: $MEMORY_REQUESTS more requests through switchyard-off..." >&2
  oha --no-tui --output-format json -m POST -T application/json -H "Authorization: Bearer $KEY" \
    -d "$BODY" -n "$MEMORY_REQUESTS" -c "$CONNECTIONS" "$URL_OFF" >"$work/memory.json"
  awk '/^VmHWM|^VmRSS/ {print $2}' "/proc/$OFF_PID/status" | tr '\n' ' ' >"$work/memory.rss"
fi
# The metering path's own CPU (nats-server, control plane, Postgres) over one more on-run.
PG_PIDS="$PG_PID $(pgrep -P "$PG_PID" | tr '\n' ' ' || true)"
# shellcheck disable=SC2086
before_meter=$(cpu_ticks "$NATS_PID" "$CP_PID" $PG_PIDS)
run on-3 "$URL_ON" "$ON_PID"
# shellcheck disable=SC2086
after_meter=$(cpu_ticks "$NATS_PID" "$CP_PID" $PG_PIDS)
echo "$((after_meter - before_meter))" >"$work/on-3.meter.cpu"
FOLDED=$(curl -fsS -H "Authorization: Bearer bench-admin-token-0123456789" \
  "http://$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listen"])' "$work/cp.addr")/admin/spend?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["total"]["requests"])' || echo "?")

python3 - "$work" "$(getconf CLK_TCK)" "$PEERS" "$FOLDED" <<'PY'
import json, os, platform, sys
work, hz, peers, folded = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
def stats(name):
    d = json.load(open(os.path.join(work, name + ".json")))
    codes = d.get("statusCodeDistribution", {})
    total = sum(codes.values()); ok = codes.get("200", 0)
    p = d["latencyPercentiles"]
    cpu = int(open(os.path.join(work, name + ".cpu")).read()) / hz
    return {"rps": d["summary"]["requestsPerSec"], "p50": (p["p50"] or 0) * 1e3, "p99": (p["p99"] or 0) * 1e3,
            "ok": ok, "total": total, "cpu_us": cpu / max(ok, 1) * 1e6}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {cpu}")
rows = [("direct", stats("direct")), ("nginx reverse proxy", stats("nginx"))]
off = [stats("off-1"), stats("off-2")]; on = [stats("on-1"), stats("on-2"), stats("on-3")]
mean = lambda rs, k: sum(r[k] for r in rs) / len(rs)
agg = lambda rs: {k: mean(rs, k) for k in ("rps", "p50", "p99", "cpu_us")} | {"ok": sum(r["ok"] for r in rs), "total": sum(r["total"] for r in rs)}
rows += [("switchyard, metering off", agg(off)), ("switchyard, metering on", agg(on))]
if peers:
    rows += [("litellm (2 workers)", stats("litellm")), ("portkey", stats("portkey"))]
print(f"{'':<28}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/req':>12}{'ok/total':>18}")
for name, r in rows:
    print(f"{name:<28}{r['rps']:>10.0f}{r['p50']:>9.3f}{r['p99']:>9.3f}{r['cpu_us']:>12.1f}{str(r['ok'])+'/'+str(r['total']):>18}")
d = dict(rows)
meter = int(open(os.path.join(work, "on-3.meter.cpu")).read()) / hz / max(stats("on-3")["ok"], 1) * 1e6
print(f"switchyard throughput: off {d['switchyard, metering off']['rps']/d['direct']['rps']*100:.1f}% of direct, on {d['switchyard, metering on']['rps']/d['direct']['rps']*100:.1f}% (nginx reverse proxy {d['nginx reverse proxy']['rps']/d['direct']['rps']*100:.1f}%)")
print(f"metering on / off: {d['switchyard, metering on']['rps']/d['switchyard, metering off']['rps']*100:.1f}% (target >= 85%)")
print(f"metering path CPU per request (nats-server + control plane + Postgres): {meter:.1f} us (target <= 30 us); folded so far: {folded} requests")
mem = os.path.join(work, "memory.rss")
if os.path.exists(mem):
    hwm, rss = (int(v) for v in open(mem).read().split())
    more = json.load(open(os.path.join(work, "memory.json"))).get("statusCodeDistribution", {}).get("200", 0)
    served = sum(r["ok"] for r in off) + more
    print(f"switchyard-off memory after {served} requests: peak RSS {hwm/1024:.1f} MiB, now {rss/1024:.1f} MiB (target <= 60 MB after 1M)")
if peers:
    s = d['switchyard, metering on']['rps']
    print(f"switchyard (metering on) vs litellm: {s/d['litellm (2 workers)']['rps']:.0f}x; vs portkey: {s/d['portkey']['rps']:.1f}x")
PY
