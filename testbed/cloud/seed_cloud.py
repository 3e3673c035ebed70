"""Seed the cloud as an operator would: flavors, an image, an external network.
Then wait until the fake hypervisor is listed by the API, which happens only once
the scheduler's periodic discover_hosts has mapped it to cell1 (needed to boot).
Usage: seed_cloud.py CLOUDS_YAML COMPUTE_HOST
"""
import os
import sys
import time

os.environ["OS_CLIENT_CONFIG_FILE"] = sys.argv[1]
HOST = sys.argv[2]
import openstack  # noqa: E402

c = openstack.connect(cloud="testbed-admin")

for name, ram, vcpus, disk in (("m1.tiny", 512, 1, 1), ("m1.small", 2048, 2, 20)):
    c.compute.create_flavor(name=name, ram=ram, vcpus=vcpus, disk=disk, is_public=True)

# 1 KiB "raw" image: FakeDriver never reads it, glance stores it for real.
img = c.image.create_image(name="tiny", disk_format="raw", container_format="bare",
                           data=b"\0" * 1024, visibility="public")

net = c.network.create_network(name="public", is_router_external=True, is_shared=False,
                               provider_network_type="flat",
                               provider_physical_network="public")
# TEST-NET-3 documentation range: only IPAM records, no packet ever uses it.
c.network.create_subnet(name="public-subnet", network_id=net.id, ip_version=4,
                        cidr="203.0.113.0/24", gateway_ip="203.0.113.1",
                        allocation_pools=[{"start": "203.0.113.10", "end": "203.0.113.200"}],
                        is_dhcp_enabled=False)

t0 = time.time()
while True:
    hyps = list(c.compute.hypervisors())
    svcs = [(s.binary, s.state, s.status) for s in c.compute.services()]
    if hyps and ("nova-compute", "up", "enabled") in svcs:
        break
    if time.time() - t0 > 120:
        sys.exit(f"nova-compute not up in 120 s: hypervisors={[h.name for h in hyps]} services={svcs}")
    if int(time.time() - t0) % 5 == 0:
        print(f"  waiting for nova-compute: hypervisors={[h.name for h in hyps]} services={svcs}")
    time.sleep(1)
print(f"seeded: flavors m1.tiny m1.small, image tiny ({img.id}), external net public;"
      f" hypervisor {hyps[0].name} up")
