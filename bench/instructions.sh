#!/bin/sh
# Instructions a message of the SMS pipeline, counted by valgrind's
# callgrind: deterministic enough to compare two builds on a machine whose
# timings are too noisy for small gains (BENCHMARKS.md, issue 19). Runs
# `bench_sms MESSAGES` without its bare baselines, counts from the
# campaign's start to its end (the upload left out), and prints the
# instructions a message, in all and for the functions that take most.
#
#   bench/instructions.sh [MESSAGES] [BENCH_SMS_BINARY]   (default 20000; target/release/bench_sms)
set -eu
cd "$(dirname "$0")/.."
n=${1:-20000}
bin=${2:-target/release/bench_sms}
command -v valgrind >/dev/null || {
    echo "valgrind is missing: apt-get install valgrind" >&2
    exit 1
}
[ -n "${2:-}" ] || cargo build --release -p bench --bin bench_sms
work=$(mktemp -d)
BENCH_BARE=0 valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$work/callgrind.out" "$bin" "$n" >"$work/bench.log" 2>&1 &
bench=$!
until grep -qF "bench_sms: starting the campaign" "$work/bench.log"; do
    kill -0 "$bench" 2>/dev/null || { cat "$work/bench.log"; exit 1; }
    sleep 0.2
done
callgrind_control -i on "$bench" >/dev/null
wait "$bench"
grep -E "^sluice" "$work/bench.log"
total=$(sed -n 's/^totals: \([0-9]*\).*/\1/p' "$work/callgrind.out")
echo "instructions a message: $((total / n)) ($total for $n messages)"
callgrind_annotate --inclusive=yes "$work/callgrind.out" 2>/dev/null |
    awk -v n="$n" '/^ *[0-9,]+ \(/ { gsub(",", "", $1); printf "%10.0f  %s\n", $1 / n, $0 }' | sed -n '1,40p' | cut -c1-200
[ -n "${KEEP:-}" ] && cp "$work/callgrind.out" "$KEEP"
rm -rf "$work"
