//! What kos saw in the cloud, as input to the plan.
//!
//! The cloud layer fills this from the servers carrying the cluster's mark; `kos render`
//! can read it from a file (`--observed`). Pod CIDRs recorded on existing instances are
//! what keeps a node's range stable when other nodes come and go.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The cluster's resources as last seen in the cloud.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observed {
    /// Existing servers of the cluster, by node name (also those no longer in the settings).
    #[serde(default)]
    pub nodes: BTreeMap<String, ObservedNode>,
    /// The API load balancer's VIP, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_vip: Option<Ipv4Addr>,
    /// The tenant subnet the nodes live on (pod traffic to it is not masqueraded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_cidr: Option<Ipv4Net>,
    /// The floating IP on the API load balancer's VIP, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_floating_ip: Option<Ipv4Addr>,
    /// `api_vip` is an Octavia load balancer's (the cluster was made with `api_endpoint:
    /// octavia`), not a port of kos's own (`vip`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub api_load_balancer: bool,
}

/// One existing server of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedNode {
    /// Its address on the tenant network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_ip: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floating_ip: Option<Ipv4Addr>,
    /// The pod CIDR recorded on the instance (`kos-pod-cidr` metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<Ipv4Net>,
    /// The server's ID: its host key is known under it (a re-created server with the same
    /// name and address is another machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// The role recorded on the server (`kos-role`): `master` or `worker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// On a master: how many masters the settings had when its server was made (`kos-masters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masters: Option<u32>,
    /// On a master: its place in the order masters joined etcd (`kos-etcd-order`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_order: Option<u32>,
}

impl Observed {
    /// Parse an observed-state file (YAML or JSON).
    pub fn parse(text: &str) -> Result<Observed, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }
}
