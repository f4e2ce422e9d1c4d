#!/usr/bin/python3
"""webhook_receiver.py - a webhook consumer for the end-to-end tests: an HTTP server on loopback
that appends every POST it receives to a file, one JSON line each
({"path", "headers": {lower-case name: value}, "body": text, "at": unix seconds}), flushed before
it answers, then answers with a fixed status after an optional delay.

usage: webhook_receiver.py PORT OUTFILE [STATUS [DELAY_MS [BIND]]]
Debian's python3 standard library only (http.server)."""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, out = int(sys.argv[1]), sys.argv[2]
status = int(sys.argv[3]) if len(sys.argv) > 3 else 200
delay = int(sys.argv[4]) / 1000.0 if len(sys.argv) > 4 else 0.0
bind = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1"
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The answer goes out in two writes (head, then body): with Nagle's algorithm on, the body
    # waits for the client's delayed ACK of the head (~40 ms on Linux loopback) and a kept-alive
    # dispatcher connection delivers ~25 events/s.
    disable_nagle_algorithm = True

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n).decode("utf-8")
        line = json.dumps({"path": self.path, "at": time.time(), "body": body,
                           "headers": {k.lower(): v for k, v in self.headers.items()}})
        with lock, open(out, "a") as f:
            f.write(line + "\n")
            f.flush()
        if delay:
            time.sleep(delay)
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer((bind, port), Handler).serve_forever()
