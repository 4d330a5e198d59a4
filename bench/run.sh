#!/usr/bin/env bash
# Runtime benchmark of credgate against the broker ceiling (issue 4). See bench/README.md.
#
# Starts a private RabbitMQ node (own node name, ports and directories; the shared node on
# 5672 is never touched), then, in one run:
#   (a) ceiling: a backlog of N §7.1 penalties drained by credgate-ceiling (consume → publish
#       with confirm → ack) for every prefetch × ack mode, on quorum and on classic queues;
#   (b) credgate: the same backlog drained by `credgate run --config bench/config` (ingest
#       role only; its queues are always quorum): drain rate, CPU µs per message, peak RSS;
#   (c) end-to-end latency p50/p99 at a fixed offered rate, ceiling and credgate.
# Writes bench/results/latest.md and stops the node.
#
# Parameters (environment):
#   N=50000            backlog size                 LAT_RATE=1000  offered msg/s in (c)
#   LAT_SECS=30        duration of (c)              PREFETCHES="50 200 500"   ceiling prefetches
#   ACK_MODES="1 50"   1 = ack each, K = `multiple` every K
#   QUEUE_TYPES="quorum classic"                    CREDGATE_PREFETCHES="200 500" (latency: first)
#   BENCH_PORT=56730   AMQP port (dist port +1)     SKIP_BUILD=1   use the built binaries
#   KEEP=1             keep the temp dir (broker and credgate logs)
#   STORE_LINEAGE=0    store keeps dedup keys only (no lineage rows): the store-cost baseline
#   PERF=1             perf-record credgate during its drain → bench/results/credgate-perf.txt
#   CEILING=0          skip (a) and the ceiling's latency (credgate only, for A/B runs)
#   LATENCY=0          skip the credgate latency test (c)
#   CREDGATE_BIN=path  run this credgate binary instead of the built one (A/B of two builds)
#   RECORDS=distinct   credgate's backlog is N records of their own (own 文书号) instead of one
#                      record re-sent N times (the default, `same`); what the lineage store costs
#                      depends on it (bench/README.md, lineage third pass)
#   RESULTS=path       where the report goes (bench/results/latest.md)
set -euo pipefail

N=${N:-50000}
LAT_RATE=${LAT_RATE:-1000}
LAT_SECS=${LAT_SECS:-30}
PREFETCHES=${PREFETCHES:-"50 200 500"}
ACK_MODES=${ACK_MODES:-"1 50"}
QUEUE_TYPES=${QUEUE_TYPES:-"quorum classic"}
CREDGATE_PREFETCHES=${CREDGATE_PREFETCHES:-"200 500"}
PORT=${BENCH_PORT:-56730}
DIST_PORT=$((PORT + 1))

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release"
NODE="credgate-bench-$$@localhost"
AMQP="amqp://guest:guest@127.0.0.1:$PORT/%2f"
RESULTS="${RESULTS:-$ROOT/bench/results/latest.md}"
T0=$(date +%s)

log() { printf '[%4ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2" | head -1; }

if ss -ltn 2>/dev/null | grep -qE "127\.0\.0\.1:($PORT|$DIST_PORT)\b|\*:($PORT|$DIST_PORT)\b"; then
    echo "port $PORT or $DIST_PORT is in use; set BENCH_PORT" >&2
    exit 1
fi

if [[ "${SKIP_BUILD:-}" != 1 ]]; then
    log "building credgate and credgate-ceiling (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin credgate --bin credgate-ceiling)
fi

TMP="$(mktemp -d /tmp/credgate-bench.XXXXXX)"
chmod 755 "$TMP"
D="$TMP/rmq"
mkdir -p "$D/mnesia" "$D/log" "$TMP/store"
printf 'loopback_users = none\nlisteners.tcp.default = 127.0.0.1:%s\n' "$PORT" >"$D/rabbitmq.conf"
echo '[].' >"$D/enabled_plugins"
chown -R rabbitmq:rabbitmq "$D"

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rabbitmqctl -n "$NODE" shutdown >/dev/null 2>&1 || { sleep 5; rabbitmqctl -n "$NODE" shutdown >/dev/null 2>&1 || true; }
    if [[ "${KEEP:-}" == 1 ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

log "starting RabbitMQ node $NODE on 127.0.0.1:$PORT"
(
    export RABBITMQ_NODENAME="$NODE" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$PORT" RABBITMQ_DIST_PORT="$DIST_PORT" \
        RABBITMQ_MNESIA_BASE="$D/mnesia" RABBITMQ_LOG_BASE="$D/log" \
        RABBITMQ_CONFIG_FILE="$D/rabbitmq" RABBITMQ_ENABLED_PLUGINS_FILE="$D/enabled_plugins" \
        RABBITMQ_PID_FILE="$D/node.pid"
    exec rabbitmq-server >"$D/server.out" 2>&1
) &
# await_startup fails at once until the node has registered with epmd: retry for 120 s.
for _ in $(seq 120); do
    rabbitmqctl -n "$NODE" await_startup --timeout 120 >/dev/null 2>&1 && break
    sleep 1
done
rabbitmqctl -n "$NODE" await_startup --timeout 10 >/dev/null
RMQ_VERSION=$(rabbitmqctl -n "$NODE" version 2>/dev/null || echo "?")
BROKER_PID=$(cat "$D/node.pid" 2>/dev/null || echo "")
log "node up (RabbitMQ $RMQ_VERSION)"

C() { "$BIN/credgate-ceiling" "$1" --amqp "$AMQP" "${@:2}"; }
broker_cpu() { # broker CPU seconds so far (beam.smp), for context
    [[ -n "$BROKER_PID" && -r /proc/$BROKER_PID/stat ]] || { echo 0; return; }
    awk '{print ($14+$15)/100}' "/proc/$BROKER_PID/stat"
}

# ---------------------------------------------------------------- (a) ceiling drains
declare -A CEIL_RATE CEIL_CPU BEST_CFG BEST_RATE
ceiling_drain() { # qt prefetch ack_every
    local qt=$1 pf=$2 ack=$3 out pid w
    C setup --queue-type "$qt" >/dev/null
    out=$(C fill --key bench.ceil.in --count "$N" --prefix "ceil-$qt-$pf-$ack")
    log "  filled $N on $qt ($(kv rate "$out") msg/s); draining with prefetch $pf, ack ${ack/#1/each}"
    # The binary itself in the background (not the C function: $! would be a subshell).
    "$BIN/credgate-ceiling" drain --amqp "$AMQP" --prefetch "$pf" --ack-every "$ack" --count "$N" \
        >"$TMP/drain.out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    w=$(C watch --in bench.ceil.in --out bench.ceil.out --count "$N" --pid "$pid" --broker-pid "$BROKER_PID")
    wait "$pid"
    CEIL_RATE[$qt/$pf/$ack]=$(kv rate "$w")
    CEIL_CPU[$qt/$pf/$ack]=$(kv cpu_us_per_msg "$w")
    CEIL_CS[$qt/$pf/$ack]=$(kv ctx_switches_per_msg "$w")
    CEIL_BCPU[$qt/$pf/$ack]=$(kv broker_cpu_us_per_msg "$w")
    log "  → ${CEIL_RATE[$qt/$pf/$ack]} msg/s, ceiling CPU ${CEIL_CPU[$qt/$pf/$ack]} µs/msg, broker ${CEIL_BCPU[$qt/$pf/$ack]} µs/msg"
    if [[ -z "${BEST_RATE[$qt]:-}" || ${CEIL_RATE[$qt/$pf/$ack]} -gt ${BEST_RATE[$qt]} ]]; then
        BEST_RATE[$qt]=${CEIL_RATE[$qt/$pf/$ack]}
        BEST_CFG[$qt]="$pf $ack"
    fi
}

declare -A LAT
ceiling_latency() { # qt
    local qt=$1 pf ack pid out
    read -r pf ack <<<"${BEST_CFG[$qt]}"
    C setup --queue-type "$qt" >/dev/null
    "$BIN/credgate-ceiling" drain --amqp "$AMQP" --prefetch "$pf" --ack-every "$ack" \
        >"$TMP/drain-lat.out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    sleep 1
    log "  latency: ceiling on $qt (prefetch $pf, ack ${ack/#1/each}), $LAT_RATE msg/s for $LAT_SECS s"
    out=$(C latency --key bench.ceil.in --out bench.ceil.out --rate "$LAT_RATE" --secs "$LAT_SECS")
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    LAT[ceiling/$qt]="$out"
    log "  → $(grep p50 <<<"$out")"
}

# ---------------------------------------------------------------- (b) credgate
export CREDGATE_AMQP_PASSWORD=guest CREDGATE_ADMIN_TOKEN=bench-admin-token
export CREDGATE_AMQP__URL="amqp://127.0.0.1:$PORT/%2f"
export CREDGATE_HTTP__LISTEN=127.0.0.1:0 CREDGATE_ADMIN__LISTEN=127.0.0.1:0
export CREDGATE_RUNTIME__ROLES='["ingest"]'
export CREDGATE_TELEMETRY__LOG_LEVEL=warn
# STORE_LINEAGE=0: dedup keys only, no lineage rows (what the lineage store costs).
export CREDGATE_STORE__LINEAGE="${STORE_LINEAGE:-true}"
[[ "$CREDGATE_STORE__LINEAGE" == 0 ]] && CREDGATE_STORE__LINEAGE=false
[[ "$CREDGATE_STORE__LINEAGE" == 1 ]] && CREDGATE_STORE__LINEAGE=true
CG=("${CREDGATE_BIN:-$BIN/credgate}" --config "$ROOT/bench/config")
CG_IN=credgate.in.bench-json
CG_OUT=credgate.out.bench-sink
declare -A CG_RATE CG_CPU CG_CORES CG_HWM CG_ERRORS CG_CS CEIL_CS CG_BCPU CEIL_BCPU
CG_PID=""
start_credgate() { # prefetch run-id
    export CREDGATE_AMQP__PREFETCH=$1
    export CREDGATE_STORE__URL="sqlite://$TMP/store/credgate-$2.db"
    export CREDGATE_PATHS__DATA="$TMP/store"
    "${CG[@]}" run >"$TMP/credgate-$2.log" 2>&1 &
    CG_PID=$!
    PIDS+=("$CG_PID")
}
stop_credgate() {
    kill -TERM "$CG_PID" 2>/dev/null || true
    wait "$CG_PID" 2>/dev/null || true
}
purge() { local q; for q in "$@"; do rabbitmqctl -n "$NODE" purge_queue "$q" >/dev/null 2>&1 || true; done; }

credgate_runs() {
    "${CG[@]}" topology declare >/dev/null
    local pf out w first=""
    for pf in $CREDGATE_PREFETCHES; do first=${first:-$pf}; done
    for pf in $CREDGATE_PREFETCHES; do
        purge "$CG_OUT" credgate.receipts.bench-json
        out=$(C fill --exchange credgate.in --key bench-json.penalty --count "$N" --prefix "cg-$pf" --records "${RECORDS:-same}")
        log "  filled $N into $CG_IN ($(kv rate "$out") msg/s); credgate run, prefetch $pf"
        start_credgate "$pf" "p$pf"
        local perf_pid=""
        if [[ "${PERF:-}" == 1 ]]; then
            # PERF_CALLGRAPH=1 adds call graphs (DWARF unwinding: slower, for finding callers).
            perf record -F 1999 ${PERF_CALLGRAPH:+--call-graph dwarf,8192} -p "$CG_PID" -o "$TMP/perf-p$pf.data" >/dev/null 2>&1 &
            perf_pid=$!
        fi
        w=$(C watch --in "$CG_IN" --out "$CG_OUT" --count "$N" --pid "$CG_PID" --broker-pid "$BROKER_PID" --timeout 600)
        if [[ -n "$perf_pid" ]]; then
            kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
            {
                set +o pipefail
                echo "# perf (self time) of credgate during the drain of $N messages, prefetch $pf"
                perf report -i "$TMP/perf-p$pf.data" --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
                echo
                perf report -i "$TMP/perf-p$pf.data" --no-children --sort sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60
                echo
                echo "# by thread"
                perf report -i "$TMP/perf-p$pf.data" --sort comm --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
                set -o pipefail
            } >"$ROOT/bench/results/credgate-perf-p$pf.txt"
        fi
        CG_RATE[$pf]=$(kv rate "$w")
        CG_CPU[$pf]=$(kv cpu_us_per_msg "$w")
        CG_CORES[$pf]=$(kv cpu_cores "$w")
        CG_HWM[$pf]=$(kv vmhwm_kib "$w")
        CG_CS[$pf]=$(kv ctx_switches_per_msg "$w")
        CG_BCPU[$pf]=$(kv broker_cpu_us_per_msg "$w")
        log "  → ${CG_RATE[$pf]} msg/s, ${CG_CPU[$pf]} µs CPU/msg (${CG_CORES[$pf]} cores, ${CG_CS[$pf]} ctx switches/msg; broker ${CG_BCPU[$pf]} µs/msg), VmHWM ${CG_HWM[$pf]} KiB"
        sleep 1
        CHECK[$pf]=$(C depth "$CG_IN" "$CG_OUT" credgate.receipts.bench-json credgate.rejected.bench-json credgate.dlq._unmatched | tr '\n' ' ')
        if [[ $pf == "$first" && "${LATENCY:-}" != 0 ]]; then
            purge "$CG_OUT"
            log "  latency: credgate (prefetch $pf), $LAT_RATE msg/s for $LAT_SECS s"
            LAT[credgate]=$(C latency --exchange credgate.in --key bench-json.penalty --out "$CG_OUT" \
                --rate "$LAT_RATE" --secs "$LAT_SECS")
            log "  → $(grep p50 <<<"${LAT[credgate]}")"
            CG_HWM_END=$(awk '/VmHWM/{print $2}' "/proc/$CG_PID/status" 2>/dev/null || echo "")
        fi
        stop_credgate
        CG_ERRORS[$pf]=$(grep -ciE '"level":"(ERROR|WARN)"' "$TMP/credgate-p$pf.log" || true)
        if [[ ${CG_ERRORS[$pf]} != 0 ]]; then
            log "  credgate logged ${CG_ERRORS[$pf]} warnings/errors:"
            grep -iE '"level":"(ERROR|WARN)"' "$TMP/credgate-p$pf.log" | head -5 >&2
        fi
    done
}
declare -A CHECK
CG_HWM_END=""

# ---------------------------------------------------------------- the run
B0=$(broker_cpu)
[[ "${CEILING:-}" == 0 ]] && QUEUE_TYPES=""
for qt in $QUEUE_TYPES; do
    log "(a) ceiling on $qt queues"
    for pf in $PREFETCHES; do
        for ack in $ACK_MODES; do ceiling_drain "$qt" "$pf" "$ack"; done
    done
    log "  best on $qt: ${BEST_RATE[$qt]} msg/s (prefetch/ack ${BEST_CFG[$qt]})"
    log "(c) ceiling latency on $qt"
    ceiling_latency "$qt"
    if [[ $qt == quorum ]]; then
        log "(b)+(c) credgate (quorum queues by design)"
        credgate_runs
    fi
done
if [[ " $QUEUE_TYPES " != *" quorum "* ]]; then
    log "(b)+(c) credgate (quorum queues by design)"
    credgate_runs
fi
ELAPSED=$(($(date +%s) - T0))

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
mib() { awk -v k="$1" 'BEGIN { if (k > 0) printf "%.1f", k / 1024; else print "n/a" }'; }
{
    echo "# credgate runtime benchmark — latest run"
    echo
    echo "Generated by \`bench/run.sh\` on $(date -u +%Y-%m-%dT%H:%MZ) in ${ELAPSED} s."
    echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), shared by the broker, the"
    echo "gateway and the load tools. RabbitMQ $RMQ_VERSION, private node. Backlog N = $N messages"
    echo "(the §7.1 penalty JSON, $(wc -c <"$ROOT/bench/samples/penalty-7.1.json") B, persistent, unique message_id; credgate's backlog: RECORDS=${RECORDS:-same}, same = one record re-sent, distinct = a record each)."
    echo
    echo "## (a) Ceiling: consume → publish with confirm → ack (no processing)"
    echo
    echo "| queues | prefetch | ack | drain msg/s | ceiling CPU µs/msg | broker CPU µs/msg | context switches/msg |"
    echo "|---|---:|---|---:|---:|---:|---:|"
    for qt in $QUEUE_TYPES; do
        for pf in $PREFETCHES; do
            for ack in $ACK_MODES; do
                a="each"; [[ $ack != 1 ]] && a="multiple/$ack"
                echo "| $qt | $pf | $a | ${CEIL_RATE[$qt/$pf/$ack]} | ${CEIL_CPU[$qt/$pf/$ack]} | ${CEIL_BCPU[$qt/$pf/$ack]} | ${CEIL_CS[$qt/$pf/$ack]} |"
            done
        done
    done
    echo
    for qt in $QUEUE_TYPES; do
        echo "Best on $qt: **${BEST_RATE[$qt]} msg/s** (prefetch/ack-every ${BEST_CFG[$qt]})."
    done
    echo
    echo "## (b) credgate drain (\`credgate run --config bench/config\`, roles = ingest, quorum queues)"
    echo
    echo "Per message credgate consumes from credgate.in.bench-json, runs the pipeline, publishes the"
    echo "copy to credgate.route (confirm + mandatory), commits the dedup row in SQLite, publishes the"
    echo "receipt (confirmed) and acks: two confirmed publishes per message where the ceiling has one."
    echo
    echo "| prefetch | drain msg/s | ratio vs quorum ceiling (target ≥ 0.95) | CPU µs/msg (≤ 40) | CPU cores used | broker CPU µs/msg | context switches/msg | peak RSS MiB (< 96) | warnings/errors logged |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for pf in $CREDGATE_PREFETCHES; do
        echo "| $pf | ${CG_RATE[$pf]} | $(ratio "${CG_RATE[$pf]}" "${BEST_RATE[quorum]:-0}") | ${CG_CPU[$pf]} | ${CG_CORES[$pf]} | ${CG_BCPU[$pf]} | ${CG_CS[$pf]} | $(mib "${CG_HWM[$pf]}") | ${CG_ERRORS[$pf]} |"
    done
    echo
    if [[ -n "${BEST_RATE[classic]:-}" ]]; then
        echo "credgate's queues are quorum by design (its topology declares them); against the"
        echo "*classic* ceiling (${BEST_RATE[classic]} msg/s) the ratio is"
        for pf in $CREDGATE_PREFETCHES; do echo "$(ratio "${CG_RATE[$pf]}" "${BEST_RATE[classic]}") (prefetch $pf)"; done
        echo "— that compares different queue types and is given for context only."
        echo
    fi
    echo "Queue depths after each drain (sanity: receipts = N, rejected = 0, unmatched = 0):"
    echo
    for pf in $CREDGATE_PREFETCHES; do echo "- prefetch $pf: \`${CHECK[$pf]}\`"; done
    [[ -n "$CG_HWM_END" ]] && { echo; echo "Peak RSS at the end of the run (after the latency test): $(mib "$CG_HWM_END") MiB."; }
    echo
    echo "## (c) End-to-end latency at $LAT_RATE msg/s for $LAT_SECS s (first 2 s excluded)"
    echo
    echo "Publisher stamps \`x-bench-sent-ns\` (and the send time in message_id, because credgate does"
    echo "not copy inbound headers to its copies); a consumer on the output queue measures."
    echo
    echo "| path | queues | p50 ms | p90 ms | p99 ms | max ms | received |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    for key in $(for qt in $QUEUE_TYPES; do echo "ceiling/$qt"; done) credgate; do
        l="${LAT[$key]:-}"
        [[ -z "$l" ]] && continue
        qt=${key#ceiling/}; [[ $key == credgate ]] && qt=quorum
        echo "| ${key%%/*} | $qt | $(kv p50_ms "$l") | $(kv p90_ms "$l") | $(kv p99_ms "$l") | $(kv max_ms "$l") | $(kv received "$l") |"
    done
    if [[ -n "${LAT[credgate]:-}" && -n "${LAT[ceiling/quorum]:-}" ]]; then
        echo
        echo "credgate p99 / quorum ceiling p99 = **$(ratio "$(kv p99_ms "${LAT[credgate]}")" "$(kv p99_ms "${LAT[ceiling/quorum]}")")** (target ≤ 1.2)."
    fi
    echo
    echo "Broker CPU over the whole run: $(awk -v a="$B0" -v b="$(broker_cpu)" 'BEGIN{printf "%.0f", b-a}') s."
} >"$RESULTS"

cat "$RESULTS"
log "done in ${ELAPSED} s; results in ${RESULTS#"$ROOT"/}"
