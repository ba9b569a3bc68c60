#!/usr/bin/env python3
"""Where a bench's threads spend a window of its campaign: per thread, the
share of the window it ran, the share it was ready but waited for a core
(the kernel's schedstat run delay), and how often it went to sleep; and
the machine's CPU split over the same window (BENCHMARKS.md, issue 19).

    bench/threads.py [SECONDS] -- BENCH_BINARY ARGS...   (default 1.5 s)

e.g. `bench/threads.py 1.5 -- target/release/bench_sms 300000`. The
window opens when the bench prints "starting the campaign"; the bare
baselines are left out (BENCH_BARE=0).
"""
import os
import re
import subprocess
import sys
import time


def threads(pid):
    """Thread id -> (name, ns run, ns waited for a core, voluntary sleeps)."""
    seen = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{tid}"
        try:
            name = open(f"{base}/comm").read().strip()
            run, waited = map(int, open(f"{base}/schedstat").read().split()[:2])
            status = open(f"{base}/status").read()
        except OSError:
            continue  # the thread ended meanwhile
        sleeps = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
        seen[tid] = (name, run, waited, sleeps)
    return seen


def machine():
    """The first line of /proc/stat: user, nice, system, idle, iowait, irq, softirq, steal."""
    return list(map(int, open("/proc/stat").readline().split()[1:9]))


def main():
    args = sys.argv[1:]
    if "--" not in args:
        sys.exit(__doc__)
    split = args.index("--")
    window = float(args[0]) if split else 1.5
    bench = subprocess.Popen(
        args[split + 1 :],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, BENCH_BARE="0"),
    )
    output = []
    for line in bench.stdout:
        output.append(line)
        if "starting the campaign" in line:
            break
    before, cpu_before, started = threads(bench.pid), machine(), time.time()
    time.sleep(window)
    after, cpu_after, ended = threads(bench.pid), machine(), time.time()
    output.extend(bench.stdout)
    bench.wait()

    span = ended - started
    rows = []
    for tid, (name, run, waited, sleeps) in after.items():
        _, run0, waited0, sleeps0 = before.get(tid, (name, 0, 0, 0))
        rows.append(((run - run0) / 1e9 / span, (waited - waited0) / 1e9 / span, (sleeps - sleeps0) / span, name, tid))
    rows.sort(reverse=True)
    print(f"{'ran':>6} {'waited':>7} {'sleeps/s':>9}  thread")
    for ran, waited, sleeps, name, tid in rows:
        if ran > 0.005 or waited > 0.005:
            print(f"{ran:6.1%} {waited:7.1%} {sleeps:9.0f}  {name} {tid}")
    ticks = os.sysconf("SC_CLK_TCK") * span
    names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    split_cpu = ", ".join(f"{n} {(b - a) / ticks:.2f}" for n, a, b in zip(names, cpu_before, cpu_after))
    print(f"cores over the window: {split_cpu}")
    print("".join(line for line in output if line.startswith("sluice")), end="")


if __name__ == "__main__":
    main()
