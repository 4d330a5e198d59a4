#!/usr/bin/env bash
# Interleaved A/B of the lineage's cost on the runtime benchmark: for each round, each record
# mix (one record re-sent, records of their own) and each credgate binary, one drain with the
# lineage off and one with it on (`bench/run.sh` section (b) only, prefetch 500). Interleaving
# spreads the machine's drift (±6 % between identical runs) over every cell.
#
#   BINS="/tmp/credgate-base /tmp/credgate-new" ROUNDS=3 bash bench/lineage-ab.sh
#   RECORD_MIXES=same ...   (only the re-sent record; "distinct" only records of their own)
#
# Prints one line per drain: records, binary, lineage, then section (b)'s table row.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
: "${CARGO_TARGET_DIR:=$HOME/.cache/credgate-target}"
export CARGO_TARGET_DIR
BINS="${BINS:-$CARGO_TARGET_DIR/release/credgate}"
ROUNDS="${ROUNDS:-3}"
RESULTS="$(mktemp)"
trap 'rm -f "$RESULTS"' EXIT
for _ in $(seq "$ROUNDS"); do
    for records in ${RECORD_MIXES:-same distinct}; do
        for bin in $BINS; do
            for lineage in 0 1; do
                CREDGATE_BIN="$bin" SKIP_BUILD=1 STORE_LINEAGE="$lineage" RECORDS="$records" \
                    N="${N:-20000}" CEILING=0 LATENCY=0 CREDGATE_PREFETCHES=500 RESULTS="$RESULTS" \
                    bash "$ROOT/bench/run.sh" >/dev/null 2>&1
                echo "$records $(basename "$bin") lineage=$lineage $(grep '^| 500 |' "$RESULTS")"
            done
        done
    done
done
