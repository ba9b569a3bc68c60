#!/bin/sh
# A flame graph of a send pipeline: the bench (bench_sms or bench_email) is
# started, and once its campaign starts (upload done) perf (Debian's
# linux-perf, software cpu-clock event) records its process for 5 s;
# inferno (`cargo install inferno`) folds and draws it. Writes
# bench/profiles/KIND.svg and prints where the CPU goes
# (bench/profile_breakdown.py). PROFILE_KEEP=DIR keeps the folded stacks
# there for a closer look (grep a frame's callers in them).
#
#   bench/profile.sh sms [MESSAGES]      (default 600000: about 8 s of pipeline)
#   bench/profile.sh email [MESSAGES]    (default 300000)
set -eu
cd "$(dirname "$0")/.."
kind=${1:?"which pipeline: sms or email"}
case $kind in
    sms) n=${2:-600000} ;;
    email) n=${2:-300000} ;;
    *) echo "unknown pipeline $kind: sms or email" >&2; exit 1 ;;
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
until grep -q "bench_$kind: starting the campaign" "$work/bench.log"; do
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
us=$(sed -n 's/.* \([0-9.]*\) µs CPU per message (the whole daemon.*/\1/p' "$work/bench.log")
python3 bench/profile_breakdown.py "$work/folded" $us
[ -z "${PROFILE_KEEP:-}" ] || cp "$work/folded" "$PROFILE_KEEP/$kind.folded"
rm -rf "$work"
