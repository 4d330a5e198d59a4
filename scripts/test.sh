#!/usr/bin/env bash
# The full test suite, as CI runs it: formatting, lints, unit and integration tests (the
# broker tests against a real RabbitMQ, fault tests on private nodes they start and stop),
# then `credgate check` and `credgate test` on the shipped configuration, and the main job
# once end to end. Installs/starts RabbitMQ and PostgreSQL where they are missing, and
# Chromium with playwright-core for the console's browser test.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$CREDGATE_ROOT"

ensure_rabbitmq
trap stop_private_rabbitmq EXIT
if ensure_browser; then
  export CREDGATE_REQUIRE_BROWSER=1
else
  log "Chromium or playwright-core unavailable: the console browser test is skipped"
fi
if ensure_postgres; then
  export CREDGATE_REQUIRE_POSTGRES=1
else
  log "PostgreSQL unavailable: the PostgreSQL store test is skipped"
fi

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings
log "Building tests"
cargo test --locked --no-run --quiet
log "Running tests"
# Each broker test has its own deadline (tests/it/support.rs `within`); this one bounds the
# whole run, so CI reports a failure long before its own 90-minute limit.
CREDGATE_REQUIRE_BROKER=1 timeout --kill-after=30 25m cargo test --locked -- --test-threads=2

BIN="$CARGO_TARGET_DIR/debug/credgate"
log "credgate check on the shipped configuration"
"$BIN" --config config check
log "credgate test on the shipped configuration"
"$BIN" --config config test | tail -n 3

log "The main job once, end to end"
scripts/demo.sh --once
