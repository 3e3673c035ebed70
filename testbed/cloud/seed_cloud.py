"""Seed the test cloud for kos, after seed_keystone.py and once every API answers.

As the operator (admin cloud): flavors, a tiny public image, the external network `public`
with its floating-IP subnet, the demo project's quotas. As the project user (user cloud):
the tenant network `demo-net` + `demo-subnet`, the router `demo-router` (gateway on
`public`, interface on `demo-subnet`) and the keypair `demo-key` (private key written to
$TC_HOME/demo-key.pem). Then it waits until nova lists the fake hypervisor, which happens
once the scheduler's periodic discover_hosts has mapped it to cell1 (needed to boot).
Environment: $TC_HOME/env.sh (OS_CLIENT_CONFIG_FILE, KOS_TEST_CLOUD_ADMIN, KOS_TEST_CLOUD_USER).
Prints one line per seed: up.sh shows them.
"""
import os
import sys
import time

import openstack
from openstack.compute.v2.quota_set import QuotaSet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

# Project quotas: instances is the limit a test reaches first, on purpose (the 26th server of
# m1.tiny or m1.small fails with a quota error); cores and RAM fit 25 m1.small servers.
QUOTAS_COMPUTE = dict(instances=25, cores=50, ram=25 * 2048)
QUOTAS_NETWORK = dict(floating_ips=25, routers=5, networks=10, subnets=10, ports=100,
                      security_groups=10, security_group_rules=100)
QUOTAS_LB = dict(load_balancers=5, listeners=10, pools=10, members=50, health_monitors=10)
FLAVORS = (("m1.tiny", 512, 1, 1), ("m1.small", 2048, 2, 20))

home = os.environ["TC_HOME"]
admin = openstack.connect(cloud=os.environ["KOS_TEST_CLOUD_ADMIN"])
user = openstack.connect(cloud=os.environ["KOS_TEST_CLOUD_USER"])
project_id = user.current_project_id

for name, ram, vcpus, disk in FLAVORS:
    admin.compute.create_flavor(name=name, ram=ram, vcpus=vcpus, disk=disk, is_public=True)
print("flavors: " + ", ".join(f"{n} ({v} vCPU, {r} MiB, {d} GB)" for n, r, v, d in FLAVORS))

# 1 KiB "raw" image: the fake driver never reads it, glance stores it for real.
img = admin.image.create_image(name="tiny", disk_format="raw", container_format="bare",
                               data=b"\0" * 1024, visibility="public")
print(f"image: tiny (public, 1 KiB raw, {img.id})")

net = admin.network.create_network(name="public", is_router_external=True, is_shared=False,
                                   provider_network_type="flat",
                                   provider_physical_network="public")
# TEST-NET-3 documentation range: only IPAM records, no packet ever uses it.
admin.network.create_subnet(name="public-subnet", network_id=net.id, ip_version=4,
                            cidr="203.0.113.0/24", gateway_ip="203.0.113.1",
                            allocation_pools=[{"start": "203.0.113.10", "end": "203.0.113.200"}],
                            is_dhcp_enabled=False)
print("external network: public, subnet public-subnet 203.0.113.0/24 (floating IPs .10-.200)")

admin.compute.update_quota_set(QuotaSet(project_id=project_id), **QUOTAS_COMPUTE)
admin.network.update_quota(project_id, **QUOTAS_NETWORK)
admin.load_balancer.update_quota(project_id, **QUOTAS_LB)
print("quotas of project demo: " + ", ".join(
    f"{k}={v}" for k, v in {**QUOTAS_COMPUTE, **QUOTAS_NETWORK, **QUOTAS_LB}.items()))

tnet = user.network.create_network(name="demo-net")
tsub = user.network.create_subnet(name="demo-subnet", network_id=tnet.id, ip_version=4,
                                  cidr="10.0.0.0/24")
router = user.network.create_router(name="demo-router",
                                    external_gateway_info={"network_id": net.id})
user.network.add_interface_to_router(router, subnet_id=tsub.id)
print("tenant network (project demo): demo-net, subnet demo-subnet 10.0.0.0/24,"
      " router demo-router (gateway public, interface on demo-subnet)")

key = ed25519.Ed25519PrivateKey.generate()
pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                        serialization.NoEncryption())
pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                    serialization.PublicFormat.OpenSSH).decode()
pem_path = os.path.join(home, "demo-key.pem")
with open(os.open(pem_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
    f.write(pem)
user.compute.create_keypair(name="demo-key", public_key=pub)
print(f"keypair (project user): demo-key, private key {pem_path}")

t0 = time.time()
while True:
    hyps = list(admin.compute.hypervisors())
    svcs = [(s.binary, s.state, s.status) for s in admin.compute.services()]
    if hyps and ("nova-compute", "up", "enabled") in svcs:
        break
    if time.time() - t0 > 120:
        sys.exit(f"nova-compute not up in 120 s: hypervisors={[h.name for h in hyps]} services={svcs}")
    time.sleep(0.5)
print(f"hypervisor: {hyps[0].name} (fake driver; servers are database rows)")
