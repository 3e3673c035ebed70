#!/usr/bin/env python3
"""registry.py --listen ADDR:PORT --cert FILE --key FILE FOLDER...

A read-only OCI distribution registry (the pull half of the API: /v2/, manifests and blobs by tag or digest,
GET and HEAD) over the image archives of artifact folders (FOLDER/images/*.tar, pack-image.py's one-image OCI
layouts), under the names their io.containerd.image.name annotations give without the registry host:
registry.k8s.io/e2e-test-images/kitten:1.8 is served as /v2/e2e-test-images/kitten/manifests/1.8. Blobs are
read straight from the archives (no copy). conformance.sh --registry runs it as registry.k8s.io for the specs
whose pods pull with imagePullPolicy Always, which an air-gapped node cannot satisfy from its loaded images.
"""
import argparse
import http.server
import json
import os
import ssl
import sys
import tarfile

# (repository, tag or digest) -> (media type, manifest bytes); digest -> (archive path, offset, size)
MANIFESTS, BLOBS = {}, {}


def load(folder):
    for name in sorted(os.listdir(os.path.join(folder, "images"))):
        if not name.endswith(".tar"):
            continue
        path = os.path.join(folder, "images", name)
        with tarfile.open(path) as t:
            members = {m.name: m for m in t.getmembers() if m.isfile()}
            for member in members.values():
                if member.name.startswith("blobs/sha256/"):
                    BLOBS["sha256:" + member.name.rsplit("/", 1)[1]] = (path, member.offset_data, member.size)
            for desc in json.load(t.extractfile(members["index.json"]))["manifests"]:
                full = desc.get("annotations", {}).get("io.containerd.image.name")
                if not full:
                    continue
                ref, tag = full.rsplit(":", 1)
                repo = ref.split("/", 1)[1]   # without the registry host
                body = t.extractfile(members["blobs/sha256/" + desc["digest"].split(":", 1)[1]]).read()
                for key in (tag, desc["digest"]):
                    MANIFESTS[(repo, key)] = (desc["mediaType"], body, desc["digest"])
                print("registry: %s (%s)" % (full, name), file=sys.stderr)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("registry: %s %s\n" % (self.address_string(), fmt % args))

    def reply(self, code, ctype, length, digest=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        self.end_headers()

    def missing(self, what):
        body = json.dumps({"errors": [{"code": "NAME_UNKNOWN" if what == "manifest" else "BLOB_UNKNOWN",
                                       "message": "%s unknown: %s" % (what, self.path)}]}).encode()
        self.reply(404, "application/json", len(body))
        if self.command == "GET":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path in ("/v2", "/v2/"):
            self.reply(200, "application/json", 2)
            if self.command == "GET":
                self.wfile.write(b"{}")
            return
        if not path.startswith("/v2/"):
            return self.missing("path")
        repo, _, rest = path[4:].rpartition("/")
        repo, _, kind = repo.rpartition("/")
        if kind == "manifests":
            found = MANIFESTS.get((repo, rest))
            if not found:
                return self.missing("manifest")
            ctype, body, digest = found
            self.reply(200, ctype, len(body), digest)
            if self.command == "GET":
                self.wfile.write(body)
        elif kind == "blobs":
            found = BLOBS.get(rest)
            if not found:
                return self.missing("blob")
            archive, offset, size = found
            self.reply(200, "application/octet-stream", size, rest)
            if self.command == "GET":
                with open(archive, "rb") as f:
                    f.seek(offset)
                    left = size
                    while left:
                        chunk = f.read(min(left, 1 << 20))
                        self.wfile.write(chunk)
                        left -= len(chunk)
        else:
            self.missing("path")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", required=True, help="ADDR:PORT")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("folders", nargs="+")
    a = p.parse_args()
    for folder in a.folders:
        load(folder)
    host, port = a.listen.rsplit(":", 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("registry: serving %d manifests, %d blobs on https://%s" % (len(MANIFESTS) // 2, len(BLOBS), a.listen),
          file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
