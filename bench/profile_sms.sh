#!/bin/sh
# A flame graph of the SMS pipeline: bench_sms is started, and once its
# campaign starts (baselines and upload done) perf (Debian's linux-perf, software cpu-clock event)
# records the daemon's part for 5 s; inferno (`cargo install inferno`)
# folds and draws it. Writes bench/profiles/sms.svg and prints where the CPU
# goes (bench/profile_breakdown.py). PROFILE_KEEP=DIR keeps the folded
# stacks there for a closer look (grep a frame's callers in them).
#
#   bench/profile_sms.sh [MESSAGES]    (default 600000: about 10 s of pipeline)
set -eu
cd "$(dirname "$0")/.."
n=${1:-600000}
for tool in perf inferno-collapse-perf inferno-flamegraph; do
    command -v "$tool" >/dev/null || {
        echo "$tool is missing: apt-get install linux-perf; cargo install inferno" >&2
        exit 1
    }
done
cargo build --release -p bench --bin bench_sms
work=$(mktemp -d)
target/release/bench_sms "$n" >"$work/bench.log" 2>&1 &
bench=$!
until grep -q "bench_sms: starting the campaign" "$work/bench.log"; do
    kill -0 "$bench" 2>/dev/null || { cat "$work/bench.log"; exit 1; }
    sleep 0.1
done
perf record -q -e cpu-clock -F 997 --call-graph dwarf,16384 -p "$bench" \
    -o "$work/perf.data" -- sleep 5
wait "$bench"
cat "$work/bench.log"
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$work/folded"
inferno-flamegraph --minwidth 0.5 --title "bench_sms $n, start to delivered (perf cpu-clock)" \
    <"$work/folded" >bench/profiles/sms.svg
us=$(sed -n 's/^sluice: \([0-9.]*\) µs CPU per message.*/\1/p' "$work/bench.log")
python3 bench/profile_breakdown.py "$work/folded" $us
[ -z "${PROFILE_KEEP:-}" ] || cp "$work/folded" "$PROFILE_KEEP/sms.folded"
rm -rf "$work"
