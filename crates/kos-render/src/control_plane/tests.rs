//! Every file a master gets beyond a node's, as snapshots (keys and PEM bodies
//! filtered), and the properties that make it secure.

use crate::Target;
use crate::fixture::{render_example, snapshot_settings};

const MASTER_ONLY: &[&str] = &[
    "/etc/kubernetes/manifests/etcd.yaml",
    "/etc/kubernetes/manifests/kube-apiserver.yaml",
    "/etc/kubernetes/manifests/kube-controller-manager.yaml",
    "/etc/kubernetes/manifests/kube-scheduler.yaml",
    "/etc/kubernetes/controller-manager.conf",
    "/etc/kubernetes/scheduler.conf",
    "/etc/kubernetes/encryption-config.yaml",
    "/etc/kubernetes/audit-policy.yaml",
    "/etc/kubernetes/authentication-config.yaml",
    "/etc/kubernetes/admission-config.yaml",
];

#[test]
fn snapshots_of_every_control_plane_file() {
    let r = render_example(|s| s);
    snapshot_settings().bind(|| {
        for path in MASTER_ONLY {
            let f = r.node_file("master-1", path);
            insta::assert_snapshot!(format!("master-1{}", path.replace('/', "_")), f.contents);
        }
    });
}

#[test]
fn master_key_material_is_private_and_the_etcd_ca_key_stays_home() {
    let r = render_example(|s| s);
    let master = Target::Node("master-1".into());
    for f in r.files.iter().filter(|f| f.target == master) {
        let kubernetes_conf = f.path.starts_with("/etc/kubernetes/") && f.path.ends_with(".conf");
        let secret = f.path.ends_with(".key") || kubernetes_conf || f.path.contains("/manifests/") || f.path.contains("encryption");
        if secret {
            assert_eq!(f.mode, 0o600, "{} should be 0600", f.path);
        }
        if f.contents.contains("PRIVATE KEY") {
            assert_eq!(f.mode, 0o600, "{} holds a private key", f.path);
        }
    }
    let paths = r.paths(&master);
    assert!(paths.contains(&"/etc/kubernetes/pki/ca.key".to_string()), "controller-manager signs with the cluster CA");
    assert!(!paths.iter().any(|p| p.ends_with("etcd/ca.key")), "the etcd CA key never leaves the operator's machine");
    assert!(!paths.iter().any(|p| p.ends_with("front-proxy-ca.key")), "nor the front-proxy CA key");
}

fn command(r: &crate::fixture::Rendered, pod: &str) -> Vec<String> {
    command_of(r, "master-1", pod)
}

/// A static pod's command line on `node`.
fn command_of(r: &crate::fixture::Rendered, node: &str, pod: &str) -> Vec<String> {
    let text = &r.node_file(node, &format!("/etc/kubernetes/manifests/{pod}.yaml")).contents;
    let value: serde_json::Value = serde_saphyr::from_str(text).unwrap();
    value["spec"]["containers"][0]["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

#[test]
fn apiserver_is_secure_by_default() {
    let r = render_example(|s| s);
    let cmd = command(&r, "kube-apiserver");
    for flag in [
        "--authorization-mode=Node,RBAC",
        "--profiling=false",
        "--service-account-lookup=true",
        "--tls-min-version=VersionTLS12",
        "--authentication-config=/etc/kubernetes/authentication-config.yaml",
        "--encryption-provider-config=/etc/kubernetes/encryption-config.yaml",
        "--kubelet-certificate-authority=/etc/kubernetes/pki/ca.crt",
        "--etcd-servers=https://127.0.0.1:2379",
        "--secure-port=6443",
        "--advertise-address=192.168.50.11",
        "--service-cluster-ip-range=10.96.0.0/12",
    ] {
        assert!(cmd.iter().any(|a| a == flag), "{flag} missing from {cmd:#?}");
    }
    for forbidden in ["--insecure-port", "--insecure-bind-address", "--anonymous-auth", "--token-auth-file", "AlwaysAllow", "AlwaysAdmit"] {
        assert!(!cmd.iter().any(|a| a.contains(forbidden)), "{forbidden} in {cmd:#?}");
    }
    let authn = &r.node_file("master-1", "/etc/kubernetes/authentication-config.yaml").contents;
    assert!(authn.contains("path: /livez") && authn.contains("path: /readyz"), "{authn}");
    assert!(!authn.contains("path: /\n"), "anonymous must not cover everything");
}

#[test]
fn etcd_demands_client_certificates_and_has_no_plaintext_port() {
    let r = render_example(|s| s);
    let cmd = command(&r, "etcd");
    for flag in ["--client-cert-auth=true", "--peer-client-cert-auth=true", "--auto-tls=false", "--peer-auto-tls=false"] {
        assert!(cmd.iter().any(|a| a == flag), "{flag} missing");
    }
    assert!(!cmd.iter().any(|a| a.contains("http://")), "no plaintext URL: {cmd:#?}");
    assert!(cmd.contains(&"--initial-cluster=master-1=https://192.168.50.11:2380".to_string()));
}

#[test]
fn the_first_master_makes_etcd_and_each_later_one_joins_the_masters_before_it() {
    let r = crate::fixture::render_observed(crate::fixture::three_masters, crate::fixture::OBSERVED_HA, &crate::Environment::default());
    let flags = |node: &str| {
        let cmd = command_of(&r, node, "etcd");
        let get = |k: &str| cmd.iter().find_map(|a| a.strip_prefix(&format!("--{k}="))).map(String::from).unwrap_or_default();
        (get("initial-cluster-state"), get("initial-cluster"))
    };
    let (m1, m2, m3) =
        ("master-1=https://192.168.50.11:2380", "master-2=https://192.168.50.21:2380", "master-3=https://192.168.50.31:2380");
    assert_eq!(flags("master-1"), ("new".into(), m1.to_string()));
    assert_eq!(flags("master-2"), ("existing".into(), format!("{m1},{m2}")));
    assert_eq!(flags("master-3"), ("existing".into(), format!("{m1},{m2},{m3}")));

    // A member that started once keeps what its manifest says, whatever the order says now
    // (master-1 made again comes last, which would make master-2 the first): its manifest,
    // and so its etcd, stay as they are.
    let kept = crate::EtcdStartedWith { members: format!("{m1},{m2}"), state: "existing".into() };
    let mut env = crate::Environment::default();
    env.nodes.insert("master-2".into(), crate::NodeFacts { etcd_data: true, etcd_started_with: Some(kept), ..Default::default() });
    let r = crate::fixture::render_observed(crate::fixture::three_masters, crate::fixture::OBSERVED_HA, &env);
    let cmd = command_of(&r, "master-2", "etcd");
    assert!(
        cmd.contains(&format!("--initial-cluster={m1},{m2}")) && cmd.contains(&"--initial-cluster-state=existing".to_string()),
        "{cmd:#?}"
    );
}

#[test]
fn components_bind_to_loopback_and_do_not_allocate_pod_cidrs() {
    let r = render_example(|s| s);
    let cm = command(&r, "kube-controller-manager");
    assert!(cm.contains(&"--bind-address=127.0.0.1".to_string()));
    assert!(cm.contains(&"--allocate-node-cidrs=false".to_string()), "kos assigns pod CIDRs, routed by Neutron");
    assert!(cm.contains(&"--profiling=false".to_string()));
    let sched = command(&r, "kube-scheduler");
    assert!(sched.contains(&"--bind-address=127.0.0.1".to_string()));
    let kubeconfig = &r.node_file("master-1", "/etc/kubernetes/scheduler.conf").contents;
    assert!(kubeconfig.contains("server: https://127.0.0.1:6443"), "{kubeconfig}");
}

#[test]
fn images_are_pinned_to_the_configured_version_and_registry() {
    let r = render_example(|s| s.replace("  # image_repository: registry.k8s.io", "  image_repository: mirror.example.org/k8s"));
    let text = &r.node_file("master-1", "/etc/kubernetes/manifests/kube-apiserver.yaml").contents;
    assert!(text.contains("image: mirror.example.org/k8s/kube-apiserver:v1.37.2"), "{text}");
    let etcd = &r.node_file("master-1", "/etc/kubernetes/manifests/etcd.yaml").contents;
    assert!(etcd.contains(&format!("image: mirror.example.org/k8s/etcd:{}", super::ETCD_IMAGE_TAG)), "{etcd}");
}

#[test]
fn encryption_key_is_stable_across_renders_of_the_same_pki() {
    let r = render_example(|s| s);
    let pki = kos_pki::Pki::open(r.pki_dir.path().join("pki"));
    let again = crate::Material::encryption_key(&pki).unwrap();
    let config = &r.node_file("master-1", "/etc/kubernetes/encryption-config.yaml").contents;
    assert!(config.contains(&again), "the key in the config is the stored one");
    assert!(config.contains("secretbox"), "{config}");
}

/// A renewed client certificate changes the manifests of the controller-manager and the
/// scheduler that read it only when they start, and only theirs; the API server's changes
/// only with a file it reads only as it starts (its etcd client certificate), not with one
/// it reads again by itself (its serving certificate).
#[test]
fn a_pod_restarts_when_a_file_it_reads_only_as_it_starts_changes() {
    let r = render_example(|s| s);
    let files: Vec<crate::RenderedFile> = r.files.iter().filter(|f| f.target == Target::Node("master-1".into())).cloned().collect();
    let pod = |name: &str| {
        let text = &r.node_file("master-1", &format!("/etc/kubernetes/manifests/{name}.yaml")).contents;
        let value: serde_json::Value = serde_saphyr::from_str(text).unwrap();
        serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(value).unwrap()
    };
    let annotation = |name: &str| pod(name).metadata.annotations.and_then(|a| a.get(super::FILES_HASH).cloned());
    assert!(annotation("etcd").is_none(), "etcd reads its certificates again itself");
    let hash = |name: &str, files: &[crate::RenderedFile]| {
        let read_at_start = super::read_only_at_start(name).unwrap();
        super::with_files_hash(pod(name), files, read_at_start).metadata.annotations.unwrap()[super::FILES_HASH].clone()
    };
    for name in ["kube-scheduler", "kube-apiserver"] {
        assert_eq!(annotation(name), Some(hash(name, &files)), "{name}'s manifest carries the hash of the files as rendered");
    }
    let changed = |path: &str| {
        let mut renewed = files.clone();
        renewed.iter_mut().find(|f| f.path == path).unwrap().contents.push('\n');
        renewed
    };
    let renewed = changed("/etc/kubernetes/scheduler.conf");
    assert_ne!(hash("kube-scheduler", &renewed), hash("kube-scheduler", &files), "the scheduler mounts its kubeconfig");
    assert_eq!(hash("kube-controller-manager", &renewed), hash("kube-controller-manager", &files), "not the scheduler's");
    let etcd_client = changed("/etc/kubernetes/pki/apiserver-etcd-client.crt");
    assert_ne!(hash("kube-apiserver", &etcd_client), hash("kube-apiserver", &files), "read only as it starts");
    let serving = changed("/etc/kubernetes/pki/apiserver.crt");
    assert_eq!(hash("kube-apiserver", &serving), hash("kube-apiserver", &files), "read again by itself");
}

/// An API server asked to stop keeps serving, not ready, while the API's endpoint moves
/// away from it; a single master's has nowhere to move to.
#[test]
fn an_api_server_of_several_masters_leaves_the_endpoint_before_it_stops() {
    let single = command(&render_example(|s| s), "kube-apiserver");
    assert!(!single.iter().any(|f| f.starts_with("--shutdown-delay-duration")), "{single:#?}");
    let r = crate::fixture::render_observed(crate::fixture::three_masters, crate::fixture::OBSERVED_HA, &crate::Environment::default());
    let ha = command_of(&r, "master-2", "kube-apiserver");
    assert!(ha.contains(&"--shutdown-delay-duration=8s".to_string()), "{ha:#?}");
}
