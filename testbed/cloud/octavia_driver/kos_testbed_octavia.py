"""The test cloud's Octavia network driver: Octavia's own noop driver (no amphora can run
here, so nothing is plugged and no traffic moves), except that a port, subnet or network
Neutron knows is read from Neutron.

Why: given a VIP port (`vip_port_id`, as kos's API load balancer is), Octavia's API takes the
VIP's subnet and address from that port's fixed IPs. The noop driver's made-up port has none,
so Octavia refuses every load balancer on a port ("VIP port's subnet could not be
determined"). Reading Neutron's answer, as the real allowed_address_pairs driver does, lets the
API see the port as a real cloud's Octavia would. Anything Neutron does not know (the
amphorae's invented ports) still gets the noop driver's answer.
"""

from neutronclient.common import exceptions as neutron_exceptions
from octavia.common import clients
from octavia.network.drivers.neutron import utils
from octavia.network.drivers.noop_driver import driver as noop
from oslo_config import cfg

CONF = cfg.CONF


class NoopNetworkDriverReadingNeutron(noop.NoopNetworkDriver):
    def _neutron(self):
        return clients.NeutronAuth.get_neutron_client(
            endpoint=CONF.neutron.endpoint,
            region=CONF.neutron.region_name,
            endpoint_type=CONF.neutron.endpoint_type,
            service_name=CONF.neutron.service_name,
            insecure=CONF.neutron.insecure,
            ca_cert=CONF.neutron.ca_certificates_file,
        )

    def _read(self, kind, resource_id, noop_answer):
        try:
            found = getattr(self._neutron(), "show_%s" % kind)(resource_id)
        except neutron_exceptions.NotFound:
            return noop_answer(resource_id)
        return getattr(utils, "convert_%s_dict_to_model" % kind)(found)

    def get_port(self, port_id, context=None):
        return self._read("port", port_id, super().get_port)

    def get_subnet(self, subnet_id, context=None):
        return self._read("subnet", subnet_id, super().get_subnet)

    def get_network(self, network_id, context=None):
        return self._read("network", network_id, super().get_network)
