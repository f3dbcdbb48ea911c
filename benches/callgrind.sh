#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: the
# figure BENCHMARKS.md tracks change by change. Unlike req/s it does not move
# with whatever else the machine is doing (user space only; valgrind hides
# SHA-NI, so SHA-256 weighs more here than on the machine).
#
#   benches/callgrind.sh                       # public and signed search, 1,000 requests
#   N=2000 ROUTES=search benches/callgrind.sh
#   BIN=/path/to/other/scopegate benches/callgrind.sh   # compare another build
#   LOG_LEVEL=info benches/callgrind.sh        # with the access record (LOG_FORMAT=json)
#   KEEP=/tmp/cg benches/callgrind.sh          # keep the callgrind.out files, for
#                                              # callgrind_annotate --inclusive=yes
#
# How: scopegate runs under callgrind twice, in front of a private nginx
# answering a fixed JSON body (or, without nginx, the demo backend's /bench);
# once serving N0 requests, once N0 + N, all on one keep-alive connection
# (curl). The difference of the two totals, divided by N, is the cost of one
# request without start-up and shutdown. 127.0.0.1 only, ports 18280-18282,
# everything stopped on exit.
#
# Needs valgrind (callgrind_annotate), curl and cargo; nginx is optional.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
HOST=127.0.0.1
UP_PORT=18280
GATE_PORT=18281
ADMIN_PORT=18282
N=${N:-1000}
N0=${N0:-100}
ROUTES=${ROUTES:-public search}
# shellcheck source=benches/lib.sh
. "$ROOT/benches/lib.sh"

for tool in valgrind callgrind_annotate curl cargo; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install -y valgrind curl)" >&2; exit 1; }
done
for p in $UP_PORT $GATE_PORT $ADMIN_PORT; do
    if port_in_use "$p"; then echo "$HOST:$p is already in use" >&2; exit 1; fi
done

TMP=$(mktemp -d /tmp/scopegate-callgrind.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

if [[ -z ${BIN:-} ]]; then
    (cd "$ROOT" && cargo build --release --quiet --bin scopegate --example demo)
    BIN=$TARGET_DIR/release/scopegate
fi
# The gate runs from $TMP: a relative BIN must not depend on where we were.
BIN=$(realpath "$BIN")

# The upstream.
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
if [[ -x $NGINX ]]; then
    nginx_conf "$TMP/up" "    server {
        listen $HOST:$UP_PORT;
        default_type application/json;
        location / { return 200 '{\"data\":[{\"id\":\"b-1001\",\"state\":\"confirmed\"}]}'; }
    }"
    "$NGINX" -c "$TMP/up/nginx.conf" -p "$TMP/up" 2>"$TMP/up/stderr.log" &
    PIDS+=($!)
else
    echo "nginx not found: using the demo backend as the upstream" >&2
    "$TARGET_DIR/release/examples/demo" --backend-only --listen "$HOST:$UP_PORT" >"$TMP/demo.log" 2>&1 &
    PIDS+=($!)
fi

# The gate: a public route and a signed-search route (told apart by Host).
printf 'callgrind-bench-app-key-0123456789abcdef' >"$TMP/app.key"
gate_head "$TMP/gate.toml" "$GATE_PORT" "$ADMIN_PORT" "http://$HOST:$UP_PORT"
cat >>"$TMP/gate.toml" <<EOF

[[app]]
slug = "bench"
[[app.key]]
key_file = "app.key"
EOF
for _ in $(seq 50); do port_in_use "$UP_PORT" && break; sleep 0.1; done

TOKEN=$("$BIN" token signed-search --config "$TMP/gate.toml" --app bench --email ada@example.com --ttl 1d)

# Total instructions of one run serving $1 requests of route $2.
run() {
    local n=$1 route=$2 url host out=$TMP/cg.$2.$1.out vp
    case $route in
        public) url="http://$HOST:$GATE_PORT/bench" host="Host: public.bench" ;;
        search) url="http://$HOST:$GATE_PORT/bench?search=customer.email:ada@example.com&signed_search=$TOKEN"
                host="Host: search.bench" ;;
        *) echo "unknown route $route (public, search)" >&2; return 1 ;;
    esac
    (cd "$TMP" && exec valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$BIN" run --config gate.toml --workers 1 2>"$TMP/gate.$route.$n.log") &
    vp=$!
    for _ in $(seq 300); do port_in_use "$GATE_PORT" && break; sleep 0.1; done
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "$host" "$url")
    if [[ $code != 200 ]]; then
        echo "$route answered $code, not 200" >&2
        kill -INT "$vp"; wait "$vp" || true
        return 1
    fi
    for _ in $(seq $((n - 1))); do printf 'url = "%s"\noutput = /dev/null\n' "$url"; done >"$TMP/urls.cfg"
    curl -s -H "$host" -K "$TMP/urls.cfg"
    kill -INT "$vp"; wait "$vp" || true
    if [[ -n ${KEEP:-} ]]; then mkdir -p "$KEEP" && cp "$out" "$KEEP/"; fi
    callgrind_annotate "$out" 2>/dev/null |
        awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}

echo "binary: $BIN"
for route in $ROUTES; do
    a=$(run "$N0" "$route")
    b=$(run $((N0 + N)) "$route")
    echo "$route: $(( (b - a) / N )) instructions per request ($N requests)"
done
