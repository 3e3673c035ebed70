//! The node diff, the probe and the executor's script, run for real against files in a
//! temporary folder through a local `/bin/sh` (`LocalShell`: the same scripts kos sends
//! over SSH, without the SSH; units are left out, there is no systemd here).

use super::*;
use crate::execute;
use crate::probe::{self, FileState, NodeState, UnitState};
use crate::remote::Remote;
use crate::test_support::LocalShell;
use crate::wanted::{Content, NodeWants, PhaseWants, WantedFile, WantedUnit};

fn phase_with(files: Vec<WantedFile>) -> PhaseWants {
    PhaseWants { files, ..Default::default() }
}

fn node_with(phase: PhaseWants) -> NodeWants {
    NodeWants { node: "local".into(), phases: vec![(NodePhase::Kubernetes, phase)] }
}

fn state_with(path: &str, sha: &str, mode: u32) -> NodeState {
    let mut st = NodeState { os_id: "debian".into(), has_apt: true, ..Default::default() };
    st.files.insert(path.into(), FileState { sha256: sha.into(), mode, owner: "root:root".into() });
    st
}

#[test]
fn unchanged_files_and_running_units_give_no_changes() {
    let f = WantedFile::from_bytes("/etc/kubernetes/kubelet.conf", 0o600, b"x".to_vec());
    let mut wants = phase_with(vec![f.clone()]);
    wants.units.push(WantedUnit { name: "kubelet", restart_on: vec!["/etc/kubernetes/kubelet.conf".into()], restart_on_new: vec![] });
    let mut has = state_with(&f.path, &f.sha256, 0o600);
    has.units.insert("kubelet".into(), UnitState { enabled: "enabled".into(), active: "active".into() });
    assert_eq!(diff_phase(NodePhase::Kubernetes, &wants, &has), vec![]);
}

/// A static pod's manifest restarts the kubelet when it is new, not when it changed (the
/// kubelet replaces the pod by itself then).
#[test]
fn a_new_static_pod_restarts_the_kubelet_and_a_changed_one_does_not() {
    let pod = WantedFile::from_bytes("/etc/kubernetes/manifests/kube-apiserver.yaml", 0o600, b"new".to_vec());
    let mut wants = phase_with(vec![pod.clone()]);
    wants.units.push(WantedUnit { name: "kubelet", restart_on: vec![], restart_on_new: vec![pod.path.clone()] });
    let mut has = NodeState::default();
    has.units.insert("kubelet".into(), UnitState { enabled: "enabled".into(), active: "active".into() });
    let restarts =
        |has: &NodeState| diff_phase(NodePhase::Kubernetes, &wants, has).iter().filter(|c| matches!(c, Change::RestartUnit { .. })).count();
    assert_eq!(restarts(&has), 1, "new");
    let mut changed = state_with(&pod.path, "old", 0o600);
    changed.units = has.units.clone();
    assert_eq!(restarts(&changed), 0, "changed");
    has = state_with(&pod.path, &pod.sha256, 0o644);
    has.units = changed.units.clone();
    assert_eq!(restarts(&has), 0, "its mode only");
}

#[test]
fn a_changed_file_restarts_exactly_the_units_that_read_it() {
    let conf = WantedFile::from_bytes("/etc/kubernetes/kubelet.conf", 0o600, b"new".to_vec());
    let proxy = WantedFile::from_bytes("/var/lib/kube-proxy/config.yaml", 0o644, b"same".to_vec());
    let mut wants = phase_with(vec![conf.clone(), proxy.clone()]);
    wants.units.push(WantedUnit { name: "kubelet", restart_on: vec![conf.path.clone()], restart_on_new: vec![] });
    wants.units.push(WantedUnit { name: "kube-proxy", restart_on: vec![proxy.path.clone()], restart_on_new: vec![] });
    let mut has = state_with(&conf.path, "old", 0o600);
    has.files.insert(proxy.path.clone(), FileState { sha256: proxy.sha256.clone(), mode: 0o644, owner: "root:root".into() });
    for u in ["kubelet", "kube-proxy"] {
        has.units.insert(u.into(), UnitState { enabled: "enabled".into(), active: "active".into() });
    }
    let changes = diff_phase(NodePhase::Kubernetes, &wants, &has);
    assert_eq!(
        changes,
        vec![
            Change::WriteFile { path: conf.path.clone(), mode: "0600".into(), reason: FileReason::Content },
            Change::RestartUnit { unit: "kubelet".into(), why: "/etc/kubernetes/kubelet.conf changed".into() },
        ]
    );
}

#[test]
fn a_wrong_mode_is_fixed_without_a_restart() {
    let key = WantedFile::from_bytes("/var/lib/kubelet/pki/kubelet.key", 0o600, b"k".to_vec());
    let mut wants = phase_with(vec![key.clone()]);
    wants.units.push(WantedUnit { name: "kubelet", restart_on: vec![key.path.clone()], restart_on_new: vec![] });
    let mut has = state_with(&key.path, &key.sha256, 0o644);
    has.units.insert("kubelet".into(), UnitState { enabled: "enabled".into(), active: "active".into() });
    assert_eq!(
        diff_phase(NodePhase::Kubernetes, &wants, &has),
        vec![Change::WriteFile { path: key.path.clone(), mode: "0600".into(), reason: FileReason::Mode }]
    );
}

#[test]
fn a_restart_left_pending_by_a_killed_run_is_done_by_the_next() {
    // The killed run wrote the file (so it matches now) but never restarted the unit.
    let conf = WantedFile::from_bytes("/etc/containerd/config.toml", 0o644, b"c".to_vec());
    let mut wants = phase_with(vec![conf.clone()]);
    wants.units.push(WantedUnit { name: "containerd", restart_on: vec![conf.path.clone()], restart_on_new: vec![] });
    let mut has = state_with(&conf.path, &conf.sha256, 0o644);
    has.units.insert("containerd".into(), UnitState { enabled: "enabled".into(), active: "active".into() });
    has.pending = vec!["unit-containerd".into()];
    assert_eq!(
        diff_phase(NodePhase::Runtime, &wants, &has),
        vec![Change::RestartUnit { unit: "containerd".into(), why: "left pending by an interrupted run".into() }]
    );
}

#[test]
fn missing_packages_swap_and_stopped_units() {
    let wants = PhaseWants {
        packages: vec!["containerd".into(), "runc".into()],
        units: vec![WantedUnit { name: "containerd", restart_on: vec![], restart_on_new: vec![] }],
        swap_off: true,
        ..Default::default()
    };
    let has = NodeState { os_id: "debian".into(), has_apt: true, installed: vec!["runc".into()], swaps: 1, ..Default::default() };
    let lines: Vec<String> = diff_phase(NodePhase::Runtime, &wants, &has).iter().map(|c| c.to_string()).collect();
    assert_eq!(lines, vec!["install containerd", "turn swap off", "enable containerd", "restart containerd (not running)"]);
}

#[test]
fn unsupported_distributions_are_refused_with_the_fix() {
    let has = NodeState { os_id: "fedora".into(), os_version: "40".into(), ..Default::default() };
    let err = check_supported("worker-1", &has).unwrap_err();
    assert!(err.contains("worker-1 runs `fedora` 40") && err.contains("Debian"), "{err}");
    let ok = NodeState { os_id: "ubuntu".into(), has_apt: true, ..Default::default() };
    assert!(check_supported("w", &ok).is_ok());
}

#[test]
fn the_probe_output_is_parsed_and_garbage_is_refused() {
    let out = "os\tdebian\t12\nmachine\tx86_64\napt\nswaps\t0\npending\tunit-kubelet\npkg\tcontainerd\tii \npkg\trunc\trc \n\
               file\t/etc/a\tabc\t600\troot:root\nunit\tkubelet\tenabled\tactive\n";
    let st = probe::parse(out).unwrap();
    assert_eq!(st.os_id, "debian");
    assert_eq!(st.installed, vec!["containerd"]);
    assert_eq!(st.files["/etc/a"], FileState { sha256: "abc".into(), mode: 0o600, owner: "root:root".into() });
    assert_eq!(st.unit("kubelet"), UnitState { enabled: "enabled".into(), active: "active".into() });
    assert_eq!(st.pending, vec!["unit-kubelet"]);
    assert_eq!((st.kubelet_version, st.apiserver_version), (None, None), "no Kubernetes installed");
    let at = probe::parse("os\tdebian\t12\nversion\tkubelet\tv1.36.3\nversion\tapiserver\tv1.37.2\n").unwrap();
    assert_eq!(at.facts().kubelet_version.map(|v| v.to_string()).as_deref(), Some("1.36.3"));
    assert_eq!(at.facts().apiserver_version.map(|v| v.to_string()).as_deref(), Some("1.37.2"));
    assert_eq!(probe::parse("os\tdebian\t12\nversion\tkubelet\t\n").unwrap().kubelet_version, None, "a kubelet that says nothing");
    assert!(probe::parse("what is this\n").is_err());
    assert!(probe::parse("").is_err());
}

#[tokio::test]
async fn files_are_written_with_their_modes_and_a_second_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let key = WantedFile::from_bytes(&format!("{root}/etc/kubernetes/pki/kubelet.key"), 0o600, b"secret\n".to_vec());
    // 3 MiB of non-text bytes: the tar stream carries binaries too (named as no real program).
    let blob: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let bin = WantedFile::from_bytes(&format!("{root}/usr/local/bin/three-mib-of-bytes"), 0o755, blob);
    let quote = WantedFile::from_bytes(&format!("{root}/etc/it's here/a b.conf"), 0o644, b"odd path\n".to_vec());
    let node = node_with(phase_with(vec![key.clone(), bin.clone(), quote.clone()]));
    let phase = node.phase(NodePhase::Kubernetes).unwrap();

    let before = crate::provision::probe(&LocalShell::default(), &node).await.unwrap();
    let changes = diff_phase(NodePhase::Kubernetes, phase, &before);
    assert_eq!(changes.len(), 3, "{changes:?}");
    let warnings = execute::execute(&LocalShell::default(), NodePhase::Kubernetes, phase, &changes).await.unwrap();
    assert!(warnings.is_empty());

    use std::os::unix::fs::PermissionsExt;
    for f in [&key, &bin, &quote] {
        let meta = std::fs::metadata(&f.path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, f.mode, "{}", f.path);
        let Content::Bytes(b) = &f.content else { unreachable!() };
        assert_eq!(&std::fs::read(&f.path).unwrap(), b.as_ref());
    }
    let after = crate::provision::probe(&LocalShell::default(), &node).await.unwrap();
    assert_eq!(diff_phase(NodePhase::Kubernetes, phase, &after), vec![], "second run must change nothing");
    // No staging leftovers next to the files.
    let leftovers: Vec<_> = walk(dir.path()).into_iter().filter(|p| p.ends_with(".kos-new")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_download_with_the_wrong_checksum_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("kubelet.src");
    std::fs::write(&src, b"binary").unwrap();
    let target = dir.path().join("bin/kubelet").to_str().unwrap().to_string();
    let f = WantedFile {
        path: target.clone(),
        mode: 0o755,
        sha256: "0".repeat(64),
        content: Content::Download { url: format!("file://{}", src.display()) },
    };
    let phase = phase_with(vec![f]);
    let changes = vec![Change::WriteFile { path: target.clone(), mode: "0755".into(), reason: FileReason::New }];
    let err = execute::execute(&LocalShell::default(), NodePhase::Kubernetes, &phase, &changes).await.unwrap_err().to_string();
    assert!(err.contains("SHA-256 differs"), "{err}");
    assert!(!std::path::Path::new(&target).exists());
    assert!(!std::path::Path::new(&format!("{target}.kos-new")).exists());
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

/// The script one phase sends: proxy exported for apt and curl, packages before files
/// (a package's own config file must not win over kos's), markers before the actions
/// they stand for, each removed once its action succeeded.
#[test]
fn the_phase_script() {
    let conf = WantedFile::from_bytes("/etc/containerd/config.toml", 0o644, b"version = 2\n".to_vec());
    let mut wants = phase_with(vec![conf.clone()]);
    wants.env = vec!["HTTP_PROXY=http://proxy.example.org:3128".into(), "NO_PROXY=10.0.0.0/24".into()];
    let changes = vec![
        Change::InstallPackages { packages: vec!["containerd".into()] },
        Change::WriteFile { path: conf.path.clone(), mode: "0644".into(), reason: FileReason::New },
        Change::EnableUnit { unit: "containerd".into() },
        Change::RestartUnit { unit: "containerd".into(), why: "not running".into() },
    ];
    let (script, tar) = execute::build(&wants, &changes).unwrap();
    insta::assert_snapshot!(script);
    assert!(tar.len() >= 1024, "one file in a tar stream");
}

/// A file streamed from disk and an image import, run for real through the local shell:
/// the tar stream carries the file's bytes (not held in memory by kos), `putv` checks its
/// SHA-256 on arrival and puts it in place; an archive whose hash differs is refused before
/// anything is moved. (The import itself needs containerd: only its script line is checked.)
#[tokio::test]
async fn files_streamed_from_disk_arrive_checked() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &bytes).unwrap();
    let target = dir.path().join("out/big.bin");
    let sha = crate::wanted::sha256_hex(&bytes);
    let file = WantedFile {
        path: target.display().to_string(),
        mode: 0o755,
        sha256: sha.clone(),
        content: Content::File { path: src.clone(), len: bytes.len() as u64 },
    };
    let wants = phase_with(vec![file.clone()]);
    let changes = vec![Change::WriteFile { path: file.path.clone(), mode: "0755".into(), reason: FileReason::New }];
    let (script, stdin) = execute::build(&wants, &changes).unwrap();
    assert!(script.contains(&format!("putv 0 '{}' 0755 '{sha}'", target.display())), "{script}");
    assert_eq!(stdin.len() % 512, 0, "a whole tar stream");
    let out = LocalShell::default().run(&script, stdin).await.unwrap();
    assert!(out.success(), "{}", out.stderr_text());
    assert_eq!(std::fs::read(&target).unwrap(), bytes);

    // The same wants, but the source changed after its hash was taken (same size).
    std::fs::remove_file(&target).unwrap();
    let mut other = bytes.clone();
    other[0] ^= 1;
    std::fs::write(&src, &other).unwrap();
    let (script, stdin) = execute::build(&wants, &changes).unwrap();
    let out = LocalShell::default().run(&script, stdin).await.unwrap();
    assert!(!out.success() && out.stderr_text().contains("SHA-256"), "{}", out.stderr_text());
    assert!(!target.exists(), "a file that fails its check is never put in place");

    // An image: its archive goes to the run's private folder and is imported from there.
    let image = crate::wanted::WantedImage {
        name: "registry.k8s.io/pause:3.10.2".into(),
        digest: "sha256:feed".into(),
        archive: WantedFile { mode: 0o600, ..file },
    };
    let wants = PhaseWants { images: vec![image], ..Default::default() };
    let changes = vec![Change::ImportImage { image: "registry.k8s.io/pause:3.10.2".into(), why: "missing".into() }];
    let (script, _) = execute::build(&wants, &changes).unwrap();
    assert!(script.contains(&format!("putv 0 \"$t/image-0.tar\" 0600 '{sha}'")), "{script}");
    assert!(script.contains("import \"$t/image-0.tar\" 'registry.k8s.io/pause:3.10.2'"), "{script}");
    assert!(script.contains("rm -f \"$1\"; pin \"$2\"; }"), "every imported image is pinned: {script}");
    assert!(script.contains("ctr -n k8s.io images label \"$1\" io.cri-containerd.pinned=pinned"), "{script}");
    let (script, _) = execute::build(&wants, &[Change::PinImage { image: "registry.k8s.io/pause:3.10.2".into() }]).unwrap();
    assert!(script.contains("pin 'registry.k8s.io/pause:3.10.2'\n") && !script.contains("putv"), "{script}");
}

/// The probe hashes a file only when its stat (size, inode, mtime, ctime) differs from its
/// cache entry: proved by a forged entry that it trusts while the stat matches, and drops as
/// soon as the file is written again.
#[tokio::test]
async fn the_probe_hashes_only_files_whose_stat_changed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let cache_dir = dir.path().join("var-lib-kos");
    std::fs::create_dir(&cache_dir).unwrap();
    let cache = cache_dir.join("sha256.cache");
    let cache_s = cache.to_str().unwrap();
    let file = WantedFile::from_bytes(&format!("{root}/etc/a b/kubelet.conf"), 0o600, b"one\n".to_vec());
    std::fs::create_dir_all(dir.path().join("etc/a b")).unwrap();
    std::fs::write(&file.path, b"one\n").unwrap();
    let node = node_with(phase_with(vec![file.clone()]));
    let probe = |script: String| async move {
        probe::parse(&LocalShell::default().run(&script, Default::default()).await.unwrap().stdout_text()).unwrap()
    };

    let first = probe(probe::script_with_cache(&node, cache_s)).await;
    assert_eq!(first.files[&file.path].sha256, file.sha256);
    let entry = std::fs::read_to_string(&cache).unwrap();
    assert!(entry.ends_with(&format!("\t{}\t{}\n", file.sha256, file.path)), "{entry}");

    // A forged hash under the same stat key is believed: the file was not read again.
    let forged = "f".repeat(64);
    std::fs::write(&cache, entry.replace(&file.sha256, &forged)).unwrap();
    assert_eq!(probe(probe::script_with_cache(&node, cache_s)).await.files[&file.path].sha256, forged);

    // Written again (same size), its ctime changes: hashed afresh, the cache mended.
    std::fs::write(&file.path, b"two\n").unwrap();
    let again = probe(probe::script_with_cache(&node, cache_s)).await;
    assert_eq!(again.files[&file.path].sha256, crate::wanted::sha256_hex(b"two\n"));
    assert!(!std::fs::read_to_string(&cache).unwrap().contains(&forged));
    // Without its folder (a node kos never provisioned) nothing is written.
    let elsewhere = dir.path().join("absent/sha256.cache");
    probe(probe::script_with_cache(&node, elsewhere.to_str().unwrap())).await;
    assert!(!elsewhere.exists());
}

/// A member with data: the probe reads the flags its manifest started it with (the
/// rendered manifest's own lines), and nothing of them without data.
#[tokio::test]
async fn the_probe_reads_a_started_members_initial_cluster_flags() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("etcd.yaml");
    std::fs::write(
        &manifest,
        "spec:\n  containers:\n  - command:\n    - etcd\n    - --initial-advertise-peer-urls=https://10.0.0.12:2380\n    \
         - --initial-cluster=master-1=https://10.0.0.11:2380,master-2=https://10.0.0.12:2380\n    \
         - --initial-cluster-state=existing\n    - --initial-cluster-token=demo\n",
    )
    .unwrap();
    let data = dir.path().join("etcd");
    let script = probe::etcd_section(data.to_str().unwrap(), manifest.to_str().unwrap());
    let probe = |script: String| async move {
        probe::parse(&format!("os\tdebian\t12\n{}", LocalShell::default().run(&script, Default::default()).await.unwrap().stdout_text()))
            .unwrap()
    };
    let none = probe(script.clone()).await;
    assert!(!none.etcd_data && none.facts().etcd_started_with.is_none());
    std::fs::create_dir_all(data.join("member")).unwrap();
    let seen = probe(script).await;
    assert!(seen.etcd_data);
    assert_eq!(
        seen.facts().etcd_started_with,
        Some(kos_render::EtcdStartedWith {
            members: "master-1=https://10.0.0.11:2380,master-2=https://10.0.0.12:2380".into(),
            state: "existing".into()
        })
    );
}

/// A static pod's manifest goes in after the files it mounts; when the kubelet restarts in
/// the same run, the script first waits until the running kubelet started each pod that ran
/// before again (a kubelet restarted mid-replacement starts the new pod beside the old).
#[test]
fn static_pods_are_replaced_before_the_kubelet_restarts() {
    let manifest = WantedFile::from_bytes("/etc/kubernetes/manifests/kube-apiserver.yaml", 0o600, b"kind: Pod\n".to_vec());
    let cert = WantedFile::from_bytes("/etc/kubernetes/pki/apiserver-etcd-client.crt", 0o644, b"PEM\n".to_vec());
    let kubeconfig = WantedFile::from_bytes("/etc/kubernetes/kubelet.conf", 0o600, b"kind: Config\n".to_vec());
    let wants = phase_with(vec![manifest.clone(), cert.clone(), kubeconfig.clone()]);
    let write = |f: &WantedFile| Change::WriteFile { path: f.path.clone(), mode: "0600".into(), reason: FileReason::Content };
    let restart = Change::RestartUnit { unit: "kubelet".into(), why: "kubelet.conf changed".into() };
    let (script, _) = execute::build(&wants, &[write(&manifest), write(&cert), write(&kubeconfig), restart]).unwrap();
    let at = |needle: &str| script.find(needle).unwrap_or_else(|| panic!("{needle:?} in:\n{script}"));
    assert!(at("apiserver-etcd-client.crt") < at("/etc/kubernetes/manifests/kube-apiserver.yaml"), "{script}");
    assert!(at("/etc/kubernetes/manifests/kube-apiserver.yaml") < at("for m in $replaced"), "{script}");
    assert!(at("for m in $replaced") < at("systemctl restart 'kubelet'"), "{script}");
    assert!(script.contains("for m in kube-apiserver; do if started \"$m\""), "only the pods written: {script}");
    let syntax = std::process::Command::new("sh").args(["-n", "-c", &script]).output().unwrap();
    assert!(syntax.status.success(), "the shell reads it: {}", String::from_utf8_lossy(&syntax.stderr));
    // Without a kubelet restart the running kubelet replaces them by itself: no wait.
    let (script, _) = execute::build(&wants, &[write(&manifest), write(&cert)]).unwrap();
    assert!(!script.contains("$replaced") && script.contains("/etc/kubernetes/manifests/kube-apiserver.yaml"), "{script}");
    // A new kubelet (an upgrade) is restarted at once: it starts every static pod again itself.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("kubelet");
    std::fs::write(&bin, b"ELF").unwrap();
    let kubelet =
        WantedFile { path: "/usr/local/bin/kubelet".into(), mode: 0o755, sha256: "x".into(), content: Content::File { path: bin, len: 3 } };
    let mut upgrade = phase_with(vec![manifest.clone(), kubelet.clone()]);
    upgrade.units = vec![WantedUnit { name: "kubelet", restart_on: vec![kubelet.path.clone()], restart_on_new: vec![] }];
    let restart = Change::RestartUnit { unit: "kubelet".into(), why: "a new kubelet".into() };
    let (script, _) = execute::build(&upgrade, &[write(&manifest), write(&kubelet), restart]).unwrap();
    assert!(!script.contains("$replaced") && script.contains("systemctl restart 'kubelet'"), "{script}");
}
