//! The pure half of the cloud layer: the plan + what the cloud shows → the changes to
//! make. No I/O; `up` executes these changes through the [`crate::Cloud`] trait.
//!
//! Ownership rules (the seed system's hazards): kos changes only resources carrying the
//! cluster's mark; of a router's routes it touches only those whose destination is a pod
//! range inside this cluster's `pod_cidr` AND whose next hop is one of this cluster's
//! node addresses. Every other route — another cluster's, a human's — is kept.

use crate::model::{FloatingIp, LoadBalancer, LoadBalancerMember, Port, Route, Router, Server};
use kos_core::plan::{ClusterPlan, NodePlan, Observed, ObservedNode, marks};
use kos_core::settings::ApiEndpoint;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// The Neutron tag that marks a resource as the cluster's (`kos-cluster=<name>`).
pub fn cluster_tag(cluster: &str) -> String {
    format!("{}={cluster}", marks::CLUSTER)
}

/// The Neutron tag that names the node a port belongs to.
pub fn node_tag(node: &str) -> String {
    format!("{}={node}", marks::NODE)
}

/// The word of an Octavia load balancer's description that makes it a cluster's API
/// endpoint (`api_endpoint: octavia`), beside the cluster's mark.
pub const API_LOAD_BALANCER: &str = "kos-api-lb";

/// The name and the description of a cluster's API load balancer: Octavia's tags cannot be
/// filtered on by every version kos meets, so kos's marks go in the description, as `kos
/// expose` writes its own.
pub fn api_load_balancer_identity(cluster: &str) -> (String, String) {
    (format!("{cluster}-api"), format!("{} {API_LOAD_BALANCER}", cluster_tag(cluster)))
}

/// Whether a load balancer's description carries the cluster's mark, as a word of its own
/// (`kos-cluster=demo` does not mark `kos-cluster=demo2`'s).
pub fn carries_mark(description: &str, cluster: &str) -> bool {
    let mark = cluster_tag(cluster);
    description.split_whitespace().any(|word| word == mark)
}

/// Whether a load balancer is the cluster's API endpoint.
pub fn is_api_load_balancer(cluster: &str, lb: &LoadBalancer) -> bool {
    lb.name == api_load_balancer_identity(cluster).0
        && carries_mark(&lb.description, cluster)
        && lb.description.split_whitespace().any(|word| word == API_LOAD_BALANCER)
}

/// The API's load balancer as Octavia shows it, with its pool's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiLoadBalancer {
    pub lb: LoadBalancer,
    pub members: Vec<LoadBalancerMember>,
}

/// Not a tag Neutron holds: the client adds it to a resource whose marks it found only in
/// the description kos writes at creation, i.e. whose tagging was interrupted. `kos up`
/// then finishes the tagging ([`crate::apply::complete_tags`]).
pub const UNTAGGED: &str = "kos-untagged";

/// The tags a resource should carry (its marks without [`UNTAGGED`]), when it lacks them.
pub fn tags_to_complete(tags: &[String]) -> Option<Vec<String>> {
    tags.iter().any(|t| t == UNTAGGED).then(|| tags.iter().filter(|t| *t != UNTAGGED).cloned().collect())
}

/// The node a server is of, when its metadata marks it as `cluster`'s.
pub fn server_node<'a>(server: &'a Server, cluster: &str) -> Option<&'a str> {
    (server.metadata.get(marks::CLUSTER).map(String::as_str) == Some(cluster))
        .then(|| server.metadata.get(marks::NODE))
        .flatten()
        .map(String::as_str)
}

/// What the cloud holds of one cluster, found by its marks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterResources {
    /// Servers whose metadata carries `kos-cluster=<name>`, by node name.
    pub servers: BTreeMap<String, Server>,
    /// Ports tagged `kos-cluster=<name>`, by node name (from `kos-node=` tags).
    pub ports: BTreeMap<String, Port>,
    /// Floating IPs tagged `kos-cluster=<name>`.
    pub floating_ips: Vec<FloatingIp>,
    /// A second port marked for a node that has one: a create whose answer was lost (a
    /// timed-out POST, a killed run) and that was made again. Not attached to anything, so
    /// `up` deletes it.
    pub stray_ports: Vec<Port>,
    /// A second server marked for a node that has one: a run killed while its create was
    /// in flight, and the next run (which could not list it yet) made another on the same
    /// port. Nova binds the port to one of them at most (the loser fails, and its clean-up
    /// can unbind the port from the winner too), so `up` deletes every one but the node's.
    pub stray_servers: Vec<Server>,
    /// The port that reserves the API's virtual IP (tagged [`marks::API_VIP`]), if any.
    pub vip_port: Option<Port>,
    /// The API's Octavia load balancer (found by name and mark), if any.
    pub api_load_balancer: Option<ApiLoadBalancer>,
}

impl ClusterResources {
    /// Sort what the cloud listed into this cluster's resources.
    pub fn collect(cluster: &str, servers: Vec<Server>, ports: Vec<Port>, floating_ips: Vec<FloatingIp>) -> Self {
        let ctag = cluster_tag(cluster);
        let mut r = ClusterResources::default();
        let mut by_node: BTreeMap<String, Vec<Server>> = BTreeMap::new();
        for s in servers {
            if let Some(node) = server_node(&s, cluster) {
                by_node.entry(node.to_string()).or_default().push(s);
            }
        }
        // The ports first (by any server of their node), then each node's server by its port.
        r.collect_ports(cluster, ports, &by_node);
        for (node, mut candidates) in by_node {
            // The node's server: the one its port is attached to, else one not in ERROR,
            // else the first listed; any other is stray.
            let holds_port = |s: &Server| r.ports.get(&node).is_some_and(|p| p.device_id == s.id);
            let pick = candidates.iter().position(holds_port).or_else(|| candidates.iter().position(|s| s.status != "ERROR")).unwrap_or(0);
            let kept = candidates.remove(pick);
            r.stray_servers.extend(candidates);
            r.servers.insert(node, kept);
        }
        r.floating_ips = floating_ips.into_iter().filter(|f| f.tags.contains(&ctag)).collect();
        r
    }

    /// The cluster's ports, by node: of two ports of one node, the one a server of the node
    /// uses (else the first) is the node's, the other stray; the VIP's port apart.
    fn collect_ports(&mut self, cluster: &str, ports: Vec<Port>, servers: &BTreeMap<String, Vec<Server>>) {
        let ctag = cluster_tag(cluster);
        for p in ports {
            if !p.tags.contains(&ctag) {
                continue;
            }
            if p.tags.iter().any(|t| t == marks::API_VIP) {
                // Of two (a create whose answer was lost), the first is kept, the other swept.
                match self.vip_port {
                    None => self.vip_port = Some(p),
                    Some(_) => self.stray_ports.push(p),
                }
                continue;
            }
            let prefix = format!("{}=", marks::NODE);
            let Some(node) = p.tags.iter().find_map(|t| t.strip_prefix(&prefix)).map(str::to_string) else { continue };
            let uses = |port: &Port| servers.get(&node).is_some_and(|all| all.iter().any(|s| s.id == port.device_id));
            match self.ports.remove(&node) {
                None => {
                    self.ports.insert(node, p);
                }
                Some(kept) => {
                    let (keep, stray) = if uses(&p) && !uses(&kept) { (p, kept) } else { (kept, p) };
                    self.ports.insert(node, keep);
                    self.stray_ports.push(stray);
                }
            }
        }
    }

    /// The fixed IPs of every port of the cluster (nodes being removed included): the
    /// next hops that make a router route this cluster's.
    pub fn node_addresses(&self) -> BTreeSet<Ipv4Addr> {
        self.ports.values().filter_map(|p| p.fixed_ips.first().map(|f| f.ip_address)).collect()
    }

    /// The plan's view of these resources: addresses and recorded pod CIDRs per node.
    pub fn observed(&self, tenant_cidr: Option<ipnet::Ipv4Net>) -> Observed {
        let mut nodes = BTreeMap::new();
        let names: BTreeSet<&String> = self.servers.keys().chain(self.ports.keys()).collect();
        for name in names {
            let server = self.servers.get(name);
            let port = self.ports.get(name);
            let fixed_ip = port.and_then(|p| p.fixed_ips.first().map(|f| f.ip_address));
            let floating_ip = port.and_then(|p| self.floating_ip_of(&p.id)).map(|f| f.floating_ip_address);
            let pod_cidr = server
                .and_then(|s| s.metadata.get(marks::POD_CIDR))
                .and_then(|c| c.parse().ok())
                // The port's pod range: its first pair that is a network (a master's also holds the VIP).
                .or_else(|| port.and_then(|p| p.allowed_address_pairs.iter().find_map(|a| a.ip_address.parse().ok())));
            let role = server.and_then(|s| s.metadata.get(marks::ROLE).cloned());
            let masters = server.and_then(|s| s.metadata.get(marks::MASTERS)).and_then(|m| m.parse().ok());
            let etcd_order = server.and_then(|s| s.metadata.get(marks::ETCD_ORDER)).and_then(|m| m.parse().ok());
            let server_id = server.map(|s| s.id.clone());
            nodes.insert(name.clone(), ObservedNode { fixed_ip, floating_ip, pod_cidr, server_id, role, masters, etcd_order });
        }
        // The API's address is the VIP's port's (the load balancer's VIP, with Octavia); a load
        // balancer made on a port of Octavia's own has that port's.
        let api_vip = match (&self.vip_port, &self.api_load_balancer) {
            (Some(vip), _) => vip.fixed_ips.first().map(|f| f.ip_address),
            (None, api) => api.as_ref().map(|a| a.lb.vip_address),
        };
        let endpoint = if self.api_load_balancer.is_some() { ApiEndpoint::Octavia } else { ApiEndpoint::Vip };
        let api_floating_ip = self.api_port_id(endpoint).and_then(|id| self.floating_ip_of(id)).map(|f| f.floating_ip_address);
        Observed { nodes, tenant_cidr, api_vip, api_floating_ip, api_load_balancer: self.api_load_balancer.is_some() }
    }

    /// The port the API's floating IP goes on with `endpoint`: the VIP's own port (with
    /// Octavia, the load balancer's VIP port; Octavia's own if it made one).
    pub fn api_port_id(&self, endpoint: ApiEndpoint) -> Option<&str> {
        let vip = self.vip_port.as_ref().map(|p| p.id.as_str());
        match endpoint {
            ApiEndpoint::Octavia => vip.or_else(|| self.api_load_balancer.as_ref().and_then(|a| a.lb.vip_port_id.as_deref())),
            ApiEndpoint::Vip => vip,
            ApiEndpoint::Master => None,
        }
    }

    /// The floating IP attached to a port.
    pub fn floating_ip_of(&self, port_id: &str) -> Option<&FloatingIp> {
        self.floating_ips.iter().find(|f| f.port_id.as_deref() == Some(port_id))
    }
}

/// Why a node's server is made again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// Nova put it in ERROR (with its fault message, if any).
    Error { fault: Option<String> },
    /// It runs, but the node's port is not attached to it (attached to `attached_to`, or to
    /// nothing): it has no address on the tenant network, so it can never be reached. Two
    /// servers made on one port (a killed run's and the next run's) leave this behind.
    PortNotAttached { attached_to: Option<String> },
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Error { fault: None } => f.write_str("ERROR"),
            Unusable::Error { fault: Some(fault) } => write!(f, "ERROR: {fault}"),
            Unusable::PortNotAttached { attached_to: None } => f.write_str("its port is attached to nothing"),
            Unusable::PortNotAttached { attached_to: Some(other) } => write!(f, "its port is attached to server {other}"),
        }
    }
}

/// One change to a node's cloud resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeChange {
    /// Create the node's port (with its pod CIDR as allowed address pair).
    CreatePort { node: String },
    /// The port's allowed address pairs differ from the node's pod CIDR.
    SetAddressPairs { node: String, port_id: String, cidrs: Vec<String> },
    /// Create the server on its port.
    CreateServer { node: String },
    /// The server cannot serve (see [`Unusable`]): delete it and create it again (once per run).
    RecreateServer { node: String, server_id: String, why: Unusable },
    /// The server is still being built (a killed run's), or has a twin: wait for it to be
    /// ACTIVE, the node's only server, holding its port.
    SettleServer { node: String, server_id: String },
    /// Give the node a floating IP: reuse a free one of the cluster's, else allocate.
    AttachFloatingIp { node: String, reuse: Option<String> },
    /// A second, unattached port of a node (see [`ClusterResources::stray_ports`]): delete it.
    DeleteStrayPort { port_id: String, name: String },
    /// A second server of a node (see [`ClusterResources::stray_servers`]): delete it.
    DeleteStrayServer { server_id: String, name: String },
    /// `kos replace`: delete the node's server, keeping its port (its address, pod range and
    /// floating IP), so the next step makes it again.
    ReplaceServer { node: String, server_id: String },
    /// The node is no longer in the settings: delete its server, port and floating IP.
    Remove { node: String, server_id: Option<String>, port_id: Option<String>, floating_ip_ids: Vec<String> },
}

impl std::fmt::Display for NodeChange {
    /// What `kos plan` says `kos up` will do.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            NodeChange::CreatePort { node } => format!("create port of {node} (its pod CIDR as allowed address pair)"),
            NodeChange::SetAddressPairs { node, cidrs, .. } => {
                format!("set allowed address pairs of {node}'s port to {}", cidrs.join(", "))
            }
            NodeChange::CreateServer { node } => format!("create server of {node}"),
            NodeChange::RecreateServer { node, why, .. } => format!("re-create server of {node} ({why})"),
            NodeChange::SettleServer { node, .. } => format!("see that server of {node} is ACTIVE, alone and on its port"),
            NodeChange::AttachFloatingIp { node, reuse } => {
                format!("{} floating IP for {node}", if reuse.is_some() { "attach a free" } else { "allocate a" })
            }
            NodeChange::DeleteStrayPort { name, port_id } => {
                format!("delete stray port {name} ({port_id}): a second, unattached port of its node")
            }
            NodeChange::DeleteStrayServer { name, server_id } => {
                format!("delete stray server {name} ({server_id}): a second server of its node")
            }
            NodeChange::ReplaceServer { node, .. } => {
                format!("delete server of {node} to make it again (kos replace; its port, address and pod range kept)")
            }
            NodeChange::Remove { node, .. } => format!("remove {node} (no longer in the settings: its server, port, floating IP, routes)"),
        };
        f.write_str(&text)
    }
}

/// The changes that make the cloud match the plan's nodes.
pub fn node_changes(plan: &ClusterPlan, have: &ClusterResources) -> Vec<NodeChange> {
    let mut changes = Vec::new();
    let mut free_fips: Vec<&FloatingIp> = have.floating_ips.iter().filter(|f| f.port_id.is_none()).collect();
    for node in &plan.nodes {
        let want_pairs = plan.address_pairs(node);
        match have.ports.get(&node.name) {
            None => changes.push(NodeChange::CreatePort { node: node.name.clone() }),
            Some(port) => {
                let mut pairs: Vec<String> = port.allowed_address_pairs.iter().map(|p| p.ip_address.clone()).collect();
                pairs.sort();
                let mut sorted = want_pairs.clone();
                sorted.sort();
                if pairs != sorted {
                    changes.push(NodeChange::SetAddressPairs { node: node.name.clone(), port_id: port.id.clone(), cidrs: want_pairs });
                }
            }
        }
        match have.servers.get(&node.name) {
            None => changes.push(NodeChange::CreateServer { node: node.name.clone() }),
            Some(s) => {
                let recreate = |why| NodeChange::RecreateServer { node: node.name.clone(), server_id: s.id.clone(), why };
                let port = have.ports.get(&node.name);
                match s.status.as_str() {
                    "ERROR" => changes.push(recreate(Unusable::Error { fault: s.fault.clone() })),
                    "BUILD" => changes.push(NodeChange::SettleServer { node: node.name.clone(), server_id: s.id.clone() }),
                    // Nova attaches the port before the server first runs, and leaves it
                    // attached while it is stopped.
                    "ACTIVE" | "SHUTOFF" if port.is_some_and(|p| p.device_id != s.id) => {
                        let attached_to = port.map(|p| p.device_id.clone()).filter(|d| !d.is_empty());
                        changes.push(recreate(Unusable::PortNotAttached { attached_to }));
                    }
                    // Holding its port now, beside a twin: looked at again once the twin is
                    // gone (a twin's failing build can still take the port from it).
                    "ACTIVE" if have.stray_servers.iter().any(|t| server_node(t, &plan.cluster) == Some(node.name.as_str())) => {
                        changes.push(NodeChange::SettleServer { node: node.name.clone(), server_id: s.id.clone() })
                    }
                    _ => {}
                }
            }
        }
        if node.wants_floating_ip && !has_floating_ip(node, have) {
            let reuse = if free_fips.is_empty() { None } else { Some(free_fips.remove(0).id.clone()) };
            changes.push(NodeChange::AttachFloatingIp { node: node.name.clone(), reuse });
        }
    }
    let wanted: BTreeSet<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
    let gone: BTreeSet<&String> = have.servers.keys().chain(have.ports.keys()).filter(|n| !wanted.contains(n.as_str())).collect();
    for name in gone {
        let port = have.ports.get(name);
        changes.push(NodeChange::Remove {
            node: name.clone(),
            server_id: have.servers.get(name).map(|s| s.id.clone()),
            port_id: port.map(|p| p.id.clone()),
            floating_ip_ids: port
                .map(|p| have.floating_ips.iter().filter(|f| f.port_id.as_deref() == Some(p.id.as_str())).map(|f| f.id.clone()).collect())
                .unwrap_or_default(),
        });
    }
    // Stray servers go first: a stray port may be attached to one of them.
    for s in &have.stray_servers {
        changes.push(NodeChange::DeleteStrayServer { server_id: s.id.clone(), name: s.name.clone() });
    }
    let stray_server = |id: &str| have.stray_servers.iter().any(|s| s.id == id);
    for p in have.stray_ports.iter().filter(|p| p.device_id.is_empty() || stray_server(&p.device_id)) {
        changes.push(NodeChange::DeleteStrayPort { port_id: p.id.clone(), name: p.name.clone() });
    }
    changes
}

/// One change to the API endpoint's own cloud resources (`api_endpoint: vip` or `octavia`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiChange {
    /// Reserve the VIP: a port on the tenant network, attached to nothing; Neutron picks
    /// its address.
    CreateVipPort,
    /// Create the API's load balancer on the tenant subnet: a TCP listener on the API port,
    /// a pool of the masters known so far, an HTTPS health monitor on `/readyz`.
    CreateLoadBalancer,
    /// Put a floating IP on the VIP's port (the load balancer's with Octavia): reuse a free
    /// one of the cluster's, else allocate.
    AttachFloatingIp { reuse: Option<String> },
    /// Make the load balancer's pool every master, on the API port (`None`: a master whose
    /// port is still to be made).
    SetMembers { lb_id: String, members: Vec<(String, Option<Ipv4Addr>)> },
    /// The settings no longer ask for a VIP: release the port (and its floating IP).
    DeleteVipPort { port_id: String, floating_ip_ids: Vec<String> },
    /// The settings no longer ask for Octavia: delete the load balancer (and release its
    /// floating IP).
    DeleteLoadBalancer { lb_id: String, floating_ip_ids: Vec<String> },
}

impl std::fmt::Display for ApiChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiChange::CreateVipPort => f.write_str("create the API's VIP port"),
            ApiChange::CreateLoadBalancer => {
                f.write_str("create the API's load balancer (TCP listener, the masters as members, HTTPS /readyz monitor)")
            }
            ApiChange::AttachFloatingIp { reuse } => {
                write!(f, "{} floating IP for the API's VIP", if reuse.is_some() { "attach a free" } else { "allocate a" })
            }
            ApiChange::SetMembers { members, .. } => {
                let names: Vec<String> = members
                    .iter()
                    .map(|(name, ip)| ip.map_or_else(|| format!("{name} (once its port is made)"), |ip| format!("{name} {ip}")))
                    .collect();
                write!(f, "set the API load balancer's members: {}", if names.is_empty() { "none".to_string() } else { names.join(", ") })
            }
            ApiChange::DeleteVipPort { .. } => f.write_str("delete the API's VIP port (`api_endpoint: master` needs none)"),
            ApiChange::DeleteLoadBalancer { .. } => f.write_str("delete the API's load balancer (`api_endpoint` is no longer `octavia`)"),
        }
    }
}

/// The changes that make the API endpoint's resources match the plan: what another
/// endpoint left released, the endpoint made, its floating IP attached. (The load
/// balancer's members follow the masters' ports: [`api_member_change`].)
pub fn api_changes(plan: &ClusterPlan, have: &ClusterResources) -> Vec<ApiChange> {
    let endpoint = plan.api_endpoint;
    let fips_on = |port_id: Option<&str>| -> Vec<String> {
        port_id.and_then(|id| have.floating_ip_of(id)).map(|f| f.id.clone()).into_iter().collect()
    };
    let mut changes = Vec::new();
    if let Some(p) = have.vip_port.as_ref().filter(|_| !endpoint.is_shared()) {
        changes.push(ApiChange::DeleteVipPort { port_id: p.id.clone(), floating_ip_ids: fips_on(Some(&p.id)) });
    }
    if let Some(api) = have.api_load_balancer.as_ref().filter(|_| endpoint != ApiEndpoint::Octavia) {
        // On a port of kos's own, the VIP's address and its floating IP stay for the next endpoint.
        let octavias = api.lb.vip_port_id.as_deref().filter(|id| have.vip_port.as_ref().is_none_or(|p| p.id != *id));
        let floating_ip_ids = fips_on(octavias);
        changes.push(ApiChange::DeleteLoadBalancer { lb_id: api.lb.id.clone(), floating_ip_ids });
    }
    // Both shared endpoints hold the address on a port of kos's own; a load balancer takes
    // it as its VIP.
    let kept_load_balancer = endpoint == ApiEndpoint::Octavia && have.api_load_balancer.is_some();
    if endpoint.is_shared() && have.vip_port.is_none() && !kept_load_balancer {
        changes.push(ApiChange::CreateVipPort);
    }
    if endpoint == ApiEndpoint::Octavia && have.api_load_balancer.is_none() {
        changes.push(ApiChange::CreateLoadBalancer);
    }
    if endpoint.is_shared() && plan.wants_api_floating_ip && fips_on(have.api_port_id(endpoint)).is_empty() {
        let reuse = have.floating_ips.iter().find(|f| f.port_id.is_none()).map(|f| f.id.clone());
        changes.push(ApiChange::AttachFloatingIp { reuse });
    }
    changes
}

/// The API load balancer's members when its pool is not yet every master of the plan on the
/// API port. `addresses`: the nodes' fixed IPs as far as known (a master without one is
/// still named, so that `kos plan` lists the change its new port brings).
pub fn api_member_change(plan: &ClusterPlan, have: &ClusterResources, addresses: &BTreeMap<String, Ipv4Addr>) -> Option<ApiChange> {
    let api = have.api_load_balancer.as_ref().filter(|_| plan.api_endpoint == ApiEndpoint::Octavia)?;
    let want: Vec<(String, Option<Ipv4Addr>)> = plan.masters().map(|m| (m.name.clone(), addresses.get(&m.name).copied())).collect();
    let wanted: BTreeSet<(&str, Option<Ipv4Addr>, u16)> = want.iter().map(|(n, ip)| (n.as_str(), *ip, plan.api_port)).collect();
    let current: BTreeSet<(&str, Option<Ipv4Addr>, u16)> =
        api.members.iter().map(|m| (m.name.as_str(), Some(m.address), m.protocol_port)).collect();
    (wanted != current).then(|| ApiChange::SetMembers { lb_id: api.lb.id.clone(), members: want })
}

fn has_floating_ip(node: &NodePlan, have: &ClusterResources) -> bool {
    have.ports.get(&node.name).is_some_and(|p| have.floating_ip_of(&p.id).is_some())
}

/// How to bring the router's routes to the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteChange {
    /// Nothing to do.
    None,
    /// `extraroute-atomic`: add and remove exactly these.
    Atomic { add: Vec<Route>, remove: Vec<Route> },
    /// Plain `extraroute`: the whole new list (foreign routes kept), only if the router
    /// is still at `revision`.
    Replace { routes: Vec<Route>, revision: u64, add: Vec<Route>, remove: Vec<Route> },
}

/// Routes are "ours" when the destination lies in this cluster's pod range and the next
/// hop is one of this cluster's node addresses (current or past ports of the cluster).
pub fn route_changes(plan: &ClusterPlan, router: &Router, node_addresses: &BTreeSet<Ipv4Addr>, atomic: bool) -> RouteChange {
    let desired: BTreeSet<Route> =
        plan.nodes.iter().filter_map(|n| n.fixed_ip.map(|ip| Route { destination: n.pod_cidr, nexthop: ip })).collect();
    let current: BTreeSet<Route> = router.routes.iter().cloned().collect();
    let ours = |r: &Route| plan.pod_cidr.contains(&r.destination) && node_addresses.contains(&r.nexthop);
    let add: Vec<Route> = desired.difference(&current).cloned().collect();
    let remove: Vec<Route> = current.iter().filter(|r| ours(r) && !desired.contains(r)).cloned().collect();
    if add.is_empty() && remove.is_empty() {
        return RouteChange::None;
    }
    if atomic {
        RouteChange::Atomic { add, remove }
    } else {
        let routes: Vec<Route> = current.iter().filter(|r| !remove.contains(r)).cloned().chain(add.iter().cloned()).collect();
        RouteChange::Replace { routes, revision: router.revision_number, add, remove }
    }
}

/// Routes the router will hold after the change (for the route-limit check).
pub fn routes_after(router: &Router, change: &RouteChange) -> usize {
    match change {
        RouteChange::None => router.routes.len(),
        RouteChange::Atomic { add, remove } => router.routes.len() + add.len() - remove.len().min(router.routes.len() + add.len()),
        RouteChange::Replace { routes, .. } => routes.len(),
    }
}

#[cfg(test)]
mod tests;
