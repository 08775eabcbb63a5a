#!/usr/bin/env bash
# Shared helpers for the deploy/local scripts (test.sh, up.sh). Source it; do not run it.
# Every helper is idempotent and quiet when there is nothing to do, so scripts can call them
# on every run: apt-get runs (with one `apt-get update`) only when something is missing.

SWITCHYARD_PG_BIN_DIR_DEFAULT=/usr/lib/postgresql/15/bin

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run: $*"
  fi
}

# ensure_apt_packages PKG...: installs the Debian packages among PKG that are not installed.
# Waits for another apt/dpkg run (e.g. a parallel install) instead of failing on its lock.
ensure_apt_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing ${missing[*]}"
  local lock=(-o DPkg::Lock::Timeout=600)
  as_root env DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_postgres: PostgreSQL 15 server binaries, without the package's default cluster (the
# tests and up.sh run their own clusters on their own ports).
ensure_postgres() {
  [ -x "$SWITCHYARD_PG_BIN_DIR_DEFAULT/initdb" ] && return 0
  as_root mkdir -p /etc/postgresql-common/createcluster.d
  echo 'create_main_cluster = false' |
    as_root tee /etc/postgresql-common/createcluster.d/switchyard.conf >/dev/null
  ensure_apt_packages postgresql-15
}

# ensure_prometheus: prometheus and promtool (Debian's package, 2.42 on bookworm) without the
# package's own service: the stack and the tests run their own servers on their own ports, and
# the packaged one would hold 9090, the data plane's default ops port. The service is stopped
# and disabled only right after this installs the package, never when it was there before.
ensure_prometheus() {
  [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] && return 0
  ensure_apt_packages prometheus
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
}

# ensure_test_browser: Chromium and its chromedriver, which drive the web console's test in a
# headless browser (the tests need them, the stack does not).
ensure_test_browser() {
  ensure_apt_packages chromium chromium-driver
}

# ensure_deploy_tools: what the tests of deploy/ validate the deploy files with (the stack
# does not need it): Debian's docker-compose (v1) parses deploy/compose/compose.yaml, no Docker
# engine needed; systemd-analyze (package systemd; installing it starts nothing in a
# container) verifies deploy/systemd/'s units.
ensure_deploy_tools() {
  local pkgs=(docker-compose)
  command -v systemd-analyze >/dev/null 2>&1 || pkgs+=(systemd)
  ensure_apt_packages "${pkgs[@]}"
}

# ensure_system_deps: every system program the stack and its tests run.
ensure_system_deps() {
  # Debian splits venv's pip bootstrap out of python3 into python3-venv.
  local pkgs=(nats-server python3 python3-venv)
  command -v setsid >/dev/null 2>&1 || pkgs+=(util-linux)
  [ -x /usr/bin/kill ] || [ -x /bin/kill ] || pkgs+=(procps)
  ensure_apt_packages "${pkgs[@]}"
  ensure_postgres
  ensure_prometheus
}

# ensure_agents DIR PACKAGE_JSON: the coding agents of PACKAGE_JSON (pinned versions of
# Claude Code and Codex CLI, each shipping its binary in the npm package) installed into DIR.
# npm runs only when the package list (or Node's version) changed since the last install.
ensure_agents() {
  local dir=$1 package=$2
  command -v npm >/dev/null 2>&1 || ensure_apt_packages nodejs npm
  local stamp="$dir/.package.sha256" want
  want="$( { sha256sum "$package" | cut -d' ' -f1; node --version; } 2>&1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x "$dir/node_modules/.bin/codex" ]; then
    log "installing the coding agents of $package into $dir"
    mkdir -p "$dir"
    cp "$package" "$dir/package.json"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
    printf '%s' "$want" >"$stamp"
  fi
}

# ensure_rust_components: rustfmt and clippy for the lint steps.
ensure_rust_components() {
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) first"
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    command -v rustup >/dev/null 2>&1 || die "cargo fmt/clippy missing and no rustup to add them"
    log "adding rustfmt and clippy"
    rustup component add rustfmt clippy
  fi
}

# ensure_pyvenv VENV REQUIREMENTS: a venv at VENV with REQUIREMENTS installed. pip runs only
# when the requirements (or the venv's Python) changed since the last successful install.
ensure_pyvenv() {
  local venv=$1 requirements=$2
  local stamp="$venv/.requirements.sha256"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating Python venv at $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  local want
  want="$( { sha256sum "$requirements" | cut -d' ' -f1; "$venv/bin/python" --version; } 2>&1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing $requirements into $venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements"
    printf '%s' "$want" >"$stamp"
  fi
}
