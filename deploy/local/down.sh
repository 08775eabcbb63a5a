#!/usr/bin/env bash
# Stops everything deploy/local/up.sh started (Prometheus, data plane, control plane, mock
# provider, NATS, PostgreSQL).
# State (database, JetStream store, demo key) stays in .switchyard/ for the next start.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=deploy/local/lib.sh
source deploy/local/lib.sh

RUN=$PWD/.switchyard/run
LOGS=$PWD/.switchyard/logs
PG_BIN=${SWITCHYARD_PG_BIN_DIR:-$SWITCHYARD_PG_BIN_DIR_DEFAULT}
[ -d "$RUN" ] || { log "nothing to stop"; exit 0; }

for name in prometheus data-plane control-plane mock-provider nats; do
  pidfile=$RUN/$name.pid
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name ($pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
done

if [ -s "$RUN/postgres.datadir" ]; then
  datadir=$(cat "$RUN/postgres.datadir")
  log "stopping PostgreSQL"
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null 2>&1 || true
  else
    "$PG_BIN/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -f "$RUN/postgres.datadir"
fi
log "stopped"
