#!/usr/bin/env bash
# Loopback comparison of scopegate with the proxies an operator would put in
# front of a booking API instead: the same static upstream answer, directly,
# through nginx proxy_pass, through HAProxy (plain, and checking an HS256
# bearer JWT with jwt_verify), and through scopegate with each of its
# credential schemes. Prints machine information and a markdown table.
#
#   benches/peers.sh                                   # every target, ~20 min
#   DURATION=2 REPS=1 CONNS="16" benches/peers.sh      # a quick look
#   TARGETS="direct nginx_proxy haproxy_jwt sg_search" benches/peers.sh
#   UNPINNED=1 WORKERS=2 TARGETS="direct sg_public sg_search" benches/peers.sh
#
# Knobs (environment):
#   TARGETS     subset of: direct nginx_proxy haproxy_proxy haproxy_jwt
#               sg_public sg_search sg_session sg_session_redis
#               sg_session_cached sg_sso sg_apikey sg_link (default: all)
#   CONNS       wrk connections, one run each (default "1 16 64"); wrk -t1
#   DURATION    seconds per run, "10" or "10s" (default 10)
#   REPS        repetitions (default 3); the target order is rotated each
#               repetition, so runs of different targets interleave; the
#               table shows medians
#   WARMUP      seconds of warm-up per target at 16 connections (default 2)
#   WORKERS     scopegate `run --workers N` (default 1)
#   PEER_WORKERS  nginx worker_processes / HAProxy nbthread (default 1)
#   UNPINNED=1  no CPU pinning (the way to look at WORKERS=2 scaling)
#   SERVER_CPU  taskset CPU list of every server: upstream, nginx, HAProxy,
#               scopegate, Redis (default 1)
#   CLIENT_CPU  taskset CPU list of wrk (default 0)
#   KEEP_TMP=1  keep the temporary directory (configs, logs, wrk output)
#   NGINX, HAPROXY, REDIS_SERVER   binaries (default: from PATH or /usr/sbin)
#
# Needs wrk, curl, timeout, taskset (unless UNPINNED=1) and cargo; nginx,
# haproxy, redis-server and openssl are optional: without one, the rows that
# need it are skipped with the apt-get line that would add it (Debian/Ubuntu:
# apt-get install -y nginx haproxy redis-server openssl; only the binaries are
# used, never the system services). Root is not needed.
#
# Every server is a private instance whose configuration, pid file and logs
# live in a mktemp directory, listening on 127.0.0.1 only, on fixed ports
# 18180-18194 that are checked free first (benches/load.sh uses 18080-18083
# and 19090-19092, so both can coexist). Everything is stopped on exit,
# Ctrl-C included. Each wrk run is bounded with `timeout`.
#
# The upstream is a private nginx answering GET /bench with a fixed ~300-byte
# JSON body (access log off, long keep-alive); without nginx, the demo
# backend's GET /bench (target/release/examples/demo --backend-only). Every
# row's request reaches the upstream as GET /bench; scopegate's schemes are
# told apart by the Host header (one route per scheme, `host = "..."`), which
# is what lets the demo backend stand in for nginx. The exception is the
# action link, whose upstream path must carry the booking id (GET
# /bench/b-1001): nginx answers it alike, the demo backend cannot, so
# sg_link needs nginx.
#
# Targets:
#   direct            the upstream itself (the ceiling)
#   nginx_proxy       nginx proxy_pass, keep-alive pool toward the upstream
#   haproxy_proxy     HAProxy mode http, no authentication
#   haproxy_jwt       HAProxy checking Authorization: Bearer <HS256 JWT>:
#                     alg, signature, exp in the future; `sub` copied into
#                     X-Scope-Subject after deleting the client's copy
#   sg_public         scopegate, auth = ["public"]
#   sg_search         signed search: HS256 JWT bound to search=customer.email:..
#   sg_session        session bearer token, memory store
#   sg_session_redis  session bearer token, Redis store (a second scopegate
#                     with the same configuration: the store is per process)
#   sg_session_cached the same behind the local session cache
#                     (store.local_cache = "1s"; a third scopegate)
#   sg_sso            SSO v2 token (X-SSO-Token, X-SSO-Company)
#   sg_apikey         API key + secret key headers
#   sg_link           action link (GET, not single-use)
# Credentials are minted with `scopegate token ...` and `scopegate key new`
# (openssl for HAProxy's JWT); the secrets are files named by `*_file` (for
# HAProxy an environment variable read by its configuration). Before
# measuring, each target must answer 200 with the upstream's body to its
# credential and 401 to a tampered or missing one; a target that fails is
# not measured (the table says why) and the script exits 1.
#
# Pinned mode (the default): every server on SERVER_CPU (launched under
# taskset, then every thread of every process re-pinned with taskset -a -p),
# wrk on CLIENT_CPU, so the servers compete for one core as they would at
# equal resources. "CPU us/req" is the utime+stime the target's own processes
# spent during the run (from /proc/PID/stat, the process and its children)
# divided by the requests served: for direct the upstream; for proxies the
# proxy alone; for sg_session_redis and sg_session_cached scopegate plus
# redis-server.
# Non-2xx answers or socket errors in any run flag the cell with "!" and make
# the exit status 1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
HOST=127.0.0.1
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
UPSTREAM_PORT=18180
NGINX_PROXY_PORT=18181
HAPROXY_PLAIN_PORT=18182
HAPROXY_JWT_PORT=18183
GATE_PORT=18190
GATE_ADMIN_PORT=18191
GATE_REDIS_PORT=18192
GATE_REDIS_ADMIN_PORT=18193
REDIS_PORT=18194
GATE_CACHE_PORT=18195
GATE_CACHE_ADMIN_PORT=18196

ALL_TARGETS=(direct nginx_proxy haproxy_proxy haproxy_jwt sg_public sg_search
    sg_session sg_session_redis sg_session_cached sg_sso sg_apikey sg_link)
declare -A LABEL=(
    [direct]="direct"
    [nginx_proxy]="nginx proxy_pass"
    [haproxy_proxy]="HAProxy (no auth)"
    [haproxy_jwt]="HAProxy jwt_verify"
    [sg_public]="scopegate public"
    [sg_search]="scopegate signed search"
    [sg_session]="scopegate session (memory)"
    [sg_session_redis]="scopegate session (Redis)"
    [sg_session_cached]="scopegate session (Redis, local cache)"
    [sg_sso]="scopegate SSO v2"
    [sg_apikey]="scopegate API key"
    [sg_link]="scopegate action link"
)

die() { echo "$*" >&2; exit 1; }

# --- knobs ---------------------------------------------------------------
DURATION=${DURATION:-10}
SECS=0
[[ $DURATION =~ ^([0-9]{1,5})s?$ ]] && SECS=$((10#${BASH_REMATCH[1]}))
(( SECS > 0 )) || die "DURATION must be a whole number of seconds, e.g. 10 or 10s (got '$DURATION')"
REPS=${REPS:-3}
[[ $REPS =~ ^[1-9][0-9]{0,2}$ ]] || die "REPS must be a positive number (got '$REPS')"
WARMUP=${WARMUP:-2}
[[ $WARMUP =~ ^[0-9]{1,4}$ ]] || die "WARMUP must be a number of seconds (got '$WARMUP')"
WORKERS=${WORKERS:-1}
[[ $WORKERS =~ ^[1-9][0-9]{0,3}$ ]] || die "WORKERS must be a positive number (got '$WORKERS')"
PEER_WORKERS=${PEER_WORKERS:-1}
[[ $PEER_WORKERS =~ ^[1-9][0-9]{0,3}$ ]] || die "PEER_WORKERS must be a positive number (got '$PEER_WORKERS')"
read -r -a CONNS <<<"${CONNS:-1 16 64}"
(( ${#CONNS[@]} > 0 )) || die "CONNS must list at least one connection count"
for c in "${CONNS[@]}"; do
    [[ $c =~ ^[1-9][0-9]{0,4}$ ]] || die "CONNS must be positive numbers (got '$c')"
done
read -r -a TARGETS <<<"${TARGETS:-${ALL_TARGETS[*]}}"
for t in "${TARGETS[@]}"; do
    [[ -n ${LABEL[$t]+x} ]] || die "unknown target '$t'; known: ${ALL_TARGETS[*]}"
done
UNPINNED=${UNPINNED:-0}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}

# --- tools ---------------------------------------------------------------
command -v wrk >/dev/null ||
    die "wrk is not installed. On Debian/Ubuntu: sudo apt-get install -y wrk"
for tool in curl timeout cargo cmp od ps; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
# find_tool NAME OVERRIDE: the binary's path, from the override, PATH or /usr/sbin.
find_tool() {
    if [[ -n $2 ]]; then
        command -v "$2" || true
    else
        command -v "$1" || { [[ -x /usr/sbin/$1 ]] && echo "/usr/sbin/$1"; } || true
    fi
}
NGINX=$(find_tool nginx "${NGINX:-}")
HAPROXY=$(find_tool haproxy "${HAPROXY:-}")
REDIS_SERVER=$(find_tool redis-server "${REDIS_SERVER:-}")
OPENSSL=$(command -v openssl || true)

SKIPPED=()
# drop TARGET WHY: leave TARGET out of this run, saying why.
drop() {
    local keep=() t
    for t in "${TARGETS[@]}"; do
        [[ $t == "$1" ]] || keep+=("$t")
    done
    if (( ${#keep[@]} < ${#TARGETS[@]} )); then
        SKIPPED+=("${LABEL[$1]}: $2")
        echo "skipping ${LABEL[$1]}: $2" >&2
    fi
    TARGETS=(${keep[@]+"${keep[@]}"})
}
# wants NAME: NAME is a target of this run; NAME ending in "_" (sg_,
# haproxy_) stands for any target starting with it.
wants() {
    local t
    for t in "${TARGETS[@]}"; do
        if [[ $1 == *_ ]]; then
            [[ $t == "$1"* ]] && return 0
        else
            [[ $t == "$1" ]] && return 0
        fi
    done
    return 1
}
if [[ -z $NGINX ]]; then
    echo "nginx is not installed (sudo apt-get install -y nginx); the upstream is the demo backend" >&2
    drop nginx_proxy "nginx not installed (sudo apt-get install -y nginx)"
    drop sg_link "needs the nginx upstream (sudo apt-get install -y nginx): the demo backend answers only GET /bench"
fi
[[ -n $HAPROXY ]] || {
    drop haproxy_proxy "haproxy not installed (sudo apt-get install -y haproxy)"
    drop haproxy_jwt "haproxy not installed (sudo apt-get install -y haproxy)"
}
[[ -n $OPENSSL ]] || drop haproxy_jwt "openssl (to mint its JWT) not installed (sudo apt-get install -y openssl)"
[[ -n $REDIS_SERVER ]] || {
    drop sg_session_redis "redis-server not installed (sudo apt-get install -y redis-server)"
    drop sg_session_cached "redis-server not installed (sudo apt-get install -y redis-server)"
}
(( ${#TARGETS[@]} > 0 )) || die "nothing left to measure"

SERVER_PIN=()
CLIENT_PIN=()
if [[ $UNPINNED != 1 ]]; then
    command -v taskset >/dev/null || die "pinning needs taskset (util-linux), or set UNPINNED=1"
    (( $(nproc) >= 2 )) || die "pinning needs at least 2 cores; set UNPINNED=1"
    [[ $SERVER_CPU =~ ^[0-9,-]+$ && $CLIENT_CPU =~ ^[0-9,-]+$ ]] ||
        die "SERVER_CPU and CLIENT_CPU are taskset CPU lists, e.g. 1 or 2-3"
    SERVER_PIN=(taskset -c "$SERVER_CPU")
    CLIENT_PIN=(taskset -c "$CLIENT_CPU")
    if (( WORKERS > 1 )) && [[ $SERVER_CPU =~ ^[0-9]+$ ]]; then
        echo "note: WORKERS=$WORKERS but every server is pinned to CPU $SERVER_CPU; UNPINNED=1 (or a wider SERVER_CPU) shows scaling" >&2
    fi
fi

# --- ports, temporary directory, cleanup ---------------------------------
PORTS=("$UPSTREAM_PORT")
wants nginx_proxy && PORTS+=("$NGINX_PROXY_PORT")
wants haproxy_ && PORTS+=("$HAPROXY_PLAIN_PORT" "$HAPROXY_JWT_PORT")
wants sg_ && PORTS+=("$GATE_PORT" "$GATE_ADMIN_PORT")
wants sg_session_redis && PORTS+=("$GATE_REDIS_PORT" "$GATE_REDIS_ADMIN_PORT")
wants sg_session_cached && PORTS+=("$GATE_CACHE_PORT" "$GATE_CACHE_ADMIN_PORT")
{ wants sg_session_redis || wants sg_session_cached; } && PORTS+=("$REDIS_PORT")
for port in "${PORTS[@]}"; do
    port_in_use "$port" && die "$HOST:$port is already in use; stop whatever listens there first"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/scopegate-peers.XXXXXX")
PIDS=()
WRK_PID=
# shellcheck disable=SC2317  # run from the EXIT trap
cleanup() {
    local pid
    [[ -n $WRK_PID ]] && PIDS+=("$WRK_PID")
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        echo "kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build ---------------------------------------------------------------
if wants sg_ || [[ -z $NGINX ]]; then
    build=(--bin scopegate)
    [[ -z $NGINX ]] && build+=(--example demo)
    echo "building (release): ${build[*]}..." >&2
    (cd "$ROOT" && cargo build --release --quiet "${build[@]}")
fi
GATE=$TARGET_DIR/release/scopegate
DEMO=$TARGET_DIR/release/examples/demo

# --- servers -------------------------------------------------------------
declare -A PID_OF
# start NAME LOG COMMAND...: COMMAND in the background, pinned, logging to LOG.
start() {
    local name=$1 log=$2
    shift 2
    ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "$@" >"$log" 2>&1 &
    PID_OF[$name]=$!
    PIDS+=("$!")
}
# wait_for NAME URL LOG: until URL answers at all (any status), or fail after 10 s.
wait_for() {
    local i code
    for i in $(seq 100); do
        code=$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "$2" || true)
        [[ $code != 000 ]] && return 0
        if ! kill -0 "${PID_OF[$1]}" 2>/dev/null; then
            echo "$1 exited early; its log:" >&2
            cat "$3" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "$1 not ready after 10 s; its log:" >&2
    cat "$3" >&2
    exit 1
}

BODY='{"data":[{"id":"b-1001","state":"confirmed","resource":"room-a","start":"2030-01-01T09:00:00Z","end":"2030-01-01T10:00:00Z","customer":{"name":"Ada Lovelace","email":"ada@example.com"},"possible_actions":["cancel_by_customer","reschedule_by_customer"]}],"meta":{"page":1,"per_page":20,"total":1}}'
UPSTREAM_URL="http://$HOST:$UPSTREAM_PORT"
if [[ -n $NGINX ]]; then
    UPSTREAM_KIND="nginx $("$NGINX" -v 2>&1 | sed 's|.*nginx/||')"
    # /whoami echoes X-Scope-Subject, to check what HAProxy forwards.
    nginx_conf "$TMP/upstream" "    server {
        listen $HOST:$UPSTREAM_PORT;
        default_type application/json;
        location / { return 200 '$BODY'; }
        location = /whoami { default_type text/plain; return 200 \$http_x_scope_subject; }
    }" "$PEER_WORKERS"
    start upstream "$TMP/upstream/stderr.log" \
        "$NGINX" -p "$TMP/upstream" -e "$TMP/upstream/error.log" -c "$TMP/upstream/nginx.conf"
    UPSTREAM_LOG=$TMP/upstream/error.log
else
    UPSTREAM_KIND="demo backend"
    start upstream "$TMP/upstream.log" "$DEMO" --backend-only --listen "$HOST:$UPSTREAM_PORT"
    UPSTREAM_LOG=$TMP/upstream.log
fi
wait_for upstream "$UPSTREAM_URL/bench" "$UPSTREAM_LOG"
code=$(curl -s -o "$TMP/upstream.body" --max-time 5 -w '%{http_code}' "$UPSTREAM_URL/bench" || true)
[[ $code == 200 && -s $TMP/upstream.body ]] || die "the upstream answered GET /bench with $code"

if wants nginx_proxy; then
    nginx_conf "$TMP/nginx-proxy" "    upstream bench {
        server $HOST:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }
    server {
        listen $HOST:$NGINX_PROXY_PORT;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }" "$PEER_WORKERS"
    start nginx_proxy "$TMP/nginx-proxy/stderr.log" \
        "$NGINX" -p "$TMP/nginx-proxy" -e "$TMP/nginx-proxy/error.log" -c "$TMP/nginx-proxy/nginx.conf"
    wait_for nginx_proxy "http://$HOST:$NGINX_PROXY_PORT/bench" "$TMP/nginx-proxy/error.log"
fi

# A random lowercase hex secret of $1 bytes.
rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
b64url() { "$OPENSSL" base64 -A | tr '+/' '-_' | tr -d '='; }
# jwt HEADER_JSON PAYLOAD_JSON: an HS256 JWS with the HAProxy secret.
jwt() {
    local signing_input
    signing_input="$(printf '%s' "$1" | b64url).$(printf '%s' "$2" | b64url)"
    printf '%s.%s' "$signing_input" \
        "$(printf '%s' "$signing_input" | "$OPENSSL" dgst -sha256 -hmac "$JWT_SECRET" -binary | b64url)"
}

if wants haproxy_; then
    # One process, two frontends: a plain proxy, and one that admits only an
    # HS256 bearer JWT (alg checked before the signature, exp in the future,
    # a non-empty sub), replacing any X-Scope-Subject the client sent by the
    # token's sub. The secret comes from the environment, not the file.
    JWT_SECRET=$(rand_hex 32)
    cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread $PEER_WORKERS
    pidfile $TMP/haproxy.pid
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 300s

frontend plain
    bind $HOST:$HAPROXY_PLAIN_PORT
    default_backend bench

frontend jwt
    bind $HOST:$HAPROXY_JWT_PORT
    http-request del-header X-Scope-Subject
    http-request set-var(txn.bearer) http_auth_bearer
    http-request deny deny_status 401 unless { var(txn.bearer) -m found }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_header_query('\$.alg') -m str HS256 }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify("HS256","\${BENCH_JWT_SECRET}") -m int 1 }
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
    http-request set-var(txn.now) date
    http-request deny deny_status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
    http-request set-var(txn.sub) var(txn.bearer),jwt_payload_query('\$.sub')
    http-request deny deny_status 401 unless { var(txn.sub) -m len gt 0 }
    http-request set-header X-Scope-Subject %[var(txn.sub)]
    default_backend bench

backend bench
    http-reuse always
    server upstream $HOST:$UPSTREAM_PORT
EOF
    start haproxy "$TMP/haproxy.log" env BENCH_JWT_SECRET="$JWT_SECRET" \
        "$HAPROXY" -db -f "$TMP/haproxy.cfg"
    wait_for haproxy "http://$HOST:$HAPROXY_PLAIN_PORT/bench" "$TMP/haproxy.log"
fi

if wants sg_session_redis || wants sg_session_cached; then
    start redis "$TMP/redis.log" "$REDIS_SERVER" --bind "$HOST" --port "$REDIS_PORT" \
        --save "" --appendonly no --dir "$TMP" --daemonize no --logfile ""
    for i in $(seq 50); do
        redis_ping "$REDIS_PORT" && break
        kill -0 "${PID_OF[redis]}" 2>/dev/null || { cat "$TMP/redis.log" >&2; die "redis-server exited early"; }
        (( i < 50 )) || { cat "$TMP/redis.log" >&2; die "redis-server not ready after 5 s"; }
        sleep 0.1
    done
fi

if wants sg_; then
    # Secrets, each in its own file, named by the configuration (*_file).
    rand_hex 32 >"$TMP/app.key"
    rand_hex 32 >"$TMP/business.key"
    rand_hex 32 >"$TMP/sso.key"
    rand_hex 32 >"$TMP/application.key"
    printf 'redis://%s:%s/0\n' "$HOST" "$REDIS_PORT" >"$TMP/redis.url"
    "$GATE" key new --application bench-app --business bench \
        --permissions bookings_r_all >"$TMP/key-new.out"
    API_KEY=$(head -n 1 "$TMP/key-new.out")
    APPLICATION_SECRET=$(cat "$TMP/application.key")

    # gate_config FILE PORT ADMIN_PORT STORE_TOML: one route per scheme, each
    # GET /bench to the upstream, told apart by host; the action link
    # becomes GET /bench/<booking id>.
    gate_config() {
        gate_head "$1" "$2" "$3" "$UPSTREAM_URL"
        cat >>"$1" <<EOF
[[route]]
name = "session"
host = "session.bench"
methods = ["GET"]
path = "/bench"
auth = ["session"]
upstream = "bench"

[[route]]
name = "sso"
host = "sso.bench"
methods = ["GET"]
path = "/bench"
auth = ["sso"]
upstream = "bench"

[[route]]
name = "apikey"
host = "key.bench"
methods = ["GET"]
path = "/bench"
auth = ["api-key"]
upstream = "bench"
require = "bookings"

[[route]]
name = "link"
methods = ["GET"]
path = "/link/{id}/{action}"
auth = ["action-link"]
upstream = "bench"

$4

[[app]]
slug = "bench"
[[app.key]]
key_file = "app.key"

[action_links]
link_path = "/link/{id}/{action}"

[[action]]
name = "view"
methods = ["GET"]
upstream = "GET /bench/{id}"
single_use = false
ttl = "1d"

[[business]]
id = "bench"
api_key = "bench-api-key"
private_key_file = "business.key"
signature = "md5"
idle = "24h"
max_lifetime = "24h"

[[sso_company]]
company_id = "4242"
secure_key_file = "sso.key"
accept_legacy = false

[[application]]
id = "bench-app"
name = "Bench"
secret_key_file = "application.key"

$(sed -n '/^\[\[api_key\]\]/,$p' "$TMP/key-new.out")
EOF
    }
    gate_config "$TMP/gate.toml" "$GATE_PORT" "$GATE_ADMIN_PORT" \
        "$(printf '[store]\nbackend = "memory"')"
    gate_config "$TMP/gate-redis.toml" "$GATE_REDIS_PORT" "$GATE_REDIS_ADMIN_PORT" \
        "$(printf '[store]\nbackend = "redis"\nurl_file = "redis.url"\nkey_prefix = "scopegate-peers:"')"
    gate_config "$TMP/gate-cached.toml" "$GATE_CACHE_PORT" "$GATE_CACHE_ADMIN_PORT" \
        "$(printf '[store]\nbackend = "redis"\nurl_file = "redis.url"\nkey_prefix = "scopegate-peers:"\nlocal_cache = "1s"')"

    # No override from this shell: RUST_LOG would turn access records back
    # on, SCOPEGATE_* would move listeners or change the worker count.
    SCRUB=(env -u RUST_LOG)
    while IFS= read -r var; do
        SCRUB+=(-u "$var")
    done < <(compgen -e | grep '^SCOPEGATE_' || true)

    for cfg in gate gate-redis gate-cached; do
        [[ $cfg == gate-redis ]] && ! wants sg_session_redis && continue
        [[ $cfg == gate-cached ]] && ! wants sg_session_cached && continue
        if ! "${SCRUB[@]}" "$GATE" check --config "$TMP/$cfg.toml" >"$TMP/$cfg.check" 2>&1; then
            cat "$TMP/$cfg.check" >&2
            die "scopegate check refused $TMP/$cfg.toml"
        fi
    done
    start scopegate "$TMP/gate.log" "${SCRUB[@]}" "$GATE" run --config "$TMP/gate.toml" --workers "$WORKERS"
    wait_for scopegate "http://$HOST:$GATE_ADMIN_PORT/readyz" "$TMP/gate.log"
    if wants sg_session_redis; then
        start scopegate_redis "$TMP/gate-redis.log" "${SCRUB[@]}" \
            "$GATE" run --config "$TMP/gate-redis.toml" --workers "$WORKERS"
        wait_for scopegate_redis "http://$HOST:$GATE_REDIS_ADMIN_PORT/readyz" "$TMP/gate-redis.log"
    fi
    if wants sg_session_cached; then
        start scopegate_cached "$TMP/gate-cached.log" "${SCRUB[@]}" \
            "$GATE" run --config "$TMP/gate-cached.toml" --workers "$WORKERS"
        wait_for scopegate_cached "http://$HOST:$GATE_CACHE_ADMIN_PORT/readyz" "$TMP/gate-cached.log"
    fi
fi

# Every thread of every server process (nginx workers included) on SERVER_CPU.
if [[ $UNPINNED != 1 ]]; then
    for name in "${!PID_OF[@]}"; do
        for pid in $(ps -e -o pid= -o ppid= | awk -v root="${PID_OF[$name]}" '
                { parent[$1] = $2 }
                END {
                    keep[root] = 1
                    do { grew = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 } } while (grew)
                    for (p in keep) print p
                }'); do
            taskset -a -p -c "$SERVER_CPU" "$pid" >/dev/null ||
                die "could not pin $name (pid $pid) to CPU $SERVER_CPU"
        done
    done
fi

# --- what each target is: URL, request headers, processes -----------------
declare -A URL HDRS PROCS CHECK_FAIL
URL[direct]="$UPSTREAM_URL/bench"; PROCS[direct]=upstream
URL[nginx_proxy]="http://$HOST:$NGINX_PROXY_PORT/bench"; PROCS[nginx_proxy]=nginx_proxy
URL[haproxy_proxy]="http://$HOST:$HAPROXY_PLAIN_PORT/bench"; PROCS[haproxy_proxy]=haproxy
URL[haproxy_jwt]="http://$HOST:$HAPROXY_JWT_PORT/bench"; PROCS[haproxy_jwt]=haproxy
for t in sg_public sg_search sg_session sg_sso sg_apikey sg_link; do
    URL[$t]="http://$HOST:$GATE_PORT/bench"; PROCS[$t]=scopegate
done
URL[sg_session_redis]="http://$HOST:$GATE_REDIS_PORT/bench"; PROCS[sg_session_redis]="scopegate_redis redis"
URL[sg_session_cached]="http://$HOST:$GATE_CACHE_PORT/bench"; PROCS[sg_session_cached]="scopegate_cached redis"
for t in "${ALL_TARGETS[@]}"; do HDRS[$t]=""; done

# tamper STRING: STRING with one character 6 from its end changed (inside a
# JWT's signature or an SSO token's tag).
tamper() {
    local s=$1 i=$(( ${#1} - 6 )) c
    c=A
    [[ ${s:i:1} == A ]] && c=B
    printf '%s' "${s:0:i}$c${s:i+1}"
}
# probe URL [HEADER...]: the status of GET URL (000: no answer); the body in $TMP/probe.body.
probe() {
    local url=$1 h args=()
    shift
    for h in "$@"; do args+=(-H "$h"); done
    curl -s --max-time 5 -o "$TMP/probe.body" -w '%{http_code}' ${args[@]+"${args[@]}"} "$url" || true
}
# expect TARGET STATUS WHAT URL [HEADER...]: one check; a 200 must carry the
# upstream's body byte for byte. Failures are collected in CHECK_FAIL.
expect() {
    local t=$1 want=$2 what=$3 url=$4 got
    shift 4
    got=$(probe "$url" "$@")
    if [[ $got != "$want" ]]; then
        CHECK_FAIL[$t]+="$what answered $got, not $want; "
    elif [[ $want == 200 ]] && ! cmp -s "$TMP/probe.body" "$TMP/upstream.body"; then
        CHECK_FAIL[$t]+="$what answered 200 without the upstream's body; "
    fi
}
# headers_of TARGET: HDRS[TARGET] (one header a line) into the array H.
headers_of() {
    H=()
    local h
    while IFS= read -r h; do
        if [[ -n $h ]]; then H+=("$h"); fi
    done <<<"${HDRS[$1]}"
}

if wants haproxy_jwt; then
    now=$(date +%s)
    HS256='{"alg":"HS256","typ":"JWT"}'
    JWT=$(jwt "$HS256" "{\"sub\":\"ada@example.com\",\"exp\":$(( now + 86400 ))}")
    HDRS[haproxy_jwt]="Authorization: Bearer $JWT"
    u=${URL[haproxy_jwt]}
    expect haproxy_jwt 200 "valid token" "$u" "Authorization: Bearer $JWT"
    expect haproxy_jwt 401 "no token" "$u"
    expect haproxy_jwt 401 "tampered signature" "$u" "Authorization: Bearer $(tamper "$JWT")"
    expect haproxy_jwt 401 "expired token" "$u" \
        "Authorization: Bearer $(jwt "$HS256" "{\"sub\":\"ada@example.com\",\"exp\":$(( now - 60 ))}")"
    expect haproxy_jwt 401 "token without exp" "$u" \
        "Authorization: Bearer $(jwt "$HS256" '{"sub":"ada@example.com"}')"
    none_token="$(printf '%s' '{"alg":"none","typ":"JWT"}' | b64url).${JWT#*.}"
    expect haproxy_jwt 401 "alg none" "$u" "Authorization: Bearer ${none_token%.*}."
    if [[ -n $NGINX ]]; then
        got=$(probe "http://$HOST:$HAPROXY_JWT_PORT/whoami" "Authorization: Bearer $JWT" "X-Scope-Subject: mallory@example.com")
        [[ $got == 200 && $(cat "$TMP/probe.body") == ada@example.com ]] ||
            CHECK_FAIL[haproxy_jwt]+="the upstream got X-Scope-Subject '$(cat "$TMP/probe.body")', not the token's sub; "
    fi
fi

if wants sg_; then
    gate=$TMP/gate.toml
    # Signed search: a token for ada, bound to her email in `search`.
    token=$("$GATE" token signed-search --config "$gate" --app bench --email ada@example.com --ttl 1d 2>/dev/null)
    URL[sg_search]="http://$HOST:$GATE_PORT/bench?search=customer.email:ada@example.com&signed_search=$token"
    HDRS[sg_search]="Host: search.bench"
    expect sg_search 401 "no token" "http://$HOST:$GATE_PORT/bench?search=customer.email:ada@example.com" "Host: search.bench"
    expect sg_search 401 "tampered token" "${URL[sg_search]%=*}=$(tamper "$token")" "Host: search.bench"
    expect sg_search 401 "another customer's search" \
        "http://$HOST:$GATE_PORT/bench?search=customer.email:bob@example.com&signed_search=$token" "Host: search.bench"

    # Sessions: the md5 handshake signed by `token session-signature`, then the bearer.
    handshake=$("$GATE" token session-signature --config "$gate" --business bench 2>/dev/null)
    # session_token PORT: a session from that scopegate's handshake, or nothing.
    session_token() {
        curl -s --max-time 5 "http://$HOST:$1/sessionToken?$handshake" |
            sed -n 's/.*"sessionToken":"\([^"]*\)".*/\1/p'
    }
    bogus="Authorization: Bearer st:api:api:$(rand_hex 16)"
    for t in sg_session sg_session_redis sg_session_cached; do
        wants "$t" || continue
        port=$GATE_PORT
        [[ $t == sg_session_redis ]] && port=$GATE_REDIS_PORT
        [[ $t == sg_session_cached ]] && port=$GATE_CACHE_PORT
        token=$(session_token "$port")
        [[ -n $token ]] || CHECK_FAIL[$t]+="the session handshake failed; "
        HDRS[$t]=$(printf 'Host: session.bench\nAuthorization: Bearer %s' "$token")
        expect "$t" 401 "no token" "${URL[$t]}" "Host: session.bench"
        expect "$t" 401 "unknown token" "${URL[$t]}" "Host: session.bench" "$bogus"
    done

    # SSO: a v2 token of company 4242, read from X-SSO-Token.
    token=$("$GATE" token sso --config "$gate" --company 4242 --email ada@example.com --ttl 1d)
    HDRS[sg_sso]=$(printf 'Host: sso.bench\nX-SSO-Company: 4242\nX-SSO-Token: %s' "$token")
    expect sg_sso 401 "no token" "${URL[sg_sso]}" "Host: sso.bench" "X-SSO-Company: 4242"
    expect sg_sso 401 "tampered token" "${URL[sg_sso]}" "Host: sso.bench" "X-SSO-Company: 4242" \
        "X-SSO-Token: $(tamper "$token")"

    # API key: the key from `key new`, the application's secret key.
    HDRS[sg_apikey]=$(printf 'Host: key.bench\nX-Bookeo-apiKey: %s\nX-Bookeo-secretKey: %s' \
        "$API_KEY" "$APPLICATION_SECRET")
    expect sg_apikey 401 "no key" "${URL[sg_apikey]}" "Host: key.bench"
    expect sg_apikey 401 "wrong secret key" "${URL[sg_apikey]}" "Host: key.bench" \
        "X-Bookeo-apiKey: $API_KEY" "X-Bookeo-secretKey: $(tamper "$APPLICATION_SECRET")"

    # Action link: a path with ?signature=<JWT>, forwarded as GET /bench/b-1001.
    link=$("$GATE" token action-link --config "$gate" --app bench --booking b-1001 --action view --ttl 1d)
    URL[sg_link]="http://$HOST:$GATE_PORT$link"
    expect sg_link 401 "no signature" "http://$HOST:$GATE_PORT${link%%\?*}"
    expect sg_link 401 "tampered signature" "http://$HOST:$GATE_PORT$(tamper "$link")"
fi

# Every target: its credential gets the upstream's answer.
for t in "${TARGETS[@]}"; do
    headers_of "$t"
    expect "$t" 200 "valid request" "${URL[$t]}" ${H[@]+"${H[@]}"}
done
CHECKED=()
for t in "${TARGETS[@]}"; do
    if [[ -n ${CHECK_FAIL[$t]:-} ]]; then
        echo "${LABEL[$t]} failed its checks, not measured: ${CHECK_FAIL[$t]}" >&2
    else
        CHECKED+=("$t")
    fi
done

# --- measurement ---------------------------------------------------------
# tree_of NAME...: the pids of those servers and all their descendants.
tree_of() {
    local name roots=()
    for name in "$@"; do roots+=("${PID_OF[$name]}"); done
    ps -e -o pid= -o ppid= | awk -v roots="${roots[*]}" '
        { parent[$1] = $2 }
        END {
            n = split(roots, r, " ")
            for (i = 1; i <= n; i++) keep[r[i]] = 1
            do { grew = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 } } while (grew)
            for (p in keep) printf "%s ", p
        }'
}
# cpu_ticks PID...: their utime + stime (all threads), in clock ticks.
cpu_ticks() {
    local pid line f sum=0
    for pid in "$@"; do
        read -r line 2>/dev/null <"/proc/$pid/stat" || continue
        read -r -a f <<<"${line##*) }"
        sum=$(( sum + f[11] + f[12] ))
    done
    echo "$sum"
}
declare -A TREE
for t in "${CHECKED[@]}"; do
    read -r -a names <<<"${PROCS[$t]}"
    TREE[$t]=$(tree_of "${names[@]}")
done
CLK_TCK=$(getconf CLK_TCK)

# run_wrk TARGET CONNS SECONDS OUT: one bounded wrk run, in the background
# and waited for, so that Ctrl-C reaches the trap at once.
run_wrk() {
    local H
    headers_of "$1"
    local args=() h
    for h in ${H[@]+"${H[@]}"}; do args+=(-H "$h"); done
    timeout $(( $3 + 15 )) ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} \
        wrk -t1 -c"$2" -d"$3s" --latency ${args[@]+"${args[@]}"} "${URL[$1]}" >"$4" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || true
    WRK_PID=
}


LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if (( WARMUP > 0 )); then
    echo "warming up (${WARMUP}s each)..." >&2
    for t in "${CHECKED[@]}"; do
        run_wrk "$t" 16 "$WARMUP" /dev/null
    done
fi

declare -A RPS P50 P99 CPU FLAG
NOTES=()
FAILED=0
n=${#CHECKED[@]}
total=$(( REPS * ${#CONNS[@]} * n ))
run=0
for (( rep = 0; rep < REPS; rep++ )); do
    order=()
    for (( i = 0; i < n; i++ )); do
        order+=("${CHECKED[(i + rep) % n]}")
    done
    for c in "${CONNS[@]}"; do
        for t in ${order[@]+"${order[@]}"}; do
            run=$(( run + 1 ))
            echo "[$run/$total] rep $(( rep + 1 )): ${LABEL[$t]}, $c conns, ${SECS}s" >&2
            out=$TMP/wrk-$t-$c-$rep.txt
            read -r -a tree <<<"${TREE[$t]}"
            before=$(cpu_ticks "${tree[@]}")
            run_wrk "$t" "$c" "$SECS" "$out"
            after=$(cpu_ticks "${tree[@]}")
            r=$(parse "$out")
            if [[ $r == fail ]]; then
                FAILED=1
                FLAG[$t,$c]=1
                NOTES+=("${LABEL[$t]}, $c conns, rep $(( rep + 1 )): wrk failed or timed out: $(tail -n 2 "$out" | tr '\n' ' ')")
                continue
            fi
            read -r rps p50 p99 reqs bad errs <<<"$r"
            RPS[$t,$c]+="$rps "
            P50[$t,$c]+="$p50 "
            P99[$t,$c]+="$p99 "
            CPU[$t,$c]+="$(awk -v d=$(( after - before )) -v hz="$CLK_TCK" -v n="$reqs" \
                'BEGIN { printf "%.2f", d * 1000000 / hz / n }') "
            if (( bad > 0 || errs > 0 )); then
                FAILED=1
                FLAG[$t,$c]=1
                NOTES+=("${LABEL[$t]}, $c conns, rep $(( rep + 1 )): $bad non-2xx responses, $errs socket errors")
            fi
        done
    done
done

# --- report --------------------------------------------------------------
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# med KIND TARGET CONNS: the median of that metric, or nothing.
med() {
    local -n m=$1
    local vals
    read -r -a vals <<<"${m[$2,$3]:-}"
    (( ${#vals[@]} > 0 )) && median "${vals[@]}"
    return 0
}
ratio() {
    local ref
    ref=$(med RPS "$2" "$3")
    if [[ -z $ref || -z $1 ]]; then echo "-"; else awk -v a="$1" -v b="$ref" 'BEGIN { printf "%.2f", a / b }'; fi
}

version_of() {
    local v
    v=$(version_raw "$1")
    echo "${v:-not installed}"
}
version_raw() {
    case $1 in
        wrk) wrk -v 2>&1 | head -n 1 | awk '{ print $2 }' ;;
        nginx) [[ -n $NGINX ]] && "$NGINX" -v 2>&1 | sed 's|.*nginx/||' ;;
        haproxy) [[ -n $HAPROXY ]] && "$HAPROXY" -v 2>/dev/null | head -n 1 | awk '{ print $3 }' ;;
        redis) [[ -n $REDIS_SERVER ]] && "$REDIS_SERVER" --version | awk '{ print $3 }' | sed 's/^v=//' ;;
        scopegate) [[ -x $GATE ]] && "$GATE" --version | awk '{ print $2 }' ;;
    esac
    return 0
}
echo
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)," \
    "Linux $(uname -r); load average $LOAD_BEFORE before the runs, $(cut -d' ' -f1-3 /proc/loadavg) after"
echo "versions: scopegate $(version_of scopegate), nginx $(version_of nginx), HAProxy $(version_of haproxy)," \
    "Redis $(version_of redis), wrk $(version_of wrk)"
if [[ $UNPINNED == 1 ]]; then
    pinning="unpinned"
else
    pinning="servers on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU"
fi
echo "run: GET /bench ($(wc -c <"$TMP/upstream.body") bytes) from $UPSTREAM_KIND; $pinning;" \
    "scopegate --workers $WORKERS, nginx/HAProxy $PEER_WORKERS worker(s); wrk -t1, ${SECS}s per run," \
    "median of $REPS rep(s)"
echo "columns: ratios are of req/s; added p50 is over direct at the same connections; CPU us/req is" \
    "the target's own processes (direct: the upstream; session (Redis): scopegate and redis-server)"
echo
echo "| target | conns | req/s | p50 | p99 | CPU us/req | vs direct | vs nginx proxy_pass | vs HAProxy jwt | added p50 |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for t in "${ALL_TARGETS[@]}"; do
    in_run=0
    for x in "${TARGETS[@]}"; do [[ $x == "$t" ]] && in_run=1; done
    (( in_run )) || continue
    if [[ -n ${CHECK_FAIL[$t]:-} ]]; then
        FAILED=1
        echo "| ${LABEL[$t]} | | check failed | | | | | | | |"
        continue
    fi
    for c in "${CONNS[@]}"; do
        rps=$(med RPS "$t" "$c")
        if [[ -z $rps ]]; then
            echo "| ${LABEL[$t]} | $c | failed ! | | | | | | | |"
            continue
        fi
        rps=$(printf '%.0f' "$rps")
        p50=$(med P50 "$t" "$c")
        flag=""
        [[ -n ${FLAG[$t,$c]:-} ]] && flag=" !"
        added="-"
        dp50=$(med P50 direct "$c")
        [[ $t != direct && -n $dp50 ]] &&
            added=$(fmt_delta_us "$(awk -v a="$p50" -v b="$dp50" 'BEGIN { print a - b }')")
        echo "| ${LABEL[$t]} | $c | $rps$flag | $(fmt_us "$p50") | $(fmt_us "$(med P99 "$t" "$c")")" \
            "| $(printf '%.1f' "$(med CPU "$t" "$c")") | $(ratio "$rps" direct "$c")" \
            "| $(ratio "$rps" nginx_proxy "$c") | $(ratio "$rps" haproxy_jwt "$c") | $added |"
    done
done
echo
for t in "${TARGETS[@]}"; do
    [[ -n ${CHECK_FAIL[$t]:-} ]] && echo "not measured: ${LABEL[$t]}: ${CHECK_FAIL[$t]}"
done
for s in ${SKIPPED[@]+"${SKIPPED[@]}"}; do
    echo "skipped: $s"
done
for note in ${NOTES[@]+"${NOTES[@]}"}; do
    echo "warning: $note"
done
exit "$FAILED"
