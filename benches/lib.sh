# shellcheck shell=bash
# Shared by benches/load.sh, peers.sh and callgrind.sh (sourced, not run):
# loopback probes, wrk output parsing, and the configurations of a private
# nginx and of a benchmark gate. Needs HOST set by the caller.

# port_in_use PORT: something accepts connections on $HOST:PORT.
port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# redis_ping PORT: a Redis on $HOST:PORT answers PING.
redis_ping() {
    (
        exec 3<>"/dev/tcp/$HOST/$1" || exit 1
        printf 'PING\r\n' >&3
        IFS= read -r -t 1 reply <&3 && [[ $reply == "+PONG"* ]]
    ) 2>/dev/null
}

# parse FILE -> "req/s p50_us p99_us requests bad_responses socket_errors"
# (or "fail": no latency figures, or no request completed)
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
        / requests in / { reqs = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/ { for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) errs += $i }
        END {
            if (rps == "" || p50 == "" || p99 == "" || reqs + 0 == 0) print "fail"
            else printf "%.0f %.1f %.1f %d %d %d\n", rps, p50, p99, reqs, bad, errs
        }' "$1"
}

fmt_us() { awk -v u="$1" 'BEGIN { if (u < 1000) printf "%.0f us", u; else printf "%.2f ms", u / 1000 }'; }
fmt_delta_us() {
    awk -v u="$1" 'BEGIN {
        s = u < 0 ? "-" : "+"; a = u < 0 ? -u : u
        if (a < 1000) printf "%s%.0f us", s, a; else printf "%s%.2f ms", s, a / 1000
    }'
}

# nginx_conf DIR BODY [WORKERS]: the common part of a private nginx's
# configuration, with BODY inside http {} and WORKERS (default 1) workers. Foreground master (so its pid is ours), temp paths
# and pid file in DIR, no access log, keep-alive connections that last.
nginx_conf() {
    local dir=$1
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes ${3:-1};
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
$2
}
EOF
}

# gate_head FILE PORT ADMIN_PORT UPSTREAM_URL: the start of a benchmark
# gate's configuration: listeners on $HOST, warn-level logs (no access
# record; LOG_LEVEL=info LOG_FORMAT=json to count it), one upstream `bench`, and two routes to its GET /bench: `public`
# and `search` (signed search, for Host: search.bench).
gate_head() {
    cat >"$1" <<EOF
[listen]
address = "$HOST:$2"
drain_timeout = "1s"

[admin]
address = "$HOST:$3"

[log]
format = "${LOG_FORMAT:-human}"
level = "${LOG_LEVEL:-warn}"

[[upstream]]
name = "bench"
url = "$4"

[[route]]
name = "public"
methods = ["GET"]
path = "/bench"
auth = ["public"]
upstream = "bench"

[[route]]
name = "search"
host = "search.bench"
methods = ["GET"]
path = "/bench"
auth = ["signed-search"]
upstream = "bench"
EOF
}
