//! An in-memory [`Cloud`] for unit tests of the executors: it keeps resources like a
//! cloud would (IDs, tags, ports' addresses from a subnet, router routes with revisions),
//! counts calls, and can be told to fail (a server that boots into ERROR once, a quota).
//! It is a test double for what unit tests cannot have — a cloud; the real client is
//! tested against the real test cloud in the integration tests.

use crate::api::*;
use crate::model::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Mutex;

/// Everything the fake cloud holds.
#[derive(Debug, Default)]
pub struct FakeState {
    pub servers: BTreeMap<String, Server>,
    pub ports: BTreeMap<String, Port>,
    pub floating_ips: BTreeMap<String, FloatingIp>,
    pub security_groups: BTreeMap<String, SecurityGroup>,
    pub router: Option<Router>,
    pub load_balancers: BTreeMap<String, LoadBalancer>,
    /// Each load balancer's pool members and health monitor, by its ID.
    pub lb_members: BTreeMap<String, Vec<LoadBalancerMember>>,
    pub lb_monitors: BTreeMap<String, HealthMonitor>,
    /// The catalog's service types (Octavia's `load-balancer` among them by default).
    pub services: BTreeSet<String>,
    pub extensions: BTreeSet<String>,
    pub instance_quota: i64,
    /// Server names that boot into ERROR, and how many more times.
    pub failing_boots: BTreeMap<String, u32>,
    /// Server names whose next creates each race a second create of the same server on the
    /// same port (a killed run's, still in flight), and how many more times: the twin fails
    /// (ERROR) and its clean-up takes the port from the server made, as the test bed's real
    /// Nova did.
    pub racing_creates: BTreeMap<String, u32>,
    /// Servers still building, by ID, and how many more reads they stay so; then they go
    /// to ERROR, and a build that failed takes the port it names from whoever holds it (as
    /// a real Nova build that lost the race for a port cleans up).
    pub building: BTreeMap<String, (u32, Option<String>)>,
    /// Calls made, by method name.
    pub calls: BTreeMap<&'static str, u32>,
    /// Methods whose next calls fail as an unavailable service, and how many more times
    /// (wired into the route updates).
    pub failing_calls: BTreeMap<&'static str, u32>,
    next_id: u32,
    next_ip: u8,
    next_fip: u8,
}

/// The fake cloud; `state` is public so tests can arrange and inspect it.
#[derive(Debug)]
pub struct FakeCloud {
    pub state: Mutex<FakeState>,
}

impl Default for FakeCloud {
    fn default() -> Self {
        FakeCloud::new()
    }
}

impl FakeState {
    /// The failure `failing_calls` holds for `method`, once more (counted down).
    fn fault(&mut self, method: &'static str) -> CloudResult<()> {
        match self.failing_calls.get_mut(method) {
            Some(left) if *left > 0 => {
                *left -= 1;
                Err(CloudError::Unavailable { service: "network", attempts: 1, message: format!("{method}: HTTP 503 (a test's fault)") })
            }
            _ => Ok(()),
        }
    }
}

impl FakeCloud {
    /// A project with network `net` (subnet 192.168.50.0/24), router `router`, image
    /// `tiny`, flavor `m1.tiny`, external network `public`, and `extraroute-atomic`.
    pub fn new() -> Self {
        let state = FakeState {
            router: Some(Router {
                id: "router-id".into(),
                name: "router".into(),
                routes: Vec::new(),
                revision_number: 1,
                external_network_id: Some("public-id".into()),
                tags: Vec::new(),
            }),
            extensions: ["extraroute", "extraroute-atomic", "allowed-address-pairs", "port-security", "standard-attr-tag"]
                .into_iter()
                .map(String::from)
                .collect(),
            services: ["compute", "network", "image", "load-balancer", "identity"].into_iter().map(String::from).collect(),
            instance_quota: 20,
            next_ip: 10,
            next_fip: 10,
            ..FakeState::default()
        };
        FakeCloud { state: Mutex::new(state) }
    }

    /// Run `f` on the state (counting the call under `method`).
    fn with<T>(&self, method: &'static str, f: impl FnOnce(&mut FakeState) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *s.calls.entry(method).or_default() += 1;
        f(&mut s)
    }

    /// Total calls made.
    pub fn call_count(&self) -> u32 {
        self.state.lock().map(|s| s.calls.values().sum()).unwrap_or(0)
    }

    /// Calls that changed something (create/delete/set/add/remove/replace).
    pub fn write_count(&self) -> u32 {
        self.state
            .lock()
            .map(|s| {
                s.calls
                    .iter()
                    .filter(|(m, _)| ["create", "delete", "set", "add", "remove", "replace"].iter().any(|p| m.starts_with(p)))
                    .map(|(_, n)| n)
                    .sum()
            })
            .unwrap_or(0)
    }
}

impl FakeState {
    fn id(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("{kind}-{}", self.next_id)
    }

    /// A load balancer, active, on the VIP `vip_address` of port `vip_port_id`.
    fn add_load_balancer(&mut self, id: &str, spec: &LoadBalancerSpec, vip_address: Ipv4Addr, vip_port_id: String) -> LoadBalancer {
        let lb = LoadBalancer {
            id: id.to_string(),
            name: spec.name.clone(),
            description: spec.description.clone(),
            vip_address,
            vip_port_id: Some(vip_port_id),
            provisioning_status: "ACTIVE".into(),
            operating_status: "ONLINE".into(),
        };
        self.load_balancers.insert(id.to_string(), lb.clone());
        self.lb_members.insert(id.to_string(), members(&spec.members, spec.member_port));
        self.lb_monitors.insert(id.to_string(), spec.monitor.clone());
        lb
    }
}

fn not_found(kind: &'static str, name: &str) -> CloudError {
    CloudError::NotFound { kind, name: name.to_string() }
}

impl Cloud for FakeCloud {
    fn name(&self) -> &str {
        "fake"
    }

    async fn services(&self) -> CloudResult<BTreeSet<String>> {
        Ok(self.state.lock().map(|s| s.services.clone()).unwrap_or_default())
    }
    async fn network_extensions(&self) -> CloudResult<BTreeSet<String>> {
        Ok(self.with("network_extensions", |s| s.extensions.clone()))
    }
    async fn quotas(&self) -> CloudResult<Quotas> {
        Ok(self.with("quotas", |s| {
            let q = |limit: i64, used: usize| Quota { limit, used: used as i64 };
            Quotas {
                instances: q(s.instance_quota, s.servers.len()),
                cores: q(-1, 0),
                ram: q(-1, 0),
                ports: q(100, s.ports.len()),
                floating_ips: q(10, s.floating_ips.len()),
                security_groups: q(10, s.security_groups.len()),
                security_group_rules: q(100, 0),
            }
        }))
    }
    async fn max_routes(&self) -> CloudResult<Option<u32>> {
        Ok(Some(30))
    }
    async fn image(&self, name_or_id: &str) -> CloudResult<Image> {
        match name_or_id {
            "tiny" | "image-tiny" => Ok(Image { id: "image-tiny".into(), name: "tiny".into(), status: "active".into() }),
            other => Err(not_found("image", other)),
        }
    }
    async fn flavor(&self, name_or_id: &str) -> CloudResult<Flavor> {
        match name_or_id {
            "m1.tiny" | "flavor-tiny" => Ok(Flavor { id: "flavor-tiny".into(), name: "m1.tiny".into(), vcpus: 1, ram: 512 }),
            other => Err(not_found("flavor", other)),
        }
    }
    async fn keypair(&self, name: &str) -> CloudResult<Option<Keypair>> {
        Ok((name == "kos-key").then(|| Keypair { name: name.into(), public_key: "ssh-ed25519 AAAA fake".into() }))
    }
    async fn network(&self, name_or_id: &str) -> CloudResult<Network> {
        match name_or_id {
            "net" | "net-id" => Ok(Network { id: "net-id".into(), name: "net".into(), external: false, subnets: vec!["subnet-id".into()] }),
            "public" | "public-id" => Ok(Network { id: "public-id".into(), name: "public".into(), external: true, subnets: vec![] }),
            other => Err(not_found("network", other)),
        }
    }
    async fn subnets(&self, network_id: &str) -> CloudResult<Vec<Subnet>> {
        Ok(if network_id == "net-id" {
            vec![Subnet {
                id: "subnet-id".into(),
                name: "subnet".into(),
                network_id: "net-id".into(),
                cidr: "192.168.50.0/24".parse().map_err(|_| not_found("subnet", "cidr"))?,
                gateway_ip: Some(Ipv4Addr::new(192, 168, 50, 1)),
            }]
        } else {
            Vec::new()
        })
    }
    async fn router(&self, name_or_id: &str) -> CloudResult<Router> {
        self.with("router", |s| s.router.clone().filter(|r| r.name == name_or_id || r.id == name_or_id))
            .ok_or_else(|| not_found("router", name_or_id))
    }
    async fn servers(&self) -> CloudResult<Vec<Server>> {
        Ok(self.with("servers", |s| s.servers.values().cloned().collect()))
    }
    async fn server(&self, id: &str) -> CloudResult<Option<Server>> {
        Ok(self.with("server", |s| {
            if let Some((reads, port)) = s.building.get_mut(id) {
                if *reads > 0 {
                    *reads -= 1;
                } else {
                    let port = port.take();
                    s.building.remove(id);
                    if let Some(server) = s.servers.get_mut(id) {
                        server.status = "ERROR".into();
                    }
                    if let Some(p) = port.and_then(|p| s.ports.get_mut(&p)) {
                        p.device_id.clear();
                    }
                }
            }
            s.servers.get(id).cloned()
        }))
    }
    async fn ports(&self, filter: &PortFilter) -> CloudResult<Vec<Port>> {
        Ok(self.with("ports", |s| {
            s.ports
                .values()
                .filter(|p| filter.tags.iter().all(|t| p.tags.contains(t)))
                .filter(|p| filter.network_id.as_ref().is_none_or(|n| &p.network_id == n))
                .filter(|p| filter.device_id.as_ref().is_none_or(|d| &p.device_id == d))
                .cloned()
                .collect()
        }))
    }
    async fn floating_ips(&self, tags: &[String]) -> CloudResult<Vec<FloatingIp>> {
        Ok(self.with("floating_ips", |s| s.floating_ips.values().filter(|f| tags.iter().all(|t| f.tags.contains(t))).cloned().collect()))
    }
    async fn security_groups(&self, tags: &[String]) -> CloudResult<Vec<SecurityGroup>> {
        Ok(self
            .with("security_groups", |s| s.security_groups.values().filter(|g| tags.iter().all(|t| g.tags.contains(t))).cloned().collect()))
    }
    async fn load_balancers(&self) -> CloudResult<Vec<LoadBalancer>> {
        Ok(self.with("load_balancers", |s| s.load_balancers.values().cloned().collect()))
    }
    async fn load_balancer_members(&self, id: &str) -> CloudResult<Vec<LoadBalancerMember>> {
        self.with("load_balancer_members", |s| s.lb_members.get(id).cloned().ok_or_else(|| not_found("load balancer", id)))
    }

    async fn create_security_group(&self, name: &str, _description: &str, tags: &[String]) -> CloudResult<SecurityGroup> {
        Ok(self.with("create_security_group", |s| {
            let id = s.id("sg");
            let g = SecurityGroup { id: id.clone(), name: name.into(), tags: tags.to_vec(), rules: Vec::new() };
            s.security_groups.insert(id, g.clone());
            g
        }))
    }
    async fn add_security_group_rule(&self, group_id: &str, rule: &RuleSpec) -> CloudResult<()> {
        self.with("add_security_group_rule", |s| {
            let g = s.security_groups.get_mut(group_id).ok_or_else(|| not_found("security group", group_id))?;
            g.rules.push(SecurityGroupRule {
                direction: rule.direction.into(),
                protocol: rule.protocol.map(String::from),
                port_range_min: rule.port_min,
                port_range_max: rule.port_max,
                remote_ip_prefix: rule.remote_ip_prefix.clone(),
                remote_group_id: rule.remote_self.then(|| group_id.to_string()),
            });
            Ok(())
        })
    }
    async fn delete_security_group(&self, id: &str) -> CloudResult<()> {
        self.with("delete_security_group", |s| s.security_groups.remove(id).map(|_| ()).ok_or_else(|| not_found("security group", id)))
    }
    async fn create_port(&self, spec: &PortSpec) -> CloudResult<Port> {
        Ok(self.with("create_port", |s| {
            let id = s.id("port");
            s.next_ip += 1;
            let p = Port {
                id: id.clone(),
                name: spec.name.clone(),
                network_id: spec.network_id.clone(),
                fixed_ips: vec![FixedIp { subnet_id: "subnet-id".into(), ip_address: Ipv4Addr::new(192, 168, 50, s.next_ip) }],
                allowed_address_pairs: spec.allowed_address_pairs.iter().map(|c| AddressPair { ip_address: c.clone() }).collect(),
                device_id: String::new(),
                device_owner: String::new(),
                tags: spec.tags.clone(),
                security_groups: spec.security_group_ids.clone(),
                port_security_enabled: Some(true),
            };
            s.ports.insert(id, p.clone());
            p
        }))
    }
    async fn set_allowed_address_pairs(&self, port_id: &str, cidrs: &[String]) -> CloudResult<Port> {
        self.with("set_allowed_address_pairs", |s| {
            let p = s.ports.get_mut(port_id).ok_or_else(|| not_found("port", port_id))?;
            p.allowed_address_pairs = cidrs.iter().map(|c| AddressPair { ip_address: c.clone() }).collect();
            Ok(p.clone())
        })
    }
    async fn set_tags(&self, collection: &'static str, id: &str, tags: &[String]) -> CloudResult<()> {
        self.with("set_tags", |s| {
            let slot = match collection {
                "ports" => s.ports.get_mut(id).map(|p| &mut p.tags),
                "floatingips" => s.floating_ips.get_mut(id).map(|f| &mut f.tags),
                "security-groups" => s.security_groups.get_mut(id).map(|g| &mut g.tags),
                _ => None,
            };
            let slot = slot.ok_or_else(|| not_found(collection, id))?;
            *slot = tags.to_vec();
            Ok(())
        })
    }
    async fn delete_port(&self, id: &str) -> CloudResult<()> {
        self.with("delete_port", |s| s.ports.remove(id).map(|_| ()).ok_or_else(|| not_found("port", id)))
    }
    async fn create_server(&self, spec: &ServerSpec) -> CloudResult<Server> {
        self.with("create_server", |s| {
            if s.servers.len() as i64 >= s.instance_quota {
                return Err(CloudError::Quota {
                    message: format!(
                        "Quota exceeded for instances: Requested 1, but already used {} of {} instances",
                        s.servers.len(),
                        s.instance_quota
                    ),
                });
            }
            let id = s.id("server");
            let failed = match s.failing_boots.get_mut(&spec.name) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            };
            let port = s.ports.get_mut(&spec.port_id).ok_or_else(|| not_found("port", &spec.port_id))?;
            port.device_id = id.clone();
            port.device_owner = "compute:nova".into();
            let ip = port.fixed_ips.first().map(|f| f.ip_address);
            let server = Server {
                id: id.clone(),
                name: spec.name.clone(),
                status: if failed { "ERROR".into() } else { "ACTIVE".into() },
                metadata: spec.metadata.clone(),
                fault: failed.then(|| "No valid host was found. There are not enough hosts available.".to_string()),
                addresses: ip.map(|ip| ServerAddress { network: "net".into(), ip, kind: "fixed".into() }).into_iter().collect(),
                key_name: spec.key_name.clone(),
                flavor_id: Some(spec.flavor_id.clone()),
            };
            s.servers.insert(id.clone(), server.clone());
            if let Some(n) = s.racing_creates.get_mut(&spec.name).filter(|n| **n > 0) {
                *n -= 1;
                let twin = s.id("server");
                let fault = Some("Build of instance aborted: Failed to allocate the network(s), not rescheduling.".to_string());
                let failed = Server { id: twin.clone(), status: "ERROR".into(), fault, addresses: vec![], ..server.clone() };
                s.servers.insert(twin, failed);
                if let Some(port) = s.ports.get_mut(&spec.port_id) {
                    port.device_id.clear();
                    port.device_owner.clear();
                }
            }
            Ok(server)
        })
    }
    async fn delete_server(&self, id: &str) -> CloudResult<()> {
        self.with("delete_server", |s| {
            for p in s.ports.values_mut().filter(|p| p.device_id == id) {
                p.device_id.clear();
            }
            s.servers.remove(id).map(|_| ()).ok_or_else(|| not_found("server", id))
        })
    }
    async fn create_floating_ip(&self, network_id: &str, tags: &[String]) -> CloudResult<FloatingIp> {
        Ok(self.with("create_floating_ip", |s| {
            let id = s.id("fip");
            s.next_fip += 1;
            let f = FloatingIp {
                id: id.clone(),
                floating_ip_address: Ipv4Addr::new(203, 0, 113, s.next_fip),
                floating_network_id: network_id.into(),
                port_id: None,
                fixed_ip_address: None,
                tags: tags.to_vec(),
            };
            s.floating_ips.insert(id, f.clone());
            f
        }))
    }
    async fn set_floating_ip_port(&self, id: &str, port_id: Option<&str>) -> CloudResult<FloatingIp> {
        self.with("set_floating_ip_port", |s| {
            let f = s.floating_ips.get_mut(id).ok_or_else(|| not_found("floating IP", id))?;
            f.port_id = port_id.map(String::from);
            Ok(f.clone())
        })
    }
    async fn delete_floating_ip(&self, id: &str) -> CloudResult<()> {
        self.with("delete_floating_ip", |s| s.floating_ips.remove(id).map(|_| ()).ok_or_else(|| not_found("floating IP", id)))
    }
    async fn add_routes(&self, router_id: &str, routes: &[Route]) -> CloudResult<Router> {
        self.with("add_routes", |s| {
            s.fault("add_routes")?;
            let r = s.router.as_mut().filter(|r| r.id == router_id).ok_or_else(|| not_found("router", router_id))?;
            for route in routes {
                if !r.routes.contains(route) {
                    r.routes.push(route.clone());
                }
            }
            r.revision_number += 1;
            Ok(r.clone())
        })
    }
    async fn remove_routes(&self, router_id: &str, routes: &[Route]) -> CloudResult<Router> {
        self.with("remove_routes", |s| {
            let r = s.router.as_mut().filter(|r| r.id == router_id).ok_or_else(|| not_found("router", router_id))?;
            r.routes.retain(|x| !routes.contains(x));
            r.revision_number += 1;
            Ok(r.clone())
        })
    }
    async fn replace_routes(&self, router_id: &str, routes: &[Route], revision: u64) -> CloudResult<Router> {
        self.with("replace_routes", |s| {
            let r = s.router.as_mut().filter(|r| r.id == router_id).ok_or_else(|| not_found("router", router_id))?;
            if r.revision_number != revision {
                return Err(CloudError::Conflict { kind: "router", id: router_id.into() });
            }
            r.routes = routes.to_vec();
            r.revision_number += 1;
            Ok(r.clone())
        })
    }
    /// Like Octavia's: the VIP is the port given, else a port of its own on the subnet,
    /// carrying no tag of kos.
    async fn create_load_balancer(&self, spec: &LoadBalancerSpec) -> CloudResult<LoadBalancer> {
        self.with("create_load_balancer", |s| {
            let id = s.id("lb");
            if let Some(given) = &spec.vip_port_id {
                let port = s.ports.get(given).ok_or_else(|| not_found("port", given))?;
                let vip_address = port.fixed_ips.first().map(|f| f.ip_address).ok_or_else(|| not_found("fixed IP of port", given))?;
                return Ok(s.add_load_balancer(&id, spec, vip_address, given.clone()));
            }
            let port_id = s.id("port");
            s.next_ip += 1;
            let vip_address = Ipv4Addr::new(192, 168, 50, s.next_ip);
            let port = Port {
                id: port_id.clone(),
                name: format!("octavia-lb-{id}"),
                network_id: "net-id".into(),
                fixed_ips: vec![FixedIp { subnet_id: spec.subnet_id.clone(), ip_address: vip_address }],
                allowed_address_pairs: Vec::new(),
                device_id: format!("lb-{id}"),
                device_owner: "Octavia".into(),
                tags: Vec::new(),
                security_groups: Vec::new(),
                port_security_enabled: Some(true),
            };
            s.ports.insert(port_id.clone(), port);
            Ok(s.add_load_balancer(&id, spec, vip_address, port_id))
        })
    }
    async fn set_load_balancer_members(&self, id: &str, member_port: u16, members_: &[(String, Ipv4Addr)]) -> CloudResult<()> {
        self.with("set_load_balancer_members", |s| {
            let list = s.lb_members.get_mut(id).ok_or_else(|| not_found("load balancer", id))?;
            *list = members(members_, member_port);
            Ok(())
        })
    }
    /// Cascade: its VIP port goes with it (a floating IP on it is left, detached).
    async fn delete_load_balancer(&self, id: &str) -> CloudResult<()> {
        self.with("delete_load_balancer", |s| {
            let lb = s.load_balancers.remove(id).ok_or_else(|| not_found("load balancer", id))?;
            s.lb_members.remove(id);
            s.lb_monitors.remove(id);
            // Like Octavia's: only a VIP port it made itself goes with it.
            if let Some(port) = lb.vip_port_id.filter(|p| s.ports.get(p).is_some_and(|p| p.device_owner == "Octavia")) {
                s.ports.remove(&port);
                for f in s.floating_ips.values_mut().filter(|f| f.port_id.as_deref() == Some(port.as_str())) {
                    f.port_id = None;
                }
            }
            Ok(())
        })
    }
}

fn members(list: &[(String, Ipv4Addr)], port: u16) -> Vec<LoadBalancerMember> {
    list.iter().map(|(name, address)| LoadBalancerMember { name: name.clone(), address: *address, protocol_port: port }).collect()
}
