# Shared helpers for the scripts: toolchain paths and service bootstrapping.
# Sourced, not executed.

# A persistent target dir outside the clone: a reused machine skips the cold build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/credgate-target}"
CREDGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CREDGATE_ROOT

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

apt_install() {
  if ! command -v apt-get >/dev/null; then
    log "apt-get not available; install $* by hand"; return 1
  fi
  if [ ! -f /tmp/.credgate-apt-updated ]; then
    apt-get update -qq && touch /tmp/.credgate-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Makes sure a RabbitMQ broker answers on 127.0.0.1:5672 (guest/guest): uses a running one,
# starts the installed server, or installs Debian's rabbitmq-server first.
ensure_rabbitmq() {
  if port_open 127.0.0.1 5672; then return 0; fi
  if ! command -v rabbitmq-server >/dev/null; then
    log "RabbitMQ is not installed: installing Debian's rabbitmq-server"
    apt_install rabbitmq-server
  fi
  log "Starting the local RabbitMQ node"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  rabbitmqctl await_startup --timeout 120 >/dev/null 2>&1 || rabbitmqctl wait --timeout 120 >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do port_open 127.0.0.1 5672 && return 0; sleep 1; done
  log "RabbitMQ did not come up on 127.0.0.1:5672"; return 1
}

# Makes sure PostgreSQL answers on 127.0.0.1:5432 with a `test` database (trust auth).
ensure_postgres() {
  if port_open 127.0.0.1 5432; then return 0; fi
  if ! command -v pg_ctlcluster >/dev/null; then
    log "PostgreSQL is not installed: installing Debian's postgresql"
    apt_install postgresql
  fi
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  log "Starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do port_open 127.0.0.1 5432 && break; sleep 1; done
  su postgres -c "psql -tc \"SELECT 1 FROM pg_database WHERE datname='test'\" | grep -q 1 || createdb test" >/dev/null 2>&1 || true
  port_open 127.0.0.1 5432
}

# Makes sure the console's browser test can run: Debian's Chromium with a CJK font (the
# console's labels are Chinese) and playwright-core in tests/ui (from the committed lock
# file; never a downloaded browser: the test launches /usr/bin/chromium).
ensure_browser() {
  if [ ! -x /usr/bin/chromium ]; then
    log "Chromium is not installed: installing Debian's chromium and fonts-wqy-microhei"
    apt_install chromium fonts-wqy-microhei
  elif ! fc-list 2>/dev/null | grep -qiE 'wqy|noto sans cjk'; then
    apt_install fonts-wqy-microhei
  fi
  if ! command -v npm >/dev/null; then
    log "npm is not installed: installing Debian's nodejs and npm"
    apt_install nodejs npm
  fi
  if [ ! -d "$CREDGATE_ROOT/tests/ui/node_modules/playwright-core" ]; then
    log "Installing playwright-core into tests/ui"
    (cd "$CREDGATE_ROOT/tests/ui" && { npm ci --no-audit --no-fund || npm install --no-audit --no-fund; }) >&2
  fi
  [ -x /usr/bin/chromium ] && [ -d "$CREDGATE_ROOT/tests/ui/node_modules/playwright-core" ]
}
