//! Reconciliation decisions on hand-made cloud states: idempotence, node removal,
//! ERROR servers, floating-IP reuse, and routes that are not ours left alone.

use super::*;
use crate::model::{AddressPair, FixedIp};
use kos_core::plan::{Observed, plan};
use kos_core::settings::Settings;
use std::path::Path;

fn settings(nodes: &[&str]) -> Settings {
    let mut text = String::from(
        "cluster: {name: demo}\ncloud: {image: tiny, flavor: m1.tiny, network: net, router: r, floating_ip_pool: public}\nssh: {user: debian, private_key: k}\nnodes:\n",
    );
    for (i, n) in nodes.iter().enumerate() {
        let role = if i == 0 { "master" } else { "worker" };
        let fip = if i == 0 { ", floating_ip: true" } else { "" };
        text.push_str(&format!("  - {{name: {n}, role: {role}{fip}}}\n"));
    }
    Settings::parse(Path::new("s.yaml"), &text).unwrap()
}

fn port(node: &str, ip: [u8; 4], pair: &str) -> Port {
    Port {
        id: format!("port-{node}"),
        name: format!("demo-{node}"),
        network_id: "net".into(),
        fixed_ips: vec![FixedIp { subnet_id: "sub".into(), ip_address: Ipv4Addr::from(ip) }],
        allowed_address_pairs: vec![AddressPair { ip_address: pair.into() }],
        device_id: format!("srv-{node}"),
        device_owner: "compute:nova".into(),
        tags: vec![cluster_tag("demo"), node_tag(node)],
        security_groups: vec![],
        port_security_enabled: Some(true),
    }
}

fn server(node: &str, status: &str, cidr: &str) -> Server {
    Server {
        id: format!("srv-{node}"),
        name: format!("demo-{node}"),
        status: status.into(),
        metadata: [("kos-cluster", "demo"), ("kos-node", node), ("kos-pod-cidr", cidr)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        fault: (status == "ERROR").then(|| "No valid host was found.".to_string()),
        addresses: vec![],
        key_name: None,
        flavor_id: None,
    }
}

/// A floating IP of the cluster on `port` (`None`: free).
fn fip(id: &str, address: [u8; 4], port: Option<&str>) -> FloatingIp {
    FloatingIp {
        id: id.into(),
        floating_ip_address: Ipv4Addr::from(address),
        floating_network_id: "public".into(),
        port_id: port.map(str::to_string),
        fixed_ip_address: None,
        tags: vec![cluster_tag("demo")],
    }
}

/// A converged 3-node cluster as the cloud would show it.
fn converged() -> (Settings, ClusterResources) {
    let s = settings(&["master-1", "worker-1", "worker-2"]);
    let mut have = ClusterResources::default();
    for (i, n) in ["master-1", "worker-1", "worker-2"].iter().enumerate() {
        let cidr = format!("10.1.{i}.0/24");
        have.ports.insert(n.to_string(), port(n, [192, 168, 50, 11 + i as u8], &cidr));
        have.servers.insert(n.to_string(), server(n, "ACTIVE", &cidr));
    }
    have.floating_ips.push(fip("fip-1", [203, 0, 113, 11], Some("port-master-1")));
    (s, have)
}

#[test]
fn a_converged_cluster_needs_no_change() {
    let (s, have) = converged();
    let p = plan(&s, &have.observed(None)).unwrap();
    assert_eq!(node_changes(&p, &have), []);
    let router = Router {
        id: "r".into(),
        name: "r".into(),
        routes: p.nodes.iter().map(|n| Route { destination: n.pod_cidr, nexthop: n.fixed_ip.unwrap() }).collect(),
        revision_number: 7,
        external_network_id: None,
        tags: vec![],
    };
    let addrs = p.nodes.iter().filter_map(|n| n.fixed_ip).collect();
    assert_eq!(route_changes(&p, &router, &addrs, true), RouteChange::None);
}

#[test]
fn a_fresh_cluster_creates_ports_servers_and_one_floating_ip() {
    let s = settings(&["master-1", "worker-1"]);
    let p = plan(&s, &Observed::default()).unwrap();
    let changes = node_changes(&p, &ClusterResources::default());
    assert_eq!(
        changes,
        [
            NodeChange::CreatePort { node: "master-1".into() },
            NodeChange::CreateServer { node: "master-1".into() },
            NodeChange::AttachFloatingIp { node: "master-1".into(), reuse: None },
            NodeChange::CreatePort { node: "worker-1".into() },
            NodeChange::CreateServer { node: "worker-1".into() },
        ]
    );
}

#[test]
fn observed_state_keeps_pod_cidrs_recorded_on_instances() {
    let (_, have) = converged();
    let seen = have.observed(None);
    assert_eq!(seen.nodes["worker-2"].pod_cidr, Some("10.1.2.0/24".parse().unwrap()));
    assert_eq!(seen.nodes["worker-2"].fixed_ip, Some(Ipv4Addr::new(192, 168, 50, 13)));
    assert_eq!(seen.nodes["master-1"].floating_ip, Some(Ipv4Addr::new(203, 0, 113, 11)));
    // A 4th node gets the next free range; the others keep theirs.
    let s = settings(&["master-1", "worker-1", "worker-2", "worker-3"]);
    let p = plan(&s, &seen).unwrap();
    assert_eq!(p.node("worker-3").unwrap().pod_cidr.to_string(), "10.1.3.0/24");
    assert_eq!(
        node_changes(&p, &have),
        [NodeChange::CreatePort { node: "worker-3".into() }, NodeChange::CreateServer { node: "worker-3".into() }]
    );
}

#[test]
fn a_node_removed_from_the_settings_is_removed_with_its_port_and_floating_ip() {
    let (_, have) = converged();
    let s = settings(&["worker-1", "worker-2"]); // master-1 gone (worker-1 becomes master)
    let p = plan(&s, &have.observed(None)).unwrap();
    let changes = node_changes(&p, &have);
    assert!(changes.contains(&NodeChange::Remove {
        node: "master-1".into(),
        server_id: Some("srv-master-1".into()),
        port_id: Some("port-master-1".into()),
        floating_ip_ids: vec!["fip-1".into()],
    }));
}

#[test]
fn an_error_server_is_recreated_with_novas_fault() {
    let (s, mut have) = converged();
    have.servers.insert("worker-1".into(), server("worker-1", "ERROR", "10.1.1.0/24"));
    let p = plan(&s, &have.observed(None)).unwrap();
    assert_eq!(
        node_changes(&p, &have),
        [NodeChange::RecreateServer {
            node: "worker-1".into(),
            server_id: "srv-worker-1".into(),
            why: Unusable::Error { fault: Some("No valid host was found.".into()) }
        }]
    );
}

/// Of two servers of one node, the one its port is attached to is the node's, whatever
/// their order, and it is looked at again once the twin is gone; a server that runs without
/// the node's port is made again, and one still being built is waited for.
#[test]
fn a_nodes_second_server_is_stray_and_one_without_its_port_is_made_again() {
    let (s, have) = converged();
    let mut twin = server("worker-1", "ERROR", "10.1.1.0/24");
    twin.id = "twin".into();
    let servers = |first: Server, second: Server| {
        let mut all: Vec<Server> = have.servers.values().filter(|x| x.name != "demo-worker-1").cloned().collect();
        all.extend([first, second]);
        all
    };
    let ports = || have.ports.values().cloned().collect::<Vec<_>>();
    let fips = || have.floating_ips.clone();
    let worker = have.servers["worker-1"].clone();
    for (a, b) in [(worker.clone(), twin.clone()), (twin.clone(), worker.clone())] {
        let found = ClusterResources::collect("demo", servers(a, b), ports(), fips());
        assert_eq!(found.servers["worker-1"].id, "srv-worker-1", "the one holding the port");
        assert_eq!(found.stray_servers.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["twin"]);
        let p = plan(&s, &found.observed(None)).unwrap();
        assert_eq!(
            node_changes(&p, &found),
            [
                // Looked at again once the twin is gone: its failing build may still take the port.
                NodeChange::SettleServer { node: "worker-1".into(), server_id: "srv-worker-1".into() },
                NodeChange::DeleteStrayServer { server_id: "twin".into(), name: "demo-worker-1".into() }
            ]
        );
    }
    // The port attached to nothing (the failed twin's clean-up took it): the running one is
    // kept, and made again.
    let mut unbound = ports();
    unbound.iter_mut().find(|p| p.id == "port-worker-1").unwrap().device_id.clear();
    let found = ClusterResources::collect("demo", servers(twin.clone(), worker.clone()), unbound, fips());
    assert_eq!(found.servers["worker-1"].id, "srv-worker-1", "the one not in ERROR");
    let p = plan(&s, &found.observed(None)).unwrap();
    let changes = node_changes(&p, &found);
    assert_eq!(
        changes,
        [
            NodeChange::RecreateServer {
                node: "worker-1".into(),
                server_id: "srv-worker-1".into(),
                why: Unusable::PortNotAttached { attached_to: None }
            },
            NodeChange::DeleteStrayServer { server_id: "twin".into(), name: "demo-worker-1".into() },
        ]
    );
    assert_eq!(changes[0].to_string(), "re-create server of worker-1 (its port is attached to nothing)");
    // Still being built: waited for, not judged.
    let mut building = have.clone();
    building.servers.get_mut("worker-1").unwrap().status = "BUILD".into();
    building.ports.get_mut("worker-1").unwrap().device_id.clear();
    let p = plan(&s, &building.observed(None)).unwrap();
    assert_eq!(node_changes(&p, &building), [NodeChange::SettleServer { node: "worker-1".into(), server_id: "srv-worker-1".into() }]);
}

#[test]
fn a_free_floating_ip_of_the_cluster_is_reused_before_allocating() {
    let (s, mut have) = converged();
    have.floating_ips[0].port_id = None; // detached, still the cluster's
    let p = plan(&s, &have.observed(None)).unwrap();
    assert_eq!(node_changes(&p, &have), [NodeChange::AttachFloatingIp { node: "master-1".into(), reuse: Some("fip-1".into()) }]);
}

#[test]
fn wrong_address_pairs_are_corrected() {
    let (s, mut have) = converged();
    have.ports.get_mut("worker-1").unwrap().allowed_address_pairs.clear();
    let p = plan(&s, &have.observed(None)).unwrap();
    assert_eq!(
        node_changes(&p, &have),
        [NodeChange::SetAddressPairs { node: "worker-1".into(), port_id: "port-worker-1".into(), cidrs: vec!["10.1.1.0/24".into()] }]
    );
}

fn route(dst: &str, hop: [u8; 4]) -> Route {
    Route { destination: dst.parse().unwrap(), nexthop: Ipv4Addr::from(hop) }
}

#[test]
fn routes_of_others_are_never_touched_and_stale_ones_of_ours_go() {
    let (_, have) = converged();
    let s = settings(&["master-1", "worker-1"]); // worker-2 removed
    let p = plan(&s, &have.observed(None)).unwrap();
    let router = Router {
        id: "r".into(),
        name: "r".into(),
        routes: vec![
            route("10.1.0.0/24", [192, 168, 50, 11]),   // ours, wanted
            route("10.1.2.0/24", [192, 168, 50, 13]),   // ours (worker-2's), stale
            route("10.1.9.0/24", [192, 168, 50, 99]),   // in our pod range but a foreign next hop
            route("172.16.0.0/24", [192, 168, 50, 11]), // our next hop but not a pod range
            route("0.0.0.0/0", [192, 168, 50, 250]),    // a human's default route
        ],
        revision_number: 41,
        external_network_id: None,
        tags: vec![],
    };
    let addrs: BTreeSet<Ipv4Addr> = have.ports.values().map(|p| p.fixed_ips[0].ip_address).collect();
    let atomic = route_changes(&p, &router, &addrs, true);
    assert_eq!(
        atomic,
        RouteChange::Atomic { add: vec![route("10.1.1.0/24", [192, 168, 50, 12])], remove: vec![route("10.1.2.0/24", [192, 168, 50, 13])] }
    );
    assert_eq!(routes_after(&router, &atomic), 5);
    let RouteChange::Replace { routes, revision, .. } = route_changes(&p, &router, &addrs, false) else { panic!() };
    assert_eq!(revision, 41, "the whole-list update is conditional on the revision read");
    for kept in
        [route("10.1.9.0/24", [192, 168, 50, 99]), route("172.16.0.0/24", [192, 168, 50, 11]), route("0.0.0.0/0", [192, 168, 50, 250])]
    {
        assert!(routes.contains(&kept), "foreign route {kept:?} lost");
    }
    assert!(!routes.contains(&route("10.1.2.0/24", [192, 168, 50, 13])));
    assert!(routes.contains(&route("10.1.1.0/24", [192, 168, 50, 12])));
}

#[test]
fn resources_of_other_clusters_are_not_collected() {
    let (_, have) = converged();
    let mut foreign_server = server("worker-1", "ACTIVE", "10.1.1.0/24");
    foreign_server.metadata.insert("kos-cluster".into(), "other".into());
    let mut foreign_port = port("worker-1", [192, 168, 50, 50], "10.1.1.0/24");
    foreign_port.tags = vec![cluster_tag("other"), node_tag("worker-1")];
    let servers: Vec<Server> = have.servers.values().cloned().chain([foreign_server]).collect();
    let ports: Vec<Port> = have.ports.values().cloned().chain([foreign_port]).collect();
    let collected = ClusterResources::collect("demo", servers, ports, have.floating_ips.clone());
    assert_eq!(collected, have);
}

/// Regression (it::testbed_up's kill test): a create whose answer was lost leaves a second,
/// unattached port marked for the node; the one its server uses stays, the other goes.
#[test]
fn a_second_unattached_port_of_a_node_is_deleted_and_the_used_one_kept() {
    let (s, have) = converged();
    let mut stray = port("worker-1", [192, 168, 50, 99], "10.1.1.0/24");
    stray.id = "port-worker-1-again".into();
    stray.device_id = String::new();
    // Listed before the port in use: order must not decide.
    let ports: Vec<Port> = std::iter::once(stray).chain(have.ports.values().cloned()).collect();
    let again = ClusterResources::collect("demo", have.servers.values().cloned().collect(), ports, have.floating_ips.clone());
    assert_eq!(again.ports["worker-1"].id, "port-worker-1");
    assert_eq!(again.stray_ports.len(), 1);
    let p = plan(&s, &again.observed(None)).unwrap();
    assert_eq!(
        node_changes(&p, &again),
        [NodeChange::DeleteStrayPort { port_id: "port-worker-1-again".into(), name: "demo-worker-1".into() }]
    );
}

/// Three masters and a worker, `api_endpoint: vip` by default, with a floating IP on it.
fn ha_settings() -> Settings {
    Settings::parse(Path::new("s.yaml"), &ha_text("")).unwrap()
}

/// [`ha_settings`]' text, `cluster` lines added (e.g. `  api_endpoint: octavia\n`).
fn ha_text(cluster: &str) -> String {
    format!(
        "cluster:\n  name: demo\n  api_floating_ip: true\n{cluster}cloud: {{image: tiny, flavor: m1.tiny, network: net, router: r, floating_ip_pool: public}}\nssh: {{user: debian, private_key: k}}\nnodes:\n  - {{name: master-1, role: master}}\n  - {{name: master-2, role: master}}\n  - {{name: master-3, role: master}}\n  - {{name: worker-1, role: worker}}\n"
    )
}

fn vip_port() -> Port {
    Port {
        id: "port-vip".into(),
        name: "demo-api-vip".into(),
        device_id: String::new(),
        device_owner: String::new(),
        allowed_address_pairs: vec![],
        tags: vec![cluster_tag("demo"), marks::API_VIP.into()],
        ..port("x", [192, 168, 50, 100], "-")
    }
}

#[test]
fn the_vip_comes_first_then_every_master_carries_it_and_a_rerun_changes_nothing() {
    let s = ha_settings();
    let nodes = ["master-1", "master-2", "master-3", "worker-1"];
    let mut have = ClusterResources::default();
    for (i, n) in nodes.iter().enumerate() {
        let cidr = format!("10.1.{i}.0/24");
        have.ports.insert(n.to_string(), port(n, [192, 168, 50, 11 + i as u8], &cidr));
        have.servers.insert(n.to_string(), server(n, "ACTIVE", &cidr));
    }
    // No VIP yet: its port and its floating IP are the changes; the nodes wait for it.
    let p = plan(&s, &have.observed(None)).unwrap();
    assert_eq!(api_changes(&p, &have), [ApiChange::CreateVipPort, ApiChange::AttachFloatingIp { reuse: None }]);
    assert!(node_changes(&p, &have).is_empty(), "without a VIP the pod ranges are all a port carries");

    // The VIP's port, found by its mark (not as a node's), gives the plan its address.
    let mut ports: Vec<Port> = have.ports.values().cloned().collect();
    ports.push(vip_port());
    let servers: Vec<Server> = have.servers.values().cloned().collect();
    let mut have = ClusterResources::collect("demo", servers, ports, vec![fip("fip-api", [203, 0, 113, 100], Some("port-vip"))]);
    assert_eq!(have.ports.len(), 4, "the VIP's port is no node's");
    let seen = have.observed(None);
    assert_eq!((seen.api_vip, seen.api_floating_ip), (Some(Ipv4Addr::new(192, 168, 50, 100)), Some(Ipv4Addr::new(203, 0, 113, 100))));
    let p = plan(&s, &seen).unwrap();
    assert!(api_changes(&p, &have).is_empty());
    // Every master's port gets the VIP as an allowed pair; the worker's does not.
    let changes = node_changes(&p, &have);
    let set: Vec<(&str, &[String])> = changes
        .iter()
        .filter_map(|c| match c {
            NodeChange::SetAddressPairs { node, cidrs, .. } => Some((node.as_str(), cidrs.as_slice())),
            _ => None,
        })
        .collect();
    assert_eq!(set.len(), 3, "{changes:?}");
    assert_eq!(set[1], ("master-2", &["10.1.1.0/24".to_string(), "192.168.50.100".to_string()][..]));
    // Once they carry it (in any order), nothing is left to do.
    for m in ["master-1", "master-2", "master-3"] {
        let pairs = &mut have.ports.get_mut(m).unwrap().allowed_address_pairs;
        pairs.insert(0, AddressPair { ip_address: "192.168.50.100".into() });
    }
    assert!(node_changes(&p, &have).is_empty(), "{:?}", node_changes(&p, &have));
    // A server whose metadata is gone: its pod range is read from its port's pairs, past the VIP.
    have.servers.get_mut("master-2").unwrap().metadata.remove("kos-pod-cidr");
    assert_eq!(have.observed(None).nodes["master-2"].pod_cidr, Some("10.1.1.0/24".parse().unwrap()));
}

#[test]
fn a_vip_no_longer_asked_for_is_released_with_its_floating_ip() {
    let (s, mut have) = converged();
    have.vip_port = Some(vip_port());
    have.floating_ips.push(fip("fip-api", [203, 0, 113, 100], Some("port-vip")));
    let p = plan(&s, &have.observed(None)).unwrap();
    assert_eq!(api_changes(&p, &have), [ApiChange::DeleteVipPort { port_id: "port-vip".into(), floating_ip_ids: vec!["fip-api".into()] }]);
}

/// The cluster's API load balancer as Octavia shows it, with `members` on 6443.
/// The API's load balancer as kos makes it: its VIP on kos's port ([`vip_port`]).
fn api_lb(members: &[(&str, [u8; 4])]) -> ApiLoadBalancer {
    let (name, description) = api_load_balancer_identity("demo");
    ApiLoadBalancer {
        lb: LoadBalancer {
            id: "lb-api".into(),
            name,
            description,
            vip_address: Ipv4Addr::new(192, 168, 50, 100),
            vip_port_id: Some("port-vip".into()),
            provisioning_status: "ACTIVE".into(),
            operating_status: "ONLINE".into(),
        },
        members: members
            .iter()
            .map(|(n, ip)| LoadBalancerMember { name: n.to_string(), address: Ipv4Addr::from(*ip), protocol_port: 6443 })
            .collect(),
    }
}

#[test]
fn the_load_balancer_comes_first_its_floating_ip_on_its_vip_port_and_masters_carry_no_vip() {
    let s = Settings::parse(Path::new("s.yaml"), &ha_text("  api_endpoint: octavia\n")).unwrap();
    let nodes = ["master-1", "master-2", "master-3", "worker-1"];
    let mut have = ClusterResources::default();
    // No load balancer yet: the VIP's port, the load balancer on it and its floating IP are
    // the changes; no member to set.
    let p = plan(&s, &have.observed(None)).unwrap();
    assert_eq!(
        api_changes(&p, &have),
        [ApiChange::CreateVipPort, ApiChange::CreateLoadBalancer, ApiChange::AttachFloatingIp { reuse: None }]
    );
    assert_eq!(api_member_change(&p, &have, &BTreeMap::new()), None);
    for (i, n) in nodes.iter().enumerate() {
        let cidr = format!("10.1.{i}.0/24");
        have.ports.insert(n.to_string(), port(n, [192, 168, 50, 11 + i as u8], &cidr));
        have.servers.insert(n.to_string(), server(n, "ACTIVE", &cidr));
    }
    // Killed after the port: the load balancer is still to make, on that port.
    have.vip_port = Some(vip_port());
    let p = plan(&s, &have.observed(None)).unwrap();
    assert_eq!(api_changes(&p, &have), [ApiChange::CreateLoadBalancer, ApiChange::AttachFloatingIp { reuse: None }]);
    // Found, with its floating IP on the VIP's port: the plan's API address is the port's.
    have.api_load_balancer = Some(api_lb(&[]));
    have.floating_ips.push(fip("fip-api", [203, 0, 113, 100], Some("port-vip")));
    let seen = have.observed(None);
    assert_eq!((seen.api_vip, seen.api_floating_ip), (Some(Ipv4Addr::new(192, 168, 50, 100)), Some(Ipv4Addr::new(203, 0, 113, 100))));
    assert!(seen.api_load_balancer);
    let p = plan(&s, &seen).unwrap();
    assert_eq!((p.internal_api, p.external_api), (seen.api_vip, seen.api_floating_ip));
    assert!(p.certificates.get("apiserver").unwrap().ip_addresses.contains(&"192.168.50.100".parse().unwrap()));
    assert!(api_changes(&p, &have).is_empty());
    // Octavia holds the VIP: no master's port carries it.
    assert!(node_changes(&p, &have).is_empty(), "{:?}", node_changes(&p, &have));
    // Its pool becomes the three masters on 6443, and then stays.
    let addresses: BTreeMap<String, Ipv4Addr> = p.nodes.iter().map(|n| (n.name.clone(), n.fixed_ip.unwrap())).collect();
    let masters = vec![
        ("master-1".to_string(), Some(Ipv4Addr::new(192, 168, 50, 11))),
        ("master-2".to_string(), Some(Ipv4Addr::new(192, 168, 50, 12))),
        ("master-3".to_string(), Some(Ipv4Addr::new(192, 168, 50, 13))),
    ];
    assert_eq!(api_member_change(&p, &have, &addresses), Some(ApiChange::SetMembers { lb_id: "lb-api".into(), members: masters }));
    have.api_load_balancer =
        Some(api_lb(&[("master-1", [192, 168, 50, 11]), ("master-2", [192, 168, 50, 12]), ("master-3", [192, 168, 50, 13])]));
    assert_eq!(api_member_change(&p, &have, &addresses), None);
    // A master whose port is still to be made is named, so `kos plan` shows the change.
    let mut four = addresses.clone();
    four.remove("master-3");
    let change = api_member_change(&p, &have, &four).unwrap().to_string();
    assert!(change.ends_with("master-2 192.168.50.12, master-3 (once its port is made)"), "{change}");
}

#[test]
fn an_endpoint_no_longer_asked_for_is_released_and_the_other_made() {
    let s = Settings::parse(Path::new("s.yaml"), &ha_text("")).unwrap();
    // Settings now say `vip` (before any server, the only time the guard lets them): the load
    // balancer goes; the VIP's port and its floating IP stay, so the address does too.
    let mut have = ClusterResources { api_load_balancer: Some(api_lb(&[])), vip_port: Some(vip_port()), ..ClusterResources::default() };
    have.floating_ips.push(fip("fip-api", [203, 0, 113, 100], Some("port-vip")));
    let p = plan(&s, &have.observed(None)).unwrap();
    assert_eq!(api_changes(&p, &have), [ApiChange::DeleteLoadBalancer { lb_id: "lb-api".into(), floating_ip_ids: vec![] }]);
    // A load balancer on a port of Octavia's own: its floating IP goes with it, a port and a
    // free address (reused) come.
    let mut octavias = api_lb(&[]);
    octavias.lb.vip_port_id = Some("port-octavia".into());
    let mut have = ClusterResources { api_load_balancer: Some(octavias), ..ClusterResources::default() };
    have.floating_ips.push(fip("fip-api", [203, 0, 113, 100], Some("port-octavia")));
    let p = plan(&s, &have.observed(None)).unwrap();
    assert_eq!(
        api_changes(&p, &have),
        [
            ApiChange::DeleteLoadBalancer { lb_id: "lb-api".into(), floating_ip_ids: vec!["fip-api".into()] },
            ApiChange::CreateVipPort,
            ApiChange::AttachFloatingIp { reuse: None },
        ]
    );
    // And the other way: a VIP's port left by `vip`, Octavia asked for: the load balancer
    // takes it.
    let s = Settings::parse(Path::new("s.yaml"), &ha_text("  api_endpoint: octavia\n")).unwrap();
    let have = ClusterResources { vip_port: Some(vip_port()), ..ClusterResources::default() };
    let p = plan(&s, &have.observed(None)).unwrap();
    assert_eq!(api_changes(&p, &have), [ApiChange::CreateLoadBalancer, ApiChange::AttachFloatingIp { reuse: None }]);
    // `master`: the port and its floating IP go.
    let s = settings(&["master-1", "worker-1"]);
    let p = plan(&s, &have.observed(None)).unwrap();
    assert_eq!(api_changes(&p, &have), [ApiChange::DeleteVipPort { port_id: "port-vip".into(), floating_ip_ids: vec![] }]);
}

#[test]
fn a_load_balancer_is_the_clusters_by_its_name_and_a_whole_word_of_its_mark() {
    let api = api_lb(&[]).lb;
    assert_eq!((api.name.as_str(), api.description.as_str()), ("demo-api", "kos-cluster=demo kos-api-lb"));
    assert!(is_api_load_balancer("demo", &api));
    // Another cluster's whose name starts alike, and `kos expose`'s of a service named `api`.
    assert!(!carries_mark("kos-cluster=demo2 kos-api-lb", "demo"));
    let exposed = LoadBalancer { description: "kos-cluster=demo service=api".into(), ..api.clone() };
    assert!(carries_mark(&exposed.description, "demo") && !is_api_load_balancer("demo", &exposed));
}
