//! Inventory, preflight and teardown against the in-memory fake cloud.

use super::*;
use crate::apply::{NodeContext, Waits, apply_nodes, apply_routes, discover, ensure_security_group, find_security_group, resolve};
use crate::fake::FakeCloud;
use crate::model::{FloatingIp, Port, Route, SecurityGroup, Server};
use kos_core::plan::plan;
use std::path::Path;
use std::time::Duration;

const FAST: Waits = Waits { active_timeout: Duration::from_secs(5), poll: Duration::from_millis(1), parallel: 2 };

fn settings(name: &str, nodes: &[&str]) -> Settings {
    let mut text = format!(
        "cluster: {{name: {name}}}\ncloud: {{image: tiny, flavor: m1.tiny, network: net, router: router, floating_ip_pool: public}}\nssh: {{user: debian, private_key: k}}\nnodes:\n"
    );
    for (i, n) in nodes.iter().enumerate() {
        let (role, fip) = if i == 0 { ("master", ", floating_ip: true") } else { ("worker", "") };
        text.push_str(&format!("  - {{name: {n}, role: {role}{fip}}}\n"));
    }
    Settings::parse(Path::new("s.yaml"), &text).unwrap()
}

async fn up(cloud: &FakeCloud, s: &Settings) {
    let resolved = resolve(cloud, s).await.unwrap();
    let have = discover(cloud, &s.cluster.name).await.unwrap();
    let p = plan(s, &have.observed(None)).unwrap();
    let (sg, _) = ensure_security_group(cloud, s, &p, find_security_group(cloud, &s.cluster.name).await.unwrap()).await.unwrap();
    let ctx = NodeContext { settings: s, plan: &p, resolved: &resolved, security_groups: &[sg], waits: FAST };
    apply_nodes(cloud, ctx, &have).await.unwrap();
    let have = discover(cloud, &s.cluster.name).await.unwrap();
    let p = plan(s, &have.observed(None)).unwrap();
    apply_routes(cloud, &p, &resolved, &have.node_addresses(), None).await.unwrap();
}

#[tokio::test]
async fn inventory_has_the_seeds_groups_and_host_vars_in_constant_calls() {
    let cloud = FakeCloud::new();
    up(&cloud, &settings("demo", &["master-1", "worker-1", "worker-2"])).await;
    let before = cloud.call_count();
    let inv = inventory(&cloud, "demo").await.unwrap();
    assert_eq!(cloud.call_count() - before, 3, "servers, ports and floating IPs: one list each");
    assert_eq!(inv["k8s_master"]["hosts"], json!(["master-1"]));
    assert_eq!(inv["k8s_worker"]["hosts"], json!(["worker-1", "worker-2"]));
    assert_eq!(inv["all"]["children"], json!(["k8s_master", "k8s_worker"]));
    let m = &inv["_meta"]["hostvars"]["master-1"];
    assert_eq!(m["ansible_user"], "debian");
    assert!(m["ansible_host"].as_str().unwrap().starts_with("203.0.113."), "floating IP first: {m}");
    assert!(inv["_meta"]["hostvars"]["worker-1"]["ansible_host"].as_str().unwrap().starts_with("192.168.50."));
    assert_eq!(m["kos_pod_cidr"], "10.1.0.0/24");
    assert_eq!(m["kos_role"], "master");
}

#[tokio::test]
async fn check_reports_ok_on_a_fitting_project_and_fail_with_fixes_otherwise() {
    let cloud = FakeCloud::new();
    let s = settings("demo", &["master-1", "worker-1"]);
    let p = plan(&s, &Default::default()).unwrap();
    let findings = check(&cloud, &s, &p).await;
    assert!(findings.iter().all(|f| f.verdict == Verdict::Ok), "{findings:#?}");
    assert_eq!(cloud.write_count(), 0, "check creates nothing");

    cloud.state.lock().unwrap().instance_quota = 1;
    cloud.state.lock().unwrap().extensions.remove("extraroute-atomic");
    let findings = check(&cloud, &s, &p).await;
    let quota = findings.iter().find(|f| f.what.starts_with("quota instances")).unwrap();
    assert_eq!(quota.verdict, Verdict::Fail, "{quota:?}");
    assert!(quota.fix.as_deref().unwrap().contains("higher quota"));
    let routes = findings.iter().find(|f| f.what.contains("extraroute-atomic")).unwrap();
    assert_eq!(routes.verdict, Verdict::Warn);
    assert!(routes.fix.as_deref().unwrap().contains("If-Match"));

    let bad = Settings::parse(
        Path::new("s.yaml"),
        "cluster: {name: demo}\ncloud: {image: nope, flavor: m1.tiny, network: net, router: router}\nssh: {user: debian, private_key: k}\nnodes: [{name: m, role: master}]\nnetworking: {pod_cidr: 192.168.0.0/16}\n",
    )
    .unwrap();
    let p = plan(&bad, &Default::default()).unwrap();
    let findings = check(&cloud, &bad, &p).await;
    assert!(findings.iter().any(|f| f.verdict == Verdict::Fail && f.what.contains("image: image `nope` not found")), "{findings:#?}");
    assert!(
        findings.iter().any(|f| f.verdict == Verdict::Fail && f.what.contains("pod_cidr 192.168.0.0/16 overlaps the tenant subnet")),
        "{findings:#?}"
    );
}

#[tokio::test]
async fn destroy_leaves_nothing_of_the_cluster_and_everything_foreign() {
    let cloud = FakeCloud::new();
    let s = settings("demo", &["master-1", "worker-1", "worker-2"]);
    up(&cloud, &s).await;
    up(&cloud, &settings("other", &["m"])).await;
    // A human's resources in the same project.
    let foreign_route = Route { destination: "10.1.77.0/24".parse().unwrap(), nexthop: Ipv4Addr::new(192, 168, 50, 250) };
    {
        let mut st = cloud.state.lock().unwrap();
        st.router.as_mut().unwrap().routes.push(foreign_route.clone());
        st.servers.insert(
            "human".into(),
            Server {
                id: "human".into(),
                name: "jumphost".into(),
                status: "ACTIVE".into(),
                metadata: Default::default(),
                fault: None,
                addresses: vec![],
                key_name: None,
                flavor_id: None,
            },
        );
        st.ports.insert(
            "human-port".into(),
            Port {
                id: "human-port".into(),
                name: "jumphost".into(),
                network_id: "net-id".into(),
                fixed_ips: vec![],
                allowed_address_pairs: vec![],
                device_id: "human".into(),
                device_owner: String::new(),
                tags: vec![],
                security_groups: vec![],
                port_security_enabled: None,
            },
        );
        st.security_groups
            .insert("human-sg".into(), SecurityGroup { id: "human-sg".into(), name: "web".into(), tags: vec![], rules: vec![] });
        st.floating_ips.insert(
            "human-fip".into(),
            FloatingIp {
                id: "human-fip".into(),
                floating_ip_address: Ipv4Addr::new(203, 0, 113, 99),
                floating_network_id: "public-id".into(),
                port_id: None,
                fixed_ip_address: None,
                tags: vec![],
            },
        );
    }
    let found = find_teardown(&cloud, &s).await.unwrap();
    assert_eq!(found.servers.len(), 3);
    assert_eq!(found.ports.len(), 3);
    assert_eq!(found.routes.len(), 3);
    assert_eq!(found.floating_ips.len(), 1);
    assert_eq!(found.security_groups.len(), 1);
    let left = destroy(&cloud, &s, &found, FAST).await.unwrap();
    assert!(left.is_empty(), "leftovers: {:?}", left.lines());
    let st = cloud.state.lock().unwrap();
    assert!(st.servers.contains_key("human") && st.ports.contains_key("human-port"));
    assert!(st.security_groups.contains_key("human-sg") && st.floating_ips.contains_key("human-fip"));
    assert!(st.router.as_ref().unwrap().routes.contains(&foreign_route));
    assert_eq!(
        st.servers.values().filter(|s| s.metadata.get("kos-cluster").map(String::as_str) == Some("other")).count(),
        1,
        "the other cluster is untouched"
    );
    assert_eq!(st.router.as_ref().unwrap().routes.len(), 2, "the other cluster's route and the human's");
}

#[tokio::test]
async fn expose_creates_one_load_balancer_with_the_workers_and_is_idempotent() {
    let cloud = FakeCloud::new();
    let s = settings("demo", &["master-1", "worker-1", "worker-2"]);
    up(&cloud, &s).await;
    let have = discover(&cloud, "demo").await.unwrap();
    let p = plan(&s, &have.observed(None)).unwrap();
    let first = expose(&cloud, &s, &p, "web", 30080, 80).await.unwrap();
    assert!(matches!(first, Exposed::Created { members: 2, .. }), "workers only, not the master: {first:?}");
    let second = expose(&cloud, &s, &p, "web", 30080, 80).await.unwrap();
    assert!(matches!(second, Exposed::Updated { members: 2, .. }), "{second:?}");
    assert_eq!(cloud.state.lock().unwrap().load_balancers.len(), 1);
    let found = find_teardown(&cloud, &s).await.unwrap();
    assert_eq!(found.load_balancers.len(), 1, "destroy finds kos's load balancers by their mark");
    assert_eq!(unexpose(&cloud, "demo", "web").await.unwrap(), Exposed::Deleted { name: "demo-web".into() });
    assert_eq!(unexpose(&cloud, "demo", "web").await.unwrap(), Exposed::Absent { name: "demo-web".into() });
}

#[tokio::test]
async fn octavia_asked_of_a_cloud_without_it_fails_the_check_with_the_way_out() {
    let cloud = FakeCloud::new();
    let s = Settings::parse(
        Path::new("s.yaml"),
        "cluster: {name: demo, api_endpoint: octavia}\ncloud: {image: tiny, flavor: m1.tiny, network: net, router: router}\nssh: {user: debian, private_key: k}\nnodes: [{name: m, role: master}]\n",
    )
    .unwrap();
    let p = plan(&s, &Default::default()).unwrap();
    let octavia = |findings: Vec<Finding>| findings.into_iter().find(|f| f.what.contains("load-balancer")).unwrap();
    assert_eq!(octavia(check(&cloud, &s, &p).await).verdict, Verdict::Ok);
    cloud.state.lock().unwrap().services.remove("load-balancer");
    let f = octavia(check(&cloud, &s, &p).await);
    assert_eq!(f.verdict, Verdict::Fail);
    assert!(f.what.contains("no `load-balancer` service") && f.fix.as_deref().unwrap().contains("api_endpoint: vip"), "{f:?}");
}

/// `kos destroy` of `demo` once took every load balancer whose description merely contained
/// `kos-cluster=demo`, so also `demo2`'s. It takes the API's load balancer of `demo` and its
/// floating IP, and nothing of `demo2`.
#[tokio::test]
async fn destroy_takes_the_api_load_balancer_and_its_floating_ip_but_not_a_cluster_named_alike() {
    let cloud = FakeCloud::new();
    let s = settings("demo", &["master-1"]);
    let mut vip_ports = Vec::new();
    for cluster in ["demo", "demo2"] {
        let (name, description) = crate::reconcile::api_load_balancer_identity(cluster);
        let spec = crate::api::LoadBalancerSpec {
            name,
            description,
            subnet_id: "subnet-id".into(),
            vip_port_id: None,
            listener_port: 6443,
            member_port: 6443,
            members: vec![],
            monitor: crate::api::HealthMonitor::Https { path: "/readyz".into(), expected_codes: "200".into() },
        };
        vip_ports.push(cloud.create_load_balancer(&spec).await.unwrap().vip_port_id.unwrap());
    }
    let fip = cloud.create_floating_ip("public-id", &[cluster_tag("demo")]).await.unwrap();
    cloud.set_floating_ip_port(&fip.id, Some(&vip_ports[0])).await.unwrap();
    let have = discover(&cloud, "demo").await.unwrap();
    assert_eq!(have.observed(None).api_floating_ip, Some(fip.floating_ip_address));
    let found = find_teardown(&cloud, &s).await.unwrap();
    assert_eq!(found.lines(), ["load balancer demo-api (192.168.50.11)".to_string(), format!("floating IP {}", fip.floating_ip_address)]);
    assert!(destroy(&cloud, &s, &found, FAST).await.unwrap().is_empty());
    let st = cloud.state.lock().unwrap();
    assert_eq!(st.load_balancers.values().map(|l| l.description.as_str()).collect::<Vec<_>>(), ["kos-cluster=demo2 kos-api-lb"]);
    assert!(st.floating_ips.is_empty());
}
