#!/usr/bin/python3
"""kos test hypervisor: makes the test cloud's Nova servers real Linux nodes and mirrors Neutron into
the emulated data plane. Reconciling and restart-safe: every loop compares the cloud with what exists.

Cloud side (project user's view, cloud TB_CLOUD; the admin cloud TB_ADMIN_CLOUD only reads the
external subnet and keypairs of other users, polled every TB_POLL seconds):
  Nova servers        ACTIVE -> node booted (testbed/nodes/node.sh up): eth0 = the server's Neutron
                      port (fixed IP and MAC), hostname = server name, authorized_keys of root and
                      `debian` = the public key of the server's keypair; SHUTOFF/SUSPENDED/PAUSED ->
                      powered off; a reboot (instance action) -> node rebooted; gone -> node removed
  Neutron router      its routes -> `ip route` in the router namespace (exactly that list)
  Neutron ports       fixed IPs + allowed-address-pairs -> ebtables anti-spoofing on the node's port
                      (port_security_enabled=false: no filter), as Neutron's OVS firewall does
  floating IPs        DNAT/SNAT in the router namespace, the address on its external port qg

Runs inside the deployer network namespace (`nsenter --net`, so that the host's cgroup mounts stay
visible), where the test cloud answers on 127.0.0.1. Started and stopped by hv.sh.
Signals: TERM/INT -> remove every node and the sandbox, then exit; USR1 -> exit and leave everything
running (a restarted hypervisor adopts it).
"""
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time

import openstack
from concurrent.futures import ThreadPoolExecutor

PREFIX = os.environ.get("TB_PREFIX", "kos")
RUN = os.environ.get("TB_RUN", f"/var/tmp/kos-testbed-run/{PREFIX}")
CLOUD = os.environ.get("TB_CLOUD") or os.environ.get("KOS_TEST_CLOUD_USER") or "testbed-demo"
ADMIN_CLOUD = os.environ.get("TB_ADMIN_CLOUD") or os.environ.get("KOS_TEST_CLOUD_ADMIN") or "testbed-admin"
ROUTER_NAME = os.environ.get("TB_ROUTER", "")
POLL = float(os.environ.get("TB_POLL", "0.4"))
NODES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "nodes")
ROUTER_NS = f"{PREFIX}-router"
ROUTE_PROTO = "42"  # marks the routes the hypervisor owns in the router namespace
OFF_STATES = {"SHUTOFF", "SUSPENDED", "PAUSED", "SHELVED", "SHELVED_OFFLOADED", "STOPPED"}
ON_STATES = {"ACTIVE", "REBOOT", "HARD_REBOOT", "RESIZE", "VERIFY_RESIZE", "MIGRATING", "RESCUE"}

T0 = time.time()


def log(msg):
    print(f"[hypervisor {time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d}] {msg}",
          file=sys.stderr, flush=True)


def run(*cmd, check=True, quiet=False):
    """Run a command, log it unless quiet, return stdout; raise on failure when check."""
    if not quiet:
        log("  $ " + " ".join(cmd))
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0 and check:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def rns(*cmd, **kw):
    """Run a command in the router namespace."""
    return run("ip", "netns", "exec", ROUTER_NS, *cmd, **kw)


def ok(*cmd):
    return subprocess.run(cmd, capture_output=True).returncode == 0


def node_script(*args):
    return [os.path.join(NODES_DIR, "node.sh"), *args]


def short_id(server_id):
    return server_id.replace("-", "")[:8]


def hostname_of(name):
    h = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:63]
    return h or "node"


class Stop(Exception):
    pass


class Hypervisor:
    def __init__(self):
        self.conn = openstack.connect(cloud=CLOUD)
        # A round's four list calls are asked at once, each on a connection of its own (an SDK
        # connection is not meant to be shared by threads): one after the other they took 10-13 s
        # a round on a loaded machine, and every Neutron change waited up to two rounds.
        self.lists = [openstack.connect(cloud=CLOUD) for _ in range(4)]
        self.pool = ThreadPoolExecutor(max_workers=4)
        self.admin = None    # only for what the project user cannot see (external subnet, others' keypairs)
        self.nodes = {}      # id8 -> {"server": uuid, "name", "power": "on"/"off", "reboots": int, "updated"}
        self.busy = {}       # id8 -> (Popen, what, on_done, on_failure)
        self.keys = {}       # keypair name -> public key
        self.applied_routes = None
        self.applied_portsec = {}
        self.applied_fips = None
        self.warned = set()
        self.stop = None     # None | "teardown" | "detach"

    # ------------------------------------------------------------------ sandbox
    def setup_sandbox(self):
        """Find the tenant router and subnet, build the router/ext namespaces to match them."""
        t = time.time()
        while True:
            router, subnet = self.find_router()
            if router and subnet:
                break
            if time.time() - t > 120:
                raise RuntimeError("no Neutron router with an interface on a subnet after 120 s "
                                   f"(cloud {CLOUD}, TB_ROUTER={ROUTER_NAME!r})")
            self.warn_once("wait-router", "waiting for a tenant router with an interface on a subnet")
            self.sleep(1)
        self.router_id = router.id
        self.net_id = subnet.network_id
        self.subnet_id = subnet.id
        net = ipaddress.ip_network(subnet.cidr)
        self.cidr = subnet.cidr
        self.gw = subnet.gateway_ip
        dep = self.deployer_ip(subnet, net)
        args = [f"{self.gw}/{net.prefixlen}", dep]
        gwinfo = router.external_gateway_info or {}
        self.ext_ip = None
        if gwinfo.get("external_fixed_ips"):
            ext_fixed = gwinfo["external_fixed_ips"][0]
            self.admin = self.admin or openstack.connect(cloud=ADMIN_CLOUD)
            esub = self.admin.network.get_subnet(ext_fixed["subnet_id"])
            self.ext_ip = ext_fixed["ip_address"]
            args += [f"{esub.gateway_ip}/{ipaddress.ip_network(esub.cidr).prefixlen}", self.ext_ip]
        log(f"tenant router {router.name} ({router.id}): subnet {subnet.cidr} gateway {self.gw}, "
            f"deployer {dep}, external {self.ext_ip or '-'}")
        run(os.path.join(NODES_DIR, "sandbox.sh"), "up", *args)
        self.init_router_nat()
        info = {"router": router.id, "network": self.net_id, "subnet": subnet.id, "cidr": subnet.cidr,
                "gateway": self.gw, "deployer_ip": dep, "router_external_ip": self.ext_ip}
        with open(os.path.join(RUN, "sandbox.json"), "w") as f:
            json.dump(info, f)
        with open(os.path.join(RUN, "sandbox.env"), "w") as f:  # the same, for shells and tests
            f.writelines(f"{k}={v or ''}\n" for k, v in info.items())

    def find_router(self):
        routers = [r for r in self.conn.network.routers()
                   if not ROUTER_NAME or r.name == ROUTER_NAME or r.id == ROUTER_NAME]
        for r in sorted(routers, key=lambda r: r.created_at or ""):
            for p in self.conn.network.ports(device_id=r.id, device_owner="network:router_interface"):
                for ip in p.fixed_ips:
                    sub = self.conn.network.get_subnet(ip["subnet_id"])
                    if sub.ip_version == 4:
                        return r, sub
        return None, None

    def deployer_ip(self, subnet, net):
        """An address of the subnet that Neutron never hands out: outside the allocation pools,
        not the gateway. If the pools cover the subnet, a Neutron port reserves one."""
        pools = [(ipaddress.ip_address(p["start"]), ipaddress.ip_address(p["end"]))
                 for p in subnet.allocation_pools]
        for a in reversed(list(net.hosts())):
            if str(a) != subnet.gateway_ip and not any(s <= a <= e for s, e in pools):
                return str(a)
        name = f"{PREFIX}-testbed-deployer"
        port = next(iter(self.conn.network.ports(name=name, network_id=subnet.network_id)), None)
        if port is None:
            port = self.conn.network.create_port(name=name, network_id=subnet.network_id,
                                                 fixed_ips=[{"subnet_id": subnet.id}])
            log(f"reserved the deployer's address with Neutron port {name}")
        return port.fixed_ips[0]["ip_address"]

    def init_router_nat(self):
        """Our NAT chains in the router namespace, hooked in once (the content: mirror_fips)."""
        for chain, hook in (("TB-FIP-PRE", "PREROUTING"), ("TB-FIP-OUT", "OUTPUT"),
                            ("TB-FIP-POST", "POSTROUTING")):
            if not ok("ip", "netns", "exec", ROUTER_NS, "iptables", "-t", "nat", "-n", "-L", chain):
                rns("iptables", "-t", "nat", "-N", chain)
            if not ok("ip", "netns", "exec", ROUTER_NS, "iptables", "-t", "nat", "-C", hook, "-j", chain):
                rns("iptables", "-t", "nat", "-A", hook, "-j", chain)

    # ------------------------------------------------------------------ loop
    def warn_once(self, key, msg):
        if key not in self.warned:
            self.warned.add(key)
            log(msg)

    def sleep(self, s):
        end = time.time() + s
        while time.time() < end:
            if self.stop:
                raise Stop()
            time.sleep(min(0.05, max(0, end - time.time())))

    def adopt(self):
        """Restart safety: take over nodes a previous hypervisor left running."""
        for id8 in run(*node_script("ls"), quiet=True).split():
            meta = os.path.join(RUN, "nodes", id8, "meta.json")
            try:
                with open(meta) as f:
                    m = json.load(f)
            except OSError:
                log(f"node {id8}: half-created by a previous run, removing")
                run(*node_script("down", id8))
                continue
            m["power"] = "on" if subprocess.run(node_script("running", id8)).returncode == 0 else "off"
            self.nodes[id8] = m
            log(f"node {id8}: adopted ({m['name']}, {m['ip']}, power {m['power']})")

    def loop(self):
        self.adopt()
        while True:
            self.reap()
            try:
                self.reconcile()
            except Stop:
                raise
            except Exception as e:  # the cloud may be slow or restarting: keep going
                log(f"reconcile failed: {type(e).__name__}: {e}")
                self.sleep(1)
            self.sleep(POLL)

    def reap(self):
        for id8, (p, what, done, failed) in list(self.busy.items()):
            rc = p.poll()
            if rc is None:
                continue
            del self.busy[id8]
            err = p.stderr.read().strip() if p.stderr else ""
            if rc == 0:
                log(f"node {id8}: {what} done")
                if done:
                    done()
            else:
                log(f"node {id8}: {what} FAILED rc={rc}: {err}")
                if failed:
                    failed()

    def spawn(self, id8, what, cmd, done=None, failed=None):
        log(f"node {id8}: {what}")
        log("  $ " + " ".join(cmd))
        self.busy[id8] = (subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                           text=True), what, done, failed)

    def reconcile(self):
        c = self.lists
        asked = [self.pool.submit(f) for f in (
            lambda: list(c[0].compute.servers(details=True)),
            lambda: list(c[1].network.ports(network_id=self.net_id)),
            lambda: c[2].network.get_router(self.router_id),
            lambda: list(c[3].network.ips()),
        )]
        servers, ports, router, fips = (a.result() for a in asked)
        port_of = {}
        for p in ports:
            if p.device_owner and p.device_owner.startswith("compute:"):
                port_of.setdefault(p.device_id, p)
        seen = set()
        for s in servers:
            id8 = short_id(s.id)
            seen.add(id8)
            if id8 in self.busy:
                continue
            node = self.nodes.get(id8)
            want = "on" if s.status in ON_STATES else "off" if s.status in OFF_STATES else None
            if node is None:
                if want == "on":
                    self.create(s, port_of.get(s.id))
                continue
            if want == "off" and node["power"] == "on":
                self.spawn(id8, f"power off ({s.name} is {s.status})", node_script("off", id8),
                           lambda n=node: n.update(power="off"))
            elif want == "on" and node["power"] == "off":
                self.spawn(id8, f"power on ({s.name} is {s.status})", node_script("on", id8),
                           lambda n=node: n.update(power="on"))
            elif want == "on" and s.updated_at != node.get("updated"):
                node["updated"] = s.updated_at
                n = self.reboot_count(s.id)
                if n > node.get("reboots", 0):
                    node["reboots"] = n
                    self.save(id8)
                    self.spawn(id8, f"reboot ({s.name}: Nova reboot)", node_script("reboot", id8))
        for id8 in list(self.nodes):
            if id8 not in seen and id8 not in self.busy:
                node = self.nodes[id8]
                self.spawn(id8, f"remove ({node['name']}: server deleted)", node_script("down", id8),
                           lambda i=id8: self.nodes.pop(i, None))
        # one failing mirror must not hold up the others (nor the nodes above)
        for what, mirror, arg in (("routes", self.mirror_routes, router),
                                  ("anti-spoofing", self.mirror_portsec, ports),
                                  ("floating IPs", self.mirror_fips, fips)):
            try:
                mirror(arg)
            except Exception as e:
                log(f"mirroring {what} failed: {type(e).__name__}: {e}")

    def create(self, s, port):
        id8 = short_id(s.id)
        if port is None:
            self.warn_once(f"noport-{s.id}", f"server {s.name} ({s.id}): no port on the tenant network "
                           f"{self.net_id}: no node")
            return
        ip = next((f["ip_address"] for f in port.fixed_ips if f["subnet_id"] == self.subnet_id), None)
        if ip is None:
            self.warn_once(f"noip-{s.id}", f"server {s.name}: port has no address on the tenant subnet")
            return
        key = self.pubkey(s) if s.key_name else ""
        if not s.key_name:
            self.warn_once(f"nokey-{s.id}", f"server {s.name}: no keypair, nobody can log in")
        keyfile = os.path.join(RUN, f"key-{id8}.pub")
        with open(keyfile, "w") as f:
            f.write(key + ("\n" if key else ""))
        plen = ipaddress.ip_network(self.cidr).prefixlen
        node = {"server": s.id, "name": s.name, "ip": ip, "mac": port.mac_address, "power": "on",
                "reboots": self.reboot_count(s.id), "updated": s.updated_at}
        self.nodes[id8] = node

        def done():
            os.unlink(keyfile)
            self.save(id8)

        def failed():  # clean up what exists of it; the next loop creates it again
            self.nodes.pop(id8, None)
            run(*node_script("down", id8), check=False)
        self.spawn(id8, f"create ({s.name}: {ip} {port.mac_address}, key {s.key_name or '-'})",
                   node_script("up", id8, f"{ip}/{plen}", self.gw, port.mac_address,
                               hostname_of(s.name), keyfile), done, failed)

    def save(self, id8):
        path = os.path.join(RUN, "nodes", id8, "meta.json")
        if os.path.isdir(os.path.dirname(path)):
            with open(path, "w") as f:
                json.dump(self.nodes[id8], f)

    def pubkey(self, server):
        """The public key of the server's keypair: the project user's own, else (a keypair of another
        user of the project) read by the admin with the server's user_id (Nova >= 2.10)."""
        k = (server.user_id, server.key_name)
        if k not in self.keys:
            try:
                self.keys[k] = self.conn.compute.get_keypair(server.key_name).public_key.strip()
            except Exception:
                try:
                    self.admin = self.admin or openstack.connect(cloud=ADMIN_CLOUD)
                    r = self.admin.compute.get(f"/os-keypairs/{server.key_name}?user_id={server.user_id}",
                                               microversion="2.10")
                    r.raise_for_status()
                    self.keys[k] = r.json()["keypair"]["public_key"].strip()
                except Exception as e:
                    log(f"keypair {server.key_name} of user {server.user_id}: cannot read it ({e});"
                        " the node gets no key")
                    return ""
        return self.keys[k]

    def reboot_count(self, server_id):
        r = self.conn.compute.get(f"/servers/{server_id}/os-instance-actions")
        return sum(1 for a in r.json().get("instanceActions", []) if a.get("action") == "reboot")

    # ------------------------------------------------------------------ data plane
    def mirror_routes(self, router):
        """The router namespace's routes (marked proto 42) = Neutron's list. Routes to the same
        destination through several nexthops become one multipath route (ECMP)."""
        want = {}
        for r in router.routes or []:
            if ipaddress.ip_network(r["destination"], strict=False).version == 4:
                want.setdefault(r["destination"], set()).add(r["nexthop"])
        want = {d: tuple(sorted(nhs)) for d, nhs in want.items()}
        if self.applied_routes is None:  # first loop (or restart): read what is there
            have = {}
            for r in json.loads(rns("ip", "-j", "route", "show", "proto", ROUTE_PROTO, quiet=True) or "[]"):
                dst = r["dst"] if "/" in r["dst"] else r["dst"] + "/32"
                nhs = [h.get("gateway") for h in r.get("nexthops", [])] or [r.get("gateway")]
                have[dst] = tuple(sorted(nhs))
            self.applied_routes = have
        if want == self.applied_routes:
            return
        for dst in sorted(set(self.applied_routes) - set(want)):
            log(f"router: route {dst} via {', '.join(self.applied_routes[dst])} removed in Neutron")
            rns("ip", "route", "del", dst, "proto", ROUTE_PROTO, check=False)
        for dst, nhs in sorted(want.items()):
            if self.applied_routes.get(dst) == nhs:
                continue
            log(f"router: route {dst} via {', '.join(nhs)} in Neutron")
            via = ["via", nhs[0], "dev", "tenant0"] if len(nhs) == 1 else \
                [w for nh in nhs for w in ("nexthop", "via", nh, "dev", "tenant0")]
            rns("ip", "route", "replace", dst, "proto", ROUTE_PROTO, *via)
        self.applied_routes = want

    def mirror_portsec(self, ports):
        want = {}
        for p in ports:
            id8 = short_id(p.device_id or "") if (p.device_owner or "").startswith("compute:") else None
            if not id8 or id8 not in self.nodes or id8 in self.busy:
                continue
            if p.is_port_security_enabled is False:
                want[id8] = None
            else:
                want[id8] = tuple(sorted({f["ip_address"] for f in p.fixed_ips} |
                                         {a["ip_address"] for a in (p.allowed_address_pairs or [])}))
        for id8 in set(self.applied_portsec) - set(want):
            if id8 not in self.nodes:   # node gone: its veth (and the rules' interface) went with it
                self.portsec_off(id8)
                del self.applied_portsec[id8]
        for id8, allowed in want.items():
            if self.applied_portsec.get(id8, "unset") == allowed:
                continue
            if not os.path.exists(os.path.join(RUN, "nodes", id8, "meta.json")):
                continue  # still being created
            self.portsec_off(id8)
            if allowed is None:
                log(f"port of {self.nodes[id8]['name']}: port security disabled, no anti-spoofing")
            else:
                log(f"port of {self.nodes[id8]['name']}: anti-spoofing, allowed sources {', '.join(allowed)}")
                chain, port = f"TB-PS-{id8}", f"{PREFIX}n{id8}"
                rns("ebtables", "-N", chain, "-P", "DROP")
                rns("ebtables", "-A", chain, "-p", "ARP", "-j", "RETURN")
                for a in allowed:
                    rns("ebtables", "-A", chain, "-p", "IPv4", "--ip-src", a, "-j", "RETURN")
                rns("ebtables", "-A", "INPUT", "-i", port, "-j", chain)     # to the router (routed)
                rns("ebtables", "-A", "FORWARD", "-i", port, "-j", chain)   # bridged to another port
            self.applied_portsec[id8] = allowed

    def portsec_off(self, id8):
        chain, port = f"TB-PS-{id8}", f"{PREFIX}n{id8}"
        for hook in ("INPUT", "FORWARD"):
            rns("ebtables", "-D", hook, "-i", port, "-j", chain, check=False, quiet=True)
        rns("ebtables", "-F", chain, check=False, quiet=True)
        rns("ebtables", "-X", chain, check=False, quiet=True)

    def mirror_fips(self, fips):
        want = tuple(sorted((f.floating_ip_address, f.fixed_ip_address) for f in fips
                            if f.fixed_ip_address and f.router_id == self.router_id))
        if want == self.applied_fips or not self.ext_ip:
            return
        log("router: floating IPs " + (", ".join(f"{a} -> {b}" for a, b in want) or "none"))
        rules = ["*nat", ":TB-FIP-PRE - [0:0]", ":TB-FIP-OUT - [0:0]", ":TB-FIP-POST - [0:0]"]
        for fip, fixed in want:
            rules += [f"-A TB-FIP-PRE -d {fip}/32 -j DNAT --to-destination {fixed}",
                      f"-A TB-FIP-OUT -d {fip}/32 -j DNAT --to-destination {fixed}",
                      f"-A TB-FIP-POST -s {fixed}/32 -o qg -j SNAT --to-source {fip}"]
        # a tenant client reaching a floating IP of its own network (hairpin): answer through the
        # router, as Neutron's l3 agent does; the router's gateway SNAT for everything else
        rules += [f"-A TB-FIP-POST -s {self.cidr} -o tenant0 -m conntrack --ctstate DNAT "
                  f"-j SNAT --to-source {self.gw}",
                  f"-A TB-FIP-POST -s {self.cidr} -o qg -j SNAT --to-source {self.ext_ip}", "COMMIT", ""]
        p = subprocess.run(["ip", "netns", "exec", ROUTER_NS, "iptables-restore", "--noflush"],
                           input="\n".join(rules), capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"iptables-restore: {p.stderr.strip()}")
        have = {a["local"] for i in json.loads(rns("ip", "-j", "addr", "show", "dev", "qg", quiet=True))
                for a in i.get("addr_info", []) if a.get("prefixlen") == 32}
        for fip in have - {f for f, _ in want}:
            rns("ip", "addr", "del", f"{fip}/32", "dev", "qg", check=False)
        for fip in {f for f, _ in want} - have:
            rns("ip", "addr", "add", f"{fip}/32", "dev", "qg")
        self.applied_fips = want

    # ------------------------------------------------------------------ teardown
    def teardown(self):
        teardown()


def teardown():
    """Remove every node and the sandbox (router, ext); works from the state on disk alone."""
    ids = run(*node_script("ls"), quiet=True).split()
    if ids:
        log(f"removing {len(ids)} node(s)")
        procs = [(i, subprocess.Popen(node_script("down", i))) for i in ids]
        for i, p in procs:
            p.wait()
            log(f"node {i}: removed (rc={p.returncode})")
    run(os.path.join(NODES_DIR, "sandbox.sh"), "down")
    for f in ("sandbox.json", "sandbox.env", "ready"):
        try:
            os.unlink(os.path.join(RUN, f))
        except FileNotFoundError:
            pass


def main():
    if sys.argv[1:] == ["--teardown"]:
        teardown()
        return 0
    os.makedirs(os.path.join(RUN, "nodes"), exist_ok=True)
    hv = Hypervisor()

    def on_signal(signum, _frame):
        hv.stop = "detach" if signum == signal.SIGUSR1 else "teardown"
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(sig, on_signal)
    rc = 0
    try:
        log(f"starting: cloud {CLOUD}, prefix {PREFIX}, run dir {RUN}, poll {POLL}s")
        hv.setup_sandbox()
        with open(os.path.join(RUN, "ready"), "w") as f:
            f.write(str(os.getpid()))
        log(f"ready in {time.time() - T0:.1f}s")
        hv.loop()
    except Stop:
        pass
    except Exception as e:
        log(f"FATAL: {type(e).__name__}: {e}")
        hv.stop, rc = "teardown", 1
    for p, *_ in hv.busy.values():
        p.wait()
    if hv.stop == "detach":
        log("detached: nodes and sandbox left running for the next hypervisor")
    else:
        log("stopping: tearing everything down")
        teardown()
        log("stopped")
    return rc


if __name__ == "__main__":
    sys.exit(main())
