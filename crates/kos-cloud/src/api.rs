//! The [`Cloud`] trait: every OpenStack call kos makes, and nothing more.
//!
//! Reads are designed for a constant number of calls whatever the cluster's size: one
//! list of servers, one list of ports by tag, one router. Writes take small spec structs.
//! Implementations retry transient failures (5xx, 429, timeouts) with backoff themselves,
//! so callers see only answers and real errors.

use crate::model::*;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::Ipv4Addr;

/// What a call of the trait returns.
pub type CloudResult<T> = Result<T, CloudError>;

/// A failed cloud call, sorted by what the caller can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// Credentials refused, or no cloud configured: one line naming the cloud.
    #[error("cannot authenticate to cloud `{cloud}`: {message}")]
    Auth { cloud: String, message: String },
    /// A named resource does not exist.
    #[error("{kind} `{name}` not found")]
    NotFound { kind: &'static str, name: String },
    /// A name matches several resources.
    #[error("{kind} name `{name}` is ambiguous ({count} matches): use its ID")]
    Ambiguous { kind: &'static str, name: String, count: usize },
    /// The project's quota does not allow it (HTTP 403/409/413 with a quota message).
    #[error("quota exceeded: {message}")]
    Quota { message: String },
    /// A whole-list update lost a race (`If-Match` failed); re-read and try again.
    #[error("{kind} `{id}` changed meanwhile (revision mismatch)")]
    Conflict { kind: &'static str, id: String },
    /// The API refused the request; the message is the API's, verbatim.
    #[error("{service} refused {action}: {message}")]
    Refused { service: &'static str, action: String, message: String },
    /// The cloud's TLS certificate is not trusted, or kos was asked not to check it: one
    /// line naming the cloud, the URL and the fix.
    #[error("cannot reach cloud `{cloud}` at {url}: {message}")]
    Tls { cloud: String, url: String, message: String },
    /// The login works, but its roles (or an application credential's access rules) do not
    /// allow this call (HTTP 403): `message` names the call, the API's words, the credential
    /// and what kos needs.
    #[error("cloud `{cloud}`: {service} refused {message}")]
    Forbidden { cloud: String, service: &'static str, message: String },
    /// The service did not answer usefully even after retries.
    #[error("{service} unavailable after {attempts} attempts: {message}")]
    Unavailable { service: &'static str, attempts: u32, message: String },
}

/// Which ports to list (Neutron filters, all optional, combined with AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortFilter {
    /// Ports carrying every one of these tags.
    pub tags: Vec<String>,
    pub network_id: Option<String>,
    pub device_id: Option<String>,
}

/// A port to create for a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub name: String,
    pub network_id: String,
    pub security_group_ids: Vec<String>,
    /// CIDRs the node may send from (its pod CIDR).
    pub allowed_address_pairs: Vec<String>,
    pub tags: Vec<String>,
}

/// A server to create on an existing port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub name: String,
    pub image_id: String,
    pub flavor_id: String,
    pub port_id: String,
    pub key_name: Option<String>,
    pub availability_zone: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// cloud-init user data (plain text; the client base64-encodes it).
    pub user_data: Option<String>,
}

/// A security group rule to add.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleSpec {
    pub direction: &'static str,
    pub protocol: Option<&'static str>,
    pub port_min: Option<u16>,
    pub port_max: Option<u16>,
    pub remote_ip_prefix: Option<String>,
    /// `true`: from members of the same group.
    pub remote_self: bool,
}

/// Parts of an Octavia load balancer kos builds (one TCP listener, one pool, members, a
/// health monitor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerSpec {
    pub name: String,
    /// kos's mark (`kos-cluster=<name>`) and what it exposes.
    pub description: String,
    /// The members' subnet, and the VIP's unless `vip_port_id` is given.
    pub subnet_id: String,
    /// A port of kos's own whose address the load balancer takes as its VIP (the API's
    /// endpoint: the address then outlives a rebuilt load balancer, and Octavia leaves a port
    /// it did not create in place when the load balancer is deleted); `None`: Octavia
    /// allocates one on `subnet_id` (`kos expose`).
    pub vip_port_id: Option<String>,
    pub listener_port: u16,
    pub member_port: u16,
    pub members: Vec<(String, Ipv4Addr)>,
    pub monitor: HealthMonitor,
}

/// How the load balancer tells a healthy member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthMonitor {
    /// A TCP connect (a NodePort of `kos expose`: any answer is the service's).
    Tcp,
    /// An HTTPS `GET path` answered with `expected_codes` (the API servers' `/readyz`: a
    /// server that accepts connections but is not ready, e.g. without etcd, is taken out).
    /// The certificate is not verified: the monitor holds no CA.
    Https { path: String, expected_codes: String },
}

/// The OpenStack calls kos makes. Every method is one logical operation; implementations
/// handle pagination, retries and waiting for `PENDING_*` states of Octavia.
pub trait Cloud: Send + Sync {
    /// Name of the cloud (for messages).
    fn name(&self) -> &str;

    // ---- discovery -------------------------------------------------------------------
    /// Service types in the catalog (`compute`, `network`, `load-balancer`, ...).
    fn services(&self) -> impl Future<Output = CloudResult<BTreeSet<String>>> + Send;
    /// Aliases of Neutron's extensions (`extraroute-atomic`, `allowed-address-pairs`, ...).
    fn network_extensions(&self) -> impl Future<Output = CloudResult<BTreeSet<String>>> + Send;
    fn quotas(&self) -> impl Future<Output = CloudResult<Quotas>> + Send;
    /// Neutron's limit of extra routes per router, when the cloud says (admin-only on
    /// many clouds: `None` then).
    fn max_routes(&self) -> impl Future<Output = CloudResult<Option<u32>>> + Send;

    fn image(&self, name_or_id: &str) -> impl Future<Output = CloudResult<Image>> + Send;
    fn flavor(&self, name_or_id: &str) -> impl Future<Output = CloudResult<Flavor>> + Send;
    fn keypair(&self, name: &str) -> impl Future<Output = CloudResult<Option<Keypair>>> + Send;
    fn network(&self, name_or_id: &str) -> impl Future<Output = CloudResult<Network>> + Send;
    fn subnets(&self, network_id: &str) -> impl Future<Output = CloudResult<Vec<Subnet>>> + Send;
    fn router(&self, name_or_id: &str) -> impl Future<Output = CloudResult<Router>> + Send;

    /// Every server of the project (one paginated list, with metadata and addresses).
    fn servers(&self) -> impl Future<Output = CloudResult<Vec<Server>>> + Send;
    fn server(&self, id: &str) -> impl Future<Output = CloudResult<Option<Server>>> + Send;
    fn ports(&self, filter: &PortFilter) -> impl Future<Output = CloudResult<Vec<Port>>> + Send;
    fn floating_ips(&self, tags: &[String]) -> impl Future<Output = CloudResult<Vec<FloatingIp>>> + Send;
    fn security_groups(&self, tags: &[String]) -> impl Future<Output = CloudResult<Vec<SecurityGroup>>> + Send;
    fn load_balancers(&self) -> impl Future<Output = CloudResult<Vec<LoadBalancer>>> + Send;
    /// The members of a load balancer's (one) pool.
    fn load_balancer_members(&self, id: &str) -> impl Future<Output = CloudResult<Vec<LoadBalancerMember>>> + Send;

    // ---- changes ---------------------------------------------------------------------
    fn create_security_group(
        &self,
        name: &str,
        description: &str,
        tags: &[String],
    ) -> impl Future<Output = CloudResult<SecurityGroup>> + Send;
    fn add_security_group_rule(&self, group_id: &str, rule: &RuleSpec) -> impl Future<Output = CloudResult<()>> + Send;
    fn delete_security_group(&self, id: &str) -> impl Future<Output = CloudResult<()>> + Send;

    fn create_port(&self, spec: &PortSpec) -> impl Future<Output = CloudResult<Port>> + Send;
    fn set_allowed_address_pairs(&self, port_id: &str, cidrs: &[String]) -> impl Future<Output = CloudResult<Port>> + Send;
    fn delete_port(&self, id: &str) -> impl Future<Output = CloudResult<()>> + Send;
    /// Replace the tags of a Neutron resource (`collection`: `ports`, `floatingips`,
    /// `security-groups`): completes a create whose tagging was interrupted.
    fn set_tags(&self, collection: &'static str, id: &str, tags: &[String]) -> impl Future<Output = CloudResult<()>> + Send;

    fn create_server(&self, spec: &ServerSpec) -> impl Future<Output = CloudResult<Server>> + Send;
    fn delete_server(&self, id: &str) -> impl Future<Output = CloudResult<()>> + Send;

    fn create_floating_ip(&self, network_id: &str, tags: &[String]) -> impl Future<Output = CloudResult<FloatingIp>> + Send;
    /// Attach to a port (`None`: detach).
    fn set_floating_ip_port(&self, id: &str, port_id: Option<&str>) -> impl Future<Output = CloudResult<FloatingIp>> + Send;
    fn delete_floating_ip(&self, id: &str) -> impl Future<Output = CloudResult<()>> + Send;

    /// `extraroute-atomic`: add exactly these routes.
    fn add_routes(&self, router_id: &str, routes: &[Route]) -> impl Future<Output = CloudResult<Router>> + Send;
    /// `extraroute-atomic`: remove exactly these routes.
    fn remove_routes(&self, router_id: &str, routes: &[Route]) -> impl Future<Output = CloudResult<Router>> + Send;
    /// Plain `extraroute`: replace the whole list, only if the router is still at
    /// `revision` (`If-Match`); [`CloudError::Conflict`] otherwise.
    fn replace_routes(&self, router_id: &str, routes: &[Route], revision: u64) -> impl Future<Output = CloudResult<Router>> + Send;

    /// Create a load balancer with listener, pool, members and health monitor; returns
    /// when it is `ACTIVE`.
    fn create_load_balancer(&self, spec: &LoadBalancerSpec) -> impl Future<Output = CloudResult<LoadBalancer>> + Send;
    /// Replace the pool's members (idempotent re-exposure).
    fn set_load_balancer_members(
        &self,
        id: &str,
        member_port: u16,
        members: &[(String, Ipv4Addr)],
    ) -> impl Future<Output = CloudResult<()>> + Send;
    /// Cascade delete; returns when gone.
    fn delete_load_balancer(&self, id: &str) -> impl Future<Output = CloudResult<()>> + Send;
}
