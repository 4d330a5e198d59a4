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

# `rabbitmqctl` against the broker in use (the node scripts/lib.sh started in place of a
# wedged shared one, when there is such a node), bounded in time: a broker that stopped
# answering must fail a step, never hang it.
broker_ctl() {
  timeout --kill-after=10 "${CTL_TIMEOUT:-60}" rabbitmqctl ${CREDGATE_BROKER_NODE:+-n "$CREDGATE_BROKER_NODE"} "$@"
}

# A broker is healthy when it accepts connections and completes a vhost round trip (the
# operation every broker test starts with) within 30 s. A node that accepts TCP but stalls on
# management operations has been seen here; CI must not wait 90 minutes on it.
rabbitmq_healthy() {
  port_open 127.0.0.1 "${CREDGATE_BROKER_PORT:-5672}" || return 1
  command -v rabbitmqctl >/dev/null || return 0
  local probe="credgate-health-$$"
  CTL_TIMEOUT=30 broker_ctl -q add_vhost "$probe" >/dev/null 2>&1 || return 1
  CTL_TIMEOUT=30 broker_ctl -q delete_vhost "$probe" >/dev/null 2>&1
}

# Makes sure a RabbitMQ broker answers on 127.0.0.1:5672 (guest/guest): uses a running one,
# starts the installed server, or installs Debian's rabbitmq-server first. When the running
# node does not answer in time, a private node is started on 127.0.0.1:5699 instead (left alone
# otherwise: it is the machine's shared broker) and CREDGATE_BROKER_PORT/NODE point at it.
ensure_rabbitmq() {
  if [ -n "${CREDGATE_BROKER_NODE:-}" ] && rabbitmq_healthy; then return 0; fi
  unset CREDGATE_BROKER_NODE CREDGATE_BROKER_PORT
  if port_open 127.0.0.1 5672; then
    rabbitmq_healthy && return 0
    log "The RabbitMQ node on 127.0.0.1:5672 does not answer in time: starting a private node"
    start_private_rabbitmq
    return
  fi
  if ! command -v rabbitmq-server >/dev/null; then
    log "RabbitMQ is not installed: installing Debian's rabbitmq-server"
    apt_install rabbitmq-server
  fi
  log "Starting the local RabbitMQ node"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  CTL_TIMEOUT=150 broker_ctl await_startup --timeout 120 >/dev/null 2>&1 \
    || CTL_TIMEOUT=150 broker_ctl wait --timeout 120 >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do port_open 127.0.0.1 5672 && return 0; sleep 1; done
  log "RabbitMQ did not come up on 127.0.0.1:5672"; return 1
}

# A RabbitMQ node of our own on 127.0.0.1:5699 with its data under /tmp; stopped by
# stop_private_rabbitmq (scripts/test.sh traps it on exit).
start_private_rabbitmq() {
  local dir=/tmp/credgate-ci-rabbitmq
  export CREDGATE_BROKER_NODE="credgate-ci@localhost" CREDGATE_BROKER_PORT=5699
  rm -rf "$dir" && mkdir -p "$dir/mnesia" "$dir/log" && echo '[].' > "$dir/enabled_plugins"
  chown -R rabbitmq:rabbitmq "$dir" 2>/dev/null || true
  RABBITMQ_NODENAME="$CREDGATE_BROKER_NODE" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT=5699 RABBITMQ_DIST_PORT=25699 RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_PID_FILE="$dir/node.pid" RABBITMQ_CONFIG_FILE="$dir/rabbitmq" \
    rabbitmq-server -detached >/dev/null 2>&1 || true
  CTL_TIMEOUT=150 broker_ctl wait --timeout 120 "$dir/node.pid" >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do port_open 127.0.0.1 5699 && return 0; sleep 1; done
  log "The private RabbitMQ node did not come up on 127.0.0.1:5699"; return 1
}

stop_private_rabbitmq() {
  [ "${CREDGATE_BROKER_NODE:-}" = "credgate-ci@localhost" ] || return 0
  CTL_TIMEOUT=60 broker_ctl shutdown >/dev/null 2>&1 || true
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
