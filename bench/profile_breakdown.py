#!/usr/bin/env python3
"""Where the CPU goes in a folded profile (inferno-collapse-perf output):
by part of the pipeline (the first of PARTS whose pattern a stack's frames
match), the frames most samples are in (inclusive) and the frames most
samples end in (self), each as a share of all samples and, given the
bench's CPU per message, as microseconds per message.

    bench/profile_breakdown.py FOLDED [CPU_US_PER_MESSAGE]
"""

import collections
import re
import sys

TOP = 25

# Parts of the SMS and e-mail pipelines, most specific first: a stack counts for the
# first part whose pattern one of its frames matches.
PARTS = [
    ("SMSC sink (the bench's peer, not sluice)", r"^bench::smsc_sink"),
    ("SMTP sink (the bench's peer, not sluice)", r"^bench::smtp_sink"),
    ("bench's progress polling over the API", r"^bench_sms::main|^bench::http"),
    ("store (Redis): receipts matched (planned, checked, written)",
     r"store::redis::roles::::receipts"),
    ("store (Redis): outcomes recorded (planned, checked, written)",
     r"store::redis::roles::::record"),
    ("store (Redis): claims (script, records decoded)", r"store::redis::roles::::claim"),
    ("store (Redis): suppression lookups", r"store::redis::roles::::participants_suppressions"),
    ("store (Redis): connection (commands written, replies parsed)",
     r"^redis::|^<redis::|^combine::"),
    ("store: memtable flush and compaction (fjall worker)", r"^fjall:worker$"),
    ("store: fsync of the journal", r"fjall::db::Database::persist"),
    ("store: batch into journal and memtables", r"fjall::batch::WriteBatch::commit"),
    ("store: receipts matched (committer)", r"Committer::receipt$"),
    ("store: outcomes recorded (committer)", r"Committer::record_update$|Committer::put_upstream$"),
    ("store: facts encoded (committer)", r"Committer::write_facts$"),
    ("store: index updated and callers answered", r"^store-commit$"),
    ("dispatcher: claim (index and records read)", r"roles::::claim"),
    ("dispatcher: suppression check", r"participant_suppression"),
    ("dispatcher: outcome handed to the store", r"SendJob::record|dispatch::recorder"),
    ("SMS: template, encoding and submit_sm", r"SmsChannel::submit"),
    ("SMS: receipts parsed and handed over", r"sms::intake"),
    ("e-mail: SMTP session (commands, DATA, replies)", r"^gateway::channel::smtp::"),
    ("e-mail: message built (template, MIME, return path)",
     r"^gateway::channel::mail::|^gateway::verp::"),
    ("links made trackable", r"^gateway::links::"),
    ("SMPP session: PDUs read and decoded", r"smpp::session::Session::read"),
    ("SMPP session: PDUs encoded and written", r"smpp::session::Session::write"),
    ("dispatcher: tick (rules, leases, permits)", r"Dispatcher::tick"),
    # What the feeder and a send do around the channel (admission, permits,
    # the send's own bookkeeping): the channel's parts above come first.
    ("dispatcher: feeder and sends (admission, permits, bookkeeping)", r"Dispatcher::feed"),
    ("API server", r"api_server|^hyper|^axum"),
    ("async runtime, kernel scheduling and the rest", r""),
]


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
    parts: collections.Counter = collections.Counter()
    patterns = [(name, re.compile(pattern)) for name, pattern in PARTS]
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
            parts[next(name for name, p in patterns if any(p.search(f) for f in frames))] += n
    if total == 0:
        sys.exit(f"{folded}: no samples")
    for title, counter in (("by part", parts), ("inclusive", inclusive), ("self", own)):
        print(f"\n{title}: share of the CPU sampled" + (" (µs per message)" if us else ""))
        for frame, n in counter.most_common(TOP):
            share = n / total
            cost = f"  {share * us:5.2f} µs" if us else ""
            print(f"  {share:6.1%}{cost}  {frame[:120]}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # piped into head
        pass
