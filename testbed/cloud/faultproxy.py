#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of the test cloud's APIs, for retry tests; with
`--tls` also the test cloud's HTTPS front.

    faultproxy.py --state FILE [--every N] [--expire-tokens-after N] [--tls CERT KEY] LISTEN=UPSTREAM ...

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

`--expire-tokens-after N` plays a Keystone token expiring in the middle of a run: once N
requests carrying a token were forwarded to the services (Keystone's port not counted), every
token Keystone issued through the proxy so far (and a token a login exchanged for one) counts
as expired: a request carrying one, on any port, or a login presenting one, gets Keystone's
401 instead of being forwarded, as the services' and Keystone's own answer to an expired token
would be. Tokens issued later work. Counted as "expired" in FILE.

`--tls CERT KEY` serves HTTPS with that certificate (a TLS-terminating front, as a cloud's
load balancer would be) and forwards plain HTTP; the rewriting then also turns `http://` into
`https://`, and Keystone's token and catalog answers (`/v3/auth/...`) are left as Keystone wrote
them: the catalog's HTTPS endpoints are Keystone's own (testbed/cloud/up.sh seeds them), only
self-links a service derives from the request (version discovery, Location) need the front's
address, as `X-Forwarded-Proto` would give them behind a real one.
"""
import argparse
import hashlib
import http.client
import http.server
import json
import os
import signal
import ssl
import sys
import threading

UNAUTHORIZED = {"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}
FAULTS = [(503, "Service Unavailable", {}), (429, "Too Many Requests", {"Retry-After": "1"}), (502, "Bad Gateway", {})]
HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "content-length"}


class Counters:
    def __init__(self, state_file):
        self.lock = threading.Lock()
        self.faults = 0
        self.forwarded = 0
        self.expired = 0
        self.per_port = {}
        self.state_file = state_file
        # --expire-tokens-after: the tokens issued so far, requests that carried one, and
        # whether they have expired.
        self.tokens = set()
        self.token_uses = 0
        self.tokens_expired = False
        self.save()

    def save(self):
        """Write the counts. Whole or not at all: a reader (the test, the moment kos has
        exited) never finds the file truncated, which it read as zero counts."""
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"faults": self.faults, "forwarded": self.forwarded, "expired": self.expired}, f)
        os.replace(tmp, self.state_file)

    def next_is_fault(self, port, every):
        with self.lock:
            n = self.per_port.get(port, 0) + 1
            self.per_port[port] = n
            return every > 0 and n % every == 1, (self.faults % len(FAULTS))

    def count(self, fault, expired=False):
        with self.lock:
            if expired:
                self.expired += 1
            elif fault:
                self.faults += 1
            else:
                self.forwarded += 1
            self.save()

    def is_expired(self, presented):
        """Whether one of `presented` (tokens of a request) has expired."""
        with self.lock:
            return self.tokens_expired and any(t in self.tokens for t in presented if t)

    def issued(self, tokens):
        with self.lock:
            if not self.tokens_expired:
                self.tokens.update(t for t in tokens if t)
            sys.stderr.write("token(s) %s issued%s\n" % (", ".join(short(t) for t in tokens if t),
                                                        " (after the expiry: they stay valid)" if self.tokens_expired else ""))

    def used(self, token, expire_after):
        """A request carrying `token` is forwarded to a service; expire after `expire_after`."""
        with self.lock:
            if expire_after and token and not self.tokens_expired:
                self.token_uses += 1
                if self.token_uses >= expire_after:
                    self.tokens_expired = True
                    sys.stderr.write("%d requests carried a token (last: %s): every token issued so far expires\n"
                                     % (self.token_uses, short(token)))


def short(token):
    """A token's log name: a hash prefix (the token itself never goes to the log)."""
    return hashlib.sha256(token.encode()).hexdigest()[:8] if token else "-"


def login_tokens(body):
    """The tokens a login request presents (`"methods": ["token"]`), if any."""
    try:
        ident = json.loads(body or b"{}").get("auth", {}).get("identity", {})
        return [ident.get("token", {}).get("id")]
    except (ValueError, AttributeError):
        return []


def handler(listen, upstream, rewrites, counters, every, expire_after, keystone_port, tls):
    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # one line per request on stderr, with its token's log name
            sys.stderr.write("%s %s token=%s\n" % (listen, fmt % args, short(getattr(self, "headers", None) and self.headers.get("X-Auth-Token"))))

        def relay(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            login = self.command == "POST" and self.path.rstrip("/").endswith("/auth/tokens")
            presented = [self.headers.get("X-Auth-Token"), self.headers.get("X-Subject-Token")]
            if login:
                presented += login_tokens(body)
            if expire_after and counters.is_expired(presented):
                # Counted before it is answered: once a client has its answer, the count has it.
                counters.count(False, expired=True)
                payload = json.dumps(UNAUTHORIZED).encode()
                self.send_response(401, "Unauthorized")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            fault, which = counters.next_is_fault(listen, every)
            if fault:
                faults = FAULTS[:2] if self.command == "POST" else FAULTS
                code, reason, extra = faults[which % len(faults)]
                counters.count(True)
                payload = json.dumps({"error": "injected by faultproxy", "code": code}).encode()
                self.send_response(code, reason)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=120)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP and k.lower() != "host"}
            headers["Host"] = "127.0.0.1:%d" % upstream
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if login and 200 <= resp.status < 300:
                counters.issued([resp.getheader("X-Subject-Token")] + login_tokens(body))
            if upstream != keystone_port:
                counters.used(self.headers.get("X-Auth-Token"), expire_after)
            if not (tls and self.path.startswith("/v3/auth/")):
                for old, new in rewrites:
                    data = data.replace(old, new)
            counters.count(False)
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

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = relay

    return Proxy


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that refuses the front's certificate (the tests without the CA do)
        # ends the handshake: one line, not a traceback.
        err = sys.exc_info()[1]
        if isinstance(err, (ssl.SSLError, ConnectionError)):
            sys.stderr.write("%s: %s\n" % (client_address, err))
        else:
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state", required=True)
    ap.add_argument("--every", type=int, default=3, help="fault every Nth request per port (0: none)")
    ap.add_argument("--expire-tokens-after", type=int, default=0, metavar="N",
                    help="expire every token issued so far once N requests carried one (0: never)")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS with this certificate and key")
    ap.add_argument("pairs", nargs="+", help="LISTEN=UPSTREAM port pairs")
    args = ap.parse_args()
    pairs = [tuple(int(x) for x in p.split("=")) for p in args.pairs]
    if args.tls:
        rewrites = [(b"http://127.0.0.1:%d" % up, b"https://127.0.0.1:%d" % lp) for lp, up in pairs]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*args.tls)
    else:
        rewrites = [(b"127.0.0.1:%d" % up, b"127.0.0.1:%d" % lp) for lp, up in pairs]
    counters = Counters(args.state)
    servers = []
    for listen, upstream in pairs:
        srv = Server(("127.0.0.1", listen), handler(listen, upstream, rewrites, counters, args.every, args.expire_tokens_after, 5000, bool(args.tls)))
        if args.tls:
            # The handshake happens in the request's own thread (on its first read), so a
            # client that never finishes one does not stall the accepting thread.
            srv.socket = context.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("faultproxy ready%s: " % (" (https)" if args.tls else "") + " ".join("%d->%d" % p for p in pairs), flush=True)
    stop.wait()
    for srv in servers:
        srv.shutdown()


if __name__ == "__main__":
    main()
