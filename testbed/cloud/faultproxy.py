#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of the test cloud's APIs, for retry tests.

    faultproxy.py --state FILE LISTEN=UPSTREAM [LISTEN=UPSTREAM ...]

Each LISTEN port on 127.0.0.1 forwards to UPSTREAM on 127.0.0.1. Every `--every`-th request
(per port, counting from the first) is answered with a fault instead of being forwarded, in
turn: 503 Service Unavailable, 429 Too Many Requests (Retry-After: 1), 502 Bad Gateway. A POST
gets only the first two: they say the request was not processed, which is what makes retrying
a create safe; after a 502 a client cannot know, and must not blindly create again. Faulted
requests never reach the cloud: a client that retries them must converge to the same state as
without faults. Upstream addresses in answers (bodies and
Location headers, e.g. version-discovery links) are rewritten to the proxy's, so clients stay
on the proxy. Loopback only; stdlib only. It writes `{"faults": N, "forwarded": M}` to FILE after
every request and exits on SIGTERM.
"""
import argparse
import http.client
import http.server
import json
import signal
import sys
import threading

FAULTS = [(503, "Service Unavailable", {}), (429, "Too Many Requests", {"Retry-After": "1"}), (502, "Bad Gateway", {})]
HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "content-length"}


class Counters:
    def __init__(self, state_file):
        self.lock = threading.Lock()
        self.faults = 0
        self.forwarded = 0
        self.per_port = {}
        self.state_file = state_file

    def next_is_fault(self, port, every):
        with self.lock:
            n = self.per_port.get(port, 0) + 1
            self.per_port[port] = n
            return every > 0 and n % every == 1, (self.faults % len(FAULTS))

    def count(self, fault):
        with self.lock:
            if fault:
                self.faults += 1
            else:
                self.forwarded += 1
            with open(self.state_file, "w") as f:
                json.dump({"faults": self.faults, "forwarded": self.forwarded}, f)


def handler(listen, upstream, rewrites, counters, every):
    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # one line per request on stderr
            sys.stderr.write("%s %s\n" % (listen, fmt % args))

        def relay(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            fault, which = counters.next_is_fault(listen, every)
            if fault:
                faults = FAULTS[:2] if self.command == "POST" else FAULTS
                code, reason, extra = faults[which % len(faults)]
                payload = json.dumps({"error": "injected by faultproxy", "code": code}).encode()
                self.send_response(code, reason)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                counters.count(True)
                return
            conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=120)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP and k.lower() != "host"}
            headers["Host"] = "127.0.0.1:%d" % upstream
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            for old, new in rewrites:
                data = data.replace(old, new)
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() in HOP:
                    continue
                if k.lower() == "location":
                    for old, new in rewrites:
                        v = v.replace(old.decode(), new.decode())
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()
            counters.count(False)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = relay

    return Proxy


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state", required=True)
    ap.add_argument("--every", type=int, default=3, help="fault every Nth request per port (0: none)")
    ap.add_argument("pairs", nargs="+", help="LISTEN=UPSTREAM port pairs")
    args = ap.parse_args()
    pairs = [tuple(int(x) for x in p.split("=")) for p in args.pairs]
    rewrites = [(b"127.0.0.1:%d" % up, b"127.0.0.1:%d" % lp) for lp, up in pairs]
    counters = Counters(args.state)
    with open(args.state, "w") as f:
        json.dump({"faults": 0, "forwarded": 0}, f)
    servers = []
    for listen, upstream in pairs:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", listen), handler(listen, upstream, rewrites, counters, args.every))
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("faultproxy ready: " + " ".join("%d->%d" % p for p in pairs), flush=True)
    stop.wait()
    for srv in servers:
        srv.shutdown()


if __name__ == "__main__":
    main()
