#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for sluice's end-to-end tests.

Every accepted message is appended as one JSON line to --log:
{"mail_from", "rcpt_tos", "data"}. A sender in a domain starting with
"unroutable." is refused at MAIL FROM with 553 5.1.2 (a relay that cannot
resolve the return path's domain). Recipients steer the answer:
  tempfail-N-...@  -> 451 4.3.0 for the first N attempts, then accepted
  reject-...@      -> 550 5.1.1 user unknown
  full-...@        -> 452 4.2.2 mailbox full (always)
Prints "port=N" on stdout once it accepts connections.
"""
import argparse
import asyncio
import json
import re
import signal
import socket
import sys

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self, log):
        self.log = open(log, "a", buffering=1)
        self.attempts = {}

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address.rsplit("@", 1)[-1].lower().startswith("unroutable."):
            return f"553 5.1.2 <{address}>: domain not found"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        m = re.match(r"tempfail-(\d+)-", local)
        if m:
            seen = self.attempts.get(address, 0)
            self.attempts[address] = seen + 1
            if seen < int(m.group(1)):
                return "451 4.3.0 try again later"
        if local.startswith("reject-"):
            return "550 5.1.1 user unknown"
        if local.startswith("full-"):
            return "452 4.2.2 mailbox full"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.content.decode("utf8", errors="replace")
        self.log.write(json.dumps({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos, "data": data}) + "\n")
        return "250 2.0.0 queued"


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    handler = Handler(args.log)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    server = await loop.create_server(lambda: SMTP(handler, hostname="peer.test", data_size_limit=50 * 1024 * 1024), sock=sock)
    print(f"port={sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
