#!/usr/bin/python3
"""webhook_verify.py - verifies every request a webhook_receiver.py file holds the way a consumer
would, independently of vigil's C code: the Vigil-Signature header "t=<unix>,v1=<hex>" must carry
v1 == hex(HMAC-SHA256(secret, "<t>.<body>")) (Python's hmac + hashlib, compared in constant
time) and a t within TOLERANCE seconds (default 300) of when the request arrived.

usage: webhook_verify.py FILE SECRET [TOLERANCE]
Prints "verified N" and exits 0 when all N (> 0) verify, else prints the first failure, exits 1."""
import hashlib
import hmac
import json
import sys

path, secret = sys.argv[1], sys.argv[2].encode()
tolerance = float(sys.argv[3]) if len(sys.argv) > 3 else 300.0
n = 0
with open(path) as f:
    for line in f:
        req = json.loads(line)
        header = req["headers"].get("vigil-signature", "")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        t, v1 = parts.get("t", ""), parts.get("v1", "")
        signed = (t + "." + req["body"]).encode()
        want = hmac.new(secret, signed, hashlib.sha256).hexdigest()
        if not t.isdigit() or not hmac.compare_digest(want, v1):
            print("bad signature on line %d: header %r" % (n + 1, header))
            sys.exit(1)
        if abs(req["at"] - int(t)) > tolerance:
            print("timestamp outside tolerance on line %d" % (n + 1))
            sys.exit(1)
        n += 1
print("verified %d" % n)
sys.exit(0 if n > 0 else 1)
