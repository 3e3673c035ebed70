//! The stand-in as systemd runs it: started under the name `kubelet` or `kube-proxy` with
//! the flags kos renders, against files shaped like kos's rendered ones (copied from the
//! kos-render node snapshots, paths moved into a temporary folder).

// clippy's allow-unwrap-in-tests covers `#[test]` functions only, not the helpers of an
// integration-test crate; a panic is how these helpers report a failure.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHfake\n-----END PRIVATE KEY-----\n";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A node's kubelet and kube-proxy files, as kos renders them, under `root`.
struct Node {
    root: tempfile::TempDir,
    reports: PathBuf,
}

impl Node {
    fn path(&self, p: &str) -> String {
        format!("{}{p}", self.root.path().display())
    }

    fn write(&self, p: &str, text: &str) {
        let path = PathBuf::from(self.path(p));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn kubeconfig(user: &str) -> String {
        format!(
            "clusters:\n- name: demo\n  cluster:\n    server: https://192.168.50.11:6443\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {ca}\n    client-key-data: {key}\ncontexts:\n- name: {user}@demo\n  context:\n    cluster: demo\n    user: {user}\ncurrent-context: {user}@demo\nkind: Config\napiVersion: v1\n",
            ca = b64(CERT),
            key = b64(KEY),
        )
    }

    fn new() -> Node {
        let node = Node {
            root: tempfile::tempdir().unwrap(),
            reports: PathBuf::new(),
        };
        let reports = node.root.path().join("run/kos-test-standin");
        let node = Node { reports, ..node };
        node.write("/etc/kubernetes/pki/ca.crt", CERT);
        node.write("/var/lib/kubelet/pki/kubelet.crt", CERT);
        node.write("/var/lib/kubelet/pki/kubelet.key", KEY);
        node.write(
            "/etc/kubernetes/kubelet.conf",
            &Node::kubeconfig("system:node:worker-1"),
        );
        node.write(
            "/etc/kubernetes/kube-proxy.conf",
            &Node::kubeconfig("system:kube-proxy"),
        );
        std::fs::create_dir_all(node.path("/etc/kubernetes/manifests")).unwrap();
        // From crates/kos-render/src/node/snapshots/*worker-1.snap.
        let kubelet_config = "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
    cacheTTL: 2m0s
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
clusterDNS:
- \"10.96.0.10\"
clusterDomain: cluster.local
tlsCertFile: /var/lib/kubelet/pki/kubelet.crt
tlsPrivateKeyFile: /var/lib/kubelet/pki/kubelet.key
tlsMinVersion: VersionTLS12
cgroupDriver: systemd
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
readOnlyPort: 0
staticPodPath: /etc/kubernetes/manifests
failSwapOn: true
maxPods: 110
";
        node.write("/var/lib/kubelet/config.yaml", &node.rooted(kubelet_config));
        let proxy_config = "apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
bindAddress: \"0.0.0.0\"
clientConnection:
  kubeconfig: /etc/kubernetes/kube-proxy.conf
clusterCIDR: 10.1.0.0/16
hostnameOverride: worker-1
mode: iptables
";
        node.write(
            "/var/lib/kube-proxy/config.yaml",
            &node.rooted(proxy_config),
        );
        node
    }

    /// Move the absolute paths of a rendered file under the temporary root.
    fn rooted(&self, text: &str) -> String {
        let root = self.root.path().display().to_string();
        text.replace(": /etc/", &format!(": {root}/etc/"))
            .replace(": /var/", &format!(": {root}/var/"))
    }

    /// The flags of kubelet.service.j2, both flag forms mixed.
    fn kubelet_args(&self) -> Vec<String> {
        vec![
            format!("--config={}", self.path("/var/lib/kubelet/config.yaml")),
            "--kubeconfig".to_string(),
            self.path("/etc/kubernetes/kubelet.conf"),
            "--hostname-override=worker-1".to_string(),
            "--node-ip=192.168.50.12".to_string(),
        ]
    }

    fn kube_proxy_args(&self) -> Vec<String> {
        vec![format!(
            "--config={}",
            self.path("/var/lib/kube-proxy/config.yaml")
        )]
    }

    fn command(&self, name: &str, args: &[String]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kos-test-standin"));
        cmd.arg0(format!("/usr/local/bin/{name}"))
            .args(args)
            .env("KOS_TEST_STANDIN_REPORT_DIR", &self.reports);
        cmd
    }

    fn run(&self, name: &str, args: &[String]) -> Output {
        self.command(name, args).output().unwrap()
    }

    fn start(&self, name: &str, args: &[String]) -> Running {
        Running(
            self.command(name, args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }
}

/// A started stand-in, killed (by its PID, through the Child) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(path: &Path, child: &mut Child) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).unwrap();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the stand-in exited ({status}) before writing {}",
                path.display()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no report at {} after 20 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn kubelet_with_rendered_files_reports_and_stays_up() {
    let node = Node::new();
    let args = node.kubelet_args();
    let mut running = node.start("kubelet", &args);
    let report = wait_for(&node.reports.join("kubelet.json"), &mut running.0);
    assert_eq!(report["binary"], "kubelet");
    assert_eq!(report["pid"], running.0.id());
    assert_eq!(report["args"], serde_json::json!(args));
    let checked: Vec<String> = serde_json::from_value(report["checked"].clone()).unwrap();
    for want in [
        "kind KubeletConfiguration, apiVersion kubelet.config.k8s.io/v1beta1",
        "tlsCertFile",
        "tlsPrivateKeyFile",
        "authentication.x509.clientCAFile",
        "staticPodPath",
        "kubelet.conf: client-key-data: a PEM private key",
        "--node-ip 192.168.50.12",
    ] {
        assert!(
            checked.iter().any(|c| c.contains(want)),
            "{want:?} not in {checked:#?}"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        running.0.try_wait().unwrap().is_none(),
        "the stand-in idles like a daemon"
    );
    running.0.kill().unwrap();
}

#[test]
fn kube_proxy_with_rendered_files_reports_and_stays_up() {
    let node = Node::new();
    let mut running = node.start("kube-proxy", &node.kube_proxy_args());
    let report = wait_for(&node.reports.join("kube-proxy.json"), &mut running.0);
    assert_eq!(report["binary"], "kube-proxy");
    let checked = report["checked"].to_string();
    assert!(
        checked.contains("kind KubeProxyConfiguration")
            && checked.contains("kube-proxy.conf: server https://"),
        "{checked}"
    );
    assert!(running.0.try_wait().unwrap().is_none());
}

#[test]
fn version_prints_the_stand_in_version() {
    let node = Node::new();
    for name in ["kubelet", "kube-proxy"] {
        let out = node.run(name, &["--version".to_string()]);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Kubernetes v0.0.0-kos-test-standin\n"
        );
    }
}

#[test]
fn unknown_flag_fails_like_the_real_kubelet() {
    let node = Node::new();
    let mut args = node.kubelet_args();
    args.push("--x=1".to_string());
    let out = node.run("kubelet", &args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown flag: --x"),
        "{}",
        stderr(&out)
    );
    assert!(!node.reports.join("kubelet.json").exists());
}

#[test]
fn wrong_kind_fails() {
    let node = Node::new();
    // kube-proxy's configuration given to the kubelet.
    let mut args = node.kubelet_args();
    args[0] = format!("--config={}", node.path("/var/lib/kube-proxy/config.yaml"));
    let out = node.run("kubelet", &args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("kind is \"KubeProxyConfiguration\", expected KubeletConfiguration"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_serving_certificate_fails_naming_it() {
    let node = Node::new();
    std::fs::remove_file(node.path("/var/lib/kubelet/pki/kubelet.crt")).unwrap();
    let out = node.run("kubelet", &node.kubelet_args());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("tlsCertFile") && stderr(&out).contains("kubelet.crt"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn kube_proxy_kubeconfig_without_client_key_fails() {
    let node = Node::new();
    let text = Node::kubeconfig("system:kube-proxy");
    let without_key: String = text
        .lines()
        .filter(|l| !l.contains("client-key-data"))
        .map(|l| format!("{l}\n"))
        .collect();
    node.write("/etc/kubernetes/kube-proxy.conf", &without_key);
    let out = node.run("kube-proxy", &node.kube_proxy_args());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("has no client-key(-data)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn other_names_are_refused() {
    let node = Node::new();
    let out = node.run("kos-test-standin", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("TEST STAND-IN"), "{}", stderr(&out));
}
