//! What each node of the example cluster wants, from its real rendered files.

use super::*;
use crate::changes::diff;
use crate::probe::NodeState;
use kos_core::plan::{self, Observed};
use std::path::Path;

const SETTINGS: &str = include_str!("../../../../examples/settings.yaml");
const OBSERVED: &str = include_str!("../../../../examples/observed.yaml");

fn example(edit: impl FnOnce(String) -> String) -> (Settings, Vec<NodeWants>) {
    example_with(edit, false)
}

fn artifact(name: &str, kind: Kind, install_path: &str) -> Artifact {
    Artifact {
        name: name.to_string(),
        sha256: sha256_hex(name.as_bytes()),
        fetch: Fetch::Upload { path: format!("/art/{name}").into(), len: name.len() as u64 },
        install_path: install_path.to_string(),
        kind,
    }
}

/// The example's wants; with `full_set`, from an artifact set that also carries the
/// runtime, the CNI plugins and an image (what testbed/k8s/build.sh writes).
fn example_with(edit: impl FnOnce(String) -> String, full_set: bool) -> (Settings, Vec<NodeWants>) {
    let settings = Settings::parse(Path::new("examples/settings.yaml"), &edit(SETTINGS.to_string())).unwrap();
    let observed = Observed::parse(OBSERVED).unwrap();
    let plan = plan::plan(&settings, &observed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki = kos_pki::Pki::open(dir.path().join("pki"));
    pki.ensure(&plan.certificates, kos_pki::OffsetDateTime::now_utc()).unwrap();
    let env = kos_render::Environment { runtime_from_artifacts: full_set, ..Default::default() };
    let inputs = kos_render::Inputs {
        settings: &settings,
        plan: &plan,
        tenant_cidr: observed.tenant_cidr,
        local_dir: Path::new("/tmp/local"),
        env: &env,
    };
    let files = kos_render::render(&inputs, &pki).unwrap();
    let bin = |name: &str| artifact(name, Kind::Kubernetes, &format!("/usr/local/bin/{name}"));
    let mut arts = vec![bin("kubelet"), bin("kube-proxy"), bin("kubectl")];
    if full_set {
        for name in artifacts::RUNTIME_BINARIES {
            arts.push(artifact(name, Kind::Runtime, &format!("/usr/local/bin/{name}")));
        }
        arts.push(artifact("bridge", Kind::Cni, "/opt/cni/bin/bridge"));
        let pause = artifacts::ImageRef {
            name: "registry.k8s.io/pause:3.10.2".into(),
            digest: "sha256:abc".into(),
            origin: artifacts::ImageOrigin::ArtifactSet,
        };
        arts.push(artifact("pause.tar", Kind::Image(pause), "/var/lib/kos/images/pause.tar"));
    }
    let wants = plan.nodes.iter().map(|n| node_wants(&settings, &n.name, n.role, &files, &arts)).collect();
    (settings, wants)
}

fn paths(w: &NodeWants, phase: NodePhase) -> Vec<String> {
    w.phase(phase).unwrap().files.iter().map(|f| f.path.clone()).collect()
}

#[test]
fn files_go_to_their_phase_and_workers_never_get_a_ca_key_or_kubectl() {
    let (_, wants) = example(|s| s);
    let master = wants.iter().find(|w| w.node == "master-1").unwrap();
    let worker = wants.iter().find(|w| w.node == "worker-1").unwrap();
    assert!(paths(master, NodePhase::Runtime).contains(&"/etc/containerd/config.toml".to_string()));
    assert!(paths(master, NodePhase::Network).contains(&"/etc/cni/net.d/10-kos.conflist".to_string()));
    let k = paths(master, NodePhase::Kubernetes);
    assert!(k.contains(&"/etc/kubernetes/manifests/etcd.yaml".to_string()), "{k:?}");
    assert!(k.contains(&"/usr/local/bin/kubectl".to_string()));
    assert!(k.iter().any(|p| p == "/etc/kubernetes/pki/ca.key"), "{k:?}");
    let all: Vec<&str> = worker.all_paths();
    assert!(!all.iter().any(|p| p.ends_with("ca.key") || p.contains("/manifests/") || p.ends_with("kubectl")), "{all:?}");
    // Every private key is 0600.
    for w in &wants {
        for (_, pw) in &w.phases {
            for f in
                pw.files.iter().filter(|f| f.path.ends_with(".key") || f.path.ends_with(".conf") && f.path.starts_with("/etc/kubernetes/"))
            {
                assert_eq!(f.mode, 0o600, "{}", f.path);
            }
        }
    }
}

#[test]
fn the_docker_runtime_adds_its_package_and_unit() {
    let (_, wants) = example(|s| s.replace("kind: containerd", "kind: docker\n  docker_tls: true"));
    let rt = wants[0].phase(NodePhase::Runtime).unwrap();
    assert!(rt.packages.contains(&"docker.io".to_string()));
    let docker = rt.units.iter().find(|u| u.name == "docker").unwrap();
    assert!(docker.restarts_on("/etc/docker/tls/server.crt"));
    assert!(!docker.restarts_on("/etc/containerd/config.toml"));
    // dockerd does not start without cbr0: the bridge comes with the runtime, before docker.
    let names: Vec<&str> = rt.units.iter().map(|u| u.name).collect();
    assert_eq!(names, vec!["kos-pod-network", "containerd", "docker"]);
    assert!(rt.files.iter().any(|f| f.path == "/usr/local/lib/kos/pod-network.sh"));
}

/// What `kos up` does on a fresh Debian node, as `kos plan` lists it.
#[test]
fn a_fresh_worker_plan() {
    let (_, wants) = example(|s| s);
    let worker = wants.iter().find(|w| w.node == "worker-1").unwrap();
    let fresh = NodeState { os_id: "debian".into(), has_apt: true, machine: "x86_64".into(), ..Default::default() };
    let phases = [NodePhase::Runtime, NodePhase::Kubernetes, NodePhase::Network];
    let lines: Vec<String> = diff(worker, &fresh, &phases).iter().flat_map(|(p, cs)| cs.iter().map(move |c| format!("{p}: {c}"))).collect();
    insta::assert_snapshot!(lines.join("\n"));
}

/// With the runtime in the artifact set: no distribution containerd, kos's own unit, the
/// binaries in the runtime phase, and the image imported after containerd runs; a node
/// that already holds the image's digest gets nothing.
#[test]
fn a_full_artifact_set_brings_the_runtime_and_the_images() {
    let (_, wants) = example_with(|s| s, true);
    let worker = wants.iter().find(|w| w.node == "worker-1").unwrap();
    let rt = worker.phase(NodePhase::Runtime).unwrap();
    assert!(!rt.packages.iter().any(|p| p == "containerd" || p == "runc" || p == "containernetworking-plugins"), "{:?}", rt.packages);
    let files = paths(worker, NodePhase::Runtime);
    for p in ["/usr/local/bin/containerd", "/usr/local/bin/runc", "/opt/cni/bin/bridge", "/etc/systemd/system/containerd.service"] {
        assert!(files.contains(&p.to_string()), "{p} in {files:?}");
    }
    let containerd = rt.units.iter().find(|u| u.name == "containerd").unwrap();
    assert!(containerd.restarts_on("/usr/local/bin/containerd"));
    let fresh = NodeState { os_id: "debian".into(), has_apt: true, machine: "x86_64".into(), ..Default::default() };
    let changes = diff(worker, &fresh, &[NodePhase::Runtime]);
    let lines: Vec<String> = changes[0].1.iter().map(|c| c.to_string()).collect();
    assert_eq!(lines.last().unwrap(), "import image registry.k8s.io/pause:3.10.2 (missing)", "{lines:?}");
    let restart = lines.iter().position(|l| l.starts_with("restart containerd")).unwrap();
    assert!(restart < lines.len() - 1, "the import comes after containerd (re)starts: {lines:?}");
    let mut has = fresh.clone();
    has.images.insert("registry.k8s.io/pause:3.10.2".into(), "sha256:abc".into());
    assert!(!diff(worker, &has, &[NodePhase::Runtime])[0].1.iter().any(|c| matches!(c, crate::changes::Change::ImportImage { .. })));
    has.images.insert("registry.k8s.io/pause:3.10.2".into(), "sha256:old".into());
    let again: Vec<String> = diff(worker, &has, &[NodePhase::Runtime])[0].1.iter().map(|c| c.to_string()).collect();
    assert!(again.contains(&"import image registry.k8s.io/pause:3.10.2 (differs)".to_string()), "{again:?}");

    // The probe's `ctr images ls` lines: digest and labels; an image there but not pinned
    // (imported by an older kos) is pinned, not uploaded again.
    let seen = crate::probe::parse(
        "os\tdebian\t12\nimage\tregistry.k8s.io/pause:3.10.2\tsha256:abc\tio.cri-containerd.image=managed\n\
         image\tregistry.k8s.io/coredns/coredns:v1.14.6\tsha256:def\tio.cri-containerd.image=managed,io.cri-containerd.pinned=pinned\n",
    )
    .unwrap();
    assert_eq!(seen.images.len(), 2);
    assert_eq!(
        crate::probe::parse("os\tdebian\t12\niface\tens3\n").unwrap().interface.as_deref(),
        Some("ens3"),
        "the default route's interface"
    );
    assert_eq!(crate::probe::parse("os\tdebian\t12\niface\t\n").unwrap().interface, None, "no default route");
    assert_eq!(seen.unpinned_images.iter().collect::<Vec<_>>(), ["registry.k8s.io/pause:3.10.2"]);
    let has = NodeState { images: seen.images.clone(), unpinned_images: seen.unpinned_images, ..fresh.clone() };
    let pin: Vec<String> = diff(worker, &has, &[NodePhase::Runtime])[0].1.iter().map(|c| c.to_string()).collect();
    assert!(
        pin.contains(&"pin image registry.k8s.io/pause:3.10.2 (out of reach of the kubelet's image garbage collection)".to_string()),
        "{pin:?}"
    );
    assert!(!pin.iter().any(|l| l.starts_with("import image")), "{pin:?}");
}

/// An etcd image of the artifact set goes to masters only; the user's own image of the same
/// name (`artifacts.extra_images`: e.g. the e2e suite's etcd) goes to every node.
#[test]
fn extra_images_go_everywhere_whatever_their_name() {
    let image = |origin| {
        let etcd = artifacts::ImageRef { name: "registry.k8s.io/etcd:3.7.0-0".into(), digest: "sha256:abc".into(), origin };
        artifact("etcd.tar", Kind::Image(etcd), "/var/lib/kos/images/etcd.tar")
    };
    let ours = image(artifacts::ImageOrigin::ArtifactSet);
    assert!(wants_artifact(&ours, Role::Master) && !wants_artifact(&ours, Role::Worker));
    let users = image(artifacts::ImageOrigin::Extra);
    assert!(wants_artifact(&users, Role::Master) && wants_artifact(&users, Role::Worker));
}
