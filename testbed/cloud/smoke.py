"""Smoke test of the test cloud as the project user: everything kos will do, then clean-up.

On the seeded demo-net / demo-subnet / demo-router / demo-key: a port with an allowed address
pair, two servers with metadata (one on that port), router routes through add_extraroutes and
remove_extraroutes, a floating IP on the first server's port, an Octavia load balancer with a
listener, a pool, two members and a health monitor. Everything it makes carries the name
prefix smoke-<pid> and is deleted again, also on failure; it then checks nothing is left.
Prints one line per check and `SMOKE OK` at the end; exits non-zero on any failure.
Environment: $TC_HOME/env.sh (OS_CLIENT_CONFIG_FILE, KOS_TEST_CLOUD_USER). Run by smoke.sh.
"""
import os
import sys
import time

import openstack

POLL = 0.2  # seconds between status polls (the CLI's --wait polls every 5 s)
T0 = time.time()
PREFIX = f"smoke-{os.getpid()}"


def say(msg):
    print(f"[{time.time() - T0:5.1f}s] {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def wait_for(what, get, ok=("ACTIVE",), bad=("ERROR",), attr="status", timeout=120):
    deadline = time.time() + timeout
    while True:
        res = get()
        status = getattr(res, attr)
        if status in ok:
            return res
        check(status not in bad and time.time() < deadline, f"{what}: {attr} is {status}")
        time.sleep(POLL)


c = openstack.connect(cloud=os.environ["KOS_TEST_CLOUD_USER"])
lbc = c.load_balancer
net = c.network.find_network("demo-net", ignore_missing=False)
subnet = c.network.find_subnet("demo-subnet", ignore_missing=False)
router = c.network.find_router("demo-router", ignore_missing=False)
public = c.network.find_network("public", ignore_missing=False)
image = c.image.find_image("tiny", ignore_missing=False)
flavor = c.compute.find_flavor("m1.tiny", ignore_missing=False)
check(c.compute.find_keypair("demo-key") is not None, "seeded keypair demo-key missing")
say(f"seeds found as project user: demo-net, demo-subnet, demo-router, public, tiny, m1.tiny,"
    f" demo-key ({PREFIX})")

made = {"servers": [], "port": None, "fip": None, "lb": None, "routes": []}


def lb_active():
    return wait_for("load balancer", lambda: lbc.get_load_balancer(made["lb"].id),
                    attr="provisioning_status")


def smoke():
    port = made["port"] = c.network.create_port(
        name=f"{PREFIX}-master-port", network_id=net.id,
        allowed_address_pairs=[{"ip_address": "10.244.0.0/24"}])
    check([p["ip_address"] for p in port.allowed_address_pairs] == ["10.244.0.0/24"],
          f"allowed address pairs of the port: {port.allowed_address_pairs}")
    say("port with allowed address pair 10.244.0.0/24")

    specs = [("master", {"port": port.id}), ("worker", {"uuid": net.id})]
    for role, nic in specs:
        made["servers"].append(c.compute.create_server(
            name=f"{PREFIX}-{role}", image_id=image.id, flavor_id=flavor.id, networks=[nic],
            key_name="demo-key", metadata={"k8s_role": role, "kos_smoke": PREFIX}))
    servers = [wait_for(f"server {s.name}", lambda s=s: c.compute.get_server(s.id))
               for s in made["servers"]]
    ips = [next(iter(s.addresses.values()))[0]["addr"] for s in servers]
    for s, (role, _) in zip(servers, specs):
        check(s.metadata.get("k8s_role") == role, f"metadata of {s.name}: {s.metadata}")
        check(s.key_name == "demo-key", f"key of {s.name}: {s.key_name}")
    check(ips[0] == port.fixed_ips[0]["ip_address"], f"master's IP {ips[0]} is not its port's")
    say(f"2 servers ACTIVE with metadata k8s_role, IPs {ips}")

    routes = made["routes"] = [{"destination": f"10.244.{i}.0/24", "nexthop": ip}
                               for i, ip in enumerate(ips)]
    r = c.network.add_extra_routes_to_router(router, {"router": {"routes": routes}})
    check(all(x in r.routes for x in routes), f"routes after add_extraroutes: {r.routes}")
    say(f"add_extraroutes: {len(routes)} routes on demo-router")
    r = c.network.remove_extra_routes_from_router(router, {"router": {"routes": routes}})
    check(not any(x in r.routes for x in routes), f"routes after remove_extraroutes: {r.routes}")
    made["routes"] = []
    say("remove_extraroutes: routes gone")

    fip = made["fip"] = c.network.create_ip(floating_network_id=public.id, port_id=port.id)
    check(fip.fixed_ip_address == ips[0], f"floating IP's fixed IP: {fip.fixed_ip_address}")
    say(f"floating IP {fip.floating_ip_address} -> {fip.fixed_ip_address}")

    made["lb"] = lbc.create_load_balancer(name=f"{PREFIX}-lb", vip_subnet_id=subnet.id)
    lb = lb_active()
    listener = lbc.create_listener(name=f"{PREFIX}-6443", loadbalancer_id=lb.id,
                                   protocol="TCP", protocol_port=6443)
    lb_active()
    pool = lbc.create_pool(name=f"{PREFIX}-pool", listener_id=listener.id, protocol="TCP",
                           lb_algorithm="ROUND_ROBIN")
    lb_active()
    for s, ip in zip(servers, ips):
        lbc.create_member(pool, name=s.name, address=ip, protocol_port=6443, subnet_id=subnet.id)
        lb_active()
    lbc.create_health_monitor(pool_id=pool.id, type="TCP", delay=5, timeout=3, max_retries=3)
    lb_active()
    members = list(lbc.members(pool))
    check(sorted(m.address for m in members) == sorted(ips), f"pool members: {members}")
    check(all(m.provisioning_status == "ACTIVE" for m in members), f"members: {members}")
    say(f"load balancer ACTIVE (VIP {lb.vip_address}, made up by the noop driver): listener TCP"
        " 6443, pool, 2 members, health monitor")


def cleanup():
    errors = []

    def attempt(what, fn):
        try:
            fn()
        except Exception as e:  # keep cleaning; report at the end
            errors.append(f"{what}: {e}")

    if made["lb"]:
        def del_lb():
            lbc.delete_load_balancer(made["lb"].id, cascade=True)
            deadline = time.time() + 60
            while lbc.find_load_balancer(made["lb"].id) is not None:
                check(time.time() < deadline, "load balancer not deleted in 60 s")
                time.sleep(POLL)
        attempt("load balancer", del_lb)
    if made["fip"]:
        attempt("floating IP", lambda: c.network.delete_ip(made["fip"]))
    if made["routes"]:
        attempt("routes", lambda: c.network.remove_extra_routes_from_router(
            router, {"router": {"routes": made["routes"]}}))
    for s in made["servers"]:
        attempt(f"server {s.name}", lambda s=s: c.compute.delete_server(s))
    for s in made["servers"]:
        attempt(f"server {s.name}",
                lambda s=s: c.compute.wait_for_delete(s, interval=POLL, wait=60))
    if made["port"]:
        attempt("port", lambda: c.network.delete_port(made["port"]))

    left = [s.name for s in c.compute.servers() if s.name.startswith(PREFIX)]
    left += [p.name or p.id for p in c.network.ports(network_id=net.id)
             if (p.name or "").startswith(PREFIX) or p.device_id in
             {s.id for s in made["servers"]}]
    left += [f.floating_ip_address for f in c.network.ips(floating_network_id=public.id)
             if made["fip"] and f.id == made["fip"].id]
    left += [lb.name for lb in lbc.load_balancers() if lb.name.startswith(PREFIX)]
    left += [str(r) for r in c.network.get_router(router.id).routes if r in made["routes"]]
    if left:
        errors.append(f"left behind: {left}")
    return errors


try:
    smoke()
    failure = None
except Exception as e:
    failure = f"{type(e).__name__}: {e}"
say("cleaning up")
errors = cleanup()
if failure or errors:
    for msg in filter(None, [failure] + errors):
        print(f"SMOKE FAILED: {msg}", file=sys.stderr)
    sys.exit(1)
say("nothing left behind")
print(f"SMOKE OK ({time.time() - T0:.1f} s)")
