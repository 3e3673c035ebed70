//! Carrying out the reconciliation through a [`Cloud`]: discovery (a constant number of
//! calls whatever the cluster's size), the cluster security group, nodes (port → server
//! → ACTIVE → floating IP, in parallel), and router routes.
//!
//! Failure rules: a server that boots into ERROR is deleted and created once more, then
//! its Nova fault is reported verbatim; a floating IP allocated for a node whose attach
//! fails is released again; everything created carries the cluster's mark first, so a
//! re-run or `kos destroy` finds whatever an interrupted run left.

use crate::api::{Cloud, CloudError, HealthMonitor, LoadBalancerSpec, PortFilter, PortSpec, RuleSpec, ServerSpec};
use crate::model::{Flavor, Network, Port, Route, Router, Subnet};
use crate::reconcile::{
    ApiChange, ApiLoadBalancer, ClusterResources, NodeChange, RouteChange, Unusable, api_changes, api_load_balancer_identity,
    api_member_change, cluster_tag, is_api_load_balancer, node_changes, node_tag, route_changes, routes_after, server_node,
};
use kos_core::plan::{ClusterPlan, NodePlan, marks};
use kos_core::settings::Settings;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Why applying failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApplyError {
    #[error("{what}")]
    Cloud {
        what: String,
        #[source]
        source: CloudError,
    },
    #[error("server `{server}` did not come up: {fault}")]
    Boot { server: String, fault: String },
    #[error("server `{server}` is still {status} after {seconds} s; re-run `kos up` to keep waiting, or check the cloud's compute service")]
    Timeout { server: String, status: String, seconds: u64 },
    #[error(
        "router `{router}` would hold {needed} routes but Neutron allows {limit} per router (max_routes): ask the cloud's operators for a higher limit, or use fewer nodes"
    )]
    RouteLimit { router: String, needed: usize, limit: u32 },
    #[error("the network `{network}` has no IPv4 subnet: create one, or name another network in cloud.network")]
    NoSubnet { network: String },
    /// A name of the settings the cloud does not know: the same words and fix as `kos check`.
    #[error("{what}: {source}; {fix}")]
    Lookup { what: String, source: CloudError, fix: &'static str },
}

/// The fix for a name of the settings the cloud does not know, as `kos check` and `kos up`
/// both word it.
pub mod fixes {
    pub const IMAGE: &str = "set cloud.image to an image of `openstack image list`";
    pub const FLAVOR: &str = "use a flavor of `openstack flavor list`";
    pub const NETWORK: &str = "set cloud.network to a tenant network of `openstack network list`";
    pub const ROUTER: &str = "set cloud.router to the router attached to cloud.network";
    pub const POOL: &str = "name an external network of `openstack network list --external`";
}

fn lookup_err(what: impl Into<String>, fix: &'static str) -> impl FnOnce(CloudError) -> ApplyError {
    let what = what.into();
    move |source| ApplyError::Lookup { what, source, fix }
}

fn cloud_err(what: impl Into<String>) -> impl FnOnce(CloudError) -> ApplyError {
    let what = what.into();
    move |source| ApplyError::Cloud { what, source }
}

/// The settings' names resolved to cloud objects.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub image_id: String,
    /// By flavor name as written in the settings.
    pub flavors: BTreeMap<String, Flavor>,
    pub network: Network,
    pub subnet: Subnet,
    pub router: Router,
    pub external_network_id: Option<String>,
    pub atomic_routes: bool,
    pub max_routes: Option<u32>,
}

/// The settings' names as the cloud answered them, asked at once, each answer kept as it
/// came: `resolve` needs them all, `check` judges each of them.
#[derive(Debug)]
pub(crate) struct Lookups {
    pub(crate) image: Result<crate::model::Image, CloudError>,
    /// Every flavor the settings name, by name.
    pub(crate) flavors: Vec<(String, Result<Flavor, CloudError>)>,
    /// The network and its subnets.
    pub(crate) network: Result<(Network, Result<Vec<Subnet>, CloudError>), CloudError>,
    pub(crate) router: Result<Router, CloudError>,
    /// The floating IP pool, when the settings name one.
    pub(crate) pool: Option<(String, Result<Network, CloudError>)>,
    pub(crate) extensions: Result<BTreeSet<String>, CloudError>,
    pub(crate) max_routes: Result<Option<u32>, CloudError>,
}

impl Lookups {
    pub(crate) async fn fetch<C: Cloud>(cloud: &C, settings: &Settings) -> Lookups {
        let c = &settings.cloud;
        let names: BTreeSet<&String> = std::iter::once(&c.flavor).chain(settings.nodes.iter().filter_map(|n| n.flavor.as_ref())).collect();
        let flavors = futures_util::future::join_all(names.into_iter().map(|name| async move { (name.clone(), cloud.flavor(name).await) }));
        let network = async {
            let n = cloud.network(&c.network).await?;
            let subnets = cloud.subnets(&n.id).await;
            Ok((n, subnets))
        };
        let pool = async {
            match &c.floating_ip_pool {
                Some(pool) => Some((pool.clone(), cloud.network(pool).await)),
                None => None,
            }
        };
        let (image, flavors, network, router, pool, extensions, max_routes) = futures_util::join!(
            cloud.image(&c.image),
            flavors,
            network,
            cloud.router(&c.router),
            pool,
            cloud.network_extensions(),
            cloud.max_routes(),
        );
        Lookups { image, flavors, network, router, pool, extensions, max_routes }
    }

    /// Every name resolved, or the first look-up that failed, in the settings' order.
    pub(crate) fn resolved(&self) -> Result<Resolved, ApplyError> {
        let image = self.image.clone().map_err(lookup_err("image", fixes::IMAGE))?;
        let mut flavors = BTreeMap::new();
        for (name, f) in &self.flavors {
            flavors.insert(name.clone(), f.clone().map_err(lookup_err(format!("flavor `{name}`"), fixes::FLAVOR))?);
        }
        let (network, subnets) = self.network.clone().map_err(lookup_err("network", fixes::NETWORK))?;
        let subnets = subnets.map_err(cloud_err("subnets of cloud.network"))?;
        let subnet = subnets.into_iter().next().ok_or_else(|| ApplyError::NoSubnet { network: network.name.clone() })?;
        let router = self.router.clone().map_err(lookup_err("router", fixes::ROUTER))?;
        let external_network_id = match &self.pool {
            Some((_, pool)) => Some(pool.clone().map_err(lookup_err("floating_ip_pool", fixes::POOL))?.id),
            None => None,
        };
        let extensions = self.extensions.clone().map_err(cloud_err("Neutron extensions"))?;
        let max_routes = self.max_routes.clone().map_err(cloud_err("Neutron route limit"))?;
        Ok(Resolved {
            image_id: image.id,
            flavors,
            network,
            subnet,
            router,
            external_network_id,
            atomic_routes: extensions.contains("extraroute-atomic"),
            max_routes,
        })
    }
}

/// Resolve image, flavors, network (+ its IPv4 subnet), router, floating-IP pool and
/// Neutron's route extension and limit, asked at once.
pub async fn resolve<C: Cloud>(cloud: &C, settings: &Settings) -> Result<Resolved, ApplyError> {
    Lookups::fetch(cloud, settings).await.resolved()
}

/// The cluster's resources as the cloud shows them: three list calls, and beside them, on a
/// cloud with Octavia, its load balancers (and the API's pool members when the API has one).
pub async fn discover<C: Cloud>(cloud: &C, cluster: &str) -> Result<ClusterResources, ApplyError> {
    let (nodes, api) = futures_util::join!(discover_nodes(cloud, cluster), find_api_load_balancer(cloud, cluster));
    let mut have = nodes?;
    have.api_load_balancer = api?;
    Ok(have)
}

/// The API's load balancer: looked for whatever the settings say, as a cluster made with
/// Octavia must not lose it to settings that say otherwise (see
/// [`kos_core::plan::check_control_plane_change`]). Without Octavia in the catalog there is none.
async fn find_api_load_balancer<C: Cloud>(cloud: &C, cluster: &str) -> Result<Option<ApiLoadBalancer>, ApplyError> {
    if !cloud.services().await.map_err(cloud_err("read the service catalog"))?.contains("load-balancer") {
        return Ok(None);
    }
    let all = cloud.load_balancers().await.map_err(cloud_err("list load balancers"))?;
    let Some(lb) = all.into_iter().find(|l| is_api_load_balancer(cluster, l)) else { return Ok(None) };
    let members = cloud.load_balancer_members(&lb.id).await.map_err(cloud_err(format!("read the members of {}", lb.name)))?;
    Ok(Some(ApiLoadBalancer { lb, members }))
}

/// The cluster's servers, ports and floating IPs: three list calls, at once.
pub(crate) async fn discover_nodes<C: Cloud>(cloud: &C, cluster: &str) -> Result<ClusterResources, ApplyError> {
    let tag = vec![cluster_tag(cluster)];
    let port_filter = PortFilter { tags: tag.clone(), ..PortFilter::default() };
    let (servers, ports, fips) = futures_util::join!(cloud.servers(), cloud.ports(&port_filter), cloud.floating_ips(&tag));
    let servers = servers.map_err(cloud_err("list servers"))?;
    let ports = ports.map_err(cloud_err("list ports"))?;
    let fips = fips.map_err(cloud_err("list floating IPs"))?;
    Ok(ClusterResources::collect(cluster, servers, ports, fips))
}

/// Finish the tagging of the cluster's ports and floating IPs whose create was
/// interrupted before its tags were set (found by the marks in their description).
pub async fn complete_tags<C: Cloud>(cloud: &C, have: &ClusterResources) -> Result<Changes, ApplyError> {
    let mut done = Changes::default();
    let ports = have.ports.values().chain(&have.stray_ports).chain(&have.vip_port).map(|p| ("ports", &p.id, &p.name, &p.tags));
    let fips = have.floating_ips.iter().map(|f| ("floatingips", &f.id, &f.id, &f.tags));
    for (collection, id, name, tags) in ports.chain(fips) {
        if let Some(tags) = crate::reconcile::tags_to_complete(tags) {
            cloud.set_tags(collection, id, &tags).await.map_err(cloud_err(format!("tag {name}")))?;
            let kind = if collection == "ports" { "port" } else { "floating IP" };
            done.0.push(Done::new(CloudChange::CompleteTags { kind, name: name.clone() }, None));
        }
    }
    Ok(done)
}

/// The rules of the cluster security group.
pub fn security_group_rules(settings: &Settings, plan: &ClusterPlan) -> Vec<RuleSpec> {
    // SSH from the bastion when there is one, else from anywhere (kos reaches nodes by
    // their floating IPs).
    let ssh_from = settings
        .ssh
        .bastion
        .as_ref()
        .and_then(|b| b.host.parse::<Ipv4Addr>().ok())
        .map_or_else(|| "0.0.0.0/0".to_string(), |ip| format!("{ip}/32"));
    let tcp = |min: u16, max: u16, from: &str| RuleSpec {
        direction: "ingress",
        protocol: Some("tcp"),
        port_min: Some(min),
        port_max: Some(max),
        remote_ip_prefix: Some(from.to_string()),
        remote_self: false,
    };
    vec![
        tcp(settings.ssh.port, settings.ssh.port, &ssh_from),
        tcp(plan.api_port, plan.api_port, "0.0.0.0/0"),
        tcp(30000, 32767, "0.0.0.0/0"),
        // Node to node: etcd, kubelet, everything.
        RuleSpec { direction: "ingress", protocol: None, port_min: None, port_max: None, remote_ip_prefix: None, remote_self: true },
        // Pods of other nodes, routed by the tenant router with their own addresses.
        RuleSpec {
            direction: "ingress",
            protocol: None,
            port_min: None,
            port_max: None,
            remote_ip_prefix: Some(plan.pod_cidr.to_string()),
            remote_self: false,
        },
    ]
}

/// What the cluster's security group needs, worded once for `kos plan` and `kos up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityGroupChange {
    /// There is none: create it with its rules.
    Create { name: String, rules: usize },
    /// It is there, its tagging or some rules missing (a run interrupted in between).
    Complete { name: String, tags: bool, rules: usize },
}

impl std::fmt::Display for SecurityGroupChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecurityGroupChange::Create { name, rules } => write!(f, "create security group {name} with {rules} rules"),
            SecurityGroupChange::Complete { name, tags, rules } => {
                let mut what = Vec::new();
                if *tags {
                    what.push("its marks".to_string());
                }
                if *rules > 0 {
                    what.push(format!("{rules} missing rule(s)"));
                }
                write!(f, "complete security group {name}: {}", what.join(" and "))
            }
        }
    }
}

/// The cluster's security group as it is (found by its mark), if any.
pub async fn find_security_group<C: Cloud>(cloud: &C, cluster: &str) -> Result<Option<crate::model::SecurityGroup>, ApplyError> {
    let tag = vec![cluster_tag(cluster)];
    Ok(cloud.security_groups(&tag).await.map_err(cloud_err("list security groups"))?.into_iter().next())
}

/// What the group needs (pure): `None` when it is complete.
pub fn security_group_change(
    settings: &Settings,
    plan: &ClusterPlan,
    group: Option<&crate::model::SecurityGroup>,
) -> Option<SecurityGroupChange> {
    let name = format!("{}-nodes", plan.cluster);
    let rules = security_group_rules(settings, plan);
    let Some(group) = group else {
        return Some(SecurityGroupChange::Create { name, rules: rules.len() });
    };
    let tags = crate::reconcile::tags_to_complete(&group.tags).is_some();
    let missing = rules.iter().filter(|r| !group.rules.iter().any(|have| rule_matches(have, r, &group.id))).count();
    (tags || missing > 0).then_some(SecurityGroupChange::Complete { name, tags, rules: missing })
}

/// Make the cluster's security group, `existing` as [`find_security_group`] found it: create
/// it when missing, and add whichever of its rules are missing (a run interrupted between
/// the group and its rules is finished by the next). Returns its ID and the change made, if any.
pub async fn ensure_security_group<C: Cloud>(
    cloud: &C,
    settings: &Settings,
    plan: &ClusterPlan,
    existing: Option<crate::model::SecurityGroup>,
) -> Result<(String, Option<SecurityGroupChange>), ApplyError> {
    let tag = vec![cluster_tag(&plan.cluster)];
    let name = format!("{}-nodes", plan.cluster);
    let change = security_group_change(settings, plan, existing.as_ref());
    let group = match existing {
        Some(g) => {
            if let Some(tags) = crate::reconcile::tags_to_complete(&g.tags) {
                cloud.set_tags("security-groups", &g.id, &tags).await.map_err(cloud_err(format!("tag `{name}`")))?;
            }
            g
        }
        None => cloud
            .create_security_group(&name, &format!("kos cluster {}: nodes", plan.cluster), &tag)
            .await
            .map_err(cloud_err(format!("create security group `{name}`")))?,
    };
    for rule in security_group_rules(settings, plan) {
        if !group.rules.iter().any(|have| rule_matches(have, &rule, &group.id)) {
            cloud.add_security_group_rule(&group.id, &rule).await.map_err(cloud_err(format!("add a rule to `{name}`")))?;
        }
    }
    Ok((group.id, change))
}

/// Whether an existing rule is the one `want` describes.
fn rule_matches(have: &crate::model::SecurityGroupRule, want: &RuleSpec, group_id: &str) -> bool {
    have.direction == want.direction
        && have.protocol.as_deref() == want.protocol
        && have.port_range_min == want.port_min
        && have.port_range_max == want.port_max
        && have.remote_ip_prefix.as_deref().filter(|p| *p != "0.0.0.0/0") == want.remote_ip_prefix.as_deref().filter(|p| *p != "0.0.0.0/0")
        && (have.remote_group_id.as_deref() == Some(group_id)) == want.remote_self
}

/// How long to wait for a server to become ACTIVE, how often to look, and how many nodes
/// to bring up at once.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    pub active_timeout: Duration,
    pub poll: Duration,
    /// Nodes handled at once (port → server → ACTIVE → floating IP).
    pub parallel: usize,
}

impl Default for Waits {
    fn default() -> Self {
        Waits { active_timeout: Duration::from_secs(600), poll: Duration::from_millis(500), parallel: 8 }
    }
}

/// One change kos makes in the cloud, worded once: `kos plan` lists it, `kos up` reports it
/// with what came of it ([`Done`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudChange {
    SecurityGroup(SecurityGroupChange),
    Api(ApiChange),
    Node(NodeChange),
    AddRoute(Route),
    RemoveRoute(Route),
    /// A port or floating IP whose create was interrupted before its tags were set.
    CompleteTags {
        kind: &'static str,
        name: String,
    },
    /// A server that booted unusable, deleted and created once more.
    RetryServer {
        node: String,
        why: Unusable,
    },
}

impl std::fmt::Display for CloudChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloudChange::SecurityGroup(c) => c.fmt(f),
            CloudChange::Api(c) => c.fmt(f),
            CloudChange::Node(c) => c.fmt(f),
            CloudChange::AddRoute(r) => write!(f, "add route {} via {}", r.destination, r.nexthop),
            CloudChange::RemoveRoute(r) => write!(f, "remove route {} via {}", r.destination, r.nexthop),
            CloudChange::CompleteTags { kind, name } => write!(f, "complete the tags of {kind} {name} (its tagging had been interrupted)"),
            CloudChange::RetryServer { node, why } => write!(f, "re-create server of {node} ({why}), once"),
        }
    }
}

/// A change made, and what came of it (`ACTIVE`, an address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub change: CloudChange,
    pub result: Option<String>,
}

impl Done {
    fn new(change: CloudChange, result: Option<String>) -> Done {
        Done { change, result }
    }
}

impl std::fmt::Display for Done {
    /// The change in `kos plan`'s words, then its result: `create server of worker-1: ACTIVE`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.result {
            Some(r) => write!(f, "{}: {r}", self.change),
            None => self.change.fmt(f),
        }
    }
}

/// What one phase changed, for the run's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes(pub Vec<Done>);

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A phase that stopped part-way: what it had done (every change made before the error, on
/// every node), and why it stopped.
#[derive(Debug)]
pub struct Stopped {
    pub done: Changes,
    pub error: ApplyError,
}

impl Stopped {
    /// Stopped by `error` after `done`.
    fn after(done: Changes, error: ApplyError) -> Stopped {
        Stopped { done, error }
    }
}

/// Everything `up --only instances` needs besides the cloud.
#[derive(Debug, Clone, Copy)]
pub struct NodeContext<'a> {
    pub settings: &'a Settings,
    pub plan: &'a ClusterPlan,
    pub resolved: &'a Resolved,
    pub security_groups: &'a [String],
    pub waits: Waits,
}

/// Make the API endpoint's resources match the plan, before the nodes: a master's port
/// needs the VIP among its address pairs, and the certificates the nodes get name the
/// endpoint's address. (A load balancer's members follow in [`apply_nodes`].)
pub async fn apply_api<C: Cloud>(cloud: &C, ctx: NodeContext<'_>, have: &ClusterResources) -> Result<Changes, Stopped> {
    let mut done = Changes::default();
    let mut api_port = have.api_port_id(ctx.plan.api_endpoint).map(str::to_string);
    for change in api_changes(ctx.plan, have) {
        let result = match &change {
            ApiChange::CreateVipPort => {
                let spec = PortSpec {
                    name: format!("{}-api-vip", ctx.plan.cluster),
                    network_id: ctx.resolved.network.id.clone(),
                    security_group_ids: ctx.security_groups.to_vec(),
                    allowed_address_pairs: Vec::new(),
                    tags: vec![cluster_tag(&ctx.plan.cluster), marks::API_VIP.to_string()],
                };
                cloud.create_port(&spec).await.map_err(cloud_err("create the API's VIP port")).map(|p| {
                    let line = format!("{} ({})", p.name, first_ip(&p));
                    api_port = Some(p.id);
                    Some(line)
                })
            }
            ApiChange::CreateLoadBalancer => {
                let (name, description) = api_load_balancer_identity(&ctx.plan.cluster);
                let spec = LoadBalancerSpec {
                    name,
                    description,
                    subnet_id: ctx.resolved.subnet.id.clone(),
                    vip_port_id: api_port.clone(),
                    listener_port: ctx.plan.api_port,
                    member_port: ctx.plan.api_port,
                    members: ctx.plan.masters().filter_map(|m| m.fixed_ip.map(|ip| (m.name.clone(), ip))).collect(),
                    monitor: HealthMonitor::Https { path: "/readyz".into(), expected_codes: "200".into() },
                };
                cloud.create_load_balancer(&spec).await.map_err(cloud_err("create the API's load balancer")).map(|lb| {
                    api_port = lb.vip_port_id;
                    Some(format!("{} (VIP {})", lb.name, lb.vip_address))
                })
            }
            ApiChange::AttachFloatingIp { reuse } => {
                let port_id = api_port.clone().unwrap_or_default();
                attach_floating_ip(cloud, ctx, "the API's VIP", &port_id, reuse.as_deref()).await.map(Some)
            }
            // Not one of `api_changes`: the members follow the masters' ports (`apply_nodes`).
            ApiChange::SetMembers { .. } => continue,
            ApiChange::DeleteVipPort { port_id: id, floating_ip_ids } | ApiChange::DeleteLoadBalancer { lb_id: id, floating_ip_ids } => {
                let load_balancer = matches!(change, ApiChange::DeleteLoadBalancer { .. });
                async {
                    for fip in floating_ip_ids {
                        cloud.delete_floating_ip(fip).await.map_err(cloud_err("release the API's floating IP"))?;
                    }
                    match load_balancer {
                        true => cloud.delete_load_balancer(id).await.map_err(cloud_err("delete the API's load balancer"))?,
                        false => cloud.delete_port(id).await.map_err(cloud_err("delete the API's VIP port"))?,
                    }
                    Ok(None)
                }
                .await
            }
        };
        match result {
            Ok(line) => done.0.push(Done::new(CloudChange::Api(change), line)),
            Err(e) => return Err(Stopped::after(done, e)),
        }
    }
    Ok(done)
}

/// Make the API load balancer's pool every master of the plan, at the addresses their
/// ports have now (`ports`: the ports made by this run, by node, beside those `have` found).
async fn apply_members<C: Cloud>(
    cloud: &C,
    plan: &ClusterPlan,
    have: &ClusterResources,
    ports: &BTreeMap<String, Port>,
) -> Result<Option<Done>, ApplyError> {
    let addresses: BTreeMap<String, Ipv4Addr> =
        have.ports.iter().chain(ports).filter_map(|(node, p)| p.fixed_ips.first().map(|f| (node.clone(), f.ip_address))).collect();
    let Some(change) = api_member_change(plan, have, &addresses) else { return Ok(None) };
    if let ApiChange::SetMembers { lb_id, members } = &change {
        let known: Vec<(String, Ipv4Addr)> = members.iter().filter_map(|(n, ip)| ip.map(|ip| (n.clone(), ip))).collect();
        cloud.set_load_balancer_members(lb_id, plan.api_port, &known).await.map_err(cloud_err("set the API load balancer's members"))?;
    }
    Ok(Some(Done::new(CloudChange::Api(change), None)))
}

/// Make the cloud's nodes match the plan: removed nodes first (their routes, server,
/// port, floating IP), then every other node in parallel. Stopped by an error, it still
/// says what it did, on every node.
pub async fn apply_nodes<C: Cloud>(cloud: &C, ctx: NodeContext<'_>, have: &ClusterResources) -> Result<Changes, Stopped> {
    let changes = node_changes(ctx.plan, have);
    let mut done = Changes::default();
    let mut per_node: BTreeMap<String, Vec<NodeChange>> = BTreeMap::new();
    for change in changes {
        if let NodeChange::DeleteStrayPort { port_id, name } = &change {
            if let Err(e) = cloud.delete_port(port_id).await {
                return Err(Stopped::after(done, cloud_err(format!("delete stray port {name}"))(e)));
            }
            done.0.push(Done::new(CloudChange::Node(change.clone()), None));
            continue;
        }
        if let NodeChange::DeleteStrayServer { server_id, name } = &change {
            if let Err(e) = delete_stray(cloud, server_id, name, ctx.waits).await {
                return Err(Stopped::after(done, e));
            }
            done.0.push(Done::new(CloudChange::Node(change.clone()), None));
            continue;
        }
        if let NodeChange::Remove { node, server_id, port_id, floating_ip_ids } = &change {
            match remove_node(cloud, ctx, have, node, server_id.as_deref(), port_id.as_deref(), floating_ip_ids).await {
                Ok(result) => done.0.push(Done::new(CloudChange::Node(change.clone()), Some(result))),
                Err(e) => return Err(Stopped::after(done, e)),
            }
            continue;
        }
        per_node.entry(node_of(&change).to_string()).or_default().push(change);
    }
    let runs = per_node.into_iter().map(|(name, changes)| async move {
        let mut lines = Vec::new();
        let result = match ctx.plan.node(&name) {
            Some(node) => apply_node(cloud, ctx, have, node, &changes, &mut lines).await.map(|port| port.map(|p| (name, p))),
            None => Err(ApplyError::Boot { server: name.clone(), fault: "not in the plan".into() }),
        };
        (lines, result)
    });
    // Bounded: a 50-node cluster must not send 50 creates at once to a cloud whose API has
    // a few workers (the launch benchmark made a one-worker Neutron time out a POST).
    use futures_util::StreamExt as _;
    let results: Vec<NodeRun> = futures_util::stream::iter(runs).buffer_unordered(ctx.waits.parallel.max(1)).collect().await;
    let mut first_error = None;
    let mut made = BTreeMap::new();
    for (lines, result) in results {
        done.0.extend(lines);
        match result {
            Ok(port) => made.extend(port),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(Stopped::after(done, e));
    }
    // The masters all have addresses now: the API's load balancer gets them as members.
    match apply_members(cloud, ctx.plan, have, &made).await {
        Ok(line) => done.0.extend(line),
        Err(e) => return Err(Stopped::after(done, e)),
    }
    Ok(done)
}

/// What one node's changes came to: the lines done, and then its port by node name (the API
/// load balancer's members are set from the masters'), or why they stopped.
type NodeRun = (Vec<Done>, Result<Option<(String, Port)>, ApplyError>);

fn node_of(change: &NodeChange) -> &str {
    match change {
        NodeChange::CreatePort { node }
        | NodeChange::SetAddressPairs { node, .. }
        | NodeChange::CreateServer { node }
        | NodeChange::RecreateServer { node, .. }
        | NodeChange::SettleServer { node, .. }
        | NodeChange::ReplaceServer { node, .. }
        | NodeChange::AttachFloatingIp { node, .. }
        | NodeChange::Remove { node, .. } => node,
        NodeChange::DeleteStrayPort { name, .. } | NodeChange::DeleteStrayServer { name, .. } => name,
    }
}

/// `kos replace`: delete the node's server and wait until it is gone; its port stays, so
/// [`apply_nodes`] makes the server again with the same address and pod range.
pub async fn replace_server<C: Cloud>(cloud: &C, node: &str, server_id: &str, waits: Waits) -> Result<Done, ApplyError> {
    delete_and_wait(cloud, server_id, format!("server of {node}"), waits).await?;
    let change = NodeChange::ReplaceServer { node: node.to_string(), server_id: server_id.to_string() };
    Ok(Done::new(CloudChange::Node(change), Some("deleted".into())))
}

/// Remove a node that left the settings; returns what was deleted.
async fn remove_node<C: Cloud>(
    cloud: &C,
    ctx: NodeContext<'_>,
    have: &ClusterResources,
    node: &str,
    server_id: Option<&str>,
    port_id: Option<&str>,
    floating_ip_ids: &[String],
) -> Result<String, ApplyError> {
    let mut deleted = Vec::new();
    // The node's routes go first: once its port is gone, nothing would say they were ours.
    if let Some(port) = port_id.and_then(|id| have.ports.values().find(|p| p.id == id))
        && let Some(ip) = port.fixed_ips.first().map(|f| f.ip_address)
    {
        let router = cloud.router(&ctx.resolved.router.id).await.map_err(cloud_err("read the router"))?;
        let stale: Vec<Route> =
            router.routes.iter().filter(|r| r.nexthop == ip && ctx.plan.pod_cidr.contains(&r.destination)).cloned().collect();
        if !stale.is_empty() {
            remove_routes(cloud, &ctx.resolved.router.id, ctx.resolved.atomic_routes, &stale).await?;
            deleted.push(format!("{} route(s)", stale.len()));
        }
    }
    for id in floating_ip_ids {
        cloud.delete_floating_ip(id).await.map_err(cloud_err(format!("release floating IP of {node}")))?;
        deleted.push("floating IP".to_string());
    }
    if let Some(id) = server_id {
        delete_and_wait(cloud, id, format!("server of {node}"), ctx.waits).await?;
        deleted.push("server".to_string());
    }
    if let Some(id) = port_id {
        cloud.delete_port(id).await.map_err(cloud_err(format!("delete port of {node}")))?;
        deleted.push("port".to_string());
    }
    Ok(if deleted.is_empty() { "nothing was left".to_string() } else { format!("deleted {}", deleted.join(", ")) })
}

/// Remove exactly `routes` from a router: atomically where Neutron can, else by a
/// whole-list update guarded by the router's revision, re-read and retried on a lost race.
pub(crate) async fn remove_routes<C: Cloud>(cloud: &C, router_id: &str, atomic: bool, routes: &[Route]) -> Result<(), ApplyError> {
    if atomic {
        cloud.remove_routes(router_id, routes).await.map_err(cloud_err("remove router routes"))?;
        return Ok(());
    }
    for _ in 0..5 {
        let router = cloud.router(router_id).await.map_err(cloud_err("read the router"))?;
        let keep: Vec<Route> = router.routes.iter().filter(|r| !routes.contains(r)).cloned().collect();
        match cloud.replace_routes(&router.id, &keep, router.revision_number).await {
            Ok(_) => return Ok(()),
            Err(CloudError::Conflict { .. }) => continue,
            Err(e) => return Err(cloud_err("update router routes")(e)),
        }
    }
    Err(cloud_err("update router routes")(CloudError::Conflict { kind: "router", id: router_id.to_string() }))
}

async fn apply_node<C: Cloud>(
    cloud: &C,
    ctx: NodeContext<'_>,
    have: &ClusterResources,
    node: &NodePlan,
    changes: &[NodeChange],
    lines: &mut Vec<Done>,
) -> Result<Option<Port>, ApplyError> {
    let mut port = have.ports.get(&node.name).cloned();
    for change in changes {
        match change {
            NodeChange::CreatePort { .. } => {
                let spec = PortSpec {
                    name: node.server_name.clone(),
                    network_id: ctx.resolved.network.id.clone(),
                    security_group_ids: ctx.security_groups.to_vec(),
                    allowed_address_pairs: ctx.plan.address_pairs(node),
                    tags: vec![cluster_tag(&ctx.plan.cluster), node_tag(&node.name)],
                };
                let p = cloud.create_port(&spec).await.map_err(cloud_err(format!("create port of {}", node.name)))?;
                lines.push(Done::new(CloudChange::Node(change.clone()), Some(format!("{} ({})", p.name, first_ip(&p)))));
                port = Some(p);
            }
            NodeChange::SetAddressPairs { port_id, cidrs, .. } => {
                cloud.set_allowed_address_pairs(port_id, cidrs).await.map_err(cloud_err(format!("set address pairs of {}", node.name)))?;
                lines.push(Done::new(CloudChange::Node(change.clone()), None));
            }
            NodeChange::CreateServer { .. } => {
                let port_id = port.as_ref().map(|p| p.id.clone()).unwrap_or_default();
                let result = boot(cloud, ctx, node, &port_id, lines).await?;
                lines.push(Done::new(CloudChange::Node(change.clone()), Some(result)));
            }
            NodeChange::RecreateServer { server_id, .. } => {
                delete_and_wait(cloud, server_id, format!("unusable server of {}", node.name), ctx.waits).await?;
                let port_id = port.as_ref().map(|p| p.id.clone()).unwrap_or_default();
                let result = boot(cloud, ctx, node, &port_id, lines).await?;
                lines.push(Done::new(CloudChange::Node(change.clone()), Some(result)));
            }
            NodeChange::SettleServer { server_id, .. } => {
                let port_id = port.as_ref().map(|p| p.id.clone()).unwrap_or_default();
                let result = match settle(cloud, ctx, node, server_id, &port_id, lines).await? {
                    Settled::Active => format!("{} ACTIVE", node.server_name),
                    Settled::Unusable(why) => {
                        delete_and_wait(cloud, server_id, format!("unusable server of {}", node.name), ctx.waits).await?;
                        lines.push(Done::new(CloudChange::RetryServer { node: node.name.clone(), why }, None));
                        boot(cloud, ctx, node, &port_id, lines).await?
                    }
                };
                lines.push(Done::new(CloudChange::Node(change.clone()), Some(result)));
            }
            NodeChange::AttachFloatingIp { reuse, .. } => {
                let port_id = port.as_ref().map(|p| p.id.clone()).unwrap_or_default();
                let address = attach_floating_ip(cloud, ctx, &node.name, &port_id, reuse.as_deref()).await?;
                lines.push(Done::new(CloudChange::Node(change.clone()), Some(address)));
            }
            NodeChange::Remove { .. }
            | NodeChange::DeleteStrayPort { .. }
            | NodeChange::DeleteStrayServer { .. }
            | NodeChange::ReplaceServer { .. } => {}
        }
    }
    Ok(port)
}

fn first_ip(p: &crate::model::Port) -> String {
    p.fixed_ips.first().map_or_else(|| "no address".to_string(), |f| f.ip_address.to_string())
}

/// Create the server and wait until it is settled (see [`settle`]); one that is not usable
/// then is deleted and created once more (reported in `lines`) before giving up with the
/// reason. Returns the server's state.
async fn boot<C: Cloud>(
    cloud: &C,
    ctx: NodeContext<'_>,
    node: &NodePlan,
    port_id: &str,
    lines: &mut Vec<Done>,
) -> Result<String, ApplyError> {
    let flavor_name = ctx
        .settings
        .nodes
        .iter()
        .find(|n| n.name == node.name)
        .and_then(|n| n.flavor.clone())
        .unwrap_or_else(|| ctx.settings.cloud.flavor.clone());
    let flavor_id = ctx.resolved.flavors.get(&flavor_name).map(|f| f.id.clone()).unwrap_or(flavor_name);
    let spec = ServerSpec {
        name: node.server_name.clone(),
        image_id: ctx.resolved.image_id.clone(),
        flavor_id,
        port_id: port_id.to_string(),
        key_name: ctx.settings.cloud.key_name.clone(),
        availability_zone: ctx.settings.cloud.availability_zone.clone(),
        metadata: node.metadata.clone(),
        user_data: None,
    };
    for attempt in 1..=2 {
        let server = cloud.create_server(&spec).await.map_err(cloud_err(format!("create server {}", spec.name)))?;
        let why = match settle(cloud, ctx, node, &server.id, port_id, lines).await? {
            Settled::Active => return Ok(format!("{} ACTIVE", spec.name)),
            Settled::Unusable(why) => why,
        };
        delete_and_wait(cloud, &server.id, format!("failed server {}", spec.name), ctx.waits).await?;
        if attempt == 2 {
            return Err(ApplyError::Boot { server: spec.name.clone(), fault: format!("{why} (twice)") });
        }
        lines.push(Done::new(CloudChange::RetryServer { node: node.name.clone(), why }, None));
    }
    Err(ApplyError::Boot { server: spec.name.clone(), fault: "no attempt was made".into() })
}

/// What became of a server once it stopped building.
enum Settled {
    /// ACTIVE, the node's only server, its port attached.
    Active,
    /// ERROR (with Nova's fault), or ACTIVE without the node's port.
    Unusable(Unusable),
}

/// Wait for the node's server to leave BUILD; then delete any other server of the node
/// (reported in `lines`), and see that the node's port is attached to it.
///
/// A run killed while its server create was in flight leaves a server the next run could
/// not list yet, so that run makes a second one on the same port. Nova attaches the port to
/// one of them at most: the other fails, and its clean-up can take the port from the first
/// too, which then runs without an address that anyone can reach. Seen on the test bed's
/// real Nova when `kos up` was killed twice in a row.
async fn settle<C: Cloud>(
    cloud: &C,
    ctx: NodeContext<'_>,
    node: &NodePlan,
    server_id: &str,
    port_id: &str,
    lines: &mut Vec<Done>,
) -> Result<Settled, ApplyError> {
    let state = wait_active(cloud, server_id, &node.server_name, ctx.waits).await?;
    if state.status != "ACTIVE" {
        return Ok(Settled::Unusable(Unusable::Error { fault: state.fault }));
    }
    let servers = cloud.servers().await.map_err(cloud_err("list servers"))?;
    let twins = servers.iter().filter(|s| s.id != server_id && server_node(s, &ctx.plan.cluster) == Some(node.name.as_str()));
    for twin in twins {
        delete_stray(cloud, &twin.id, &twin.name, ctx.waits).await?;
        let change = NodeChange::DeleteStrayServer { server_id: twin.id.clone(), name: twin.name.clone() };
        lines.push(Done::new(CloudChange::Node(change), None));
    }
    let filter = PortFilter { device_id: Some(server_id.to_string()), ..PortFilter::default() };
    let attached = cloud.ports(&filter).await.map_err(cloud_err(format!("read the ports of {}", node.server_name)))?;
    if !attached.iter().any(|p| p.id == port_id) {
        return Ok(Settled::Unusable(Unusable::PortNotAttached { attached_to: None }));
    }
    Ok(Settled::Active)
}

async fn wait_active<C: Cloud>(cloud: &C, id: &str, name: &str, waits: Waits) -> Result<crate::model::Server, ApplyError> {
    let start = tokio::time::Instant::now();
    loop {
        let s = cloud.server(id).await.map_err(cloud_err(format!("read server {name}")))?;
        match s {
            Some(s) if s.status == "ACTIVE" || s.status == "ERROR" => return Ok(s),
            Some(s) if start.elapsed() >= waits.active_timeout => {
                return Err(ApplyError::Timeout { server: name.into(), status: s.status, seconds: waits.active_timeout.as_secs() });
            }
            None => return Err(ApplyError::Boot { server: name.into(), fault: "the server disappeared while booting".into() }),
            Some(_) => tokio::time::sleep(waits.poll).await,
        }
    }
}

/// Delete a server and wait until it is gone; `what` names it in an error.
async fn delete_and_wait<C: Cloud>(cloud: &C, id: &str, what: String, waits: Waits) -> Result<(), ApplyError> {
    cloud.delete_server(id).await.map_err(cloud_err(format!("delete {what}")))?;
    wait_gone(cloud, id, waits).await
}

/// Delete a stray server once Nova is done building it, and wait until it is gone. A build
/// that fails cleans up the port it took, also when that port is another server's by then
/// (Nova sets ERROR only after that clean-up), so the port is looked at only after it;
/// deleting a server mid-build would leave that clean-up running behind kos's back.
async fn delete_stray<C: Cloud>(cloud: &C, id: &str, name: &str, waits: Waits) -> Result<(), ApplyError> {
    let seen = cloud.server(id).await.map_err(cloud_err(format!("read stray server {name}")))?;
    if seen.is_some_and(|s| s.status == "BUILD") {
        match wait_active(cloud, id, name, waits).await {
            Ok(_) => {}
            // Gone by itself.
            Err(ApplyError::Boot { .. }) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    delete_and_wait(cloud, id, format!("stray server {name}"), waits).await
}

/// Wait until a deleted server is gone.
pub(crate) async fn wait_gone<C: Cloud>(cloud: &C, id: &str, waits: Waits) -> Result<(), ApplyError> {
    let start = tokio::time::Instant::now();
    while cloud.server(id).await.map_err(cloud_err("read a deleted server"))?.is_some() {
        if start.elapsed() >= waits.active_timeout {
            return Err(ApplyError::Timeout { server: id.into(), status: "DELETING".into(), seconds: waits.active_timeout.as_secs() });
        }
        tokio::time::sleep(waits.poll).await;
    }
    Ok(())
}

async fn attach_floating_ip<C: Cloud>(
    cloud: &C,
    ctx: NodeContext<'_>,
    what: &str,
    port_id: &str,
    reuse: Option<&str>,
) -> Result<String, ApplyError> {
    let (id, created) = match reuse {
        Some(id) => (id.to_string(), false),
        None => {
            let net = ctx.resolved.external_network_id.clone().unwrap_or_default();
            let f = cloud
                .create_floating_ip(&net, &[cluster_tag(&ctx.plan.cluster)])
                .await
                .map_err(cloud_err(format!("allocate a floating IP for {what}")))?;
            (f.id, true)
        }
    };
    match cloud.set_floating_ip_port(&id, Some(port_id)).await {
        Ok(f) => Ok(f.floating_ip_address.to_string()),
        Err(e) => {
            // Never leak an address allocated for this attempt.
            if created {
                let _ = cloud.delete_floating_ip(&id).await;
            }
            Err(cloud_err(format!("attach a floating IP to {what}"))(e))
        }
    }
}

/// Bring the router's routes to the plan (after the nodes exist). `node_addresses` are
/// the fixed IPs of every port of the cluster (also of nodes being removed). `read`: the
/// router as [`resolve`] read it, when nothing of kos changed it since (a no-op run then
/// asks nothing more); else it is read again. A router someone else changed in between
/// makes the update conflict on its revision, and the next round reads it again.
pub async fn apply_routes<C: Cloud>(
    cloud: &C,
    plan: &ClusterPlan,
    resolved: &Resolved,
    node_addresses: &BTreeSet<Ipv4Addr>,
    mut read: Option<Router>,
) -> Result<Changes, ApplyError> {
    for _ in 0..5 {
        let router = match read.take() {
            Some(router) => router,
            None => cloud.router(&resolved.router.id).await.map_err(cloud_err("read the router"))?,
        };
        let change = route_changes(plan, &router, node_addresses, resolved.atomic_routes);
        if let Some(limit) = resolved.max_routes {
            let needed = routes_after(&router, &change);
            if needed > limit as usize {
                return Err(ApplyError::RouteLimit { router: router.name.clone(), needed, limit });
            }
        }
        let describe = |add: &[Route], remove: &[Route]| {
            let mut lines = Vec::new();
            lines.extend(add.iter().map(|r| Done::new(CloudChange::AddRoute(r.clone()), None)));
            lines.extend(remove.iter().map(|r| Done::new(CloudChange::RemoveRoute(r.clone()), None)));
            Changes(lines)
        };
        match change {
            RouteChange::None => return Ok(Changes::default()),
            RouteChange::Atomic { add, remove } => {
                if !remove.is_empty() {
                    cloud.remove_routes(&router.id, &remove).await.map_err(cloud_err("remove router routes"))?;
                }
                if !add.is_empty() {
                    cloud.add_routes(&router.id, &add).await.map_err(cloud_err("add router routes"))?;
                }
                return Ok(describe(&add, &remove));
            }
            RouteChange::Replace { routes, revision, add, remove } => match cloud.replace_routes(&router.id, &routes, revision).await {
                Ok(_) => return Ok(describe(&add, &remove)),
                Err(CloudError::Conflict { .. }) => continue,
                Err(e) => return Err(cloud_err("update router routes")(e)),
            },
        }
    }
    Err(cloud_err("update router routes")(CloudError::Conflict { kind: "router", id: resolved.router.id.clone() }))
}

#[cfg(test)]
mod tests;
