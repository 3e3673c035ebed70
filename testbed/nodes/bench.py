#!/usr/bin/python3
"""Figures of the test nodes, measured through the test cloud's API like a user would see them.
Run by bench.sh inside the deployer namespace of a running test bed (with-testbed.sh).

For each N: one `POST /servers` with min_count=max_count=N (project user, a fresh keypair), then
  ACTIVE    the time until Nova reports all N servers ACTIVE with an address (polled every 0.1 s)
  SSH       the time until `ssh debian@<fixed IP> true` succeeds for all N (the key of the keypair)
  ACTIVE->SSH  per server, from ACTIVE in the API to SSH answering: the hypervisor's and the node's part
  memory    per node, from the node's own memory cgroup (charged = incl. page cache; RSS)
  delete    the time from DELETE until every node is gone (sandbox.sh leaks clean)
Usage: bench.py N [N...]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import openstack

HERE = os.path.dirname(os.path.abspath(__file__))
CLOUD = os.environ.get("KOS_TEST_CLOUD_USER", "testbed-demo")
SSH = ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
       "-o", "BatchMode=yes", "-o", "ConnectTimeout=2"]


def sandbox():
    with open(os.path.join(os.environ["TB_RUN"], "sandbox.env")) as f:
        return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)


def wait_ssh(key, ip, t0, out, deadline):
    while time.time() < deadline:
        if subprocess.run(SSH + ["-i", key, f"debian@{ip}", "true"], capture_output=True).returncode == 0:
            out[ip] = time.time() - t0
            return
        time.sleep(0.1)


def one_round(conn, key, keyname, net, n, tag):
    flavor = conn.compute.find_flavor("m1.tiny")
    image = conn.image.find_image("tiny")
    t0 = time.time()
    conn.compute.create_server(name=f"bench{tag}", flavor_id=flavor.id, image_id=image.id, key_name=keyname,
                               networks=[{"uuid": net}], min_count=n, max_count=n)
    active, ssh_ok, threads = {}, {}, []
    deadline = t0 + 120 + 10 * n
    while len(ssh_ok) < n or any(t.is_alive() for t in threads):
        if time.time() > deadline:
            break
        if len(active) < n:
            for s in conn.compute.servers(name=f"^bench{tag}"):
                ip = next((a["addr"] for addrs in (s.addresses or {}).values() for a in addrs
                           if a.get("version") == 4), None)
                if s.status == "ACTIVE" and ip and s.id not in active:
                    active[s.id] = (time.time() - t0, ip)
                    th = threading.Thread(target=wait_ssh, args=(key, ip, t0, ssh_ok, deadline))
                    th.start()
                    threads.append(th)
                if s.status == "ERROR":
                    sys.exit(f"server {s.name} went to ERROR: {s.fault}")
        time.sleep(0.1)
    for th in threads:
        th.join()
    if len(ssh_ok) < n:
        sys.exit(f"N={n}: only {len(ssh_ok)} of {n} nodes answered SSH")
    time.sleep(3)  # let the nodes settle before reading their memory
    mem = []
    for sid in active:
        out = subprocess.run([os.path.join(HERE, "node.sh"), "mem", sid.replace("-", "")[:8]],
                             capture_output=True, text=True).stdout.split()
        if len(out) == 2 and out[0] != "?":
            mem.append((int(out[0]), int(out[1])))
    td = time.time()
    ids8 = [sid.replace("-", "")[:8] for sid in active]
    for sid in active:
        conn.compute.delete_server(sid)
    while subprocess.run([os.path.join(HERE, "sandbox.sh"), "leaks", *ids8], capture_output=True).returncode:
        if time.time() - td > 120:
            sys.exit("nodes not removed within 120 s")
        time.sleep(0.1)
    gone = time.time() - td
    a = sorted(t for t, _ in active.values())
    s = sorted(ssh_ok.values())
    boot = sorted(ssh_ok[ip] - t for t, ip in active.values())  # the test bed's own part
    print(f"N={n:<3} ACTIVE all {a[-1]:5.1f} s | SSH first {s[0]:5.1f} s, median {statistics.median(s):5.1f} s,"
          f" all {s[-1]:5.1f} s | ACTIVE->SSH median {statistics.median(boot):4.1f} s, max {boot[-1]:4.1f} s"
          f" | memory/node {statistics.mean(m for m, _ in mem):4.0f} MiB charged,"
          f" {statistics.mean(r for _, r in mem):3.0f} MiB RSS | delete -> nodes gone {gone:4.1f} s", flush=True)


def main():
    ns = [int(a) for a in sys.argv[1:]] or [1, 5, 10]
    conn = openstack.connect(cloud=CLOUD)
    net = sandbox()["network"]
    with tempfile.TemporaryDirectory() as d:
        key = os.path.join(d, "id")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        keyname = f"bench{os.getpid()}"
        with open(key + ".pub") as f:
            conn.compute.create_keypair(name=keyname, public_key=f.read())
        try:
            for i, n in enumerate(ns):
                one_round(conn, key, keyname, net, n, f"{os.getpid()}x{i}")
        finally:
            for s in conn.compute.servers(name=f"^bench{os.getpid()}x"):
                conn.compute.delete_server(s.id)
            conn.compute.delete_keypair(keyname)


if __name__ == "__main__":
    main()
