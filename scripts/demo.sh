#!/usr/bin/env bash
# The gateway's main job, end to end on the shipped sample configuration:
# builds credgate, makes sure a local RabbitMQ answers (installing/starting one if needed),
# runs `credgate run` on config/, plays the sample platforms with `credgate demo` (publishes
# every fixture document, answers as the provincial credit site and the regulator over HTTP on
# loopback, listens on the trading platforms' exchanges) and prints what happened.
# Ctrl-C stops everything it started. `--once` exits after the report (CI).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$CREDGATE_ROOT"

ONCE=""
[ "${1:-}" = "--once" ] && ONCE="--once"

log "Building credgate"
cargo build --quiet --bin credgate
BIN="$CARGO_TARGET_DIR/debug/credgate"

INHERITED_NODE="${CREDGATE_BROKER_NODE:-}"
ensure_rabbitmq

# Demo credentials (never used outside this loopback demo); real deployments set their own.
export CREDGATE_AMQP_PASSWORD="${CREDGATE_AMQP_PASSWORD:-guest}"
export CREDGATE_ADMIN_TOKEN="${CREDGATE_ADMIN_TOKEN:-demo-admin-token}"
for name in WH_GGZY HB_CREDIT HB_CREDIT_PUSH HB_HOUSING HB_SUPERVISION; do
  var="CREDGATE_${name}_SECRET"
  export "$var"="${!var:-demo-secret-$name}"
done

# A vhost of its own, recreated on every run, so copies left queued by an earlier run (or
# other users of the broker) never mix with this run's report.
VHOST=credgate-demo
if command -v rabbitmqctl >/dev/null && broker_ctl -q list_vhosts >/dev/null 2>&1; then
  broker_ctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
  broker_ctl -q add_vhost "$VHOST" >/dev/null
  broker_ctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
  export CREDGATE_AMQP__URL="amqp://127.0.0.1:${CREDGATE_BROKER_PORT:-5672}/$VHOST"
else
  log "rabbitmqctl unavailable: using the default vhost"
fi

# A store of its own as well, emptied on every run: the store remembers which record versions
# each destination already has, so a second run on the first run's store would (rightly) skip
# them and report fewer deliveries.
export CREDGATE_STORE__URL="sqlite://$CREDGATE_ROOT/data/demo/credgate.db"
rm -rf data/demo
mkdir -p data/demo
log "Starting the gateway (logs: data/gateway.log)"
"$BIN" --config config run > data/gateway.log 2>&1 &
GATEWAY=$!
cleanup() {
  kill -TERM "$GATEWAY" 2>/dev/null && wait "$GATEWAY" 2>/dev/null
  # A private node this run started (the shared one did not answer) goes with it.
  [ -n "$INHERITED_NODE" ] || stop_private_rabbitmq
  log "Stopped."
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 60); do
  curl -sf http://127.0.0.1:8441/readyz >/dev/null 2>&1 && break
  kill -0 "$GATEWAY" 2>/dev/null || { cat data/gateway.log; exit 1; }
  sleep 0.5
done
curl -sf http://127.0.0.1:8441/readyz >/dev/null || { log "gateway not ready"; tail -20 data/gateway.log; exit 1; }
log "Gateway ready: ingest http://127.0.0.1:8440, admin http://127.0.0.1:8441 (metrics at /metrics)"

"$BIN" --config config demo $ONCE
