#!/usr/bin/env python3
"""An HTTP endpoint for sluice's webhook tests (Python's http.server).

Each POST is appended to --log as one JSON line {"signature", "body"}; the
first --fail-first requests are answered 500 (after logging), the rest 200.
Prints "port=N" once it accepts connections.
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    p.add_argument("--fail-first", type=int, default=0)
    args = p.parse_args()
    state = {"seen": 0}
    log = open(args.log, "a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            log.write(json.dumps({"signature": self.headers.get("X-Sluice-Signature"), "body": body.decode()}) + "\n")
            state["seen"] += 1
            code = 500 if state["seen"] <= args.fail_first else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"port={server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
