#!/bin/sh
# Instructions a message of the SMS pipeline, counted by valgrind's
# callgrind: deterministic enough to compare two builds on a machine whose
# timings are too noisy for small gains (BENCHMARKS.md, issue 19). Runs
# `bench_sms MESSAGES` without its bare baselines, counts from the
# campaign's start to its end (the upload left out), and prints the
# instructions a message, in all, without memcpy and memset (callgrind
# counts a `rep movsb` once a byte, so copies weigh far more in its
# counts than in time), and for the functions that take most (inclusive).
# Two runs of one build differ by about 2%: commit groups form differently.
# KEEP=FILE keeps callgrind's output there for callgrind_annotate.
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
callgrind_control -i on "$bench" >/dev/null 2>&1
wait "$bench"
grep -E "^sluice" "$work/bench.log"
annotate() { callgrind_annotate "$@" "$work/callgrind.out" 2>/dev/null; }
# Lines of callgrind_annotate: "COUNT (SHARE)  FILE:FUNCTION [OBJECT]".
annotate | awk -v n="$n" '
    /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
    /memcpy|memmove|memset/ && / \(/ { gsub(",", "", $1); copies += $1 }
    END {
        printf "instructions a message: %.0f (%.0f for %d messages)\n", total / n, total, n
        printf "without memcpy and memset: %.0f\n", (total - copies) / n
    }'
echo "functions, inclusive, instructions a message:"
annotate --inclusive=yes | awk -v n="$n" '
    /^ *[0-9,]+ \(/ && !/PROGRAM TOTALS/ {
        count = $1; gsub(",", "", count)
        name = $0; sub(/^ *[0-9,]+ \([^)]*\) +\*? */, "", name); sub(/^[^ :]*\.[A-Za-z]+:/, "", name); sub(/ \[.*$/, "", name)
        printf "%10.0f  %s\n", count / n, substr(name, 1, 150)
    }' | sed -n '1,60p'
if [ -n "${KEEP:-}" ]; then cp "$work/callgrind.out" "$KEEP"; fi
rm -rf "$work"
