#!/usr/bin/env python3
"""pack-image.py OUT.tar NAME [--entrypoint JSON] [--cmd JSON] [--user U] [--dir DIR]... [--lib-root ROOT]
                 SRC:DEST[:MODE] | @DEST=TARGET ...

Writes a one-layer container image as an OCI image layout in a tar archive, the form
`ctr -n k8s.io images import` takes, with no registry and no docker: the layer holds each SRC
file at DEST and each @DEST=TARGET as a symbolic link (plus /etc/passwd, /etc/group, /tmp, unless
given as files, and each --dir), the image is named NAME through the
`io.containerd.image.name` annotation (exactly the name kos's manifests use). Reproducible:
sorted entries, mtime 0, uid/gid 0, so the same inputs give the same digest.

--lib-root ROOT: every dynamically linked SRC also brings the shared libraries it loads, resolved in
ROOT (a root extracted from Debian packages, loader included) by ROOT's own loader (`ld.so --list`),
at the path they have in ROOT, and the loader at /lib64/ld-linux-x86-64.so.2: the image runs on its own.
"""
import argparse, hashlib, io, json, os, subprocess, sys, tarfile

LOADER = "lib64/ld-linux-x86-64.so.2"
MULTIARCH = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"]


def shared_libs(root, src):
    """{DEST: SRC} of the libraries src loads, resolved in root; {} for a static or non-ELF file."""
    with open(src, "rb") as f:
        if f.read(4) != b"\x7fELF":
            return {}
    loader = os.path.join(root, MULTIARCH[0], os.path.basename(LOADER))
    r = subprocess.run([loader, "--library-path", ":".join(os.path.join(root, d) for d in MULTIARCH), "--list", src],
                       capture_output=True, text=True)
    if r.returncode != 0 or "statically linked" in r.stdout:
        return {}
    libs = {LOADER: os.path.realpath(loader)}
    for line in r.stdout.splitlines():
        if "=>" not in line:
            continue
        name, _, where = line.partition("=>")
        path = where.split()[0] if where.split() else "not"
        if path == "not":
            sys.exit(f"pack-image: {src} needs {name.strip()}, not found in {root}")
        real = os.path.realpath(path)
        if not real.startswith(os.path.realpath(root) + "/"):
            sys.exit(f"pack-image: {src} resolved {name.strip()} outside {root}: {path}")
        if os.path.basename(path) == os.path.basename(LOADER):
            continue
        libs[os.path.relpath(os.path.abspath(path), root)] = real
    return libs

PASSWD = b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
GROUP = b"root:x:0:\nnonroot:x:65532:\n"


def add(tar, path, data=None, mode=0o644, kind=tarfile.REGTYPE, src=None):
    info = tarfile.TarInfo(path)
    info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode, info.type = 0, 0, 0, "", "", mode, kind
    if kind == tarfile.DIRTYPE:
        tar.addfile(info)
    elif src is not None:
        info.size = os.path.getsize(src)
        with open(src, "rb") as f:
            tar.addfile(info, f)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    add(out, "blobs/sha256/" + digest, data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("name")
    p.add_argument("--entrypoint", type=json.loads)
    p.add_argument("--cmd", type=json.loads)
    p.add_argument("--user")
    p.add_argument("--dir", action="append", default=[])
    p.add_argument("--lib-root")
    p.add_argument("files", nargs="+")
    a = p.parse_args()

    files, links = {}, {}
    for spec in a.files:
        if spec.startswith("@"):
            dest, target = spec[1:].split("=", 1)
            links[dest.lstrip("/")] = target
            continue
        src, dest, *mode = spec.split(":")
        files[dest.lstrip("/")] = (src, int(mode[0], 8) if mode else 0o755)
        if a.lib_root:
            for ldest, lsrc in shared_libs(a.lib_root, src).items():
                files.setdefault(ldest, (lsrc, 0o755))
    dirs = {"etc", "tmp"} | {d.strip("/") for d in a.dir}
    for dest in list(files) + list(links):
        parts = dest.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
        entries = [(d, None) for d in dirs] + [(f, files[f]) for f in files]
        entries += [(e, data) for e, data in [("etc/group", GROUP), ("etc/passwd", PASSWD)] if e not in files]
        entries += [(l, ("link", links[l])) for l in links]
        for path, what in sorted(entries, key=lambda e: e[0]):
            if isinstance(what, tuple) and what[0] == "link":
                info = tarfile.TarInfo(path)
                info.type, info.linkname, info.mtime, info.mode = tarfile.SYMTYPE, what[1], 0, 0o777
                t.addfile(info)
            elif what is None:
                add(t, path, mode=0o1777 if path == "tmp" else 0o755, kind=tarfile.DIRTYPE)
            elif isinstance(what, bytes):
                add(t, path, what)
            else:
                add(t, path, src=what[0], mode=what[1])
    layer = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    if a.entrypoint:
        config["Entrypoint"] = a.entrypoint
    if a.cmd:
        config["Cmd"] = a.cmd
    if a.user:
        config["User"] = a.user
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": config,
                      "rootfs": {"type": "layers", "diff_ids": [diff_id]}}, sort_keys=True).encode()
    with tarfile.open(a.out + ".tmp", mode="w", format=tarfile.PAX_FORMAT) as out:
        lay = blob(out, layer)
        con = blob(out, cfg)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **con),
                               "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar", **lay)]},
                              sort_keys=True).encode()
        man = blob(out, manifest)
        tag = a.name.rsplit(":", 1)[1]
        index = {"schemaVersion": 2, "manifests": [dict(
            mediaType="application/vnd.oci.image.manifest.v1+json", **man,
            annotations={"io.containerd.image.name": a.name, "org.opencontainers.image.ref.name": tag})]}
        add(out, "index.json", json.dumps(index, sort_keys=True).encode())
        add(out, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    os.replace(a.out + ".tmp", a.out)
    print(f"{a.out}: {a.name} {man['digest']}")


if __name__ == "__main__":
    main()
