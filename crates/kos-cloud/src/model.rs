//! The fields kos reads of each OpenStack resource. Deserialised from the APIs' JSON
//! (unknown fields ignored), so a newer cloud does not break kos.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// A Nova server (`GET /servers/detail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    pub id: String,
    pub name: String,
    /// `BUILD`, `ACTIVE`, `ERROR`, `SHUTOFF`, ...
    pub status: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Nova's fault message when `status` is `ERROR`, verbatim.
    #[serde(default)]
    pub fault: Option<String>,
    /// Addresses by network name, as Nova reports them.
    #[serde(default)]
    pub addresses: Vec<ServerAddress>,
    #[serde(default)]
    pub key_name: Option<String>,
    #[serde(default)]
    pub flavor_id: Option<String>,
}

/// One address of a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerAddress {
    pub network: String,
    pub ip: Ipv4Addr,
    /// `fixed` or `floating` (Nova's `OS-EXT-IPS:type`).
    pub kind: String,
}

/// A Neutron port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub id: String,
    pub name: String,
    pub network_id: String,
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    #[serde(default)]
    pub allowed_address_pairs: Vec<AddressPair>,
    /// The server using the port, or empty.
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub device_owner: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub port_security_enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: Ipv4Addr,
}

/// An allowed address pair: a CIDR the port may send from besides its own address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AddressPair {
    pub ip_address: String,
}

/// A Neutron router with its extra routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Router {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub routes: Vec<Route>,
    /// For `If-Match` on whole-list route updates (clouds without `extraroute-atomic`).
    #[serde(default)]
    pub revision_number: u64,
    /// The external network of the router's gateway, if any.
    #[serde(default)]
    pub external_network_id: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// An extra route of a router.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Route {
    pub destination: Ipv4Net,
    pub nexthop: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    /// `router:external`.
    #[serde(default)]
    pub external: bool,
    #[serde(default)]
    pub subnets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub cidr: Ipv4Net,
    #[serde(default)]
    pub gateway_ip: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatingIp {
    pub id: String,
    pub floating_ip_address: Ipv4Addr,
    pub floating_network_id: String,
    #[serde(default)]
    pub port_id: Option<String>,
    #[serde(default)]
    pub fixed_ip_address: Option<Ipv4Addr>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub rules: Vec<SecurityGroupRule>,
}

/// An ingress or egress rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SecurityGroupRule {
    /// `ingress` or `egress`.
    pub direction: String,
    /// `tcp`, `udp`, `icmp`, or `None` for any.
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub port_range_min: Option<u16>,
    #[serde(default)]
    pub port_range_max: Option<u16>,
    #[serde(default)]
    pub remote_ip_prefix: Option<String>,
    /// Another security group (often the same one: "from every member").
    #[serde(default)]
    pub remote_group_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    /// MiB.
    pub ram: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keypair {
    pub name: String,
    pub public_key: String,
}

/// A quota: the limit (`-1` unlimited) and what is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub limit: i64,
    pub used: i64,
}

impl Quota {
    /// Room for `n` more, or unlimited.
    pub fn allows(&self, n: i64) -> bool {
        self.limit < 0 || self.used + n <= self.limit
    }
}

/// The quotas `kos check` compares with the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    pub instances: Quota,
    pub cores: Quota,
    /// MiB.
    pub ram: Quota,
    pub ports: Quota,
    pub floating_ips: Quota,
    pub security_groups: Quota,
    pub security_group_rules: Quota,
}

/// An Octavia load balancer (kos marks its own in `description`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub vip_address: Ipv4Addr,
    #[serde(default)]
    pub vip_port_id: Option<String>,
    /// `ACTIVE`, `PENDING_CREATE`, `PENDING_UPDATE`, `PENDING_DELETE`, `ERROR`.
    pub provisioning_status: String,
    #[serde(default)]
    pub operating_status: String,
}

/// A member of a load balancer's pool.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LoadBalancerMember {
    #[serde(default)]
    pub name: String,
    pub address: Ipv4Addr,
    pub protocol_port: u16,
}
