#!/usr/bin/env bash
# Redirect throughput of clicktrack against nginx's static `return 302`, same
# machine, same wrk settings, in one run.
#
#   bench/redirect.sh                  # wrk -t2 -c64 -d10s, server on 1 thread
#   DURATION=30s CONNS=128 SERVER_THREADS=2 bench/redirect.sh
#   BENCH_REDIRECT_BIN=target/release/bench_redirect bench/redirect.sh   # no build
#   ROUNDS=5 bench/redirect.sh   # alternate nginx and sluice 5 times, report medians
#
# Installs wrk and nginx with apt-get if they are missing. Prints req/s and
# p99 latency of both, the ratio sluice/nginx (issue 19's target: >= 1.1),
# each server's CPU time per response (less sensitive to other load on the
# machine than req/s), wrk's own CPU per response and how many of the
# machine's cores the server and wrk kept busy together (when that is all of
# them, the rate is the machine's, not the server's), and the clicks the
# server recorded next to the responses wrk counted. Every process it starts
# is stopped on exit, however it exits.
set -euo pipefail
# Times and rates with a decimal point, whatever the locale.
export LC_ALL=C

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
SERVER_THREADS=${SERVER_THREADS:-1}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

need_install=()
command -v wrk >/dev/null || need_install+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_install+=(nginx)
if [ ${#need_install[@]} -gt 0 ]; then
    echo "installing ${need_install[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_install[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

TMP=$(mktemp -d)
NGINX_PID=
SERVER_PID=
cleanup() {
    for pid in $SERVER_PID $NGINX_PID; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# Runs wrk on $1, writing its report to $2. The warm-up uses HEAD, which the
# tracking server answers without recording a click, so the clicks counted
# afterwards are those of the measured run only.
# $3 is the server's pid: its CPU time during the measured run goes to $2.cpu
# (clock ticks); wrk's own (user, system) and the run's wall-clock time go to
# $2.time (seconds).
run_wrk() {
    timeout 30 wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$TMP/head.lua" "$1" >/dev/null
    local before; before=$(cpu_ticks "$3")
    local TIMEFORMAT='%U %S %R'
    { time timeout 120 wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 2s --latency "$1" \
        >"$2" 2>"$2.err"; } 2>"$2.time"
    echo $(($(cpu_ticks "$3") - before)) >"$2.cpu"
}
# CPU time (clock ticks) used so far by process $1 and its children processes.
cpu_ticks() {
    local pids="$1 $(pgrep -P "$1" | tr '\n' ' ')"
    for pid in $pids; do cat "/proc/$pid/stat" 2>/dev/null; done |
        awk '{ t += $14 + $15 } END { print t + 0 }'
}
# Microseconds of server CPU per response: $1 ticks, $2 responses.
cpu_per_req() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }'; }
# wrk's CPU per response in microseconds: $1 its .time file, $2 responses.
wrk_per_req() { awk -v n="$2" 'END { printf "%.1f", ($1 + $2) * 1e6 / n }' "$1"; }
# Cores the server ($1 ticks) and wrk (its .time file $2) kept busy together.
cores_busy() {
    awk -v t="$1" -v hz="$(getconf CLK_TCK)" 'END { printf "%.2f", (t / hz + $1 + $2) / $3 }' "$2"
}
rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
p99() { awk '$1 == "99%" { print $2 }' "$1"; }
total() { awk '/requests in/ { print $1 }' "$1"; }
non3xx() { awk '/Non-2xx or 3xx/ { print $5 }' "$1"; }

echo 'wrk.method = "HEAD"' >"$TMP/head.lua"

# BENCH_REDIRECT_BIN=path skips the build (e.g. a binary built elsewhere).
BIN=${BENCH_REDIRECT_BIN:-}
if [ -z "$BIN" ]; then
    echo "building bench_redirect (release)" >&2
    cargo build --quiet --release --manifest-path "$ROOT/Cargo.toml" -p bench --bin bench_redirect
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/bench_redirect"
fi

# nginx: one worker, static 302, no logging.
NGINX_PORT=$(free_port)
cat >"$TMP/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { return 302 http://example.com/; }
    }
}
CONF
"$NGINX" -p "$TMP" -c "$TMP/nginx.conf" &
NGINX_PID=$!
wait_for_port "$NGINX_PORT"

"$BIN" --threads "$SERVER_THREADS" >"$TMP/server.out" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q '^url ' "$TMP/server.out" 2>/dev/null && break; sleep 0.1; done
URL=$(awk '/^url / { print $2 }' "$TMP/server.out")
[ -n "$URL" ] || { echo "bench_redirect did not start" >&2; exit 1; }
curl_check=$(python3 - "$URL" <<'PY'
import http.client, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port)
c.request("HEAD", u.path)
r = c.getresponse()
print(r.status, r.getheader("Location"))
PY
)
[ "$curl_check" = "302 http://example.com/" ] || { echo "unexpected answer: $curl_check" >&2; exit 1; }

echo "wrk -t$THREADS -c$CONNS -d$DURATION (HEAD warm-up $WARMUP), $ROUNDS round(s); sluice on $SERVER_THREADS thread(s), nginx on 1 worker" >&2
printf '%-6s %-8s %12s %10s %12s %8s %10s %10s %6s\n' round server req/s p99 responses non-3xx \
    cpu-us/req wrk-us/req cores
N_RPS=(); S_RPS=(); N_P99=(); S_P99=(); RATIOS=(); SLUICE_RESPONSES=0
for round in $(seq "$ROUNDS"); do
    run_wrk "http://127.0.0.1:$NGINX_PORT/c/x" "$TMP/nginx.wrk" "$NGINX_PID"
    run_wrk "$URL" "$TMP/sluice.wrk" "$SERVER_PID"
    for who in nginx sluice; do
        f="$TMP/$who.wrk"
        printf '%-6s %-8s %12s %10s %12s %8s %10s %10s %6s\n' "$round" "$who" "$(rps "$f")" \
            "$(p99 "$f")" "$(total "$f")" "$(non3xx "$f")" \
            "$(cpu_per_req "$(cat "$f.cpu")" "$(total "$f")")" "$(wrk_per_req "$f.time" "$(total "$f")")" \
            "$(cores_busy "$(cat "$f.cpu")" "$f.time")"
    done
    SLUICE_RESPONSES=$((SLUICE_RESPONSES + $(total "$TMP/sluice.wrk")))
    N_RPS+=("$(rps "$TMP/nginx.wrk")"); S_RPS+=("$(rps "$TMP/sluice.wrk")")
    N_P99+=("$(p99 "$TMP/nginx.wrk")"); S_P99+=("$(p99 "$TMP/sluice.wrk")")
    RATIOS+=("$(awk -v s="$(rps "$TMP/sluice.wrk")" -v n="$(rps "$TMP/nginx.wrk")" 'BEGIN { printf "%.2f", s / n }')")
done

kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=
CLICKED=$(awk '/^events / { sub("clicked=", "", $2); print $2 }' "$TMP/server.out")
REFUSED=$(awk '/^events / { sub("refused=", "", $3); print $3 }' "$TMP/server.out")

# Median of the arguments (numbers, or durations like 1.2ms / 850us / 1.1s
# compared as numbers after conversion to microseconds).
median() {
    printf '%s\n' "$@" | awk '
        /us$/ { sub("us", ""); print $0 + 0; next }
        /ms$/ { sub("ms", ""); print $0 * 1000; next }
        /s$/ { sub("s", ""); print $0 * 1000000; next }
        { print $0 + 0 }' | sort -g |
        awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m }'
}
echo "median nginx:  $(median "${N_RPS[@]}") req/s, p99 $(median "${N_P99[@]}") us"
echo "median sluice: $(median "${S_RPS[@]}") req/s, p99 $(median "${S_P99[@]}") us"
echo "ratio sluice/nginx per round: ${RATIOS[*]}; median $(median "${RATIOS[@]}") (target >= 1.1)"
echo "clicks recorded by sluice: $CLICKED, 3xx responses counted by wrk: $SLUICE_RESPONSES, refused: $REFUSED"
echo "(requests still in flight when wrk stops are recorded but not counted by wrk)"
echo "cores: CPU of the server and wrk together per second of the run, of $(nproc) on this machine"

