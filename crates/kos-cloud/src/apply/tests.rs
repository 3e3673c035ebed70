//! The executors against the in-memory fake cloud: what a run changes, that a second run
//! changes nothing, and the failure paths (ERROR servers, quota, lost route races).

use super::*;
use crate::api::HealthMonitor;
use crate::fake::FakeCloud;
use crate::model::Route;
use kos_core::plan::plan;
use std::path::Path;

fn settings(nodes: &[&str]) -> Settings {
    let mut text = String::from(
        "cluster: {name: demo}\ncloud: {image: tiny, flavor: m1.tiny, network: net, router: router, floating_ip_pool: public, key_name: kos-key}\nssh: {user: debian, private_key: k}\nnodes:\n",
    );
    for (i, n) in nodes.iter().enumerate() {
        let (role, fip) = if i == 0 { ("master", ", floating_ip: true") } else { ("worker", "") };
        text.push_str(&format!("  - {{name: {n}, role: {role}{fip}}}\n"));
    }
    Settings::parse(Path::new("s.yaml"), &text).unwrap()
}

const FAST: Waits = Waits { active_timeout: Duration::from_secs(5), poll: Duration::from_millis(1), parallel: 2 };

/// One `up --only instances,network` through the executors; returns what changed.
async fn up(cloud: &FakeCloud, s: &Settings) -> Vec<String> {
    let resolved = resolve(cloud, s).await.unwrap();
    let have = discover(cloud, &s.cluster.name).await.unwrap();
    let p = plan(s, &have.observed(Some(resolved.subnet.cidr))).unwrap();
    let (sg, created) = ensure_security_group(cloud, s, &p, find_security_group(cloud, &s.cluster.name).await.unwrap()).await.unwrap();
    let ctx = NodeContext { settings: s, plan: &p, resolved: &resolved, security_groups: &[sg], waits: FAST };
    let mut lines: Vec<String> = created.iter().map(ToString::to_string).collect();
    lines.extend(apply_nodes(cloud, ctx, &have).await.unwrap().0.iter().map(ToString::to_string));
    let have = discover(cloud, &s.cluster.name).await.unwrap();
    let p = plan(s, &have.observed(Some(resolved.subnet.cidr))).unwrap();
    lines.extend(apply_routes(cloud, &p, &resolved, &have.node_addresses(), None).await.unwrap().0.iter().map(ToString::to_string));
    lines
}

fn routes(cloud: &FakeCloud) -> Vec<Route> {
    let mut r = cloud.state.lock().unwrap().router.clone().unwrap().routes;
    r.sort();
    r
}

#[tokio::test]
async fn first_run_builds_everything_and_the_second_changes_nothing() {
    let cloud = FakeCloud::new();
    let s = settings(&["master-1", "worker-1", "worker-2"]);
    let lines = up(&cloud, &s).await;
    assert_eq!(lines.iter().filter(|l| l.starts_with("create port of ")).count(), 3, "{lines:#?}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("create server of ")).count(), 3, "{lines:#?}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("add route ")).count(), 3, "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("allocate a floating IP for master-1: ")), "{lines:#?}");
    {
        let st = cloud.state.lock().unwrap();
        assert_eq!(st.servers.len(), 3);
        let g = st.security_groups.values().next().unwrap();
        assert_eq!(g.name, "demo-nodes");
        assert!(g.rules.iter().any(|r| r.port_range_min == Some(6443)));
        assert!(g.rules.iter().any(|r| r.remote_group_id.as_deref() == Some(g.id.as_str())), "node to node");
        let m = st.servers.values().find(|s| s.name == "demo-master-1").unwrap();
        assert_eq!(m.metadata["ansible_host_groups"], "k8s_master");
        assert_eq!(m.metadata["kos-pod-cidr"], "10.1.0.0/24");
        assert_eq!(m.key_name.as_deref(), Some("kos-key"));
        for p in st.ports.values() {
            assert!(p.tags.contains(&"kos-cluster=demo".to_string()));
            assert_eq!(p.allowed_address_pairs.len(), 1);
        }
    }
    let writes = cloud.write_count();
    let calls = cloud.call_count();
    let again = up(&cloud, &s).await;
    assert!(again.is_empty(), "second run changed: {again:#?}");
    assert_eq!(cloud.write_count(), writes, "no write on a converged cluster");
    // discovery + resolution: a constant number of reads whatever the node count
    assert!(cloud.call_count() - calls <= 12, "{} calls for a no-op run", cloud.call_count() - calls);
}

#[tokio::test]
async fn adding_a_node_adds_one_server_and_one_route_and_keeps_the_others() {
    let cloud = FakeCloud::new();
    up(&cloud, &settings(&["master-1", "worker-1", "worker-2"])).await;
    let before = routes(&cloud);
    let lines = up(&cloud, &settings(&["master-1", "worker-1", "worker-2", "worker-3"])).await;
    assert_eq!(lines.iter().filter(|l| l.starts_with("create server of ")).count(), 1, "{lines:#?}");
    let after = routes(&cloud);
    assert_eq!(after.len(), 4);
    for r in &before {
        assert!(after.contains(r), "{r:?} changed");
    }
    assert!(after.iter().any(|r| r.destination.to_string() == "10.1.3.0/24"));
}

#[tokio::test]
async fn removing_a_node_removes_its_route_server_and_port_but_not_foreign_routes() {
    let cloud = FakeCloud::new();
    up(&cloud, &settings(&["master-1", "worker-1", "worker-2"])).await;
    let foreign = Route { destination: "10.1.200.0/24".parse().unwrap(), nexthop: Ipv4Addr::new(192, 168, 50, 250) };
    cloud.state.lock().unwrap().router.as_mut().unwrap().routes.push(foreign.clone());
    let lines = up(&cloud, &settings(&["master-1", "worker-1"])).await;
    assert_eq!(
        lines,
        ["remove worker-2 (no longer in the settings: its server, port, floating IP, routes): deleted 1 route(s), server, port"]
    );
    let st = cloud.state.lock().unwrap();
    assert_eq!(st.servers.len(), 2);
    assert_eq!(st.ports.len(), 2);
    let r = &st.router.as_ref().unwrap().routes;
    assert!(r.contains(&foreign), "foreign route kept");
    assert!(!r.iter().any(|x| x.destination.to_string() == "10.1.2.0/24"));
}

#[tokio::test]
async fn a_server_in_error_is_recreated_once_then_nova_fault_is_reported() {
    let cloud = FakeCloud::new();
    cloud.state.lock().unwrap().failing_boots.insert("demo-worker-1".into(), 1);
    let lines = up(&cloud, &settings(&["master-1", "worker-1"])).await;
    assert!(lines.iter().any(|l| l.contains("(ERROR: No valid host was found")), "{lines:#?}");
    assert_eq!(cloud.state.lock().unwrap().servers.values().filter(|s| s.status == "ACTIVE").count(), 2);

    // In ERROR twice: the run fails with Nova's words, and no server is left in ERROR.
    let cloud = FakeCloud::new();
    cloud.state.lock().unwrap().failing_boots.insert("demo-master-1".into(), 2);
    let s = settings(&["master-1"]);
    let resolved = resolve(&cloud, &s).await.unwrap();
    let have = discover(&cloud, "demo").await.unwrap();
    let p = plan(&s, &have.observed(None)).unwrap();
    let ctx = NodeContext { settings: &s, plan: &p, resolved: &resolved, security_groups: &[], waits: FAST };
    let err = apply_nodes(&cloud, ctx, &have).await.unwrap_err().error;
    assert!(matches!(&err, ApplyError::Boot { server, .. } if server == "demo-master-1"), "{err:?}");
    assert!(
        err.to_string().contains("did not come up: ERROR: No valid host was found. There are not enough hosts available. (twice)"),
        "{err}"
    );
    assert!(cloud.state.lock().unwrap().servers.is_empty(), "no server left in ERROR");
}

/// Two creates of one server on one port (a killed run's still in flight, and the next
/// run's): the twin is deleted, and the server the port was taken from is made again, in
/// the same run; the next run changes nothing, and exactly one server per node is left.
#[tokio::test]
async fn a_second_server_on_the_same_port_is_deleted_and_the_node_gets_its_port_back() {
    let cloud = FakeCloud::new();
    cloud.state.lock().unwrap().racing_creates.insert("demo-worker-1".into(), 1);
    let s = settings(&["master-1", "worker-1"]);
    let lines = up(&cloud, &s).await;
    assert!(lines.iter().any(|l| l.starts_with("delete stray server demo-worker-1 (")), "{lines:#?}");
    assert!(lines.iter().any(|l| l == "re-create server of worker-1 (its port is attached to nothing), once"), "{lines:#?}");
    assert!(lines.iter().any(|l| l == "create server of worker-1: demo-worker-1 ACTIVE"), "{lines:#?}");
    let attached = |cloud: &FakeCloud| {
        let st = cloud.state.lock().unwrap();
        let servers: Vec<&crate::model::Server> = st.servers.values().collect();
        assert_eq!(servers.len(), 2, "one server per node: {servers:#?}");
        servers.iter().all(|srv| st.ports.values().any(|p| p.device_id == srv.id && p.name == srv.name))
    };
    assert!(attached(&cloud), "every server holds its node's port");
    assert_eq!(up(&cloud, &s).await, Vec::<String>::new());

    // The same leftovers found by a later run (the run that made them was killed): the
    // server without its port is made again and its failed twin deleted.
    let cloud = FakeCloud::new();
    up(&cloud, &s).await;
    {
        let mut st = cloud.state.lock().unwrap();
        let srv = st.servers.values().find(|x| x.name == "demo-worker-1").unwrap().clone();
        let twin = crate::model::Server { id: "twin".into(), status: "ERROR".into(), ..srv.clone() };
        st.servers.insert("twin".into(), twin);
        st.ports.values_mut().find(|p| p.device_id == srv.id).unwrap().device_id.clear();
    }
    let lines = up(&cloud, &s).await;
    assert_eq!(
        lines,
        [
            "delete stray server demo-worker-1 (twin): a second server of its node",
            "re-create server of worker-1 (its port is attached to nothing): demo-worker-1 ACTIVE",
        ]
    );
    assert!(attached(&cloud), "every server holds its node's port");
    assert_eq!(up(&cloud, &s).await, Vec::<String>::new());

    // Found while the twin still builds, the node's server holding its port: the twin's
    // build then fails and takes the port (the test bed's Nova did so after kos had looked).
    // The twin is deleted only once it stopped building, then the server is looked at again
    // and made again on its port.
    let cloud = FakeCloud::new();
    up(&cloud, &s).await;
    {
        let mut st = cloud.state.lock().unwrap();
        let srv = st.servers.values().find(|x| x.name == "demo-worker-1").unwrap().clone();
        let port = st.ports.values().find(|p| p.device_id == srv.id).unwrap().id.clone();
        st.servers.insert("twin".into(), crate::model::Server { id: "twin".into(), status: "BUILD".into(), ..srv.clone() });
        st.building.insert("twin".into(), (2, Some(port)));
    }
    let lines = up(&cloud, &s).await;
    assert_eq!(
        lines,
        [
            "delete stray server demo-worker-1 (twin): a second server of its node",
            "re-create server of worker-1 (its port is attached to nothing), once",
            "see that server of worker-1 is ACTIVE, alone and on its port: demo-worker-1 ACTIVE",
        ]
    );
    assert!(attached(&cloud), "every server holds its node's port");
    assert_eq!(up(&cloud, &s).await, Vec::<String>::new());
}

#[tokio::test]
async fn quota_exceeded_mid_run_fails_clearly_and_a_rerun_converges_without_leaks() {
    let cloud = FakeCloud::new();
    cloud.state.lock().unwrap().instance_quota = 2;
    let s = settings(&["master-1", "worker-1", "worker-2"]);
    let resolved = resolve(&cloud, &s).await.unwrap();
    let have = discover(&cloud, "demo").await.unwrap();
    let p = plan(&s, &have.observed(None)).unwrap();
    let (sg, _) = ensure_security_group(&cloud, &s, &p, find_security_group(&cloud, &s.cluster.name).await.unwrap()).await.unwrap();
    let ctx = NodeContext { settings: &s, plan: &p, resolved: &resolved, security_groups: std::slice::from_ref(&sg), waits: FAST };
    let stopped = apply_nodes(&cloud, ctx, &have).await.unwrap_err();
    // What was made before the quota stopped it is said: a port each, two servers.
    let made: Vec<String> = stopped.done.0.iter().map(ToString::to_string).collect();
    assert_eq!(made.iter().filter(|l| l.starts_with("create port of ")).count(), 3, "{made:#?}");
    assert_eq!(made.iter().filter(|l| l.starts_with("create server of ")).count(), 2, "{made:#?}");
    let err = stopped.error;
    assert!(err.to_string().contains("create server"), "{err}");
    assert!(matches!(err, ApplyError::Cloud { source: CloudError::Quota { .. }, .. }), "{err:?}");
    // Every port that was created carries the mark, so the next run finds and reuses it.
    let ports = cloud.state.lock().unwrap().ports.len();
    assert_eq!(ports, 3);
    cloud.state.lock().unwrap().instance_quota = 10;
    let lines = up(&cloud, &s).await;
    assert_eq!(lines.iter().filter(|l| l.starts_with("create port of ")).count(), 0, "ports reused: {lines:#?}");
    assert_eq!(cloud.state.lock().unwrap().servers.len(), 3);
    assert_eq!(cloud.state.lock().unwrap().ports.len(), 3, "no port leaked");
}

#[tokio::test]
async fn without_extraroute_atomic_routes_are_replaced_guarded_by_revision() {
    let cloud = FakeCloud::new();
    cloud.state.lock().unwrap().extensions.remove("extraroute-atomic");
    let foreign = Route { destination: "172.16.0.0/16".parse().unwrap(), nexthop: Ipv4Addr::new(192, 168, 50, 5) };
    cloud.state.lock().unwrap().router.as_mut().unwrap().routes.push(foreign.clone());
    up(&cloud, &settings(&["master-1", "worker-1"])).await;
    let st = cloud.state.lock().unwrap();
    assert!(st.calls.contains_key("replace_routes"), "whole-list update used");
    assert!(!st.calls.contains_key("add_routes"));
    let r = &st.router.as_ref().unwrap().routes;
    assert_eq!(r.len(), 3);
    assert!(r.contains(&foreign));
}

#[tokio::test]
async fn a_router_read_before_someone_else_changed_it_loses_on_its_revision_and_is_read_again() {
    let cloud = FakeCloud::new();
    cloud.state.lock().unwrap().extensions.remove("extraroute-atomic");
    let s = settings(&["master-1", "worker-1"]);
    up(&cloud, &s).await;
    // A node's route is gone when the survey reads the router ...
    let lost = routes(&cloud)[0].clone();
    cloud.state.lock().unwrap().router.as_mut().unwrap().routes.retain(|r| *r != lost);
    let resolved = resolve(&cloud, &s).await.unwrap();
    // ... and another tool adds a route of its own before kos writes.
    let foreign = Route { destination: "172.16.0.0/16".parse().unwrap(), nexthop: Ipv4Addr::new(192, 168, 50, 5) };
    {
        let mut st = cloud.state.lock().unwrap();
        let router = st.router.as_mut().unwrap();
        router.routes.push(foreign.clone());
        router.revision_number += 1;
    }
    let have = discover(&cloud, &s.cluster.name).await.unwrap();
    let p = plan(&s, &have.observed(Some(resolved.subnet.cidr))).unwrap();
    let done = apply_routes(&cloud, &p, &resolved, &have.node_addresses(), Some(resolved.router.clone())).await.unwrap();
    let done: Vec<String> = done.0.iter().map(ToString::to_string).collect();
    assert_eq!(done, [format!("add route {} via {}", lost.destination, lost.nexthop)]);
    let now = routes(&cloud);
    assert!(now.contains(&foreign) && now.contains(&lost), "both kept: {now:?}");
    assert_eq!(now.len(), 3, "{now:?}");
}

#[tokio::test]
async fn a_security_group_left_without_its_rules_gets_them_on_the_next_run() {
    let cloud = FakeCloud::new();
    let s = settings(&["master-1"]);
    let p = plan(&s, &Default::default()).unwrap();
    // An interrupted run: the marked group exists, its rules do not.
    cloud.create_security_group("demo-nodes", "", &[cluster_tag("demo")]).await.unwrap();
    let want = security_group_rules(&s, &p).len();
    let group = find_security_group(&cloud, "demo").await.unwrap();
    let planned = security_group_change(&s, &p, group.as_ref());
    assert_eq!(planned.as_ref().map(ToString::to_string), Some(format!("complete security group demo-nodes: {want} missing rule(s)")));
    let (id, changed) = ensure_security_group(&cloud, &s, &p, find_security_group(&cloud, &s.cluster.name).await.unwrap()).await.unwrap();
    assert_eq!(changed, planned, "up makes the change plan showed, in the same words");
    let rules = cloud.state.lock().unwrap().security_groups[&id].rules.len();
    assert_eq!(rules, want);
    let (_, changed) = ensure_security_group(&cloud, &s, &p, find_security_group(&cloud, &s.cluster.name).await.unwrap()).await.unwrap();
    assert_eq!(changed, None, "complete rules are left alone");
    assert_eq!(cloud.state.lock().unwrap().security_groups[&id].rules.len(), rules);
}

/// A port whose create was interrupted before its tags were set (its marks only in the
/// description, which the real client reports as the `kos-untagged` pseudo-tag) gets its
/// tags on the next `up`, and is not tagged twice.
#[tokio::test]
async fn an_interrupted_tagging_is_finished() {
    let cloud = FakeCloud::new();
    let s = settings(&["m1", "w1"]);
    up(&cloud, &s).await;
    let id = {
        let mut st = cloud.state.lock().unwrap();
        let port = st.ports.values_mut().find(|p| p.name == "demo-w1").unwrap();
        port.tags = vec![crate::reconcile::cluster_tag("demo"), crate::reconcile::node_tag("w1"), crate::reconcile::UNTAGGED.into()];
        port.id.clone()
    };
    let have = discover(&cloud, "demo").await.unwrap();
    let tagged: Vec<String> = complete_tags(&cloud, &have).await.unwrap().0.iter().map(ToString::to_string).collect();
    assert_eq!(tagged, ["complete the tags of port demo-w1 (its tagging had been interrupted)"]);
    assert_eq!(cloud.state.lock().unwrap().ports[&id].tags, vec!["kos-cluster=demo", "kos-node=w1"]);
    let have = discover(&cloud, "demo").await.unwrap();
    assert!(complete_tags(&cloud, &have).await.unwrap().is_empty());
}

/// A name the cloud does not know gets the same words and fix from `kos up` (resolve) as
/// from `kos check`.
#[tokio::test]
async fn an_unknown_image_is_worded_as_check_words_it() {
    let cloud = FakeCloud::new();
    let mut s = settings(&["master-1"]);
    s.cloud.image = "debian-12".into();
    let err = resolve(&cloud, &s).await.unwrap_err().to_string();
    let p = plan(&s, &Default::default()).unwrap();
    let findings = crate::ops::check(&cloud, &s, &p).await;
    let image = findings.iter().find(|f| f.what.starts_with("image: ")).unwrap();
    assert_eq!(err, format!("{}; {}", image.what, image.fix.as_deref().unwrap()));
    assert!(err.contains("debian-12") && err.ends_with("set cloud.image to an image of `openstack image list`"), "{err}");
}

/// Masters and a worker with `api_endpoint: octavia` and a floating IP on it.
fn octavia_settings(masters: &[&str]) -> Settings {
    let mut text = String::from(
        "cluster:\n  name: demo\n  api_endpoint: octavia\n  api_floating_ip: true\ncloud: {image: tiny, flavor: m1.tiny, network: net, router: router, floating_ip_pool: public}\nssh: {user: debian, private_key: k}\nnodes:\n",
    );
    for m in masters {
        text.push_str(&format!("  - {{name: {m}, role: master}}\n"));
    }
    text.push_str("  - {name: worker-1, role: worker}\n");
    Settings::parse(Path::new("s.yaml"), &text).unwrap()
}

/// One `up --only instances` as `kos up` runs it: the API's endpoint, then the nodes.
async fn up_with_api(cloud: &FakeCloud, s: &Settings) -> Vec<String> {
    let resolved = resolve(cloud, s).await.unwrap();
    let mut have = discover(cloud, &s.cluster.name).await.unwrap();
    let mut p = plan(s, &have.observed(Some(resolved.subnet.cidr))).unwrap();
    let ctx = NodeContext { settings: s, plan: &p, resolved: &resolved, security_groups: &[], waits: FAST };
    let mut lines: Vec<String> = apply_api(cloud, ctx, &have).await.unwrap().0.iter().map(ToString::to_string).collect();
    if !lines.is_empty() {
        have = discover(cloud, &s.cluster.name).await.unwrap();
        p = plan(s, &have.observed(Some(resolved.subnet.cidr))).unwrap();
    }
    let ctx = NodeContext { settings: s, plan: &p, resolved: &resolved, security_groups: &[], waits: FAST };
    lines.extend(apply_nodes(cloud, ctx, &have).await.unwrap().0.iter().map(ToString::to_string));
    lines
}

#[tokio::test]
async fn octavia_fronts_the_masters_from_the_first_run_and_follows_them() {
    let cloud = FakeCloud::new();
    let s = octavia_settings(&["master-1", "master-2", "master-3"]);
    let lines = up_with_api(&cloud, &s).await;
    // The VIP's port, the load balancer on it and its floating IP before any node, its
    // members once they have ports.
    assert!(lines[0].starts_with("create the API's VIP port: demo-api-vip (192.168.50."), "{lines:#?}");
    let vip = lines[0].rsplit_once('(').unwrap().1.trim_end_matches(')').to_string();
    assert_eq!(
        lines[1],
        format!("create the API's load balancer (TCP listener, the masters as members, HTTPS /readyz monitor): demo-api (VIP {vip})")
    );
    assert!(lines[2].starts_with("allocate a floating IP for the API's VIP: 203.0.113."), "{lines:#?}");
    assert!(lines.last().unwrap().starts_with("set the API load balancer's members: master-1 192.168.50."), "{lines:#?}");
    {
        let st = cloud.state.lock().unwrap();
        let lb = st.load_balancers.values().next().unwrap();
        assert_eq!((lb.name.as_str(), lb.description.as_str()), ("demo-api", "kos-cluster=demo kos-api-lb"));
        assert_eq!(st.lb_monitors[&lb.id], HealthMonitor::Https { path: "/readyz".into(), expected_codes: "200".into() });
        let masters: Vec<(String, Ipv4Addr, u16)> = ["master-1", "master-2", "master-3"]
            .iter()
            .map(|m| {
                let port = st.ports.values().find(|p| p.name == format!("demo-{m}")).unwrap();
                (m.to_string(), port.fixed_ips[0].ip_address, 6443)
            })
            .collect();
        let members: Vec<(String, Ipv4Addr, u16)> =
            st.lb_members[&lb.id].iter().map(|m| (m.name.clone(), m.address, m.protocol_port)).collect();
        assert_eq!(members, masters);
        // Its VIP is kos's port, marked as the cluster's.
        let vip_port = &st.ports[lb.vip_port_id.as_deref().unwrap()];
        assert_eq!((vip_port.name.as_str(), vip_port.fixed_ips[0].ip_address), ("demo-api-vip", lb.vip_address));
        assert_eq!(vip_port.tags, ["kos-cluster=demo", marks::API_VIP]);
        let fip = st.floating_ips.values().find(|f| f.port_id == lb.vip_port_id).expect("a floating IP on the VIP port");
        assert_eq!(fip.tags, ["kos-cluster=demo"]);
        // Octavia holds the VIP: the masters' ports carry their pod range only.
        assert!(st.ports.values().filter(|p| p.name.starts_with("demo-master")).all(|p| p.allowed_address_pairs.len() == 1));
    }
    // The plan reads the load balancer's VIP and floating IP.
    let seen = discover(&cloud, "demo").await.unwrap().observed(None);
    assert!(seen.api_load_balancer && seen.api_vip.is_some() && seen.api_floating_ip.is_some(), "{seen:?}");

    let writes = cloud.write_count();
    assert!(up_with_api(&cloud, &s).await.is_empty());
    assert_eq!(cloud.write_count(), writes, "no write on a converged cluster");

    // Masters removed: they leave the pool.
    let lines = up_with_api(&cloud, &octavia_settings(&["master-1"])).await;
    assert!(lines.iter().any(|l| l.starts_with("remove master-3 ")), "{lines:#?}");
    let set = lines.last().unwrap();
    assert!(set.starts_with("set the API load balancer's members: master-1 ") && !set.contains("master-3"), "{lines:#?}");
    let st = cloud.state.lock().unwrap();
    assert_eq!(st.lb_members.values().next().unwrap().len(), 1);
}
