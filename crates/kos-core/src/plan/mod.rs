//! The cluster plan: settings + what was observed in the cloud → every decision kos
//! makes (pod CIDRs, service IPs, API endpoints, instance metadata, certificates), as
//! plain values. Executors (cloud, nodes, renderers) only carry these decisions out.

pub mod certificates;
pub mod membership;
pub mod observed;
mod pod_cidrs;
pub mod upgrade;

pub use certificates::{CaId, CertSpec, CertificatePlan, Usage};
pub use membership::EtcdStart;
pub use observed::{Observed, ObservedNode};

use crate::settings::{ApiEndpoint, KubeVersion, Role, Settings};
use ipnet::Ipv4Net;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// Instance metadata and Neutron tag keys that mark a resource as the cluster's.
pub mod marks {
    /// `kos-cluster=<name>`: the mark every resource kos creates carries.
    pub const CLUSTER: &str = "kos-cluster";
    /// `kos-node=<name>`: the node a server or port belongs to.
    pub const NODE: &str = "kos-node";
    /// `kos-role=master|worker`.
    pub const ROLE: &str = "kos-role";
    /// `kos-pod-cidr=<cidr>`: the node's pod range, kept for the node's life.
    pub const POD_CIDR: &str = "kos-pod-cidr";
    /// `kos-masters=<n>` on a master: how many masters the settings had when it was made (a
    /// record for the operator; etcd's membership goes by [`ETCD_ORDER`]).
    pub const MASTERS: &str = "kos-masters";
    /// `kos-etcd-order=<n>` on a master: its place in the order masters joined etcd, from 1
    /// (see [`super::membership`]).
    pub const ETCD_ORDER: &str = "kos-etcd-order";
    /// The Neutron tag of the port that reserves the API's virtual IP (`api_endpoint: vip`).
    pub const API_VIP: &str = "kos-api-vip";
    /// The seed system's group tag, read by its dynamic inventory.
    pub const ANSIBLE_GROUPS: &str = "ansible_host_groups";
    /// The seed system's host-vars tag (`ansible_user->debian`).
    pub const ANSIBLE_VARS: &str = "ansible_host_vars";
}

/// Everything decided for one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterPlan {
    pub cluster: String,
    pub version: KubeVersion,
    pub nodes: Vec<NodePlan>,
    pub pod_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    /// The `kubernetes` service's address: the first of `service_cidr`.
    pub kubernetes_service_ip: Ipv4Addr,
    pub dns_ip: Ipv4Addr,
    pub domain: String,
    pub api_port: u16,
    /// How the API is reached: the master, a VIP, a load balancer.
    pub api_endpoint: ApiEndpoint,
    /// Where nodes reach the API server (the VIP or the load balancer's, else the first
    /// master's fixed IP); `None` before the cloud gave addresses.
    pub internal_api: Option<Ipv4Addr>,
    /// Where the operator reaches the API server (a floating IP when there is one).
    pub external_api: Option<Ipv4Addr>,
    /// A floating IP on the API's VIP or load balancer (`cluster.api_floating_ip`).
    pub wants_api_floating_ip: bool,
    pub certificates: CertificatePlan,
}

/// The port of the balancer every node runs on its loopback when the API has an endpoint
/// of its own (`api_endpoint` vip or octavia): the node's kubelet and kube-proxy reach
/// every API server through it, so a VIP failover or a load balancer outage does not cut
/// the nodes off. (6443 is the API servers' own; 7445 is free on a node.)
pub const LOCAL_API_PORT: u16 = 7445;

/// The virtual router ID keepalived's VRRP uses for a cluster's VIP (1–255): from the
/// cluster's name, so two clusters on one network do not share one by default.
pub fn vrrp_router_id(cluster: &str) -> u8 {
    let sum = cluster.bytes().fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
    (sum % 255 + 1) as u8
}

/// Everything decided for one node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePlan {
    /// Kubernetes node name and host name.
    pub name: String,
    pub role: Role,
    /// Nova server name: `<cluster>-<name>`.
    pub server_name: String,
    pub flavor: String,
    pub pod_cidr: Ipv4Net,
    /// The pod bridge `cbr0`'s address: the first of `pod_cidr`.
    pub pod_gateway: Ipv4Addr,
    pub fixed_ip: Option<Ipv4Addr>,
    pub floating_ip: Option<Ipv4Addr>,
    pub wants_floating_ip: bool,
    /// Instance metadata: the user's, the seed's Ansible tags and kos's marks.
    pub metadata: BTreeMap<String, String>,
    /// On a master: how its etcd member starts the first time.
    pub etcd: Option<EtcdStart>,
}

impl NodePlan {
    /// Where kos reaches the node over SSH: floating IP, else fixed IP.
    pub fn ssh_address(&self) -> Option<Ipv4Addr> {
        self.floating_ip.or(self.fixed_ip)
    }
}

impl ClusterPlan {
    /// The addresses a node's port may send from besides its own: its pod range, and on a
    /// master the API's VIP (`api_endpoint: vip`, once the cloud gave it). The pod range
    /// comes first.
    pub fn address_pairs(&self, node: &NodePlan) -> Vec<String> {
        let mut pairs = vec![node.pod_cidr.to_string()];
        if self.api_endpoint == ApiEndpoint::Vip
            && node.role == Role::Master
            && let Some(vip) = self.internal_api
        {
            pairs.push(vip.to_string());
        }
        pairs
    }

    /// Where a node's kubelet and kube-proxy reach the API: the node's own balancer when the
    /// API has an endpoint of its own, else the master's address.
    pub fn node_api(&self) -> Option<(Ipv4Addr, u16)> {
        match self.api_endpoint.is_shared() {
            true => Some((Ipv4Addr::LOCALHOST, LOCAL_API_PORT)),
            false => self.internal_api.map(|ip| (ip, self.api_port)),
        }
    }

    pub fn masters(&self) -> impl Iterator<Item = &NodePlan> {
        self.nodes.iter().filter(|n| n.role == Role::Master)
    }

    pub fn workers(&self) -> impl Iterator<Item = &NodePlan> {
        self.nodes.iter().filter(|n| n.role == Role::Worker)
    }

    pub fn node(&self, name: &str) -> Option<&NodePlan> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Names of nodes whose tenant address is not known yet.
    pub fn nodes_without_address(&self) -> Vec<&str> {
        self.nodes.iter().filter(|n| n.fixed_ip.is_none()).map(|n| n.name.as_str()).collect()
    }
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "node `{node}` was created with pod CIDR {recorded} (recorded on its instance), which is not a /{node_prefix} inside pod_cidr {pod_cidr}; pods on a running node cannot move: restore the old networking settings, or delete the node first"
    )]
    RecordedCidrOutsidePodCidr { node: String, recorded: Ipv4Net, pod_cidr: Ipv4Net, node_prefix: u8 },
    #[error("instances `{a}` and `{b}` both record pod CIDR {cidr}: fix the `kos-pod-cidr` metadata of one of them, or delete it")]
    RecordedCidrsCollide { a: String, b: String, cidr: Ipv4Net },
    #[error(
        "node `{node}` runs with pod CIDR {recorded} (recorded on its instance) but the settings pin {pinned}: pods on a running node cannot move; remove the pin or pin {recorded}"
    )]
    PinDiffersFromRecorded { node: String, pinned: Ipv4Net, recorded: Ipv4Net },
    #[error("the pod CIDR {pinned} pinned for `{node}` is in use by the existing instance `{holder}`: pin another range")]
    PinTaken { node: String, pinned: Ipv4Net, holder: String },
    #[error("no free pod range left for node `{node}`: use a larger pod_cidr or a longer node_prefix")]
    NoRoom { node: String },
    #[error(
        "the settings remove every running master ({removed}) and name only new ones: etcd's data lives on the running masters, and the new ones would have no member to join; keep at least one running master in `nodes` (remove the others in a later run)"
    )]
    ReplaceControlPlane { removed: String },
    #[error(
        "the cluster's API is reached through {running}, and the settings say `api_endpoint: {wanted}`: kos does not change how a running cluster's API is reached yet; set `api_endpoint: {running_key}` under `cluster:`"
    )]
    ChangeEndpoint { running: &'static str, running_key: &'static str, wanted: &'static str },
}

/// Refuses what kos cannot yet do safely to a running control plane: a change of its
/// masters it cannot carry out ([`membership::check`]), or another way to reach its API (a
/// VIP's port made or released under running masters). A cluster with no server yet may
/// have any number of masters and any endpoint.
pub fn check_control_plane_change(settings: &Settings, observed: &Observed) -> Result<(), PlanError> {
    membership::check(settings, observed)?;
    // How the API is reached is decided once: a load balancer exists exactly when the cluster
    // was made with `api_endpoint: octavia`, a VIP's port exactly when with `vip` (each is
    // made before the servers), neither when with `master`.
    if observed.nodes.values().any(|o| o.server_id.is_some()) {
        let endpoint = settings.cluster.api_endpoint;
        let (running, through) = match (observed.api_load_balancer, observed.api_vip.is_some()) {
            (true, _) => (ApiEndpoint::Octavia, "an Octavia load balancer"),
            (false, true) => (ApiEndpoint::Vip, "a VIP"),
            (false, false) => (ApiEndpoint::Master, "its master's address"),
        };
        if running != endpoint {
            return Err(PlanError::ChangeEndpoint { running: through, running_key: running.as_str(), wanted: endpoint.as_str() });
        }
    }
    Ok(())
}

/// Settings + observations → the plan.
pub fn plan(settings: &Settings, observed: &Observed) -> Result<ClusterPlan, PlanError> {
    let pod_cidrs = pod_cidrs::assign(settings, observed)?;
    let mut etcd = membership::etcd_starts(settings, observed);
    let net = &settings.networking;
    let mut nodes = Vec::with_capacity(settings.nodes.len());
    for n in &settings.nodes {
        let pod_cidr = pod_cidrs[&n.name];
        let seen = observed.nodes.get(&n.name);
        let mut metadata = n.metadata.clone();
        metadata.insert(marks::ANSIBLE_GROUPS.into(), n.role.ansible_group().into());
        metadata.insert(marks::ANSIBLE_VARS.into(), format!("ansible_user->{}", settings.ssh.user));
        metadata.insert(marks::CLUSTER.into(), settings.cluster.name.clone());
        metadata.insert(marks::NODE.into(), n.name.clone());
        metadata.insert(marks::ROLE.into(), n.role.as_str().into());
        metadata.insert(marks::POD_CIDR.into(), pod_cidr.to_string());
        let etcd = etcd.remove(&n.name);
        if let Some(start) = &etcd {
            metadata.insert(marks::MASTERS.into(), settings.masters().count().to_string());
            metadata.insert(marks::ETCD_ORDER.into(), start.order.to_string());
        }
        nodes.push(NodePlan {
            name: n.name.clone(),
            role: n.role,
            server_name: format!("{}-{}", settings.cluster.name, n.name),
            flavor: n.flavor.clone().unwrap_or_else(|| settings.cloud.flavor.clone()),
            pod_gateway: first_host(pod_cidr),
            pod_cidr,
            fixed_ip: seen.and_then(|s| s.fixed_ip),
            floating_ip: seen.and_then(|s| s.floating_ip),
            wants_floating_ip: n.floating_ip,
            metadata,
            etcd,
        });
    }

    let first_master = nodes.iter().find(|n| n.role == Role::Master);
    let api_endpoint = settings.cluster.api_endpoint;
    let (internal_api, external_api) = if api_endpoint.is_shared() {
        (observed.api_vip, observed.api_floating_ip.or(observed.api_vip))
    } else {
        (first_master.and_then(|m| m.fixed_ip), first_master.and_then(NodePlan::ssh_address))
    };
    let kubernetes_service_ip = first_host(net.service_cidr);
    let mut plan = ClusterPlan {
        cluster: settings.cluster.name.clone(),
        version: settings.cluster.kubernetes_version,
        nodes,
        pod_cidr: net.pod_cidr,
        service_cidr: net.service_cidr,
        kubernetes_service_ip,
        dns_ip: net.dns_ip,
        domain: net.domain.clone(),
        api_port: settings.cluster.api_port,
        api_endpoint,
        internal_api,
        external_api,
        wants_api_floating_ip: settings.cluster.api_floating_ip,
        certificates: CertificatePlan::default(),
    };
    let api_ips: Vec<Ipv4Addr> = [observed.api_vip, observed.api_floating_ip].into_iter().flatten().collect();
    plan.certificates = certificates::plan_certificates(&plan, &api_ips, settings.runtime.docker_tls);
    Ok(plan)
}

/// The first usable address of a network (`10.1.3.0/24` → `10.1.3.1`).
pub fn first_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).saturating_add(1))
}

/// IPv4 addresses as SAN entries.
fn ips(addrs: impl IntoIterator<Item = Ipv4Addr>) -> Vec<IpAddr> {
    addrs.into_iter().map(IpAddr::V4).collect()
}

#[cfg(test)]
mod tests;
