//! The cloud commands as functions over the [`Cloud`] trait: the seed's dynamic inventory,
//! the preflight check, and teardown. The binary prints what these return.

use crate::api::{Cloud, PortFilter};
use crate::apply::{ApplyError, discover_nodes};
use crate::model::{LoadBalancer, Route};
use crate::reconcile::{carries_mark, cluster_tag};
use crate::survey::Survey;
use kos_core::plan::{ClusterPlan, marks};
use kos_core::settings::Settings;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

/// Ansible's dynamic-inventory JSON for the cluster (`--list`), from three list calls
/// whatever the number of servers: groups from each server's `ansible_host_groups` tag,
/// host variables from `ansible_host_vars` (`key->value`, several separated by `;`) plus
/// `ansible_host` (floating IP, else fixed IP), `kos_role` and `kos_pod_cidr`.
pub async fn inventory<C: Cloud>(cloud: &C, cluster: &str) -> Result<Value, ApplyError> {
    let have = discover_nodes(cloud, cluster).await?;
    let observed = have.observed(None);
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut hostvars = Map::new();
    for (node, server) in &have.servers {
        for group in server.metadata.get(marks::ANSIBLE_GROUPS).map(String::as_str).unwrap_or("").split([',', ';']) {
            let group = group.trim();
            if !group.is_empty() {
                groups.entry(group.to_string()).or_default().push(node.clone());
            }
        }
        let mut vars = Map::new();
        for pair in server.metadata.get(marks::ANSIBLE_VARS).map(String::as_str).unwrap_or("").split(';') {
            if let Some((k, v)) = pair.split_once("->") {
                vars.insert(k.trim().to_string(), json!(v.trim()));
            }
        }
        let seen = observed.nodes.get(node);
        let address = seen.and_then(|o| o.floating_ip.or(o.fixed_ip)).or_else(|| server.addresses.first().map(|a| a.ip));
        if let Some(ip) = address {
            vars.insert("ansible_host".into(), json!(ip.to_string()));
        }
        if let Some(role) = server.metadata.get(marks::ROLE) {
            vars.insert("kos_role".into(), json!(role));
        }
        if let Some(cidr) = server.metadata.get(marks::POD_CIDR) {
            vars.insert("kos_pod_cidr".into(), json!(cidr));
        }
        vars.insert("kos_server".into(), json!(server.name));
        vars.insert("kos_server_id".into(), json!(server.id));
        hostvars.insert(node.clone(), Value::Object(vars));
    }
    let mut out = Map::new();
    let all: Vec<&String> = have.servers.keys().collect();
    for (group, hosts) in &groups {
        out.insert(group.clone(), json!({ "hosts": hosts }));
    }
    out.insert("all".into(), json!({ "hosts": all, "children": groups.keys().collect::<Vec<_>>() }));
    out.insert("_meta".into(), json!({ "hostvars": hostvars }));
    Ok(Value::Object(out))
}

/// How a preflight finding ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "OK",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        })
    }
}

/// One line of `kos check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub verdict: Verdict,
    pub what: String,
    /// What kos will do, or how to fix it.
    pub fix: Option<String>,
}

fn ok(what: impl Into<String>) -> Finding {
    Finding { verdict: Verdict::Ok, what: what.into(), fix: None }
}
fn warn(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding { verdict: Verdict::Warn, what: what.into(), fix: Some(fix.into()) }
}
fn fail(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding { verdict: Verdict::Fail, what: what.into(), fix: Some(fix.into()) }
}

/// Preflight: creates nothing. Every lookup, extension, quota and range check the plan
/// depends on, each as OK / WARN / FAIL with what to do. The cloud is asked everything at
/// once (a dozen independent calls: sequential, they were most of a no-op `kos up`'s check),
/// then judged in a fixed order.
pub async fn check<C: Cloud>(cloud: &C, settings: &Settings, plan: &ClusterPlan) -> Vec<Finding> {
    crate::survey::survey(cloud, settings, crate::survey::Asks { checks: true, security_group: false }).await.findings(
        cloud.name(),
        settings,
        plan,
    )
}

impl Survey {
    /// The preflight's findings, judged in a fixed order from what the survey found (asked
    /// with [`Asks::checks`](crate::survey::Asks): without, the keypair, the catalog and the
    /// quotas are not judged).
    pub fn findings(&self, cloud: &str, settings: &Settings, plan: &ClusterPlan) -> Vec<Finding> {
        let mut out = vec![ok(format!("authenticated to cloud `{cloud}`"))];
        let names = check_names(self, &mut out);
        check_extensions(self, &mut out);
        check_quotas(settings, plan, self, &names.flavors, &mut out);
        check_routes_and_ranges(plan, self, &names, &mut out);
        out
    }
}

/// What the names of the settings resolved to, for the checks after them.
struct Names {
    flavors: BTreeMap<String, crate::model::Flavor>,
    tenant_cidr: Option<ipnet::Ipv4Net>,
}

/// Every name of the settings: image, flavors, network (with a subnet), router, floating
/// IP pool, keypair.
fn check_names(seen: &Survey, out: &mut Vec<Finding>) -> Names {
    out.push(match &seen.names.image {
        Ok(i) => ok(format!("image: {} ({})", i.name, i.status)),
        Err(e) => fail(format!("image: {e}"), crate::apply::fixes::IMAGE),
    });
    let mut flavors = BTreeMap::new();
    for (name, found) in &seen.names.flavors {
        match found {
            Ok(f) => {
                out.push(ok(format!("flavor {}: {} vCPU, {} MiB", f.name, f.vcpus, f.ram)));
                flavors.insert(name.clone(), f.clone());
            }
            Err(e) => out.push(fail(format!("flavor `{name}`: {e}"), crate::apply::fixes::FLAVOR)),
        }
    }
    let mut tenant_cidr = None;
    match &seen.names.network {
        Ok((n, subnets)) => match subnets {
            Ok(subnets) if !subnets.is_empty() => {
                tenant_cidr = Some(subnets[0].cidr);
                out.push(ok(format!("network {} with subnet {}", n.name, subnets[0].cidr)));
            }
            Ok(_) => out.push(fail(format!("network {} has no subnet", n.name), "create a subnet on it")),
            Err(e) => out.push(fail(format!("subnets of {}: {e}", n.name), "check the network")),
        },
        Err(e) => out.push(fail(format!("network: {e}"), crate::apply::fixes::NETWORK)),
    }
    match &seen.names.router {
        Ok(r) if r.external_network_id.is_some() => {
            out.push(ok(format!("router {} with an external gateway, {} route(s)", r.name, r.routes.len())))
        }
        Ok(r) => {
            out.push(warn(format!("router {} has no external gateway", r.name), "pods and nodes will not reach outside the tenant network"))
        }
        Err(e) => out.push(fail(format!("router: {e}"), crate::apply::fixes::ROUTER)),
    }
    if let Some((_, pool)) = &seen.names.pool {
        out.push(match pool {
            Ok(n) if n.external => ok(format!("floating IP pool {}", n.name)),
            Ok(n) => fail(format!("floating_ip_pool {} is not an external network", n.name), "name an external network"),
            Err(e) => fail(format!("floating_ip_pool: {e}"), crate::apply::fixes::POOL),
        });
    }
    if let Some((key, found)) = &seen.keypair {
        out.push(match found {
            Ok(Some(_)) => ok(format!("keypair {key}")),
            Ok(None) => fail(format!("keypair `{key}` not found"), "create it with `openstack keypair create --public-key ...`"),
            Err(e) => fail(format!("keypair: {e}"), "check the compute service"),
        });
    }
    Names { flavors, tenant_cidr }
}

/// The Neutron extensions pod routing needs, and Octavia when the API is load-balanced.
fn check_extensions(seen: &Survey, out: &mut Vec<Finding>) {
    match &seen.names.extensions {
        Ok(ext) => {
            out.push(if ext.contains("extraroute-atomic") {
                ok("Neutron extraroute-atomic: routes are added and removed one by one")
            } else if ext.contains("extraroute") {
                warn(
                    "Neutron has extraroute but not extraroute-atomic",
                    "kos replaces the router's route list guarded by its revision (If-Match), keeping foreign routes",
                )
            } else {
                fail(
                    "Neutron has no extraroute extension",
                    "pods cannot be routed between nodes: ask the operators to enable the extraroute service plugin",
                )
            });
            out.push(if ext.contains("allowed-address-pairs") {
                ok("Neutron allowed-address-pairs: pod addresses pass the nodes' ports")
            } else {
                fail(
                    "Neutron has no allowed-address-pairs",
                    "anti-spoofing would drop pod traffic: ask for the extension, or disable port security on the node ports",
                )
            });
            out.push(if ext.contains("port-security") {
                ok("Neutron port-security")
            } else {
                warn("Neutron has no port-security extension", "kos still sets address pairs; nothing else changes")
            });
        }
        Err(e) => out.push(fail(format!("Neutron extensions: {e}"), "check the network service")),
    }
    if let Some(services) = &seen.services {
        out.push(match services {
            Ok(s) if s.contains("load-balancer") => ok("Octavia (load-balancer) in the catalog"),
            Ok(_) => fail(
                "`api_endpoint: octavia` but the cloud's catalog has no `load-balancer` service (Octavia)",
                "use `api_endpoint: vip` (a Neutron port's address, held by keepalived on the masters)",
            ),
            Err(e) => fail(format!("service catalog: {e}"), "check the identity service"),
        });
    }
}

/// Room in the project's quotas for the nodes still to be made.
fn check_quotas(
    settings: &Settings,
    plan: &ClusterPlan,
    seen: &Survey,
    flavors: &BTreeMap<String, crate::model::Flavor>,
    out: &mut Vec<Finding>,
) {
    let c = &settings.cloud;
    let new_nodes: Vec<_> = plan.nodes.iter().filter(|n| seen.have.as_ref().map_or(true, |h| !h.servers.contains_key(&n.name))).collect();
    match &seen.quotas {
        None => {}
        Some(Ok(q)) => {
            let n = new_nodes.len() as i64;
            let flavor_of = |node: &str| {
                let name =
                    settings.nodes.iter().find(|s| s.name == node).and_then(|s| s.flavor.clone()).unwrap_or_else(|| c.flavor.clone());
                flavors.get(&name).cloned()
            };
            let cores: i64 = new_nodes.iter().filter_map(|x| flavor_of(&x.name)).map(|f| i64::from(f.vcpus)).sum();
            let ram: i64 = new_nodes.iter().filter_map(|x| flavor_of(&x.name)).map(|f| f.ram as i64).sum();
            let mut fips = new_nodes.iter().filter(|x| x.wants_floating_ip).count() as i64;
            // The API's VIP: a port of its own (a load balancer's VIP too), and its floating
            // IP when asked for.
            let api = seen.have.as_ref().map(|h| crate::reconcile::api_changes(plan, h)).unwrap_or_default();
            let vip_port = api.iter().filter(|c| matches!(c, crate::reconcile::ApiChange::CreateVipPort)).count() as i64;
            fips += api.iter().filter(|c| matches!(c, crate::reconcile::ApiChange::AttachFloatingIp { reuse: None })).count() as i64;
            for (what, quota, need) in [
                ("instances", q.instances, n),
                ("cores", q.cores, cores),
                ("RAM (MiB)", q.ram, ram),
                ("ports", q.ports, n + vip_port),
                ("floating IPs", q.floating_ips, fips),
                ("security groups", q.security_groups, i64::from(settings.cloud.manage_security_group)),
            ] {
                let limit = if quota.limit < 0 { "unlimited".to_string() } else { quota.limit.to_string() };
                if quota.allows(need) {
                    out.push(ok(format!("quota {what}: need {need}, {} used of {limit}", quota.used)));
                } else {
                    out.push(fail(
                        format!("quota {what}: need {need} more, {} used of {limit}", quota.used),
                        "ask for a higher quota, or plan fewer or smaller nodes",
                    ));
                }
            }
        }
        Some(Err(e)) => out.push(warn(format!("quotas not readable: {e}"), "kos cannot tell in advance whether the project has room")),
    }
}

/// The router's route limit, and the cluster's ranges against the tenant subnet.
fn check_routes_and_ranges(plan: &ClusterPlan, seen: &Survey, names: &Names, out: &mut Vec<Finding>) {
    if let Ok(r) = &seen.names.router {
        let ours = |route: &Route| plan.pod_cidr.contains(&route.destination);
        let needed = r.routes.iter().filter(|x| !ours(x)).count() + plan.nodes.len();
        match &seen.names.max_routes {
            Ok(Some(limit)) if needed > *limit as usize => out.push(fail(
                format!("router {} would need {needed} routes; Neutron allows {limit}", r.name),
                "ask the operators to raise max_routes, or use fewer nodes",
            )),
            Ok(Some(limit)) => out.push(ok(format!("router routes: {needed} of {limit} allowed"))),
            _ => out.push(ok(format!("router routes: {needed} needed (the cloud does not tell its limit to projects)"))),
        }
    }
    let overlaps = |a: &ipnet::Ipv4Net, b: &ipnet::Ipv4Net| a.contains(&b.network()) || b.contains(&a.network());
    if let Some(t) = names.tenant_cidr {
        for (name, net) in [("pod_cidr", plan.pod_cidr), ("service_cidr", plan.service_cidr)] {
            out.push(if overlaps(&t, &net) {
                fail(format!("{name} {net} overlaps the tenant subnet {t}"), format!("pick a {name} outside {t}"))
            } else {
                ok(format!("{name} {net} does not overlap the tenant subnet {t}"))
            });
        }
    }
}

/// Everything `kos destroy` would delete, found by the cluster's mark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Teardown {
    pub load_balancers: Vec<LoadBalancer>,
    pub routes: Vec<Route>,
    pub floating_ips: Vec<(String, Ipv4Addr)>,
    pub servers: Vec<(String, String)>,
    pub ports: Vec<(String, String)>,
    pub security_groups: Vec<(String, String)>,
}

impl Teardown {
    pub fn is_empty(&self) -> bool {
        *self == Teardown::default()
    }

    /// One line per resource, in deletion order.
    pub fn lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        v.extend(self.load_balancers.iter().map(|l| format!("load balancer {} ({})", l.name, l.vip_address)));
        v.extend(self.routes.iter().map(|r| format!("router route {} via {}", r.destination, r.nexthop)));
        v.extend(self.floating_ips.iter().map(|(_, ip)| format!("floating IP {ip}")));
        v.extend(self.servers.iter().map(|(_, n)| format!("server {n}")));
        v.extend(self.ports.iter().map(|(_, n)| format!("port {n}")));
        v.extend(self.security_groups.iter().map(|(_, n)| format!("security group {n}")));
        v
    }
}

/// Find everything of the cluster: kos's marks, and load balancers of the OpenStack
/// cloud-controller-manager (`kube_service_<cluster>_…`).
pub async fn find_teardown<C: Cloud>(cloud: &C, settings: &Settings) -> Result<Teardown, ApplyError> {
    let cluster = &settings.cluster.name;
    let tag = vec![cluster_tag(cluster)];
    let err = |what: &'static str| move |source| ApplyError::Cloud { what: what.into(), source };
    let have = discover_nodes(cloud, cluster).await?;
    let ccm_prefix = format!("kube_service_{cluster}_");
    let load_balancers = if cloud.services().await.map_err(err("service catalog"))?.contains("load-balancer") {
        cloud
            .load_balancers()
            .await
            .map_err(err("list load balancers"))?
            .into_iter()
            .filter(|l| carries_mark(&l.description, cluster) || l.name.starts_with(&ccm_prefix))
            .collect()
    } else {
        Vec::new()
    };
    let addresses = have.node_addresses();
    let router = cloud.router(&settings.cloud.router).await.map_err(err("read the router"))?;
    let pod_cidr = settings.networking.pod_cidr;
    let routes = router.routes.iter().filter(|r| pod_cidr.contains(&r.destination) && addresses.contains(&r.nexthop)).cloned().collect();
    let ports = cloud.ports(&PortFilter { tags: tag.clone(), ..PortFilter::default() }).await.map_err(err("list ports"))?;
    Ok(Teardown {
        load_balancers,
        routes,
        floating_ips: have.floating_ips.iter().map(|f| (f.id.clone(), f.floating_ip_address)).collect(),
        servers: have.servers.values().chain(&have.stray_servers).map(|s| (s.id.clone(), s.name.clone())).collect(),
        ports: ports.into_iter().map(|p| (p.id, p.name)).collect(),
        security_groups: cloud
            .security_groups(&tag)
            .await
            .map_err(err("list security groups"))?
            .into_iter()
            .map(|g| (g.id, g.name))
            .collect(),
    })
}

/// Delete in dependency order: load balancers, routes, floating IPs, servers (waiting
/// until gone), ports, security groups. Returns what is left (must be empty).
pub async fn destroy<C: Cloud>(
    cloud: &C,
    settings: &Settings,
    found: &Teardown,
    waits: crate::apply::Waits,
) -> Result<Teardown, ApplyError> {
    let err = |what: String| move |source| ApplyError::Cloud { what, source };
    for lb in &found.load_balancers {
        cloud.delete_load_balancer(&lb.id).await.map_err(err(format!("delete load balancer {}", lb.name)))?;
    }
    if !found.routes.is_empty() {
        let router = cloud.router(&settings.cloud.router).await.map_err(err("read the router".into()))?;
        let atomic = cloud.network_extensions().await.map_err(err("Neutron extensions".into()))?.contains("extraroute-atomic");
        crate::apply::remove_routes(cloud, &router.id, atomic, &found.routes).await?;
    }
    for (id, ip) in &found.floating_ips {
        cloud.delete_floating_ip(id).await.map_err(err(format!("release floating IP {ip}")))?;
    }
    for (id, name) in &found.servers {
        cloud.delete_server(id).await.map_err(err(format!("delete server {name}")))?;
    }
    for (id, _) in &found.servers {
        crate::apply::wait_gone(cloud, id, waits).await?;
    }
    for (id, name) in &found.ports {
        cloud.delete_port(id).await.map_err(err(format!("delete port {name}")))?;
    }
    for (id, name) in &found.security_groups {
        cloud.delete_security_group(id).await.map_err(err(format!("delete security group {name}")))?;
    }
    find_teardown(cloud, settings).await
}

#[cfg(test)]
mod tests;

/// What `kos expose` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exposed {
    Created { name: String, vip: Ipv4Addr, members: usize },
    Updated { name: String, vip: Ipv4Addr, members: usize },
    Deleted { name: String },
    Absent { name: String },
}

/// The load balancer's name and kos's mark for a service of the cluster.
fn lb_identity(cluster: &str, service: &str) -> (String, String) {
    (format!("{cluster}-{service}"), format!("{}={cluster} service={service}", marks::CLUSTER))
}

/// The seed's load-balancer step: an Octavia load balancer on the tenant subnet with a
/// TCP listener on `port` and every worker as member on `node_port`, with a health
/// monitor. Idempotent: an existing one (found by name and mark) gets its members set.
pub async fn expose<C: Cloud>(
    cloud: &C,
    settings: &Settings,
    plan: &ClusterPlan,
    service: &str,
    node_port: u16,
    port: u16,
) -> Result<Exposed, ApplyError> {
    let err = |what: String| move |source| ApplyError::Cloud { what, source };
    let (name, mark) = lb_identity(&plan.cluster, service);
    let members: Vec<(String, Ipv4Addr)> = plan.workers().filter_map(|w| w.fixed_ip.map(|ip| (w.name.clone(), ip))).collect();
    let existing = cloud.load_balancers().await.map_err(err("list load balancers".into()))?;
    if let Some(lb) = existing.into_iter().find(|l| l.name == name && l.description.contains(&mark)) {
        cloud.set_load_balancer_members(&lb.id, node_port, &members).await.map_err(err(format!("set members of {name}")))?;
        return Ok(Exposed::Updated { name, vip: lb.vip_address, members: members.len() });
    }
    let network = cloud.network(&settings.cloud.network).await.map_err(err("cloud.network".into()))?;
    let subnet = cloud
        .subnets(&network.id)
        .await
        .map_err(err("subnets of cloud.network".into()))?
        .into_iter()
        .next()
        .ok_or(ApplyError::NoSubnet { network: network.name.clone() })?;
    let spec = crate::api::LoadBalancerSpec {
        name: name.clone(),
        description: mark,
        subnet_id: subnet.id,
        vip_port_id: None,
        listener_port: port,
        member_port: node_port,
        members: members.clone(),
        monitor: crate::api::HealthMonitor::Tcp,
    };
    let lb = cloud.create_load_balancer(&spec).await.map_err(err(format!("create load balancer {name}")))?;
    Ok(Exposed::Created { name, vip: lb.vip_address, members: members.len() })
}

/// `kos expose --delete`.
pub async fn unexpose<C: Cloud>(cloud: &C, cluster: &str, service: &str) -> Result<Exposed, ApplyError> {
    let (name, mark) = lb_identity(cluster, service);
    let existing = cloud.load_balancers().await.map_err(|source| ApplyError::Cloud { what: "list load balancers".into(), source })?;
    match existing.into_iter().find(|l| l.name == name && l.description.contains(&mark)) {
        Some(lb) => {
            cloud
                .delete_load_balancer(&lb.id)
                .await
                .map_err(|source| ApplyError::Cloud { what: format!("delete load balancer {name}"), source })?;
            Ok(Exposed::Deleted { name })
        }
        None => Ok(Exposed::Absent { name }),
    }
}
