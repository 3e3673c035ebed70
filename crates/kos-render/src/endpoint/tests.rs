//! The API endpoint's files: keepalived on masters, the local balancer on workers, and
//! where each node's kubelet then reaches the API.

use crate::Environment;
use crate::fixture::{OBSERVED_HA, render_example, render_observed, snapshot_settings, three_masters};
use crate::node::paths;

fn probed(interface: &str) -> Environment {
    let facts = crate::NodeFacts { interface: Some(interface.into()), ..crate::NodeFacts::default() };
    Environment {
        nodes: ["master-1", "master-2", "master-3"].iter().map(|n| (n.to_string(), facts.clone())).collect(),
        ..Environment::default()
    }
}

#[test]
fn snapshots_of_the_vip_and_the_local_balancer() {
    let r = render_observed(three_masters, OBSERVED_HA, &probed("ens3"));
    snapshot_settings().bind(|| {
        for (node, path) in [
            ("master-1", super::KEEPALIVED_CONF_PATH),
            ("master-1", "/etc/kubernetes/manifests/kos-api-vip.yaml"),
            ("worker-1", super::HAPROXY_CFG_PATH),
            ("worker-1", "/etc/kubernetes/manifests/kos-api-balancer.yaml"),
        ] {
            insta::assert_snapshot!(format!("{node}{}", path.replace('/', "_")), r.node_file(node, path).contents);
        }
    });
}

#[test]
fn each_master_speaks_to_the_others_on_the_probed_interface() {
    let r = render_observed(three_masters, OBSERVED_HA, &probed("ens3"));
    let conf = &r.node_file("master-2", super::KEEPALIVED_CONF_PATH).contents;
    assert!(conf.contains("unicast_src_ip 192.168.50.21\n"), "{conf}");
    assert!(conf.contains("        192.168.50.11\n        192.168.50.31\n"), "{conf}");
    assert!(!conf.contains("        192.168.50.21\n"), "a master is not its own peer: {conf}");
    assert!(conf.contains("192.168.50.100/32 dev ens3"), "{conf}");
    assert!(conf.contains("interface ens3\n"), "{conf}");
    // Distinct priorities, the first master highest.
    let priority = |node: &str| {
        let c = &r.node_file(node, super::KEEPALIVED_CONF_PATH).contents;
        c.lines().find_map(|l| l.trim().strip_prefix("priority ")).unwrap().parse::<u32>().unwrap()
    };
    assert!(priority("master-1") > priority("master-2") && priority("master-2") > priority("master-3"));
    assert_eq!(r.node_file("master-1", super::KEEPALIVED_CONF_PATH).mode, 0o600);
}

#[test]
fn workers_reach_every_api_server_through_their_own_balancer_and_masters_their_own() {
    let r = render_observed(three_masters, OBSERVED_HA, &probed("eth0"));
    let cfg = &r.node_file("worker-2", super::HAPROXY_CFG_PATH).contents;
    assert!(cfg.contains("bind 127.0.0.1:7445\n"), "{cfg}");
    for (m, ip) in [("master-1", "192.168.50.11"), ("master-2", "192.168.50.21"), ("master-3", "192.168.50.31")] {
        assert!(cfg.contains(&format!("server {m} {ip}:6443\n")), "{cfg}");
    }
    assert!(r.node_file("worker-2", paths::KUBELET_KUBECONFIG).contents.contains("server: https://127.0.0.1:7445\n"));
    assert!(r.node_file("worker-2", paths::KUBE_PROXY_KUBECONFIG).contents.contains("server: https://127.0.0.1:7445\n"));
    assert!(r.node_file("master-3", paths::KUBELET_KUBECONFIG).contents.contains("server: https://127.0.0.1:6443\n"));
    // No balancer on a master, no keepalived on a worker.
    assert!(!r.paths(&crate::Target::Node("master-1".into())).iter().any(|p| p.contains("kos-api-balancer")));
    assert!(!r.paths(&crate::Target::Node("worker-1".into())).iter().any(|p| p.contains("kos-api-vip")));
    // The operator's kubeconfig goes to the VIP's floating IP.
    assert!(r.local_file("admin.kubeconfig").contents.contains("server: https://203.0.113.100:6443\n"));
}

#[test]
fn a_changed_configuration_changes_its_pod_so_the_kubelet_restarts_it() {
    let hash = |observed: &str| {
        let r = render_observed(three_masters, observed, &probed("eth0"));
        let pod = &r.node_file("worker-1", "/etc/kubernetes/manifests/kos-api-balancer.yaml").contents;
        pod.lines().find(|l| l.contains("kos.io/config-sha256")).unwrap().to_string()
    };
    assert_eq!(hash(OBSERVED_HA), hash(OBSERVED_HA));
    assert_ne!(hash(OBSERVED_HA), hash(&OBSERVED_HA.replace("192.168.50.31", "192.168.50.32")));
    // Like every static pod, writing it new restarts the kubelet (kubernetes#103658).
    let r = render_observed(three_masters, OBSERVED_HA, &probed("eth0"));
    for (node, path) in
        [("worker-1", "/etc/kubernetes/manifests/kos-api-balancer.yaml"), ("master-2", "/etc/kubernetes/manifests/kos-api-vip.yaml")]
    {
        let kind = r.node_file(node, path).kind;
        let new_restarts_kubelet =
            crate::Kind::Node { phase: crate::NodePhase::Kubernetes, restarts: None, restarts_if_new: Some(crate::Unit::Kubelet) };
        assert_eq!(kind, new_restarts_kubelet, "{path}");
    }
}

#[test]
fn one_master_has_no_endpoint_of_its_own() {
    let r = render_example(|s| s);
    assert!(!r.files.iter().any(|f| f.path.contains("kos-api-")), "no VIP, no balancer");
    assert!(r.node_file("worker-1", paths::KUBELET_KUBECONFIG).contents.contains("server: https://192.168.50.11:6443\n"));
}

#[test]
fn with_octavia_the_masters_run_no_keepalived_and_workers_keep_their_balancer() {
    let octavia = |s: String| three_masters(s).replace("  name: demo\n", "  name: demo\n  api_endpoint: octavia\n");
    let observed = OBSERVED_HA.replace("api_vip: ", "api_load_balancer: true\napi_vip: ");
    let r = render_observed(octavia, &observed, &probed("eth0"));
    for m in ["master-1", "master-2", "master-3"] {
        assert!(!r.paths(&crate::Target::Node(m.into())).iter().any(|p| p.contains("kos-api-")), "{m}: nothing of the endpoint");
    }
    let cfg = &r.node_file("worker-1", super::HAPROXY_CFG_PATH).contents;
    assert!(cfg.contains("server master-3 192.168.50.31:6443\n"), "{cfg}");
    assert!(r.node_file("worker-1", paths::KUBELET_KUBECONFIG).contents.contains("server: https://127.0.0.1:7445\n"));
    assert!(r.local_file("admin.kubeconfig").contents.contains("server: https://203.0.113.100:6443\n"));
    assert_eq!(super::images(kos_core::settings::ApiEndpoint::Octavia), [super::HAPROXY_IMAGE]);
}
