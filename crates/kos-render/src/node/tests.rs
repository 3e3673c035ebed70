#![allow(clippy::print_stdout, clippy::print_stderr)]
use super::*;
use crate::Target;
use crate::fixture::{Rendered, render_example, render_example_in, snapshot_settings};
use std::collections::BTreeMap;
use std::process::Command;

/// Docker runtime with its TLS API, instead of plain containerd.
fn docker_tls(s: String) -> String {
    s.replace("kind: containerd", "kind: docker").replace("# docker_tls: true", "docker_tls: true")
}

/// Docker runtime without the TCP API.
fn docker_plain(s: String) -> String {
    s.replace("kind: containerd", "kind: docker")
}

/// Nodes behind an HTTP proxy, with a pod MTU.
fn proxied(s: String) -> String {
    s.replace("# mtu: 1450", "mtu: 1450")
        + "proxy:\n  http: http://proxy.example.org:3128\n  https: http://proxy.example.org:3128\n  no_proxy: [.example.org, 10.20.0.0/16]\n"
}

/// The files `render_node` produced for `node`, in render order.
fn node_files<'a>(r: &'a Rendered, node: &str) -> Vec<&'a RenderedFile> {
    let target = Target::Node(node.to_string());
    r.files.iter().filter(|f| f.target == target && is_node_module_path(&f.path)).collect()
}

/// Paths this module renders (masters also get control-plane files from elsewhere).
fn is_node_module_path(path: &str) -> bool {
    const OURS: &[&str] = &[
        paths::CA_CERT,
        paths::KUBELET_CONFIG,
        paths::KUBELET_KUBECONFIG,
        paths::KUBELET_SERVING_CERT,
        paths::KUBELET_SERVING_KEY,
        paths::KUBELET_CLIENT_CERT,
        paths::KUBELET_CLIENT_KEY,
        paths::KUBELET_UNIT,
        paths::KUBE_PROXY_CONFIG,
        paths::KUBE_PROXY_KUBECONFIG,
        paths::KUBE_PROXY_UNIT,
        paths::CONTAINERD_CONFIG,
        paths::CONTAINERD_PROXY,
        paths::CNI_CONFLIST,
        paths::POD_NETWORK_SCRIPT,
        paths::POD_NETWORK_UNIT,
        paths::SYSCTL,
        paths::MODULES,
        paths::DOCKER_DAEMON,
        paths::DOCKER_DROP_IN,
        paths::DOCKER_PROXY,
        paths::DOCKER_TLS_CA,
        paths::DOCKER_TLS_CERT,
        paths::DOCKER_TLS_KEY,
    ];
    OURS.contains(&path)
}

/// All of a node's files as one text: `=== path (mode) ===` then the contents.
fn dump(r: &Rendered, node: &str) -> String {
    let mut out = String::new();
    for f in node_files(r, node) {
        out.push_str(&format!("=== {} ({:04o}) ===\n{}\n", f.path, f.mode, f.contents));
    }
    out
}

fn snapshot_nodes(variant: &str, r: &Rendered, nodes: &[&str]) {
    snapshot_settings().bind(|| {
        for node in nodes {
            insta::assert_snapshot!(format!("{variant}__{node}"), dump(r, node));
        }
    });
}

#[test]
fn snapshots_containerd() {
    let r = render_example(|s| s);
    snapshot_nodes("containerd", &r, &["master-1", "worker-1"]);
}

#[test]
fn snapshots_docker_tls() {
    let r = render_example(docker_tls);
    snapshot_nodes("docker_tls", &r, &["worker-1"]);
}

#[test]
fn snapshots_proxy() {
    let r = render_example(proxied);
    snapshot_nodes("proxy", &r, &["worker-1"]);
}

/// Each file of a node with the phase that writes it and the unit a change restarts:
/// what the executor and `kos plan` act on, decided by the renderer.
fn purposes(r: &Rendered, node: &str) -> String {
    let mut lines: Vec<String> = r
        .files
        .iter()
        .filter(|f| f.is_on(node))
        .map(|f| match f.kind {
            crate::Kind::Node { phase, restarts, restarts_if_new } => {
                let unit = match (restarts, restarts_if_new) {
                    (Some(u), _) => u.name().to_string(),
                    (None, Some(u)) => format!("{} if new", u.name()),
                    (None, None) => "-".to_string(),
                };
                format!("{:<10} {:<15} {}", phase.to_string(), unit, f.path)
            }
            other => panic!("{} on {node} is a node file, not {other:?}", f.path),
        })
        .collect();
    lines.sort();
    lines.join("\n") + "\n"
}

#[test]
fn each_node_file_says_its_phase_and_the_unit_it_restarts() {
    let containerd = render_example(|s| s);
    let docker = render_example(|s| proxied(docker_tls(s)));
    snapshot_settings().bind(|| {
        insta::assert_snapshot!("purposes__containerd__master-1", purposes(&containerd, "master-1"));
        insta::assert_snapshot!("purposes__docker_tls_proxy__worker-1", purposes(&docker, "worker-1"));
    });
}

fn yaml(file: &RenderedFile) -> serde_json::Value {
    serde_saphyr::from_str(&file.contents).unwrap_or_else(|e| panic!("{}: {e}", file.path))
}

fn json(file: &RenderedFile) -> serde_json::Value {
    serde_json::from_str(&file.contents).unwrap_or_else(|e| panic!("{}: {e}", file.path))
}

#[test]
fn workers_never_get_a_ca_key() {
    for variant in [(|s| s) as fn(String) -> String, docker_tls, proxied] {
        let r = render_example(variant);
        let pki = kos_pki::Pki::open(r.pki_dir.path().join("pki"));
        let ca_keys: Vec<String> = CaId::ALL.iter().map(|ca| Material::ca_key(&pki, *ca).unwrap()).collect();
        for worker in r.plan.workers() {
            let target = Target::Node(worker.name.clone());
            for f in r.files.iter().filter(|f| f.target == target) {
                assert!(!(f.path.starts_with("/etc/kubernetes/pki/") && f.path.ends_with(".key")), "{} gets {}", worker.name, f.path);
                for key in &ca_keys {
                    assert!(!f.contents.contains(key.trim()), "{}:{} holds a CA key", worker.name, f.path);
                }
            }
        }
    }
}

#[test]
fn private_files_are_0600_and_scripts_0755() {
    let r = render_example(docker_tls);
    for f in r.files.iter().filter(|f| matches!(f.target, Target::Node(_)) && is_node_module_path(&f.path)) {
        // Keys, and the kubelet's and kube-proxy's configuration and units (CIS 4.1.1, 4.1.9).
        let root_only = [paths::KUBELET_CONFIG, paths::KUBELET_UNIT, paths::KUBE_PROXY_CONFIG, paths::KUBE_PROXY_UNIT];
        let private = f.contents.contains("PRIVATE KEY")
            || f.contents.contains("client-key-data")
            || f.path.ends_with(".key")
            || root_only.contains(&f.path.as_str());
        let expected = if private {
            0o600
        } else if f.path.ends_with(".sh") {
            0o755
        } else {
            0o644
        };
        assert_eq!(f.mode, expected, "{:?}", f);
    }
}

#[test]
fn cni_does_not_masquerade_and_uses_the_node_range() {
    let r = render_example(|s| s);
    for node in &r.plan.nodes {
        let conf = json(r.node_file(&node.name, paths::CNI_CONFLIST));
        let bridge = &conf["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["bridge"], "cbr0");
        assert_eq!(bridge["ipMasq"], false);
        let range = &bridge["ipam"]["ranges"][0][0];
        assert_eq!(range["subnet"], node.pod_cidr.to_string());
        assert_eq!(range["gateway"], node.pod_gateway.to_string());
        assert!(range.get("rangeStart").is_none(), "containerd uses the whole range");
        assert_eq!(conf["plugins"][1]["type"], "portmap");
    }
}

#[test]
fn docker_shares_the_bridge_on_the_upper_half() {
    let r = render_example(docker_plain);
    let node = r.plan.node("worker-1").unwrap();
    let net = u32::from(node.pod_cidr.network());
    let conf = json(r.node_file("worker-1", paths::CNI_CONFLIST));
    let range = &conf["plugins"][0]["ipam"]["ranges"][0][0];
    assert_eq!(range["rangeStart"], Ipv4Addr::from(net + 2).to_string());
    assert_eq!(range["rangeEnd"], Ipv4Addr::from(net + 127).to_string());
    let daemon = json(r.node_file("worker-1", paths::DOCKER_DAEMON));
    assert_eq!(daemon["bridge"], "cbr0");
    assert_eq!(daemon["fixed-cidr"], format!("{}/25", Ipv4Addr::from(net + 128)));
    assert_eq!(daemon["ip-masq"], false);
}

#[test]
fn max_pods_follow_the_node_range() {
    let cidr = |s: &str| s.parse::<Ipv4Net>().unwrap();
    assert_eq!(PodRanges::of(cidr("10.1.0.0/24"), RuntimeKind::Containerd).max_pods(), 110);
    assert_eq!(PodRanges::of(cidr("10.1.0.0/24"), RuntimeKind::Docker).max_pods(), 110);
    assert_eq!(PodRanges::of(cidr("10.1.0.0/26"), RuntimeKind::Containerd).max_pods(), 61);
    let docker = PodRanges::of(cidr("10.1.0.64/26"), RuntimeKind::Docker);
    assert_eq!(docker.max_pods(), 30);
    assert_eq!(docker.cni, Some(("10.1.0.66".parse().unwrap(), "10.1.0.95".parse().unwrap())));
    assert_eq!(docker.docker, Some(cidr("10.1.0.96/27")));
}

#[test]
fn docker_never_listens_on_tcp_without_tls() {
    for (variant, tls) in [(docker_plain as fn(String) -> String, false), (docker_tls, true)] {
        let r = render_example(variant);
        for node in &r.plan.nodes {
            let daemon = json(r.node_file(&node.name, paths::DOCKER_DAEMON));
            let hosts: Vec<&str> = daemon["hosts"].as_array().map(|h| h.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
            let tcp = hosts.iter().any(|h| h.starts_with("tcp://"));
            assert_eq!(tcp, tls, "{hosts:?}");
            if tcp {
                assert_eq!(daemon["tls"], true);
                assert_eq!(daemon["tlsverify"], true);
                for key in ["tlscacert", "tlscert", "tlskey"] {
                    let path = daemon[key].as_str().unwrap();
                    r.node_file(&node.name, path);
                }
                assert!(hosts.contains(&format!("tcp://{}:2376", node.fixed_ip.unwrap()).as_str()));
                let drop_in = unit(r.node_file(&node.name, paths::DOCKER_DROP_IN));
                assert_eq!(
                    drop_in["Service"]["ExecStart"],
                    vec!["".to_string(), "/usr/bin/env dockerd --containerd=/run/containerd/containerd.sock".into()]
                );
            } else {
                assert!(!r.paths(&Target::Node(node.name.clone())).contains(&paths::DOCKER_DROP_IN.to_string()));
            }
        }
    }
}

#[test]
fn kubelet_is_locked_down() {
    let r = render_example(|s| s);
    for node in &r.plan.nodes {
        let c = yaml(r.node_file(&node.name, paths::KUBELET_CONFIG));
        assert_eq!(c["kind"], "KubeletConfiguration");
        assert_eq!(c["authentication"]["anonymous"]["enabled"], false);
        assert_eq!(c["authentication"]["webhook"]["enabled"], true);
        assert_eq!(c["authentication"]["x509"]["clientCAFile"], paths::CA_CERT);
        assert_eq!(c["authorization"]["mode"], "Webhook");
        assert_eq!(c["readOnlyPort"], 0);
        assert_eq!(c["clusterDNS"][0], r.plan.dns_ip.to_string());
        assert_eq!(c["tlsCertFile"], paths::KUBELET_SERVING_CERT);
        r.node_file(&node.name, c["tlsPrivateKeyFile"].as_str().unwrap());
        assert_eq!(c["cgroupDriver"], "systemd");
        assert_eq!(c["protectKernelDefaults"], true);

        // The kubelet's identity is its own node.
        let kc = yaml(r.node_file(&node.name, paths::KUBELET_KUBECONFIG));
        assert_eq!(kc["users"][0]["name"], format!("system:node:{}", node.name));
        let server = kc["clusters"][0]["cluster"]["server"].as_str().unwrap();
        match node.role {
            Role::Master => assert_eq!(server, "https://127.0.0.1:6443"),
            Role::Worker => assert_eq!(server, format!("https://{}:6443", r.plan.internal_api.unwrap())),
        }
    }
}

#[test]
fn protect_kernel_defaults_has_its_sysctls() {
    let r = render_example(|s| s);
    let sysctl = &r.node_file("worker-1", paths::SYSCTL).contents;
    for line in ["net.ipv4.ip_forward = 1", "net.bridge.bridge-nf-call-iptables = 1", "vm.overcommit_memory = 1", "kernel.panic = 10"] {
        assert!(sysctl.contains(line), "{line}");
    }
    let modules = &r.node_file("worker-1", paths::MODULES).contents;
    assert!(modules.lines().any(|l| l == "br_netfilter") && modules.lines().any(|l| l == "overlay"));
}

#[test]
fn masquerade_script_never_flushes_others_rules() {
    for variant in [(|s| s) as fn(String) -> String, docker_tls] {
        let r = render_example(variant);
        let script = &r.node_file("worker-1", paths::POD_NETWORK_SCRIPT).contents;
        let code: Vec<&str> = script.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
        for line in &code {
            for bad in [" -F", "--flush", " -X", "--delete-chain", "-P ", "--policy"] {
                assert!(!line.contains(bad), "`{bad}` in: {line}");
            }
            if line.contains("iptables-restore") {
                assert!(line.contains("--noflush"), "{line}");
            }
        }
        // Chains declared to iptables-restore (and so flushed) are kos's own.
        for line in code.iter().filter(|l| l.starts_with(':')) {
            assert!(line.starts_with(":KOS-"), "{line}");
        }
        // Jumps are added only after `-C` found them missing.
        let check = script.find(r#"-C "$chain""#).unwrap();
        let append = script.find(r#"-A "$chain""#).unwrap();
        assert!(check < append);
        let node = r.plan.node("worker-1").unwrap();
        assert!(script.contains(&format!("ensure nat POSTROUTING last -s {} ", node.pod_cidr)));
        assert!(script.contains(&format!("-A KOS-POD-MASQ -d {} ", r.plan.pod_cidr)));
        // The example's tenant subnet (examples/observed.yaml) is not masqueraded either.
        assert!(script.contains("-A KOS-POD-MASQ -d 192.168.50.0/24 "));
    }
}

#[test]
fn pod_network_script_is_valid_bash() {
    let r = render_example(docker_tls);
    for node in ["master-1", "worker-1"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pod-network.sh");
        std::fs::write(&path, &r.node_file(node, paths::POD_NETWORK_SCRIPT).contents).unwrap();
        let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// A systemd unit as section → key → values (repeated keys keep their order;
/// continuation lines are joined).
fn unit(file: &RenderedFile) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut current = None;
    let mut logical = String::new();
    for raw in file.contents.lines() {
        if let Some(cont) = raw.strip_suffix('\\') {
            logical.push_str(cont);
            continue;
        }
        logical.push_str(raw);
        let line = std::mem::take(&mut logical);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.to_string());
            sections.entry(name.to_string()).or_default();
            continue;
        }
        let section = current.clone().unwrap_or_else(|| panic!("{}: `{line}` outside a section", file.path));
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{}: not key=value: {line}", file.path));
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        sections.entry(section).or_default().entry(key.trim().to_string()).or_default().push(value);
    }
    sections
}

fn one<'a>(u: &'a BTreeMap<String, BTreeMap<String, Vec<String>>>, section: &str, key: &str) -> &'a str {
    let v = u.get(section).and_then(|s| s.get(key)).unwrap_or_else(|| panic!("no {key} in [{section}]"));
    assert_eq!(v.len(), 1, "{key}: {v:?}");
    &v[0]
}

#[test]
fn units_have_what_systemd_needs() {
    let r = render_example(proxied);
    let node = r.plan.node("worker-1").unwrap();

    let kubelet = unit(r.node_file("worker-1", paths::KUBELET_UNIT));
    let exec = one(&kubelet, "Service", "ExecStart");
    for arg in [
        "/usr/local/bin/kubelet".to_string(),
        format!("--config={}", paths::KUBELET_CONFIG),
        format!("--kubeconfig={}", paths::KUBELET_KUBECONFIG),
        "--hostname-override=worker-1".into(),
        format!("--node-ip={}", node.fixed_ip.unwrap()),
    ] {
        assert!(exec.split(' ').any(|a| a == arg), "{arg} missing from {exec}");
    }
    assert_eq!(one(&kubelet, "Service", "Restart"), "always");
    assert!(one(&kubelet, "Unit", "After").contains("containerd.service"));
    assert!(one(&kubelet, "Unit", "Wants").contains("containerd.service"));
    assert_eq!(one(&kubelet, "Install", "WantedBy"), "multi-user.target");
    let env = &kubelet["Service"]["Environment"];
    assert!(env.iter().any(|e| e.starts_with("\"HTTP_PROXY=http://proxy.example.org:3128")), "{env:?}");

    let proxy = unit(r.node_file("worker-1", paths::KUBE_PROXY_UNIT));
    assert_eq!(one(&proxy, "Service", "ExecStart"), format!("/usr/local/bin/kube-proxy --config={}", paths::KUBE_PROXY_CONFIG));
    assert_eq!(one(&proxy, "Install", "WantedBy"), "multi-user.target");

    let net = unit(r.node_file("worker-1", paths::POD_NETWORK_UNIT));
    assert_eq!(one(&net, "Service", "Type"), "oneshot");
    assert_eq!(one(&net, "Service", "RemainAfterExit"), "yes");
    assert_eq!(one(&net, "Service", "ExecStart"), paths::POD_NETWORK_SCRIPT);
    for before in ["containerd.service", "docker.service", "kubelet.service"] {
        assert!(one(&net, "Unit", "Before").split(' ').any(|u| u == before), "{before}");
    }
    assert!(one(&net, "Unit", "After").contains("network-online.target"));

    let drop_in = unit(r.node_file("worker-1", paths::CONTAINERD_PROXY));
    let env = &drop_in["Service"]["Environment"];
    let no_proxy = env.iter().find(|e| e.contains("NO_PROXY=")).unwrap();
    for entry in [
        "localhost",
        "127.0.0.1",
        "10.1.0.0/16",
        "10.96.0.0/12",
        "192.168.50.0/24",
        ".svc",
        ".cluster.local",
        "192.168.50.13",
        ".example.org",
        "10.20.0.0/16",
    ] {
        assert!(no_proxy.trim_matches('"').trim_start_matches("NO_PROXY=").split(',').any(|e| e == entry), "{entry} not in {no_proxy}");
    }
}

#[test]
fn no_proxy_files_without_proxy() {
    let r = render_example(docker_tls);
    let paths = r.paths(&Target::Node("worker-1".into()));
    assert!(!paths.iter().any(|p| p.ends_with("http-proxy.conf")), "{paths:?}");
    assert!(!r.node_file("worker-1", paths::KUBELET_UNIT).contents.contains("Environment="));
}

/// Runs the rendered pod-network.sh twice in a fresh network namespace and inspects
/// what it did. Needs root and `ip`/`iptables` (CI runs as root).
#[test]
fn pod_network_script_is_idempotent_in_a_network_namespace() {
    let root = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false);
    let have = |tool: &str| Command::new(tool).arg("--version").output().is_ok() || Command::new(tool).arg("-V").output().is_ok();
    if !root || !have("ip") || !have("iptables") {
        eprintln!("SKIP pod_network_script_is_idempotent_in_a_network_namespace: needs root, ip and iptables");
        return;
    }
    let r = render_example(|s| s);
    let node = r.plan.node("worker-1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pod-network.sh");
    std::fs::write(&script, &r.node_file("worker-1", paths::POD_NETWORK_SCRIPT).contents).unwrap();

    let ns = Netns::new(&format!("kos-rt-{}", std::process::id()));
    ns.run(&["ip", "link", "set", "lo", "up"]);
    // Someone else's NAT rule, which must survive.
    let unrelated = ["-s", "198.51.100.0/24", "-m", "comment", "--comment", "not-kos", "-j", "MASQUERADE"];
    ns.run(&[&["iptables", "-t", "nat", "-A", "POSTROUTING"][..], &unrelated[..]].concat());

    for _ in 0..2 {
        ns.run(&["bash", script.to_str().unwrap()]);
    }

    let postrouting = ns.run(&["iptables", "-t", "nat", "-S", "POSTROUTING"]);
    let jumps: Vec<&str> = postrouting.lines().filter(|l| l.contains("-j KOS-POD-MASQ")).collect();
    assert_eq!(jumps.len(), 1, "{postrouting}");
    assert!(jumps[0].contains(&format!("-s {}", node.pod_cidr)), "{postrouting}");
    assert!(postrouting.contains("-s 198.51.100.0/24") && postrouting.contains("not-kos"), "{postrouting}");

    let chain = ns.run(&["iptables", "-t", "nat", "-S", "KOS-POD-MASQ"]);
    let rules: Vec<&str> = chain.lines().filter(|l| l.starts_with("-A")).collect();
    assert_eq!(rules.len(), 3, "{chain}");
    assert!(rules[0].contains(&format!("-d {}", r.plan.pod_cidr)) && rules[0].ends_with("-j RETURN"), "{chain}");
    assert!(rules[1].contains("-d 192.168.50.0/24") && rules[1].ends_with("-j RETURN"), "{chain}");
    assert!(rules[2].ends_with("-j MASQUERADE"), "{chain}");

    let forward = ns.run(&["iptables", "-S", "FORWARD"]);
    assert_eq!(forward.lines().filter(|l| l.contains("-j KOS-POD-FORWARD")).count(), 1, "{forward}");

    let addr = ns.run(&["ip", "-4", "addr", "show", "dev", "cbr0"]);
    assert!(addr.contains(&format!("inet {}/{} ", node.pod_gateway, node.pod_cidr.prefix_len())), "{addr}");
    assert_eq!(ns.run(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(), "1");
    drop(ns);

    // With docker, pod traffic is also accepted ahead of docker's own rules.
    let r = render_example(docker_tls);
    std::fs::write(&script, &r.node_file("worker-1", paths::POD_NETWORK_SCRIPT).contents).unwrap();
    let ns = Netns::new(&format!("kos-rt-{}-docker", std::process::id()));
    for _ in 0..2 {
        ns.run(&["bash", script.to_str().unwrap()]);
    }
    let docker_user = ns.run(&["iptables", "-S", "DOCKER-USER"]);
    assert_eq!(docker_user.lines().filter(|l| l.contains("-j KOS-POD-FORWARD")).count(), 1, "{docker_user}");
}

/// A network namespace deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "delete", name]).output();
        let out = Command::new("ip").args(["netns", "add", name]).output().unwrap();
        assert!(out.status.success(), "ip netns add: {}", String::from_utf8_lossy(&out.stderr));
        Netns { name: name.to_string() }
    }

    /// Run a command inside; panics with its output when it fails.
    fn run(&self, cmd: &[&str]) -> String {
        let out = Command::new("ip").args(["netns", "exec", &self.name]).args(cmd).output().unwrap();
        assert!(out.status.success(), "{cmd:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).output();
    }
}

#[test]
fn no_two_files_share_a_path_on_a_node() {
    let r = render_example(docker_tls);
    for node in &r.plan.nodes {
        let paths = r.paths(&Target::Node(node.name.clone()));
        let mut unique = paths.clone();
        unique.dedup();
        assert_eq!(paths, unique, "{}", node.name);
    }
}

/// The runtime from the artifact set on container-like nodes (what the test bed's probe sees):
/// containerd 2.x's own config and unit, OOM scores clamped; the kubelet told to accept
/// cgroup v1; kube-proxy told to leave nf_conntrack_max. A node not probed keeps the defaults.
#[test]
fn snapshots_artifact_runtime_on_a_container_like_node() {
    let facts = crate::NodeFacts {
        cgroup_v1: true,
        conntrack_max_fixed: true,
        oom_score_restricted: true,
        interface: None,
        etcd_data: false,
        etcd_started_with: None,
        kubelet_version: None,
        apiserver_version: None,
    };
    let env = crate::Environment { runtime_from_artifacts: true, nodes: [("worker-1".to_string(), facts)].into() };
    let r = render_example_in(|s| s, &env);
    snapshot_nodes("artifact_runtime", &r, &["worker-1"]);
    let kubelet = yaml(r.node_file("worker-1", paths::KUBELET_CONFIG));
    assert_eq!(kubelet["failCgroupV1"], false);
    let proxy = yaml(r.node_file("worker-1", paths::KUBE_PROXY_CONFIG));
    assert_eq!(proxy["conntrack"]["maxPerCore"], 0);
    assert!(r.node_file("worker-1", paths::CONTAINERD_CONFIG).contents.contains("restrict_oom_score_adj = true"));
    assert!(r.node_file("worker-1", paths::CONTAINERD_UNIT).contents.contains("ExecStart=/usr/local/bin/containerd"));
    // worker-2 was not probed: a current VM.
    let other = yaml(r.node_file("worker-2", paths::KUBELET_CONFIG));
    assert!(other.get("failCgroupV1").is_none(), "{other}");
    assert!(yaml(r.node_file("worker-2", paths::KUBE_PROXY_CONFIG)).get("conntrack").is_none());
    assert!(!r.node_file("worker-2", paths::CONTAINERD_CONFIG).contents.contains("restrict_oom_score_adj"));
}

/// `crate::images` names exactly the images the rendered cluster runs: every `image:` of
/// every static pod and add-on, and containerd's sandbox image (what an air-gapped artifact
/// set is checked against).
#[test]
fn the_image_list_is_what_the_manifests_run() {
    let r = render_example(|s| s);
    let settings = kos_core::settings::Settings::parse(
        std::path::Path::new("examples/settings.yaml"),
        include_str!("../../../../examples/settings.yaml"),
    )
    .unwrap();
    let listed = crate::images(&settings);
    let mut used: Vec<String> = r
        .files
        .iter()
        .flat_map(|f| {
            f.contents.lines().filter_map(|l| l.trim().strip_prefix("image: ").map(|i| i.trim_matches('"').to_string())).collect::<Vec<_>>()
        })
        .collect();
    used.push(
        r.node_file("worker-1", paths::CONTAINERD_CONFIG)
            .contents
            .lines()
            .find_map(|l| l.trim().strip_prefix("sandbox_image = "))
            .unwrap()
            .trim_matches('"')
            .to_string(),
    );
    used.sort();
    used.dedup();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    assert_eq!(used, listed_sorted);
}

#[test]
fn kubelet_eviction_thresholds_keep_the_defaults_of_the_signals_not_set() {
    let plain = render_example(|s| s);
    let node = &plain.plan.nodes[0].name;
    let c = yaml(plain.node_file(node, paths::KUBELET_CONFIG));
    assert!(c.get("evictionHard").is_none() && c.get("imageGCHighThresholdPercent").is_none(), "the kubelet's own defaults: {c:?}");

    let tuned =
        render_example(|s| s + "kubelet: {eviction_hard: {nodefs.available: 3%}, image_gc_high_percent: 95, image_gc_low_percent: 90}\n");
    let c = yaml(tuned.node_file(node, paths::KUBELET_CONFIG));
    let eviction = &c["evictionHard"];
    assert_eq!(eviction["nodefs.available"], "3%");
    for (signal, default) in kos_core::settings::KUBELET_EVICTION_DEFAULTS.iter().filter(|(s, _)| *s != "nodefs.available") {
        assert_eq!(eviction[*signal], *default, "{signal} keeps the kubelet's default");
    }
    assert_eq!((c["imageGCHighThresholdPercent"].as_u64(), c["imageGCLowThresholdPercent"].as_u64()), (Some(95), Some(90)));
}
