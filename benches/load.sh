#!/usr/bin/env bash
# Loopback load test: the demo backend's GET /bench, directly, through
# scopegate on a public route, and through scopegate on a session route
# (Authorization: Bearer <token>) with the memory store, with a Redis store,
# and with a Redis store behind the local session cache (store.local_cache),
# with wrk at 1, 16 and 64 connections. Prints a markdown table.
#
#   benches/load.sh                  # 5 s per run
#   DURATION=3 benches/load.sh       # seconds per run ("3" or "3s")
#   PIN=1 benches/load.sh            # servers on core 1, wrk on core 0 (taskset)
#   REDIS_SERVER=/path/to/redis-server benches/load.sh
#
# Needs wrk (Debian/Ubuntu: apt-get install -y wrk), redis-server
# (apt-get install -y redis-server: only the binary is used, never a running
# service), curl and md5sum. Uses the fixed ports 18080 (scopegate, public
# route), 18081 (backend), 18082 to 18084 (scopegate, session route, memory
# store, Redis store, Redis store with the local cache) and 19090-19093 (their
# admin listeners) on 127.0.0.1 only,
# and refuses to start if one is taken. Redis is a private redis-server on a
# free port, without persistence, its directory the temporary one. Everything
# the script started is stopped on exit. scopegate logs at "warn", so access
# records do not dominate the cost.
#
# The session route is GET /bench too, so every row is compared with the same
# backend answer. Its token comes from the md5 handshake
# (GET /sessionToken?apiKey=..&timestamp=..&signature=md5_hex(apiKey+privateKey))
# of a [[business]] written, with a random private key, into the temporary
# configuration; every request then reads and slides the session in the store.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
HOST=127.0.0.1
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
GATE_PORT=18080
BACKEND_PORT=18081
ADMIN_PORT=19090
SMEM_PORT=18082
SMEM_ADMIN_PORT=19091
SREDIS_PORT=18083
SREDIS_ADMIN_PORT=19092
SCACHE_PORT=18084
SCACHE_ADMIN_PORT=19093
CONNS=(1 16 64)
REDIS_SERVER=${REDIS_SERVER:-redis-server}

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
if ! command -v "$REDIS_SERVER" >/dev/null; then
    echo "redis-server is not installed (the \"session (redis)\" rows need one)." >&2
    echo "On Debian/Ubuntu: sudo apt-get install -y redis-server" >&2
    echo "(only the binary is used), or set REDIS_SERVER=/path/to/redis-server" >&2
    exit 1
fi
for tool in curl timeout md5sum shuf od; do
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

for port in $GATE_PORT $BACKEND_PORT $ADMIN_PORT \
    $SMEM_PORT $SMEM_ADMIN_PORT $SREDIS_PORT $SREDIS_ADMIN_PORT \
    $SCACHE_PORT $SCACHE_ADMIN_PORT; do
    if port_in_use "$port"; then
        echo "$HOST:$port is already in use; stop whatever listens there first" >&2
        exit 1
    fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/scopegate-load.XXXXXX")
PIDS=()
WRK_PID=
# shellcheck disable=SC2317  # called by the EXIT trap
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

# A private Redis on a free port: no persistence, nothing written outside
# $TMP. Another port is tried if the chosen one was taken in the meantime.
REDIS_PORT=
start_redis() {
    local port pid
    for _ in 1 2 3 4 5; do
        port=$(shuf -i 20000-45000 -n 1)
        port_in_use "$port" && continue
        "$REDIS_SERVER" --bind "$HOST" --port "$port" --save "" --appendonly no \
            --dir "$TMP" --daemonize no --logfile "" >"$TMP/redis.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        for _ in $(seq 50); do
            if redis_ping "$port"; then
                REDIS_PORT=$port
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    echo "could not start $REDIS_SERVER on a free port (5 tries); its last log:" >&2
    cat "$TMP/redis.log" >&2
    exit 1
}
start_redis

# write_config FILE PORT ADMIN_PORT AUTH [STORE_TOML]: a scopegate in front of
# the backend with one route, GET /bench, of AUTH ("public" or "session"); a
# session one also gets the [store] table and the [[business]].
API_KEY=load-test
PRIVATE_KEY=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
write_config() {
    local file=$1 port=$2 admin=$3 auth=$4 store=${5:-}
    cat >"$file" <<EOF
[listen]
address = "$HOST:$port"
drain_timeout = "2s"

[admin]
address = "$HOST:$admin"

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
auth = ["$auth"]
upstream = "demo"
EOF
    [[ $auth == session ]] || return 0
    cat >>"$file" <<EOF

$store

[[business]]
id = "load"
api_key = "$API_KEY"
private_key = "$PRIVATE_KEY"
signature = "md5"
idle = "1h"
max_lifetime = "2h"
EOF
}
write_config "$TMP/scopegate.toml" $GATE_PORT $ADMIN_PORT public
write_config "$TMP/session-memory.toml" $SMEM_PORT $SMEM_ADMIN_PORT session \
    "$(printf '[store]\nbackend = "memory"')"
write_config "$TMP/session-redis.toml" $SREDIS_PORT $SREDIS_ADMIN_PORT session \
    "$(printf '[store]\nbackend = "redis"\nurl = "redis://%s:%s/"\nkey_prefix = "scopegate-load:"' \
        "$HOST" "$REDIS_PORT")"
write_config "$TMP/session-cached.toml" $SCACHE_PORT $SCACHE_ADMIN_PORT session \
    "$(printf '[store]\nbackend = "redis"\nurl = "redis://%s:%s/"\nkey_prefix = "scopegate-load:"\nlocal_cache = "1s"' \
        "$HOST" "$REDIS_PORT")"

# Neither server may pick up overrides from this shell: RUST_LOG would turn the
# access log back on, SCOPEGATE_*__* would move the listeners.
SCRUB=(env -u RUST_LOG)
while IFS= read -r var; do
    SCRUB+=(-u "$var")
done < <(compgen -e | grep '^SCOPEGATE_' || true)

"${SCRUB[@]}" ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} \
    "$DEMO" --backend-only --listen "$HOST:$BACKEND_PORT" >"$TMP/backend.log" 2>&1 &
PIDS+=($!)
for name in scopegate session-memory session-redis session-cached; do
    "${SCRUB[@]}" ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} \
        "$GATE" run --config "$TMP/$name.toml" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
done

# wait_for URL NAME LOG: until URL answers 2xx, or fail after 10 s.
wait_for() {
    local pid
    for _ in $(seq 100); do
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
wait_for "http://$HOST:$SMEM_ADMIN_PORT/readyz" "scopegate (session, memory)" "$TMP/session-memory.log"
wait_for "http://$HOST:$SREDIS_ADMIN_PORT/readyz" "scopegate (session, redis)" "$TMP/session-redis.log"
wait_for "http://$HOST:$SCACHE_ADMIN_PORT/readyz" "scopegate (session, redis + cache)" "$TMP/session-cached.log"

DIRECT_URL="http://$HOST:$BACKEND_PORT/bench"
GATE_URL="http://$HOST:$GATE_PORT/bench"
SMEM_URL="http://$HOST:$SMEM_PORT/bench"
SREDIS_URL="http://$HOST:$SREDIS_PORT/bench"
SCACHE_URL="http://$HOST:$SCACHE_PORT/bench"
DIRECT_BODY=$(curl -fs --max-time 5 "$DIRECT_URL")
if [[ $DIRECT_BODY != "$(curl -fs --max-time 5 "$GATE_URL")" ]]; then
    echo "GET /bench differs between the backend and scopegate; refusing to compare" >&2
    exit 1
fi

# session_token PORT NAME LOG: a token from the md5 handshake, or exit.
SIGNATURE=$(printf '%s%s' "$API_KEY" "$PRIVATE_KEY" | md5sum | cut -d' ' -f1)
session_token() {
    local answer token
    answer=$(curl -sS --max-time 5 -w '\n%{http_code}' \
        "http://$HOST:$1/sessionToken?apiKey=$API_KEY&timestamp=$(date +%s)&signature=$SIGNATURE") || true
    token=$(sed -n 's/.*"sessionToken":"\([^"]*\)".*/\1/p' <<<"$answer")
    if [[ ! $token =~ ^st:api:api:[0-9a-f]{32}$ ]]; then
        echo "$2: the session handshake failed (answer, then status: $(tr '\n' ' ' <<<"$answer")); its log:" >&2
        cat "$3" >&2
        exit 1
    fi
    printf '%s' "$token"
}
SMEM_TOKEN=$(session_token $SMEM_PORT "scopegate (session, memory)" "$TMP/session-memory.log")
SREDIS_TOKEN=$(session_token $SREDIS_PORT "scopegate (session, redis)" "$TMP/session-redis.log")
SCACHE_TOKEN=$(session_token $SCACHE_PORT "scopegate (session, redis + cache)" "$TMP/session-cached.log")

# check_session URL TOKEN NAME: with the bearer, the backend's answer; without
# it, 401 (so the rows do measure an authenticated route).
check_session() {
    local status
    if [[ $(curl -fs --max-time 5 -H "Authorization: Bearer $2" "$1") != "$DIRECT_BODY" ]]; then
        echo "GET /bench with a session token differs between the backend and $3; refusing to compare" >&2
        exit 1
    fi
    status=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$1")
    if [[ $status != 401 ]]; then
        echo "$3: GET /bench without a session token answered $status, not 401" >&2
        exit 1
    fi
}
check_session "$SMEM_URL" "$SMEM_TOKEN" "scopegate (session, memory)"
check_session "$SREDIS_URL" "$SREDIS_TOKEN" "scopegate (session, redis)"
check_session "$SCACHE_URL" "$SCACHE_TOKEN" "scopegate (session, redis + cache)"

TARGETS=(direct scopegate smem sredis scache)
declare -A LABEL=([direct]=direct [scopegate]=scopegate [smem]="session (memory)" [sredis]="session (redis)"
    [scache]="session (redis, local_cache 1s)")
declare -A URL=([direct]=$DIRECT_URL [scopegate]=$GATE_URL [smem]=$SMEM_URL [sredis]=$SREDIS_URL
    [scache]=$SCACHE_URL)
declare -A TOKEN=([direct]="" [scopegate]="" [smem]=$SMEM_TOKEN [sredis]=$SREDIS_TOKEN
    [scache]=$SCACHE_TOKEN)

# run_wrk CONNS URL OUT [TOKEN]: one bounded wrk run, with the bearer TOKEN
# when one is given. In the background and waited for, so that Ctrl-C /
# SIGTERM reach the trap at once (timeout passes the signal on to wrk).
run_wrk() {
    local conns=$1 threads=$(( $1 < 2 ? $1 : 2 )) auth=()
    [[ -n ${4:-} ]] && auth=(-H "Authorization: Bearer $4")
    timeout $(( SECS + 15 )) ${WRK_PIN[@]+"${WRK_PIN[@]}"} \
        wrk -t"$threads" -c"$conns" -d"${SECS}s" --latency ${auth[@]+"${auth[@]}"} "$2" >"$3" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || true
    WRK_PID=
}



echo "warming up..." >&2
for target in "${TARGETS[@]}"; do
    run_wrk 16 "${URL[$target]}" /dev/null "${TOKEN[$target]}"
done

declare -A RESULT
FAILED=0
NOTES=()
for c in "${CONNS[@]}"; do
    for target in "${TARGETS[@]}"; do
        echo "wrk: ${LABEL[$target]}, $c connections, ${SECS}s..." >&2
        out="$TMP/wrk-$target-$c.txt"
        run_wrk "$c" "${URL[$target]}" "$out" "${TOKEN[$target]}"
        RESULT[$target,$c]=$(parse "$out")
        if [[ ${RESULT[$target,$c]} == fail ]]; then
            FAILED=1
            NOTES+=("${LABEL[$target]}, $c conns: wrk failed or timed out: $(tail -n 3 "$out" | tr '\n' ' ')")
            continue
        fi
        read -r _ _ _ _ bad errs <<<"${RESULT[$target,$c]}"
        if (( bad > 0 || errs > 0 )); then
            FAILED=1
            NOTES+=("${LABEL[$target]}, $c conns: $bad non-2xx responses, $errs socket errors")
        fi
    done
done

echo
echo "GET /bench ($(curl -fs "$DIRECT_URL" | wc -c) bytes), ${SECS}s per run, wrk threads = min(conns, 2)," \
    "PIN=${PIN:-0}, $(nproc) cores: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo "session rows: Authorization: Bearer <token> on a route with auth = [\"session\"];" \
    "Redis $("$REDIS_SERVER" --version | awk '{ print $3 }' | sed 's/^v=//') on $HOST:$REDIS_PORT"
echo
echo "| target | conns | req/s | p50 | p99 | ratio vs direct (req/s) | added p50 |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for target in "${TARGETS[@]}"; do
    for c in "${CONNS[@]}"; do
        r=${RESULT[$target,$c]}
        if [[ $r == fail ]]; then
            echo "| ${LABEL[$target]} | $c | failed | | | | |"
            continue
        fi
        read -r rps p50 p99 _ _ _ <<<"$r"
        ratio="1.00"
        added="-"
        if [[ $target != direct ]]; then
            d=${RESULT[direct,$c]}
            if [[ $d == fail ]]; then
                ratio="n/a"
                added="n/a"
            else
                read -r drps dp50 _ _ _ _ <<<"$d"
                ratio=$(awk -v a="$rps" -v b="$drps" 'BEGIN { printf "%.2f", a / b }')
                added=$(fmt_delta_us "$(awk -v a="$p50" -v b="$dp50" 'BEGIN { print a - b }')")
            fi
        fi
        echo "| ${LABEL[$target]} | $c | $rps | $(fmt_us "$p50") | $(fmt_us "$p99") | $ratio | $added |"
    done
done
for note in ${NOTES[@]+"${NOTES[@]}"}; do
    echo "warning: $note"
done
exit "$FAILED"
