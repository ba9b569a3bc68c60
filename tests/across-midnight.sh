#!/bin/sh
# Runs the tests on a fake clock that starts a few seconds before the end of
# a year (so a day's, a month's and an hour's end too), each test process
# and the daemons and peers it starts sharing that clock (libfaketime).
# Counts that hold within a day or an hour (caps, exclusion days, plan
# hours) must not straddle two; a test that breaks only here waits past the
# boundary with `clear_of_boundary`. Not part of CI: run it by hand after
# touching anything counted by day or hour, at two starts at least, e.g.
#
#   tests/across-midnight.sh                    # the end 3 s into each test
#   START="2026-12-31 23:59:50" tests/across-midnight.sh   # 10 s in
#
# Left out: the Redis tests (redis-server cannot run under libfaketime, and
# unfaked it would disagree with the nodes' clock by months) and
# Schemathesis (Python's Hypothesis crawls under it). Needs `faketime`
# (apt-get install faketime) and cargo-nextest, for its filter.
set -eu
cd "$(dirname "$0")/.."
lib=$(dpkg -L libfaketime 2>/dev/null | grep '/libfaketime.so.1$' || true)
[ -n "$lib" ] || { echo "libfaketime is missing: apt-get install faketime" >&2; exit 1; }
command -v cargo-nextest >/dev/null || { echo "needs cargo-nextest: cargo install cargo-nextest" >&2; exit 1; }
runner=$(mktemp)
trap 'rm -f "$runner"' EXIT
cat >"$runner" <<RUNNER
#!/bin/sh
export LD_PRELOAD=$lib FAKETIME="@${START:-2026-12-31 23:59:57}" FAKETIME_DONT_RESET=1
export FAKETIME_SKIP_CMDS=redis-server,redis-cli
exec "\$@"
RUNNER
chmod +x "$runner"
cargo build -p gateway -p ctl --bins
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$runner" cargo nextest run --workspace --no-fail-fast \
    -E 'not (binary_id(/redis/) | binary_id(/shared_quota/) | test(schemathesis))'
