#!/bin/sh
# A flame graph of a send pipeline: the bench (bench_sms, bench_email, or
# bench_sms_redis's run of one node on Redis) is started, and once its
# campaign starts (upload done) perf (Debian's
# linux-perf, software cpu-clock event) records its process for 5 s;
# inferno (`cargo install inferno`) folds and draws it. Writes
# bench/profiles/KIND.svg and prints where the CPU goes
# (bench/profile_breakdown.py). PROFILE_KEEP=DIR keeps the folded stacks
# there for a closer look (grep a frame's callers in them).
#
#   bench/profile.sh sms [MESSAGES]      (default 600000: about 8 s of pipeline)
#   bench/profile.sh email [MESSAGES]    (default 300000)
#   bench/profile.sh sms_redis [MESSAGES] (default 300000; the node's process
#                                          only, Redis's own CPU is in the
#                                          bench's commandstats)
set -eu
cd "$(dirname "$0")/.."
kind=${1:?"which pipeline: sms or email"}
case $kind in
    sms) n=${2:-600000}; started="bench_sms: starting the campaign" ;;
    email) n=${2:-300000}; started="bench_email: starting the campaign" ;;
    sms_redis) n=${2:-300000}; started="bench_sms_redis: starting the campaign (1 node(s), Redis)" ;;
    *) echo "unknown pipeline $kind: sms, email or sms_redis" >&2; exit 1 ;;
esac
for tool in perf inferno-collapse-perf inferno-flamegraph; do
    command -v "$tool" >/dev/null || {
        echo "$tool is missing: apt-get install linux-perf; cargo install inferno" >&2
        exit 1
    }
done
cargo build --release -p bench --bin "bench_$kind"
work=$(mktemp -d)
"target/release/bench_$kind" "$n" >"$work/bench.log" 2>&1 &
bench=$!
until grep -qF "$started" "$work/bench.log"; do
    kill -0 "$bench" 2>/dev/null || { cat "$work/bench.log"; exit 1; }
    sleep 0.1
done
perf record -q -e cpu-clock -F 997 --call-graph dwarf,16384 -p "$bench" \
    -o "$work/perf.data" -- sleep 5
wait "$bench"
cat "$work/bench.log"
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$work/folded"
inferno-flamegraph --minwidth 0.5 --title "bench_$kind $n, start to finished (perf cpu-clock)" \
    <"$work/folded" >"bench/profiles/$kind.svg"
# The daemon's CPU per message, as the bench printed it.
us=$(sed -n -e 's/.* \([0-9.]*\) µs CPU per message (the whole daemon.*/\1/p' \
    -e 's/^Redis engine, 1 node: .* \([0-9.]*\) µs CPU per message in the nodes.*/\1/p' "$work/bench.log" | head -1)
python3 bench/profile_breakdown.py "$work/folded" $us
[ -z "${PROFILE_KEEP:-}" ] || cp "$work/folded" "$PROFILE_KEEP/$kind.folded"
rm -rf "$work"
