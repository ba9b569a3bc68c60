#!/usr/bin/env bash
# Two builds of sluice, one after the other on this machine, alternating so
# that both see the same load: bench_sms, bench_email and the redirect bench.
#
#   bench/compare.sh OLD_DIR NEW_DIR [ROUNDS]
#
# Each DIR holds the release binaries bench_sms, bench_email,
# bench_redirect_daemon and sluice (the daemon bench_redirect_daemon
# starts) of one build, e.g. for the commit a change started from:
#   git worktree add /tmp/base COMMIT
#   (cd /tmp/base && CARGO_TARGET_DIR=/tmp/base-target cargo build --release \
#       -p bench --bin bench_sms --bin bench_email --bin bench_redirect_daemon \
#       -p gateway --bin sluice)
#   cargo build --release -p bench --bin bench_sms --bin bench_email \
#       --bin bench_redirect_daemon -p gateway --bin sluice
#   bench/compare.sh /tmp/base-target/release target/release 2
#
# SMS_N and EMAIL_N set the messages per run (300,000 and 50,000).
set -euo pipefail

OLD=${1:?old build directory}
NEW=${2:?new build directory}
ROUNDS=${3:-2}
SMS_N=${SMS_N:-300000}
EMAIL_N=${EMAIL_N:-50000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
for dir in "$OLD" "$NEW"; do
    for bin in bench_sms bench_email bench_redirect_daemon sluice; do
        [ -x "$dir/$bin" ] || { echo "$dir/$bin is missing: build it as above" >&2; exit 1; }
    done
done

for round in $(seq "$ROUNDS"); do
    for build in old new; do
        dir=$OLD
        [ "$build" = new ] && dir=$NEW
        echo "== round $round, $build build: bench_sms $SMS_N"
        "$dir/bench_sms" "$SMS_N"
        echo "== round $round, $build build: bench_email $EMAIL_N"
        "$dir/bench_email" "$EMAIL_N"
        echo "== round $round, $build build: redirects"
        ROUNDS=1 DURATION=${DURATION:-8s} BENCH_REDIRECT_BIN="$dir/bench_redirect_daemon" \
            "$ROOT/bench/redirect.sh"
    done
done
