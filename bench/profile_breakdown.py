#!/usr/bin/env python3
"""Where the CPU goes in a folded profile (inferno-collapse-perf output):
the frames most samples are in (inclusive) and the frames most samples end
in (self), each as a share of all samples and, given the bench's CPU per
message, as microseconds per message.

    bench/profile_breakdown.py FOLDED [CPU_US_PER_MESSAGE]
"""

import collections
import re
import sys

TOP = 25


def short(frame: str) -> str:
    """A frame without generic arguments and hashes, so that one function
    counts once."""
    frame = re.sub(r"::h[0-9a-f]{16}$", "", frame)
    depth, out = 0, []
    for ch in frame:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out) or frame


def main() -> None:
    folded = sys.argv[1]
    us = float(sys.argv[2]) if len(sys.argv) > 2 else None
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    with open(folded, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [short(x) for x in stack.split(";")]
            total += n
            for frame in set(frames):
                inclusive[frame] += n
            own[frames[-1]] += n
    if total == 0:
        sys.exit(f"{folded}: no samples")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"\n{title}: share of {total} samples" + (" (µs per message)" if us else ""))
        for frame, n in counter.most_common(TOP):
            share = n / total
            cost = f"  {share * us:5.2f} µs" if us else ""
            print(f"  {share:6.1%}{cost}  {frame[:120]}")


if __name__ == "__main__":
    main()
