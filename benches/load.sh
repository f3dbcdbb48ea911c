#!/usr/bin/env bash
# Loopback load test: the demo backend's GET /bench, directly and through
# scopegate, with wrk at 1, 16 and 64 connections. Prints a markdown table.
#
#   benches/load.sh                  # 5 s per run
#   DURATION=3 benches/load.sh       # seconds per run ("3" or "3s")
#   PIN=1 benches/load.sh            # servers on core 1, wrk on core 0 (taskset)
#
# Needs wrk (Debian/Ubuntu: apt-get install -y wrk) and curl. Uses the fixed
# ports 18080 (scopegate), 18081 (backend) and 19090 (admin) on 127.0.0.1
# only, refuses to start if one is taken, and stops everything it started on
# exit. scopegate logs at "warn", so access records do not dominate the cost.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
HOST=127.0.0.1
GATE_PORT=18080
BACKEND_PORT=18081
ADMIN_PORT=19090
CONNS=(1 16 64)

DURATION=${DURATION:-5s}
SECS=0
[[ $DURATION =~ ^([0-9]{1,5})s?$ ]] && SECS=$((10#${BASH_REMATCH[1]}))
if (( SECS == 0 )); then
    echo "DURATION must be a whole number of seconds, e.g. 5 or 5s (got '$DURATION')" >&2
    exit 2
fi

if ! command -v wrk >/dev/null; then
    echo "wrk is not installed. On Debian/Ubuntu: sudo apt-get install -y wrk" >&2
    echo "(elsewhere: https://github.com/wg/wrk)" >&2
    exit 1
fi
for tool in curl timeout; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

SERVER_PIN=()
WRK_PIN=()
if [[ ${PIN:-0} == 1 ]]; then
    command -v taskset >/dev/null || { echo "PIN=1 needs taskset (util-linux)" >&2; exit 1; }
    if (( $(nproc) < 2 )); then
        echo "PIN=1 needs at least 2 cores" >&2
        exit 1
    fi
    SERVER_PIN=(taskset -c 1)
    WRK_PIN=(taskset -c 0)
fi

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
for port in $GATE_PORT $BACKEND_PORT $ADMIN_PORT; do
    if port_in_use "$port"; then
        echo "$HOST:$port is already in use; stop whatever listens there first" >&2
        exit 1
    fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/scopegate-load.XXXXXX")
PIDS=()
WRK_PID=
cleanup() {
    local pid
    [[ -n $WRK_PID ]] && PIDS+=("$WRK_PID")
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "building (release)..." >&2
(cd "$ROOT" && cargo build --release --quiet --example demo --bin scopegate)
DEMO=$TARGET_DIR/release/examples/demo
GATE=$TARGET_DIR/release/scopegate

cat >"$TMP/scopegate.toml" <<EOF
[listen]
address = "$HOST:$GATE_PORT"
drain_timeout = "2s"

[admin]
address = "$HOST:$ADMIN_PORT"

[log]
format = "human"
level = "warn"

[[upstream]]
name = "demo"
url = "http://$HOST:$BACKEND_PORT"

[[route]]
name = "bench"
methods = ["GET"]
path = "/bench"
auth = ["public"]
upstream = "demo"
EOF

# Neither server may pick up overrides from this shell: RUST_LOG would turn the
# access log back on, SCOPEGATE_*__* would move the listeners.
SCRUB=(env -u RUST_LOG)
while IFS= read -r var; do
    SCRUB+=(-u "$var")
done < <(compgen -e | grep '^SCOPEGATE_' || true)

"${SCRUB[@]}" ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} \
    "$DEMO" --backend-only --listen "$HOST:$BACKEND_PORT" >"$TMP/backend.log" 2>&1 &
PIDS+=($!)
"${SCRUB[@]}" ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} \
    "$GATE" run --config "$TMP/scopegate.toml" >"$TMP/scopegate.log" 2>&1 &
PIDS+=($!)

# wait_for URL NAME LOG: until URL answers 2xx, or fail after 10 s.
wait_for() {
    local i pid
    for i in $(seq 100); do
        curl -fs -o /dev/null --max-time 1 "$1" && return 0
        for pid in "${PIDS[@]}"; do
            if ! kill -0 "$pid" 2>/dev/null; then
                echo "$2 exited early; its log:" >&2
                cat "$3" >&2
                exit 1
            fi
        done
        sleep 0.1
    done
    echo "$2 not ready after 10 s; its log:" >&2
    cat "$3" >&2
    exit 1
}
wait_for "http://$HOST:$BACKEND_PORT/v2/health" backend "$TMP/backend.log"
wait_for "http://$HOST:$ADMIN_PORT/readyz" scopegate "$TMP/scopegate.log"

DIRECT_URL="http://$HOST:$BACKEND_PORT/bench"
GATE_URL="http://$HOST:$GATE_PORT/bench"
if [[ $(curl -fs "$DIRECT_URL") != "$(curl -fs "$GATE_URL")" ]]; then
    echo "GET /bench differs between the backend and scopegate; refusing to compare" >&2
    exit 1
fi

# run_wrk CONNS URL OUT: one bounded wrk run. In the background and waited
# for, so that Ctrl-C / SIGTERM reach the trap at once (timeout passes the
# signal on to wrk).
run_wrk() {
    local conns=$1 threads=$(( $1 < 2 ? $1 : 2 ))
    timeout $(( SECS + 15 )) ${WRK_PIN[@]+"${WRK_PIN[@]}"} \
        wrk -t"$threads" -c"$conns" -d"${SECS}s" --latency "$2" >"$3" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || true
    WRK_PID=
}

# parse FILE -> "req/s p50_us p99_us bad_responses socket_errors" (or "fail")
parse() {
    awk '
        function us(v) {
            if (v ~ /us$/) return v + 0
            if (v ~ /ms$/) return v * 1000
            if (v ~ /m$/)  return v * 60000000
            if (v ~ /s$/)  return v * 1000000
            return v + 0
        }
        /^ +50% / { p50 = us($2) }
        /^ +99% / { p99 = us($2) }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/ { for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) errs += $i }
        END {
            if (rps == "" || p50 == "" || p99 == "") print "fail"
            else printf "%.0f %.1f %.1f %d %d\n", rps, p50, p99, bad, errs
        }' "$1"
}

fmt_us() { awk -v u="$1" 'BEGIN { if (u < 1000) printf "%.0f us", u; else printf "%.2f ms", u / 1000 }'; }
fmt_delta_us() {
    awk -v u="$1" 'BEGIN {
        s = u < 0 ? "-" : "+"; a = u < 0 ? -u : u
        if (a < 1000) printf "%s%.0f us", s, a; else printf "%s%.2f ms", s, a / 1000
    }'
}

echo "warming up..." >&2
run_wrk 16 "$DIRECT_URL" /dev/null
run_wrk 16 "$GATE_URL" /dev/null

declare -A RESULT
FAILED=0
NOTES=()
for c in "${CONNS[@]}"; do
    for target in direct scopegate; do
        url=$DIRECT_URL
        [[ $target == scopegate ]] && url=$GATE_URL
        echo "wrk: $target, $c connections, ${SECS}s..." >&2
        out="$TMP/wrk-$target-$c.txt"
        run_wrk "$c" "$url" "$out"
        RESULT[$target,$c]=$(parse "$out")
        if [[ ${RESULT[$target,$c]} == fail ]]; then
            FAILED=1
            NOTES+=("$target, $c conns: wrk failed or timed out: $(tail -n 3 "$out" | tr '\n' ' ')")
            continue
        fi
        read -r _ _ _ bad errs <<<"${RESULT[$target,$c]}"
        if (( bad > 0 || errs > 0 )); then
            FAILED=1
            NOTES+=("$target, $c conns: $bad non-2xx responses, $errs socket errors")
        fi
    done
done

echo
echo "GET /bench ($(curl -fs "$DIRECT_URL" | wc -c) bytes), ${SECS}s per run, wrk threads = min(conns, 2)," \
    "PIN=${PIN:-0}, $(nproc) cores: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo
echo "| target | conns | req/s | p50 | p99 | ratio vs direct (req/s) | added p50 |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for target in direct scopegate; do
    for c in "${CONNS[@]}"; do
        r=${RESULT[$target,$c]}
        if [[ $r == fail ]]; then
            echo "| $target | $c | failed | | | | |"
            continue
        fi
        read -r rps p50 p99 _ _ <<<"$r"
        ratio="1.00"
        added="-"
        if [[ $target == scopegate ]]; then
            d=${RESULT[direct,$c]}
            if [[ $d == fail ]]; then
                ratio="n/a"
                added="n/a"
            else
                read -r drps dp50 _ _ _ <<<"$d"
                ratio=$(awk -v a="$rps" -v b="$drps" 'BEGIN { printf "%.2f", a / b }')
                added=$(fmt_delta_us "$(awk -v a="$p50" -v b="$dp50" 'BEGIN { print a - b }')")
            fi
        fi
        echo "| $target | $c | $rps | $(fmt_us "$p50") | $(fmt_us "$p99") | $ratio | $added |"
    done
done
for note in ${NOTES[@]+"${NOTES[@]}"}; do
    echo "warning: $note"
done
exit "$FAILED"
