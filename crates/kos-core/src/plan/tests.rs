//! The plan, computed without I/O: pod CIDRs stay put across changes, and the
//! certificate list says what each component needs.

use super::*;
use crate::settings::Settings;
use std::path::Path;

fn settings(nodes: &[(&str, &str)], extra: &str) -> Settings {
    let mut text = String::from(
        "cluster: {name: demo}\ncloud: {image: tiny, flavor: m1.tiny, network: net, router: r, floating_ip_pool: public}\nssh: {user: debian, private_key: k}\nnodes:\n",
    );
    for (name, role) in nodes {
        text.push_str(&format!("  - {{name: {name}, role: {role}}}\n"));
    }
    text.push_str(extra);
    Settings::parse(Path::new("s.yaml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

fn cidrs(plan: &ClusterPlan) -> Vec<(String, String)> {
    plan.nodes.iter().map(|n| (n.name.clone(), n.pod_cidr.to_string())).collect()
}

fn observed_from(plan: &ClusterPlan) -> Observed {
    Observed {
        nodes: plan
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    n.name.clone(),
                    ObservedNode {
                        fixed_ip: Some(Ipv4Addr::new(192, 168, 50, 10 + i as u8)),
                        floating_ip: None,
                        pod_cidr: Some(n.pod_cidr),
                        ..ObservedNode::default()
                    },
                )
            })
            .collect(),
        ..Observed::default()
    }
}

const THREE: &[(&str, &str)] = &[("master-1", "master"), ("worker-1", "worker"), ("worker-2", "worker")];

#[test]
fn fresh_cluster_gets_the_lowest_ranges_in_file_order() {
    let p = plan(&settings(THREE, ""), &Observed::default()).unwrap();
    assert_eq!(
        cidrs(&p),
        [("master-1", "10.1.0.0/24"), ("worker-1", "10.1.1.0/24"), ("worker-2", "10.1.2.0/24")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(p.nodes[1].pod_gateway.to_string(), "10.1.1.1");
    assert_eq!(p.kubernetes_service_ip.to_string(), "10.96.0.1");
    assert_eq!(p.dns_ip.to_string(), "10.96.0.10");
    assert_eq!(p.nodes[0].server_name, "demo-master-1");
}

#[test]
fn pins_come_first_and_others_fill_around_them() {
    let s = settings(THREE, "networking:\n  pod_cidrs:\n    worker-2: 10.1.0.0/24\n");
    let p = plan(&s, &Observed::default()).unwrap();
    assert_eq!(p.node("worker-2").unwrap().pod_cidr.to_string(), "10.1.0.0/24");
    assert_eq!(p.node("master-1").unwrap().pod_cidr.to_string(), "10.1.1.0/24");
    assert_eq!(p.node("worker-1").unwrap().pod_cidr.to_string(), "10.1.2.0/24");
}

#[test]
fn a_node_keeps_its_range_when_another_is_removed_and_a_new_one_added() {
    let before = plan(&settings(THREE, ""), &Observed::default()).unwrap();
    let mut seen = observed_from(&before);
    // worker-1 removed from the file but its server still exists; worker-3 added.
    let s = settings(&[("master-1", "master"), ("worker-2", "worker"), ("worker-3", "worker")], "");
    let p = plan(&s, &seen).unwrap();
    assert_eq!(p.node("master-1").unwrap().pod_cidr.to_string(), "10.1.0.0/24");
    assert_eq!(p.node("worker-2").unwrap().pod_cidr.to_string(), "10.1.2.0/24");
    // worker-1's range stays reserved while its instance exists
    assert_eq!(p.node("worker-3").unwrap().pod_cidr.to_string(), "10.1.3.0/24");
    // once worker-1's server is gone, its range is free again for the next new node
    seen.nodes.remove("worker-1");
    let s = settings(&[("master-1", "master"), ("worker-2", "worker"), ("worker-4", "worker")], "");
    let p = plan(&s, &seen).unwrap();
    assert_eq!(p.node("worker-4").unwrap().pod_cidr.to_string(), "10.1.1.0/24");
}

#[test]
fn recorded_range_wins_over_file_order() {
    let mut seen = Observed::default();
    seen.nodes.insert("worker-2".into(), ObservedNode { pod_cidr: Some("10.1.0.0/24".parse().unwrap()), ..Default::default() });
    let p = plan(&settings(THREE, ""), &seen).unwrap();
    assert_eq!(p.node("worker-2").unwrap().pod_cidr.to_string(), "10.1.0.0/24");
    assert_eq!(p.node("master-1").unwrap().pod_cidr.to_string(), "10.1.1.0/24");
}

#[test]
fn a_pin_that_contradicts_the_recorded_range_is_refused() {
    let s = settings(THREE, "networking:\n  pod_cidrs:\n    worker-1: 10.1.9.0/24\n");
    let mut seen = Observed::default();
    seen.nodes.insert("worker-1".into(), ObservedNode { pod_cidr: Some("10.1.1.0/24".parse().unwrap()), ..Default::default() });
    let err = plan(&s, &seen).unwrap_err();
    assert!(matches!(err, PlanError::PinDiffersFromRecorded { .. }), "{err}");
    assert!(err.to_string().contains("remove the pin or pin 10.1.1.0/24"), "{err}");
}

#[test]
fn a_pin_on_a_range_held_by_another_instance_is_refused() {
    let s = settings(THREE, "networking:\n  pod_cidrs:\n    worker-1: 10.1.7.0/24\n");
    let mut seen = Observed::default();
    seen.nodes.insert("old-node".into(), ObservedNode { pod_cidr: Some("10.1.7.0/24".parse().unwrap()), ..Default::default() });
    assert_eq!(
        plan(&s, &seen).unwrap_err(),
        PlanError::PinTaken { node: "worker-1".into(), pinned: "10.1.7.0/24".parse().unwrap(), holder: "old-node".into() }
    );
}

#[test]
fn a_recorded_range_outside_a_changed_pod_cidr_is_refused() {
    let s = settings(THREE, "networking:\n  pod_cidr: 10.2.0.0/16\n");
    let mut seen = Observed::default();
    seen.nodes.insert("master-1".into(), ObservedNode { pod_cidr: Some("10.1.0.0/24".parse().unwrap()), ..Default::default() });
    assert!(matches!(plan(&s, &seen).unwrap_err(), PlanError::RecordedCidrOutsidePodCidr { .. }));
}

#[test]
fn running_out_of_ranges_names_the_node() {
    let s = settings(&[("m", "master"), ("w", "worker")], "networking:\n  pod_cidr: 10.1.0.0/25\n  node_prefix: 26\n");
    let mut seen = Observed::default();
    seen.nodes.insert("gone-1".into(), ObservedNode { pod_cidr: Some("10.1.0.0/26".parse().unwrap()), ..Default::default() });
    seen.nodes.insert("gone-2".into(), ObservedNode { pod_cidr: Some("10.1.0.64/26".parse().unwrap()), ..Default::default() });
    assert_eq!(plan(&s, &seen).unwrap_err(), PlanError::NoRoom { node: "m".into() });
}

#[test]
fn metadata_carries_the_seed_tags_and_the_cluster_marks() {
    let s = settings(THREE, "");
    let p = plan(&s, &Observed::default()).unwrap();
    let m = &p.nodes[0].metadata;
    assert_eq!(m["ansible_host_groups"], "k8s_master");
    assert_eq!(m["ansible_host_vars"], "ansible_user->debian");
    assert_eq!(m["kos-cluster"], "demo");
    assert_eq!(m["kos-role"], "master");
    assert_eq!(m["kos-pod-cidr"], "10.1.0.0/24");
    assert_eq!(p.nodes[2].metadata["ansible_host_groups"], "k8s_worker");
}

#[test]
fn api_endpoints_follow_the_master_or_the_load_balancer() {
    let s = settings(THREE, "");
    let first = plan(&s, &Observed::default()).unwrap();
    assert_eq!(first.internal_api, None);
    assert_eq!(first.nodes_without_address(), ["master-1", "worker-1", "worker-2"]);
    let mut seen = observed_from(&first);
    seen.nodes.get_mut("master-1").unwrap().floating_ip = Some("203.0.113.7".parse().unwrap());
    let p = plan(&s, &seen).unwrap();
    assert_eq!(p.internal_api, Some("192.168.50.10".parse().unwrap()));
    assert_eq!(p.external_api, Some("203.0.113.7".parse().unwrap()));

    // Three masters: a VIP by default, carried by the masters' ports only, reached by
    // workers through their own balancer, and named by the API server's certificate.
    let text = "cluster: {name: demo}\ncloud: {image: i, flavor: f, network: n, router: r}\nssh: {user: debian, private_key: k}\nnodes:\n  - {name: m1, role: master}\n  - {name: m2, role: master}\n  - {name: m3, role: master}\n  - {name: w1, role: worker}\n";
    let s = Settings::parse(Path::new("s.yaml"), text).unwrap();
    assert_eq!(s.cluster.api_endpoint, crate::settings::ApiEndpoint::Vip);
    let before = plan(&s, &Observed::default()).unwrap();
    assert_eq!(before.internal_api, None);
    assert_eq!(before.address_pairs(&before.nodes[0]), ["10.1.0.0/24"], "no VIP yet: only the pod range");
    let seen = Observed { api_vip: Some("192.168.50.100".parse().unwrap()), ..Default::default() };
    let p = plan(&s, &seen).unwrap();
    assert_eq!(p.internal_api, Some("192.168.50.100".parse().unwrap()));
    assert_eq!(p.external_api, Some("192.168.50.100".parse().unwrap()));
    assert!(p.certificates.get("apiserver").unwrap().ip_addresses.contains(&"192.168.50.100".parse().unwrap()));
    assert_eq!(p.address_pairs(&p.nodes[2]), ["10.1.2.0/24", "192.168.50.100"]);
    assert_eq!(p.address_pairs(&p.nodes[3]), ["10.1.3.0/24"], "a worker never holds the VIP");
    assert_eq!(p.node_api(), Some((std::net::Ipv4Addr::LOCALHOST, super::LOCAL_API_PORT)));
    let seen = Observed { api_floating_ip: Some("203.0.113.100".parse().unwrap()), ..seen };
    assert_eq!(plan(&s, &seen).unwrap().external_api, Some("203.0.113.100".parse().unwrap()));
}

#[test]
fn each_cluster_gets_its_own_vrrp_router_id() {
    let ids: std::collections::BTreeSet<u8> = ["demo", "prod", "staging", "kt-ha"].iter().map(|c| super::vrrp_router_id(c)).collect();
    assert_eq!(ids.len(), 4);
    assert!(!ids.contains(&0));
    assert_eq!(super::vrrp_router_id("demo"), super::vrrp_router_id("demo"));
}

#[test]
fn apiserver_certificate_names_every_way_to_reach_it() {
    let s = settings(THREE, "networking:\n  domain: k8s.example\n");
    let first = plan(&s, &Observed::default()).unwrap();
    let mut seen = observed_from(&first);
    seen.nodes.get_mut("master-1").unwrap().floating_ip = Some("203.0.113.7".parse().unwrap());
    let p = plan(&s, &seen).unwrap();
    let api = p.certificates.get("apiserver").unwrap();
    for dns in ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.k8s.example"] {
        assert!(api.dns_names.iter().any(|d| d == dns), "{dns} missing from {:?}", api.dns_names);
    }
    for ip in ["10.96.0.1", "127.0.0.1", "192.168.50.10", "203.0.113.7"] {
        assert!(api.ip_addresses.contains(&ip.parse().unwrap()), "{ip} missing from {:?}", api.ip_addresses);
    }
    assert_eq!(api.usages, [Usage::Server]);
    assert_eq!(api.issuer, CaId::Cluster);
}

#[test]
fn certificate_list_is_kubeadm_grade() {
    let p = plan(&settings(THREE, "runtime: {kind: docker, docker_tls: true}\n"), &Observed::default()).unwrap();
    let stems: Vec<&str> = p.certificates.leaves.iter().map(|c| c.file_stem.as_str()).collect();
    insta::assert_yaml_snapshot!(stems);
    let kubelet = p.certificates.get("nodes/worker-1/kubelet-client").unwrap();
    assert_eq!(kubelet.common_name, "system:node:worker-1");
    assert_eq!(kubelet.organizations, ["system:nodes"]);
    assert_eq!(p.certificates.get("apiserver-etcd-client").unwrap().issuer, CaId::Etcd);
    assert_eq!(p.certificates.get("front-proxy-client").unwrap().issuer, CaId::FrontProxy);
    let peer = p.certificates.get("etcd/peer-master-1").unwrap();
    assert_eq!(peer.usages, [Usage::Server, Usage::Client]);
    assert!(p.certificates.get("etcd/server-worker-1").is_none(), "only masters run etcd");
    assert_eq!(p.certificates.get("admin").unwrap().organizations, [certificates::CLUSTER_ADMINS_GROUP]);
}

#[test]
fn observed_state_file_parses_and_rejects_unknown_keys() {
    let o = Observed::parse("nodes:\n  master-1: {fixed_ip: 192.168.50.11, pod_cidr: 10.1.0.0/24}\napi_vip: 192.168.50.100\n").unwrap();
    assert_eq!(o.nodes["master-1"].fixed_ip, Some("192.168.50.11".parse().unwrap()));
    assert!(Observed::parse("nodes:\n  m: {fixed: 1.2.3.4}\n").is_err());
}

#[test]
fn masters_join_etcd_in_a_recorded_order_and_the_running_ones_never_change() {
    use super::check_control_plane_change as check;
    use super::membership::{etcd_starts, removed_masters};
    let with = |masters: &[&str]| {
        let list: String = masters.iter().map(|m| format!("  - {{name: {m}, role: master}}\n")).collect();
        let text = format!(
            "cluster: {{name: demo}}\ncloud: {{image: i, flavor: f, network: n, router: r}}\nssh: {{user: debian, private_key: k}}\nnodes:\n{list}  - {{name: w1, role: worker}}\n"
        );
        Settings::parse(Path::new("s.yaml"), &text).unwrap()
    };
    let running = |order: Option<u32>| ObservedNode {
        server_id: Some("id".into()),
        role: Some("master".into()),
        etcd_order: order,
        ..Default::default()
    };
    let starts = |s: &Settings, o: &Observed| -> Vec<(String, u32, String)> {
        etcd_starts(s, o).into_iter().map(|(n, e)| (n, e.order, e.initial.join(","))).collect()
    };
    let row = |n: &str, o: u32, i: &str| (n.to_string(), o, i.to_string());
    // A new cluster: the first master makes etcd, the others join it one after the other.
    let three = with(&["m1", "m2", "m3"]);
    assert_eq!(starts(&three, &Observed::default()), [row("m1", 1, "m1"), row("m2", 2, "m1,m2"), row("m3", 3, "m1,m2,m3")]);
    let planned = plan(&three, &Observed::default()).unwrap();
    assert_eq!(planned.nodes[1].metadata["kos-etcd-order"], "2");
    assert!(planned.nodes[0].etcd.as_ref().unwrap().is_first() && !planned.nodes[2].etcd.as_ref().unwrap().is_first());
    assert!(planned.nodes[3].etcd.is_none() && !planned.nodes[3].metadata.contains_key("kos-etcd-order"), "a worker has no member");
    // Grown from one: the running master keeps its start, the new ones come after it.
    let mut seen = Observed::default();
    seen.nodes.insert("m1".into(), running(Some(1)));
    assert_eq!(starts(&three, &seen), [row("m1", 1, "m1"), row("m2", 2, "m1,m2"), row("m3", 3, "m1,m2,m3")]);
    assert_eq!(check(&three, &Observed { api_vip: Some("10.0.0.100".parse().unwrap()), ..seen.clone() }), Ok(()));
    // Shrunk to the third, then grown with new names: they join the one left.
    let mut seen = Observed::default();
    seen.nodes.insert("m3".into(), running(Some(3)));
    assert_eq!(starts(&with(&["m3", "m4", "m5"]), &seen), [row("m3", 3, "m3"), row("m4", 4, "m3,m4"), row("m5", 5, "m3,m4,m5")]);
    // A first run that made the second master only: it makes etcd, the others join it.
    let mut seen = Observed::default();
    seen.nodes.insert("m2".into(), running(Some(2)));
    assert_eq!(starts(&three, &seen), [row("m1", 3, "m2,m1"), row("m2", 2, "m2"), row("m3", 4, "m2,m1,m3")]);
    // A master of an older kos (no order recorded) comes first.
    let mut seen = Observed::default();
    seen.nodes.insert("m2".into(), running(None));
    assert_eq!(starts(&three, &seen)[1], row("m2", 1, "m2"));
    // Removed masters are named (their members go first); replacing every one is refused.
    let mut seen = Observed::default();
    for (i, m) in ["m1", "m2", "m3"].into_iter().enumerate() {
        seen.nodes.insert(m.into(), running(Some(i as u32 + 1)));
    }
    seen.nodes.insert("w1".into(), ObservedNode { server_id: Some("w".into()), role: Some("worker".into()), ..Default::default() });
    seen.api_vip = Some("10.0.0.100".parse().unwrap());
    let mut one = with(&["m1"]);
    one.cluster.api_endpoint = crate::settings::ApiEndpoint::Vip;
    assert_eq!(removed_masters(&one, &seen), ["m2", "m3"]);
    assert_eq!(check(&one, &seen), Ok(()));
    let err = check(&with(&["m4"]), &seen).unwrap_err().to_string();
    assert!(err.contains("remove every running master (m1, m2, m3)") && err.contains("keep at least one running master"), "{err}");
    let grown = three.clone();
    // How the API is reached stays as it was made: a VIP's port exists, or none does.
    let mut master_pinned = grown.clone();
    master_pinned.cluster.api_endpoint = crate::settings::ApiEndpoint::Master;
    let err = check(&master_pinned, &seen).unwrap_err().to_string();
    assert!(
        err.contains("reached through a VIP, and the settings say `api_endpoint: master`") && err.contains("set `api_endpoint: vip`"),
        "{err}"
    );
    seen.api_vip = None;
    let err = check(&grown, &seen).unwrap_err().to_string();
    assert!(err.contains("reached through its master's address, and the settings say `api_endpoint: vip`"), "{err}");
    assert_eq!(
        check(&grown, &Observed { api_vip: Some("10.0.0.100".parse().unwrap()), ..Observed::default() }),
        Ok(()),
        "nothing runs yet"
    );
}

#[test]
fn an_octavia_endpoint_is_the_load_balancers_address_and_stays_as_made() {
    use super::check_control_plane_change as check;
    use crate::settings::ApiEndpoint;
    let with = |endpoint: ApiEndpoint| {
        let text = "cluster: {name: demo, api_endpoint: octavia}\ncloud: {image: i, flavor: f, network: n, router: r}\nssh: {user: debian, private_key: k}\nnodes:\n  - {name: m1, role: master}\n  - {name: m2, role: master}\n  - {name: m3, role: master}\n  - {name: w1, role: worker}\n";
        let mut s = Settings::parse(Path::new("s.yaml"), text).unwrap();
        // (`master` with three masters is refused by the settings' own checks.)
        s.cluster.api_endpoint = endpoint;
        s
    };
    let octavia = with(ApiEndpoint::Octavia);
    // The load balancer's VIP and floating IP are how the API is reached, and named by its
    // certificate; the masters' ports carry no VIP (Octavia holds it).
    let lb = Observed {
        api_vip: Some("192.168.50.200".parse().unwrap()),
        api_floating_ip: Some("203.0.113.100".parse().unwrap()),
        api_load_balancer: true,
        ..Observed::default()
    };
    let p = plan(&octavia, &lb).unwrap();
    assert_eq!(p.api_endpoint, ApiEndpoint::Octavia);
    assert_eq!((p.internal_api, p.external_api), (lb.api_vip, lb.api_floating_ip));
    let sans = &p.certificates.get("apiserver").unwrap().ip_addresses;
    assert!(sans.contains(&"192.168.50.200".parse().unwrap()) && sans.contains(&"203.0.113.100".parse().unwrap()));
    assert_eq!(p.address_pairs(&p.nodes[0]), ["10.1.0.0/24"]);
    assert_eq!(p.node_api(), Some((Ipv4Addr::LOCALHOST, super::LOCAL_API_PORT)));
    // Running: a load balancer ↔ octavia, a VIP's port ↔ vip, neither ↔ master.
    let running = |mut o: Observed| {
        o.nodes.insert(
            "m1".into(),
            ObservedNode { server_id: Some("id".into()), role: Some("master".into()), masters: Some(3), ..Default::default() },
        );
        o
    };
    let vip = Observed { api_load_balancer: false, api_floating_ip: None, ..lb.clone() };
    assert_eq!(check(&octavia, &running(lb.clone())), Ok(()));
    for wanted in [ApiEndpoint::Vip, ApiEndpoint::Master] {
        let err = check(&with(wanted), &running(lb.clone())).unwrap_err().to_string();
        assert!(
            err.contains(&format!("reached through an Octavia load balancer, and the settings say `api_endpoint: {}`", wanted.as_str()))
                && err.contains("set `api_endpoint: octavia`"),
            "{err}"
        );
    }
    let err = check(&octavia, &running(vip)).unwrap_err().to_string();
    assert!(
        err.contains("reached through a VIP, and the settings say `api_endpoint: octavia`") && err.contains("set `api_endpoint: vip`"),
        "{err}"
    );
    let err = check(&octavia, &running(Observed::default())).unwrap_err().to_string();
    assert!(err.contains("reached through its master's address") && err.contains("set `api_endpoint: master`"), "{err}");
    assert_eq!(check(&with(ApiEndpoint::Vip), &lb), Ok(()), "nothing runs yet");
}
