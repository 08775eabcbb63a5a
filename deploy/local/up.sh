#!/usr/bin/env bash
# Starts the whole Switchyard stack on this machine: PostgreSQL, NATS (JetStream), the control
# plane, a demo upstream (the scripted mock provider), a data plane fed by NATS, and Prometheus
# scraping both planes with the alert rules of deploy/prometheus/. The demo
# team, providers, routes and key are created through the admin API (PUT /admin/config), so
# they are in the event log like any other change.
#
#   deploy/local/up.sh            run in the foreground until Ctrl-C, then stop everything
#   deploy/local/up.sh --detach   leave the stack running; stop it with deploy/local/down.sh
#
# Installs what is missing (apt: nats-server, postgresql-15, prometheus) and builds in release
# mode.
# With OPENAI_API_KEY (or MISTRAL_API_KEY) set, that real provider is configured too.
# Ports: SWITCHYARD_PORT (8080), SWITCHYARD_OPS_PORT (9090), SWITCHYARD_ADMIN_PORT (8081),
# SWITCHYARD_MOCK_PORT (8099), SWITCHYARD_PROMETHEUS_PORT (9091),
# SWITCHYARD_PG_PORT (55432), SWITCHYARD_NATS_PORT (4222), SWITCHYARD_NATS_MONITOR_PORT (8222).
# State, logs and the generated config live in .switchyard/ (gitignored).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=deploy/local/lib.sh
source deploy/local/lib.sh

DETACH=0
for arg in "$@"; do
  case "$arg" in
    --detach|-d) DETACH=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (use --detach)" ;;
  esac
done

HOST=${SWITCHYARD_HOST:-127.0.0.1}
PORT=${SWITCHYARD_PORT:-8080}
OPS_PORT=${SWITCHYARD_OPS_PORT:-9090}
ADMIN_PORT=${SWITCHYARD_ADMIN_PORT:-8081}
MOCK_PORT=${SWITCHYARD_MOCK_PORT:-8099}
PG_PORT=${SWITCHYARD_PG_PORT:-55432}
NATS_PORT=${SWITCHYARD_NATS_PORT:-4222}
NATS_MONITOR_PORT=${SWITCHYARD_NATS_MONITOR_PORT:-8222}
PROM_PORT=${SWITCHYARD_PROMETHEUS_PORT:-9091}
STATE=$PWD/.switchyard
RUN=$STATE/run
LOGS=$STATE/logs
PG_BIN=${SWITCHYARD_PG_BIN_DIR:-$SWITCHYARD_PG_BIN_DIR_DEFAULT}

for pidfile in "$RUN"/*.pid; do
  [ -e "$pidfile" ] || continue
  if kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    die "the stack is already running ($(basename "$pidfile" .pid) is up); stop it with deploy/local/down.sh"
  fi
done
rm -rf "$RUN"
mkdir -p "$RUN" "$LOGS"

ensure_system_deps
ensure_apt_packages curl ca-certificates jq
log "building (release)"
cargo build --release -q -p switchyard-data-plane -p switchyard-control-plane -p switchyard-tests --bins
BIN=$PWD/target/release

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$PORT" "$OPS_PORT" "$ADMIN_PORT" "$MOCK_PORT" "$PG_PORT" "$NATS_PORT" "$NATS_MONITOR_PORT" "$PROM_PORT"; do
  port_free "$p" || die "port $p is in use; override it (see the top of $0)"
done

stop_all() { bash deploy/local/down.sh || true; }
trap 'log "start failed; stopping what was started"; stop_all' ERR

# Runs COMMAND in the background as its own session, logging to logs/NAME.log, pid in run/.
start() {
  local name=$1; shift
  setsid "$@" >"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN/$name.pid"
}

wait_http() { # URL NAME
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  tail -n 30 "$LOGS/$2.log" >&2 || true
  die "$2 did not become ready ($1)"
}

# PostgreSQL: refuses to run as root, so as root it runs as the postgres user.
log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
PGDATA=$STATE/pg/data
mkdir -p "$STATE/pg/sock"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$STATE/pg"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --no-locale >"$LOGS/initdb.log" 2>&1
fi
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$STATE/pg/postgres.log" -w \
  -o "-p $PG_PORT -k $STATE/pg/sock -c listen_addresses=127.0.0.1" start >/dev/null
echo "$PGDATA" >"$RUN/postgres.datadir"
as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc \
  "select 1 from pg_database where datname='switchyard'" | grep -q 1 ||
  as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "create database switchyard"

log "starting NATS (JetStream) on 127.0.0.1:$NATS_PORT"
mkdir -p "$STATE/nats"
start nats nats-server -js -sd "$STATE/nats" -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MONITOR_PORT"
wait_http "http://127.0.0.1:$NATS_MONITOR_PORT/jsz" nats

log "starting the demo upstream (mock provider) on 127.0.0.1:$MOCK_PORT"
start mock-provider "$BIN/mock-provider" --listen "127.0.0.1:$MOCK_PORT" --no-record
wait_http "http://127.0.0.1:$MOCK_PORT/__mock/healthz" mock-provider

# Secrets kept across runs (mode 600): the demo key (only its hash goes into the config), the
# bootstrap admin token, and the key sealing provider credentials between the planes.
secret_file() { # FILE GENERATOR...
  local file=$1; shift
  [ -s "$file" ] || (umask 077; "$@" >"$file")
  cat "$file"
}
KEY=$(secret_file "$STATE/demo-key" sh -c "echo sk-sy-demo-\$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')")
ADMIN_TOKEN=$(secret_file "$STATE/admin-token" sh -c "echo sya-local-\$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')")
SEAL_KEY=$(secret_file "$STATE/seal-key" sh -c "head -c 32 /dev/urandom | base64")
HASH=$("$BIN/data-plane" hash-key "$KEY")
DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/switchyard
NATS_URL=nats://127.0.0.1:$NATS_PORT
ADMIN_URL=http://$HOST:$ADMIN_PORT

log "starting the control plane on $ADMIN_URL"
DATABASE_URL=$DATABASE_URL NATS_URL=$NATS_URL SWITCHYARD_ADMIN_TOKEN=$ADMIN_TOKEN SWITCHYARD_SEAL_KEY=$SEAL_KEY \
  start control-plane "$BIN/control-plane" --listen "$HOST:$ADMIN_PORT"
wait_http "$ADMIN_URL/readyz" control-plane

CONFIG=$STATE/config.yaml
{
  echo "# Generated by deploy/local/up.sh and applied with PUT /admin/config (control-plane apply -f)."
  echo "providers:"
  echo "  - { id: demo, kind: openai_compatible, base_url: \"http://127.0.0.1:$MOCK_PORT/v1\" }"
  [ -n "${OPENAI_API_KEY:-}" ] && echo "  - { id: openai, kind: openai, api_key: { env: OPENAI_API_KEY } }"
  [ -n "${MISTRAL_API_KEY:-}" ] && echo "  - { id: mistral, kind: mistral, api_key: { env: MISTRAL_API_KEY } }"
  echo "routes:"
  echo "  - { alias: demo-chat, deployments: [{ provider: demo, model: mock-chat }] }"
  echo "  - { alias: demo-embed, deployments: [{ provider: demo, model: mock-embed }] }"
  if [ -n "${OPENAI_API_KEY:-}" ]; then
    echo "  - { alias: gpt-4o-mini, deployments: [{ provider: openai, model: gpt-4o-mini }] }"
    echo "  - { alias: gpt-4.1-mini, deployments: [{ provider: openai, model: gpt-4.1-mini }] }"
    echo "  - { alias: text-embedding-3-small, deployments: [{ provider: openai, model: text-embedding-3-small }] }"
  fi
  if [ -n "${MISTRAL_API_KEY:-}" ]; then
    echo "  - { alias: mistral-small-latest, deployments: [{ provider: mistral, model: mistral-small-latest }] }"
    echo "  - { alias: mistral-embed, deployments: [{ provider: mistral, model: mistral-embed }] }"
  fi
  echo "keys:"
  echo "  - { name: demo, team: demo, sha256: \"$HASH\", models: [\"*\"] }"
  echo "pricing:   # the mock's models get made-up prices so the demo's spend is not zero"
  echo "  - { model: mock-chat, input_per_mtok: \"0.15\", output_per_mtok: \"0.60\" }"
  echo "  - { model: mock-embed, input_per_mtok: \"0.02\", output_per_mtok: \"0\" }"
} >"$CONFIG"

log "applying the demo config through the admin API (PUT /admin/config)"
# prune=false: what was added through the admin API since the last start stays.
curl -fsS -X PUT "$ADMIN_URL/admin/config?prune=false" -H "Authorization: Bearer $ADMIN_TOKEN" \
  -H 'content-type: application/yaml' --data-binary @"$CONFIG" >"$LOGS/apply.json" ||
  die "applying $CONFIG failed (see $LOGS/control-plane.log)"

log "starting the data plane on $HOST:$PORT (ops on $HOST:$OPS_PORT), fed by NATS"
SWITCHYARD_SEAL_KEY=$SEAL_KEY start data-plane "$BIN/data-plane" --nats "$NATS_URL" \
  --snapshot-cache "$STATE/data-plane-snapshot.json" --spool-dir "$STATE/usage-spool" --listen "$HOST:$PORT" --ops-listen "$HOST:$OPS_PORT"
wait_http "http://$HOST:$OPS_PORT/readyz" data-plane

# Prometheus: the shipped config (deploy/prometheus/prometheus.yml) with this stack's ports,
# and its alert rules beside it.
PROM_URL=http://127.0.0.1:$PROM_PORT
log "starting Prometheus on $PROM_URL, scraping both planes"
mkdir -p "$STATE/prometheus"
rm -rf "$STATE/prometheus/rules"
cp -r deploy/prometheus/rules "$STATE/prometheus/rules"
sed -e "s/127.0.0.1:9090/$HOST:$OPS_PORT/" -e "s/127.0.0.1:8081/$HOST:$ADMIN_PORT/" \
  deploy/prometheus/prometheus.yml >"$STATE/prometheus/prometheus.yml"
start prometheus prometheus --config.file="$STATE/prometheus/prometheus.yml" \
  --storage.tsdb.path="$STATE/prometheus/data" --web.listen-address="127.0.0.1:$PROM_PORT"
wait_http "$PROM_URL/-/ready" prometheus

BASE_URL="http://$HOST:$PORT/v1"
cat >"$STATE/env" <<ENV
# Written by deploy/local/up.sh. Source it: . .switchyard/env
export SWITCHYARD_BASE_URL=$BASE_URL
export SWITCHYARD_API_KEY=$KEY
export SWITCHYARD_OPS_URL=http://$HOST:$OPS_PORT
export SWITCHYARD_ADMIN_URL=$ADMIN_URL
export SWITCHYARD_ADMIN_TOKEN=$ADMIN_TOKEN
export DATABASE_URL=$DATABASE_URL
export NATS_URL=$NATS_URL
export SWITCHYARD_PROMETHEUS_URL=$PROM_URL
ENV
chmod 600 "$STATE/env"
trap - ERR

cat <<MSG

Switchyard is up.
  API:      $BASE_URL   (key in .switchyard/env)
  admin:    $ADMIN_URL/admin   (token in .switchyard/env; OpenAPI at $ADMIN_URL/openapi.json)
  console:  $ADMIN_URL/console   (sign in with SWITCHYARD_ADMIN_TOKEN from .switchyard/env)
  ops:      http://$HOST:$OPS_PORT/metrics
  metrics:  $PROM_URL   (Prometheus scraping both planes, alert rules at $PROM_URL/alerts)
  config:   $CONFIG
  logs:     $LOGS/ (PostgreSQL: $STATE/pg/postgres.log)

Try it:
  . .switchyard/env
  curl -sS \$SWITCHYARD_BASE_URL/chat/completions -H "Authorization: Bearer \$SWITCHYARD_API_KEY" \\
    -H 'content-type: application/json' -d '{"model":"demo-chat","messages":[{"role":"user","content":"Hello!"}]}'

Dashboards: point a Grafana at this Prometheus with the provisioning files (no clicks), e.g.
  SWITCHYARD_PROMETHEUS_URL=$PROM_URL SWITCHYARD_DASHBOARDS_DIR=$PWD/dashboards \\
    GF_PATHS_PROVISIONING=$PWD/dashboards/provisioning grafana server --homepath /usr/share/grafana
  (or copy dashboards/provisioning/*/switchyard.yml into your Grafana's provisioning directories
  with those two variables set); the dashboards are in its "Switchyard" folder.

MSG

if [ "$DETACH" -eq 1 ]; then
  log "running detached; stop with deploy/local/down.sh"
  exit 0
fi
trap 'echo; log "stopping"; stop_all; exit 0' INT TERM
log "running in the foreground; Ctrl-C stops everything"
while kill -0 "$(cat "$RUN/data-plane.pid")" 2>/dev/null; do sleep 1; done
log "the data plane exited; stopping the rest (see $LOGS/data-plane.log)"
stop_all
exit 1
