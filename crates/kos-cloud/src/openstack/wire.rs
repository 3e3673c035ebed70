//! The JSON shapes of the Nova, Neutron, Glance and Octavia answers kos reads, and their
//! mapping into [`crate::model`].
//!
//! Where the API's shape is the model's (Glance images, Octavia load balancers, floating
//! IPs) the model is decoded directly. Elsewhere a small wire struct takes the answer as
//! it is and [`From`]/functions turn it into the model: Nova's addresses by network,
//! `fault.message`, `router:external`, the router's gateway. Addresses that are not IPv4
//! (kos's model is IPv4-only) are skipped, never an error, so a dual-stack port does not
//! break a listing.

use crate::model::*;
use ipnet::Ipv4Net;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

// ---- Nova -----------------------------------------------------------------------------

/// `GET /servers/detail`.
#[derive(Debug, Deserialize)]
pub(crate) struct ServerList {
    pub(crate) servers: Vec<WireServer>,
    #[serde(default)]
    pub(crate) servers_links: Vec<Link>,
}

/// `GET /servers/{id}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ServerOne {
    pub(crate) server: WireServer,
}

/// A pagination link (`rel` = `next`).
#[derive(Debug, Deserialize)]
pub(crate) struct Link {
    #[serde(default)]
    pub(crate) rel: String,
    #[serde(default)]
    pub(crate) href: String,
}

/// The `marker` of a `next` link, if there is one.
pub(crate) fn next_marker(links: &[Link]) -> Option<String> {
    let next = links.iter().find(|l| l.rel == "next")?;
    let query = next.href.split_once('?')?.1;
    query.split('&').find_map(|kv| kv.strip_prefix("marker=")).map(str::to_owned)
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireServer {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    fault: Option<WireFault>,
    #[serde(default)]
    addresses: BTreeMap<String, Vec<WireAddress>>,
    #[serde(default)]
    key_name: Option<String>,
    #[serde(default)]
    flavor: Option<WireFlavorRef>,
}

#[derive(Debug, Deserialize)]
struct WireFault {
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireAddress {
    addr: String,
    #[serde(default, rename = "OS-EXT-IPS:type")]
    kind: Option<String>,
}

/// Before microversion 2.47 (kos sends 2.1) the server's flavor is a reference.
#[derive(Debug, Deserialize)]
struct WireFlavorRef {
    #[serde(default)]
    id: Option<String>,
}

impl From<WireServer> for Server {
    fn from(w: WireServer) -> Self {
        let mut addresses = Vec::new();
        for (network, list) in w.addresses {
            for a in list {
                if let Ok(ip) = a.addr.parse::<Ipv4Addr>() {
                    // Without the extension Nova can't tell: fixed is the safe reading.
                    let kind = a.kind.unwrap_or_else(|| "fixed".to_owned());
                    addresses.push(ServerAddress { network: network.clone(), ip, kind });
                }
            }
        }
        Server {
            id: w.id,
            name: w.name,
            status: w.status,
            metadata: w.metadata,
            fault: w.fault.and_then(|f| f.message).filter(|m| !m.is_empty()),
            addresses,
            key_name: w.key_name,
            flavor_id: w.flavor.and_then(|f| f.id),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct FlavorOne {
    pub(crate) flavor: Flavor,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FlavorList {
    pub(crate) flavors: Vec<Flavor>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct KeypairOne {
    pub(crate) keypair: Keypair,
}

/// `GET /limits`: the project's absolute compute limits and usage.
#[derive(Debug, Deserialize)]
pub(crate) struct Limits {
    limits: LimitsInner,
}

#[derive(Debug, Deserialize)]
struct LimitsInner {
    absolute: BTreeMap<String, serde_json::Value>,
}

impl Limits {
    fn get(&self, key: &str) -> i64 {
        self.limits.absolute.get(key).and_then(serde_json::Value::as_i64).unwrap_or(0)
    }
    /// (instances, cores, ram) as quotas.
    pub(crate) fn compute(&self) -> (Quota, Quota, Quota) {
        (
            Quota { limit: self.get("maxTotalInstances"), used: self.get("totalInstancesUsed") },
            Quota { limit: self.get("maxTotalCores"), used: self.get("totalCoresUsed") },
            Quota { limit: self.get("maxTotalRAMSize"), used: self.get("totalRAMUsed") },
        )
    }
}

// ---- Glance -------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub(crate) struct ImageList {
    pub(crate) images: Vec<Image>,
}

// ---- Neutron ------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub(crate) struct ExtensionList {
    pub(crate) extensions: Vec<Extension>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Extension {
    pub(crate) alias: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireNetwork {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default, rename = "router:external")]
    external: bool,
    #[serde(default)]
    subnets: Vec<String>,
}

impl From<WireNetwork> for Network {
    fn from(w: WireNetwork) -> Self {
        Network { id: w.id, name: w.name, external: w.external, subnets: w.subnets }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct NetworkOne {
    pub(crate) network: WireNetwork,
}

#[derive(Debug, Deserialize)]
pub(crate) struct NetworkList {
    pub(crate) networks: Vec<WireNetwork>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireSubnet {
    id: String,
    #[serde(default)]
    name: String,
    network_id: String,
    cidr: String,
    #[serde(default)]
    gateway_ip: Option<String>,
}

impl WireSubnet {
    /// `None` for an IPv6 subnet.
    pub(crate) fn into_model(self) -> Option<Subnet> {
        let cidr = self.cidr.parse::<Ipv4Net>().ok()?;
        Some(Subnet {
            id: self.id,
            name: self.name,
            network_id: self.network_id,
            cidr,
            gateway_ip: self.gateway_ip.and_then(|g| g.parse().ok()),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SubnetList {
    pub(crate) subnets: Vec<WireSubnet>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireRoute {
    destination: String,
    nexthop: String,
}

impl WireRoute {
    fn to_model(&self) -> Option<Route> {
        Some(Route { destination: self.destination.parse().ok()?, nexthop: self.nexthop.parse().ok()? })
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireRouter {
    id: String,
    #[serde(default)]
    name: String,
    /// `null` on some answers (`add_extraroutes` of an old Neutron).
    #[serde(default, deserialize_with = "null_as_default")]
    routes: Vec<WireRoute>,
    #[serde(default)]
    revision_number: u64,
    #[serde(default)]
    external_gateway_info: Option<GatewayInfo>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct GatewayInfo {
    #[serde(default)]
    network_id: Option<String>,
}

impl WireRouter {
    /// Routes kos's IPv4 model can't hold (IPv6 destinations), as Neutron wrote them: a
    /// whole-list update must send them back untouched.
    pub(crate) fn foreign_raw_routes(&self) -> Vec<serde_json::Value> {
        self.routes
            .iter()
            .filter(|r| r.to_model().is_none())
            .map(|r| serde_json::json!({"destination": r.destination, "nexthop": r.nexthop}))
            .collect()
    }
}

impl From<WireRouter> for Router {
    fn from(w: WireRouter) -> Self {
        Router {
            routes: w.routes.iter().filter_map(WireRoute::to_model).collect(),
            id: w.id,
            name: w.name,
            revision_number: w.revision_number,
            external_network_id: w.external_gateway_info.and_then(|g| g.network_id),
            tags: w.tags,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RouterOne {
    pub(crate) router: WireRouter,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RouterList {
    pub(crate) routers: Vec<WireRouter>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WirePort {
    id: String,
    #[serde(default)]
    name: String,
    network_id: String,
    #[serde(default)]
    fixed_ips: Vec<WireFixedIp>,
    #[serde(default, deserialize_with = "null_as_default")]
    allowed_address_pairs: Vec<AddressPair>,
    #[serde(default)]
    device_id: String,
    #[serde(default)]
    device_owner: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    security_groups: Vec<String>,
    #[serde(default)]
    port_security_enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct WireFixedIp {
    subnet_id: String,
    ip_address: String,
}

impl From<WirePort> for Port {
    fn from(w: WirePort) -> Self {
        Port {
            id: w.id,
            name: w.name,
            network_id: w.network_id,
            fixed_ips: w
                .fixed_ips
                .into_iter()
                .filter_map(|f| Some(FixedIp { ip_address: f.ip_address.parse().ok()?, subnet_id: f.subnet_id }))
                .collect(),
            allowed_address_pairs: w.allowed_address_pairs,
            device_id: w.device_id,
            device_owner: w.device_owner,
            tags: w.tags,
            security_groups: w.security_groups,
            port_security_enabled: w.port_security_enabled,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct PortOne {
    pub(crate) port: WirePort,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PortList {
    pub(crate) ports: Vec<WirePort>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FloatingIpOne {
    pub(crate) floatingip: FloatingIp,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FloatingIpList {
    pub(crate) floatingips: Vec<FloatingIp>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireSecurityGroup {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    security_group_rules: Vec<WireRule>,
}

#[derive(Debug, Deserialize)]
struct WireRule {
    direction: String,
    #[serde(default)]
    ethertype: Option<String>,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    port_range_min: Option<u16>,
    #[serde(default)]
    port_range_max: Option<u16>,
    #[serde(default)]
    remote_ip_prefix: Option<String>,
    #[serde(default)]
    remote_group_id: Option<String>,
}

impl From<WireSecurityGroup> for SecurityGroup {
    fn from(w: WireSecurityGroup) -> Self {
        let mut rules: Vec<SecurityGroupRule> = w
            .security_group_rules
            .into_iter()
            // kos manages IPv4 rules; Neutron's default IPv6 egress rule is not kos's.
            .filter(|r| r.ethertype.as_deref().is_none_or(|e| e == "IPv4"))
            .map(|r| SecurityGroupRule {
                direction: r.direction,
                protocol: r.protocol,
                port_range_min: r.port_range_min,
                port_range_max: r.port_range_max,
                remote_ip_prefix: r.remote_ip_prefix,
                remote_group_id: r.remote_group_id,
            })
            .collect();
        rules.sort();
        SecurityGroup { id: w.id, name: w.name, tags: w.tags, rules }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SecurityGroupList {
    pub(crate) security_groups: Vec<WireSecurityGroup>,
}

/// `GET /v2.0/quotas/{project_id}/details.json`.
#[derive(Debug, Deserialize)]
pub(crate) struct NeutronQuotaDetails {
    quota: BTreeMap<String, NeutronQuota>,
}

#[derive(Debug, Deserialize)]
struct NeutronQuota {
    limit: i64,
    #[serde(default)]
    used: i64,
    #[serde(default)]
    reserved: i64,
}

impl NeutronQuotaDetails {
    /// A resource's quota; what is reserved counts as used.
    pub(crate) fn get(&self, resource: &str) -> Quota {
        self.quota
            .get(resource)
            .map(|q| Quota { limit: q.limit, used: q.used + q.reserved })
            .unwrap_or(Quota { limit: -1, used: 0 })
    }
}

// ---- Octavia ------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub(crate) struct LoadBalancerOne {
    pub(crate) loadbalancer: LoadBalancer,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoadBalancerList {
    pub(crate) loadbalancers: Vec<LoadBalancer>,
}

/// The few fields of a load balancer kos needs besides the model's.
#[derive(Debug, Deserialize)]
pub(crate) struct LoadBalancerDetail {
    pub(crate) loadbalancer: LoadBalancerExtra,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoadBalancerExtra {
    #[serde(default)]
    pub(crate) vip_subnet_id: Option<String>,
    #[serde(default)]
    pub(crate) pools: Vec<IdOnly>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListenerOne {
    pub(crate) listener: IdOnly,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PoolOne {
    pub(crate) pool: IdOnly,
}

#[derive(Debug, Deserialize)]
pub(crate) struct IdOnly {
    pub(crate) id: String,
}

/// `null` read as the type's default (Neutron writes `null` for some empty lists).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
