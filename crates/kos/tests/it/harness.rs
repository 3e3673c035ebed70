//! The shared harness of the end-to-end tests on the test bed: one [`Cluster`] per scenario in
//! its own folder, driven through the real `kos` binary, the artifact set's real kubectl and
//! the ssh_config kos writes, and destroyed on drop (also when a test fails).

use crate::support;
use crate::testbed_cloud::{openstack, openstack_ok};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::io::{BufRead as _, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const HOW_TO_START: &str = "TB_PREFIX=kose testbed/with-testbed.sh cargo nextest run -p kos --test it testbed_";

/// Every phase of `kos up` but `addons` (the scenarios that do not need the API).
pub(crate) const CLUSTER_PHASES: &str = "check,instances,runtime,kubernetes,network,verify";

/// The workload image of the artifact set (the host's busybox-static, built by testbed/k8s/build.sh).
/// The test bed's nodes keep their files on the host's one disk, shared with every build and
/// test bed on the machine: with the kubelet's default thresholds (15 % free for images, 10 %
/// for the node) pods were evicted for DiskPressure whenever the host's disk filled up, whatever
/// the cluster used. Lower thresholds, as `examples/testbed.yaml` has them (testbed/README.md,
/// gotcha 6).
pub(crate) const TESTBED_KUBELET: &str = "kubelet: {eviction_hard: {imagefs.available: 2%, nodefs.available: 2%}}";

pub(crate) const BUSYBOX: &str = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1";

/// The artifact folder testbed/k8s/build.sh wrote (test.sh passes it; by hand: its default).
pub(crate) fn artifact_set() -> PathBuf {
    built_set("KOS_TEST_ARTIFACTS", "KUBERNETES", "testbed/k8s/build.sh")
}

/// The artifact folder of the previous minor, where the upgrade starts (`build.sh --previous`).
pub(crate) fn previous_artifact_set() -> PathBuf {
    built_set("KOS_TEST_ARTIFACTS_PREVIOUS", "KUBERNETES_PREVIOUS", "testbed/k8s/build.sh --previous")
}

/// A pin of testbed/k8s/versions.env (`KUBERNETES`, `KUBERNETES_PREVIOUS`).
pub(crate) fn pinned(name: &str) -> String {
    let pins = std::fs::read_to_string(support::repo_root().join("testbed/k8s/versions.env")).expect("testbed/k8s/versions.env");
    let line = pins.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix('='));
    line.unwrap_or_else(|| panic!("{name}= in versions.env")).to_string()
}

/// The folder named by `var` (test.sh sets it), else the default of the version pinned as `pin`.
fn built_set(var: &str, pin: &str, how: &str) -> PathBuf {
    let dir =
        std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(format!("/var/tmp/kos-k8s/artifacts-v{}", pinned(pin))));
    assert!(dir.join("SHA256SUMS").exists(), "no artifact set at {}: run {how} (test.sh does) before the test bed starts", dir.display());
    dir
}

/// The units kos runs on every node of a containerd cluster.
pub(crate) const UNITS: [&str; 4] = ["containerd", "kubelet", "kube-proxy", "kos-pod-network"];

pub(crate) fn nodes_are_up() -> bool {
    support::testbed("KOS_TEST_NODES", HOW_TO_START)
}

pub(crate) fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is set by `{HOW_TO_START}`"))
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Polls `check` every 0.5 s until it returns `Some`, for at most `secs` seconds; on a
/// timeout the panic carries `explain()`.
pub(crate) fn wait_for<T>(what: &str, secs: u64, mut check: impl FnMut() -> Option<T>, explain: impl FnOnce() -> String) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for: {what}\n{}", explain());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Whether a node's or pod's JSON says its Ready condition is True.
pub(crate) fn is_ready(object: &serde_json::Value) -> bool {
    object["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Whether `ip` lies in `cidr` (`a.b.c.d/n`).
pub(crate) fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, len) = cidr.split_once('/').expect("a CIDR");
    let (ip, net): (Ipv4Addr, Ipv4Addr) = (ip.parse().expect("an IPv4 address"), net.parse().expect("an IPv4 network"));
    let mask = u32::MAX.checked_shl(32 - len.parse::<u32>().expect("a prefix length")).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

/// The first address of a /24 pod range: the node's pod gateway on cbr0.
pub(crate) fn gateway(cidr: &str) -> String {
    let net = cidr.split_once('/').expect("a CIDR").0;
    let mut octets: Vec<&str> = net.split('.').collect();
    octets[3] = "1";
    octets.join(".")
}

/// A node of the settings.
#[derive(Debug, Clone)]
pub(crate) struct NodeSpec {
    pub(crate) name: &'static str,
    pub(crate) master: bool,
    pub(crate) floating_ip: bool,
}

pub(crate) const fn master(name: &'static str, floating_ip: bool) -> NodeSpec {
    NodeSpec { name, master: true, floating_ip }
}

pub(crate) const fn worker(name: &'static str) -> NodeSpec {
    NodeSpec { name, master: false, floating_ip: false }
}

/// What one `kos` run did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) secs: f64,
}

impl Run {
    pub(crate) fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The report of `kos up -o json`, checked against its documented schema.
    pub(crate) fn report(&self) -> serde_json::Value {
        let report: serde_json::Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("kos up -o json printed no JSON ({e}):\n{}\n{}", self.stdout, self.stderr));
        let schema = support::repo_root().join("docs/up-report.schema.json");
        let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&schema).expect("the schema")).expect("schema JSON");
        let validator = jsonschema::validator_for(&schema).expect("a valid schema");
        let errors: Vec<String> = validator.iter_errors(&report).map(|e| format!("{}: {e}", e.instance_path())).collect();
        assert!(errors.is_empty(), "the report does not match docs/up-report.schema.json: {errors:#?}\n{report:#}");
        report
    }

    /// Each step's time, from the report: `(step, "12.3 s")`.
    pub(crate) fn phase_times(&self) -> Vec<(String, String)> {
        let report = self.report();
        report["timings"]
            .as_array()
            .map(|t| {
                t.iter()
                    .map(|t| (t["step"].as_str().unwrap_or("?").to_owned(), format!("{:.1} s", t["seconds"].as_f64().unwrap_or(0.0))))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The notes of a `kos up -o json` report, a line each.
pub(crate) fn up_notes(report: &serde_json::Value) -> Vec<&str> {
    report["notes"].as_array().into_iter().flatten().filter_map(|n| n.as_str()).collect()
}

/// Facts of an up report, for assertions.
pub(crate) struct UpFacts<'a>(pub(crate) &'a serde_json::Value);

impl UpFacts<'_> {
    /// Cloud changes whose words start with `prefix`.
    pub(crate) fn cloud_changes(&self, prefix: &str) -> usize {
        self.0["cloud"].as_array().map_or(0, |c| c.iter().filter(|c| c["change"].as_str().is_some_and(|t| t.starts_with(prefix))).count())
    }

    /// The node phases that changed something on `node`.
    pub(crate) fn node_phases(&self, node: &str) -> Vec<String> {
        let nodes = self.0["nodes"].as_array().cloned().unwrap_or_default();
        let Some(n) = nodes.iter().find(|n| n["node"] == node) else { return Vec::new() };
        n["phases"].as_array().map(|p| p.iter().filter_map(|p| p["phase"].as_str().map(str::to_owned)).collect()).unwrap_or_default()
    }

    /// Whether `node` was verified with every check passing.
    pub(crate) fn verified_ok(&self, node: &str) -> bool {
        self.0["verified"].as_array().is_some_and(|v| {
            v.iter()
                .any(|v| v["node"] == node && v["checks"].as_u64().unwrap_or(0) > 0 && v["failures"].as_array().is_some_and(Vec::is_empty))
        })
    }

    pub(crate) fn changes(&self) -> u64 {
        self.0["changes"].as_u64().expect("changes")
    }
}

/// A row of `kos status`.
#[derive(Debug, Clone)]
pub(crate) struct StatusRow {
    pub(crate) server: String,
    pub(crate) fixed_ip: String,
    pub(crate) floating_ip: String,
    pub(crate) pod_cidr: String,
    pub(crate) route: String,
    pub(crate) ssh: String,
    pub(crate) kubelet: String,
}

/// One cluster of the test, in its own folder (settings, `.kos/` state, a HOME and a
/// KUBECONFIG of its own, so the user's ~/.kube/config is never touched); destroyed on drop.
pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) name: String,
    pub(crate) nodes: Vec<NodeSpec>,
    pub(crate) destroyed: bool,
}

impl Cluster {
    /// Writes `settings.yaml` for these nodes (first one: master) on the seeded test cloud,
    /// with the real artifact set.
    pub(crate) fn new(prefix: &str, nodes: &[NodeSpec], pod_cidr: &str, runtime: &str) -> Cluster {
        Cluster::with_images(prefix, nodes, pod_cidr, runtime, &[])
    }

    /// [`Cluster::new`] whose settings also load these image folders on every node
    /// (`artifacts.extra_images`).
    pub(crate) fn with_images(prefix: &str, nodes: &[NodeSpec], pod_cidr: &str, runtime: &str, extra_images: &[PathBuf]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = format!("{prefix}{}", std::process::id());
        let artifacts = artifact_set();
        let key = Path::new(&env("TC_HOME")).join("demo-key.pem");
        assert!(key.exists(), "the seeded keypair's private key {} is missing", key.display());
        let mut settings = format!(
            "cluster: {{name: {name}}}\n\
             cloud: {{image: tiny, flavor: m1.tiny, network: demo-net, router: demo-router, floating_ip_pool: public, key_name: demo-key}}\n\
             ssh: {{user: debian, private_key: {key}}}\n\
             networking: {{pod_cidr: {pod_cidr}}}\n\
             runtime: {runtime}\n\
             artifacts: {{source: local, dir: {art}, extra_images: [{extra}]}}\n\
             {TESTBED_KUBELET}\n\
             nodes:\n",
            key = key.display(),
            art = artifacts.display(),
            extra = extra_images.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        );
        for n in nodes {
            let role = if n.master { "master" } else { "worker" };
            settings += &format!("  - {{name: {}, role: {role}, floating_ip: {}}}\n", n.name, n.floating_ip);
        }
        std::fs::write(dir.path().join("settings.yaml"), settings).expect("settings written");
        std::fs::create_dir_all(dir.path().join("home")).expect("home");
        Cluster { dir, name, nodes: nodes.to_vec(), destroyed: false }
    }

    /// Settings `text` (as the harness wrote them, or edited) naming Kubernetes `version`,
    /// installed from the artifact set `set`.
    pub(crate) fn at_version(&self, text: &str, version: &str, set: &Path) -> String {
        let at = text
            .replacen(
                &format!("cluster: {{name: {}", self.name),
                &format!("cluster: {{name: {}, kubernetes_version: \"{version}\"", self.name),
                1,
            )
            .replacen(&format!("dir: {}", artifact_set().display()), &format!("dir: {}", set.display()), 1);
        assert!(at.contains(&format!("kubernetes_version: \"{version}\"")) && at.contains(&set.display().to_string()), "{at}");
        at
    }

    pub(crate) fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub(crate) fn kubeconfig(&self) -> PathBuf {
        self.home().join("kubeconfig")
    }

    /// `<settings dir>/.kos/<cluster>/`.
    pub(crate) fn state(&self) -> PathBuf {
        self.dir.path().join(".kos").join(&self.name)
    }

    pub(crate) fn ssh_config(&self) -> PathBuf {
        self.state().join("ssh/config")
    }

    /// `kos ARGS -f settings.yaml`, run from the settings' folder with a relative path, as a
    /// user would.
    pub(crate) fn kos_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kos"));
        cmd.current_dir(self.dir.path())
            .env("HOME", self.home())
            .env("KUBECONFIG", self.kubeconfig())
            .args(args)
            .args(["-f", "settings.yaml"]);
        cmd
    }

    pub(crate) fn kos(&self, args: &[&str]) -> Run {
        self.kos_with(&[], args)
    }

    /// [`Cluster::kos`] with these environment variables set.
    pub(crate) fn kos_with(&self, vars: &[(&str, &str)], args: &[&str]) -> Run {
        let t = Instant::now();
        let out = self.kos_command(args).envs(vars.iter().copied()).output().expect("kos runs");
        let run = Run { code: out.status.code(), stdout: text(&out.stdout), stderr: text(&out.stderr), secs: t.elapsed().as_secs_f64() };
        eprintln!("kos {} -> {:?} in {:.1} s", args.join(" "), run.code, run.secs);
        run
    }

    pub(crate) fn kos_ok(&self, args: &[&str]) -> Run {
        let run = self.kos(args);
        assert!(run.ok(), "kos {args:?} failed ({:?}):\n{}\n{}", run.code, run.stdout, run.stderr);
        run
    }

    /// `kos up -o json` of every phase but `addons`.
    pub(crate) fn up(&self) -> Run {
        self.kos_ok(&["up", "-o", "json", "--only", CLUSTER_PHASES])
    }

    /// The real kubectl of the artifact set, through the context kos merged into $KUBECONFIG.
    pub(crate) fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = Command::new(artifact_set().join("bin/kubectl"));
        cmd.env("KUBECONFIG", self.kubeconfig()).arg("--context").arg(format!("kos-{}", self.name)).args(args);
        support::run(&mut cmd)
    }

    pub(crate) fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args);
        assert!(ok, "kubectl {args:?} failed:\n{err}\n{out}");
        out
    }

    pub(crate) fn kubectl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.kubectl_ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {args:?}: not JSON ({e}): {out}"))
    }

    /// Runs `script` as root on `node` (`ssh -F <state>/ssh/config <cluster>-<node> sudo bash`,
    /// the script on stdin).
    pub(crate) fn root(&self, node: &str, script: &str) -> Output {
        let mut child = Command::new("ssh")
            .arg("-F")
            .arg(self.ssh_config())
            .arg(format!("{}-{node}", self.name))
            .args(["sudo", "-n", "bash", "-s"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh runs");
        child.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("script sent");
        child.wait_with_output().expect("ssh finishes")
    }

    /// [`Cluster::root`] of a script that must succeed: its trimmed stdout.
    pub(crate) fn root_ok(&self, node: &str, script: &str) -> String {
        let out = self.root(node, script);
        assert!(
            out.status.success(),
            "on {node}: script failed:\n{script}\n--- stdout\n{}--- stderr\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout).trim().to_owned()
    }

    /// `kos status`, by node.
    pub(crate) fn status(&self) -> BTreeMap<String, StatusRow> {
        let run = self.kos_ok(&["status", "-o", "json"]);
        let report: serde_json::Value =
            serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("kos status -o json: {e}\n{}", run.stdout));
        let text = |v: &serde_json::Value| v.as_str().map_or_else(|| "-".to_owned(), str::to_owned);
        let mut rows = BTreeMap::new();
        for n in report["nodes"].as_array().cloned().unwrap_or_default() {
            let Some(spec) = self.nodes.iter().find(|s| n["node"] == s.name) else { continue };
            let row = StatusRow {
                server: text(&n["server"]),
                fixed_ip: text(&n["fixed_ip"]),
                floating_ip: text(&n["floating_ip"]),
                pod_cidr: text(&n["pod_cidr"]),
                route: if n["route"] == true { "yes" } else { "no" }.to_owned(),
                ssh: text(&n["ssh"]),
                kubelet: text(&n["kubelet"]),
            };
            rows.insert(spec.name.to_owned(), row);
        }
        assert_eq!(rows.len(), self.nodes.len(), "a status row per node:\n{}", run.stdout);
        rows
    }

    /// What the cloud still holds of this cluster, as the `openstack` CLI sees it: servers,
    /// ports and floating IPs tagged `kos-cluster=<name>`, its security group, its routes.
    pub(crate) fn leftovers(&self) -> Vec<String> {
        let tag = format!("kos-cluster={}", self.name);
        let mut left = Vec::new();
        let servers = openstack_ok(&["server", "list", "-f", "value", "-c", "Name", "--name", &format!("^{}-", self.name)]);
        left.extend(servers.lines().map(|s| format!("server {s}")));
        left.extend(self.ports_named().into_iter().map(|(id, name, tags)| format!("port {id} {name} tags {tags:?}")));
        let fips = openstack_ok(&["floating", "ip", "list", "--tags", &tag, "-f", "value", "-c", "ID"]);
        left.extend(fips.lines().map(|id| format!("floating ip {id}")));
        let group = format!("{}-nodes", self.name);
        if openstack(&["security", "group", "show", &group]).status.success() {
            left.push(format!("security group {group}"));
        }
        let routes = openstack_ok(&["router", "show", "demo-router", "-f", "json", "-c", "routes"]);
        let routes: serde_json::Value = serde_json::from_str(&routes).expect("router JSON");
        let pod_range = self.pod_range_prefix();
        for r in routes["routes"].as_array().into_iter().flatten() {
            let dest = r["destination"].as_str().unwrap_or_default();
            if dest.starts_with(&pod_range) {
                left.push(format!("route {dest} via {}", r["nexthop"]));
            }
        }
        left
    }

    /// Ports named like this cluster's (`<cluster>-<node>`), marked or not: (id, name, marks).
    /// Marks are the Neutron tags plus those kos writes into the description at creation
    /// (`[kos-tags: ...]`), which a run killed before tagging leaves as the only ones.
    pub(crate) fn ports_named(&self) -> Vec<(String, String, Vec<String>)> {
        let json = openstack_ok(&["port", "list", "--long", "-f", "json", "-c", "ID", "-c", "Name", "-c", "Tags", "-c", "Description"]);
        let ports: serde_json::Value = serde_json::from_str(&json).expect("port list JSON");
        let prefix = format!("{}-", self.name);
        let mut named: Vec<_> = ports
            .as_array()
            .expect("a list")
            .iter()
            .filter(|p| p["Name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
            .map(|p| {
                let mut tags: Vec<String> =
                    p["Tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str()).map(str::to_owned).collect();
                let description = p["Description"].as_str().unwrap_or_default();
                if let Some((_, rest)) = description.split_once("[kos-tags: ") {
                    tags.extend(rest.split(']').next().unwrap_or_default().split_whitespace().map(str::to_owned));
                }
                (p["ID"].as_str().unwrap_or_default().to_owned(), p["Name"].as_str().unwrap_or_default().to_owned(), tags)
            })
            .collect();
        named.sort_by(|a, b| a.1.cmp(&b.1));
        named
    }

    /// `10.55.` of `pod_cidr: 10.55.0.0/16`.
    pub(crate) fn pod_range_prefix(&self) -> String {
        let settings = std::fs::read_to_string(self.dir.path().join("settings.yaml")).expect("settings");
        let cidr = settings.split("pod_cidr: ").nth(1).expect("pod_cidr").split('}').next().expect("cidr");
        let mut octets = cidr.split('.');
        format!("{}.{}.", octets.next().expect("octet"), octets.next().expect("octet"))
    }

    /// `kos destroy --yes`, then nothing of the cluster is left in the cloud.
    pub(crate) fn destroy(&mut self) {
        let context = format!("kos-{}", self.name);
        let merged = std::fs::read_to_string(self.kubeconfig()).unwrap_or_default().contains(&context);
        let run = self.kos_ok(&["destroy", "--yes"]);
        assert!(run.stdout.contains(&format!("nothing of cluster {} is left", self.name)), "{}", run.stdout);
        self.destroyed = true;
        let left = self.leftovers();
        assert!(left.is_empty(), "kos destroy left resources of cluster {} behind: {left:?}", self.name);
        // Nothing of it stays in the user's kubeconfig; the local state is named, and kept
        // until `--purge`, which a second destroy (nothing left in the cloud) still does.
        let removed = format!("removed context `{context}` from {}", self.kubeconfig().display());
        assert_eq!(run.stdout.contains(&removed), merged, "`{removed}` when up had merged it:\n{}", run.stdout);
        let kubeconfig = std::fs::read_to_string(self.kubeconfig()).unwrap_or_default();
        assert!(!kubeconfig.contains(&context), "{context} left in the kubeconfig:\n{kubeconfig}");
        assert!(run.stdout.contains("`kos destroy --purge` deletes it") && self.state().exists(), "{}", run.stdout);
        let status = self.kos_ok(&["status"]);
        assert!(
            status.stdout.contains(&format!("cluster {} has no server in cloud", self.name)) && status.stdout.contains("does not exist"),
            "kos status after destroy:\n{}",
            status.stdout
        );
        let purge = self.kos_ok(&["destroy", "--yes", "--purge"]);
        assert!(
            purge.stdout.contains(&format!("nothing of cluster {}", self.name)) && purge.stdout.contains("deleted the local state"),
            "{}",
            purge.stdout
        );
        assert!(!self.state().exists(), "--purge deleted {}", self.state().display());
    }

    /// ssh processes whose command line names this cluster's ssh_config: kos's ControlMaster
    /// connections (kos closes them when it ends).
    pub(crate) fn ssh_processes(&self) -> Vec<(u32, String)> {
        let needle = self.ssh_config().display().to_string();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
            let cmdline = text(&cmdline).replace('\0', " ");
            if cmdline.starts_with("ssh ") && cmdline.contains(&needle) && cmdline.contains(" -M ") {
                found.push((pid, cmdline));
            }
        }
        found
    }
}

impl Drop for Cluster {
    /// Never leave the cluster behind, whatever failed; and no ssh master of it.
    fn drop(&mut self) {
        if !self.destroyed && std::env::var_os("KOS_TEST_KEEP").is_some() {
            // By hand, to look at a failure: the cluster stays, and says where it is.
            eprintln!("KOS_TEST_KEEP: cluster {} kept; settings in {}", self.name, self.dir.path().display());
            std::mem::forget(std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir")));
            return;
        }
        if !self.destroyed {
            let _ = self.kos_command(&["destroy", "--yes"]).output();
            // What kos destroy could not remove (a failed test already said why) must not
            // burden the next test on the same cloud: removed by hand, by this cluster's names.
            if std::thread::panicking() {
                for (id, name, _) in self.ports_named() {
                    eprintln!("cleanup: deleting port {name} ({id}) that kos destroy left");
                    let _ = openstack(&["port", "delete", &id]);
                }
                let _ = openstack(&["security", "group", "delete", &format!("{}-nodes", self.name)]);
            }
        }
        for (pid, _) in self.ssh_processes() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

/// A child process (e.g. a listener in a test-bed namespace) killed on drop.
pub(crate) struct Child(pub(crate) std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A busybox pod pinned to `node`, serving `/etc/hostname` over HTTP on 8080 after printing a
/// line to its log; tolerates the control-plane taint.
pub(crate) fn busybox_pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: kos-e2e}}}}\nspec:\n  nodeName: {node}\n  \
         tolerations: [{{key: node-role.kubernetes.io/control-plane, operator: Exists}}]\n  \
         containers:\n  - name: bb\n    image: {BUSYBOX}\n    imagePullPolicy: IfNotPresent\n    \
         command: [sh, -c, 'echo started on $(hostname); exec httpd -f -p 8080 -h /etc']\n"
    )
}

/// The pod's IP once it is Running, Ready.
pub(crate) fn pod_ip(c: &Cluster, pod: &str) -> String {
    wait_for(
        &format!("pod {pod} Running and Ready"),
        120,
        || {
            let p = c.kubectl_json(&["get", "pod", pod]);
            let ready = is_ready(&p);
            ready.then(|| p["status"]["podIP"].as_str().unwrap_or_default().to_owned())
        },
        || c.kubectl(&["describe", "pod", pod]).1,
    )
}

/// What `GET /hostname` on `ip:8080` answers, asked from inside pod `from` (busybox nc).
pub(crate) fn http_from(c: &Cluster, from: &str, ip: &str) -> Option<String> {
    let script = format!("printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 8080 | tail -n 1");
    let (ok, out, _) = c.kubectl(&["exec", from, "--", "sh", "-c", &script]);
    (ok && !out.trim().is_empty()).then(|| out.trim().to_owned())
}

/// Where a kill of `kos up` lands: `delay` after the first stdout line containing `after`
/// (after the start when empty).
pub(crate) struct KillPoint {
    pub(crate) after: &'static str,
    pub(crate) delay: Duration,
}

impl Cluster {
    /// Runs kos with `args` and SIGKILLs it at `point`; returns whether it had already
    /// finished, and the last lines it printed.
    pub(crate) fn kos_killed(&self, args: &[&str], point: &KillPoint) -> (bool, String) {
        let mut child = self.kos_command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("kos runs");
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let lines = lines.clone();
            let stdout = child.stdout.take().expect("stdout");
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().expect("lines").push(line);
                }
            })
        };
        // Its errors, for the message when a run ends early (a run that stopped on an error said
        // why only there).
        let errors = {
            let stderr = child.stderr.take().expect("stderr");
            std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<String>>())
        };
        let start = Instant::now();
        let mut seen_at: Option<Instant> = point.after.is_empty().then_some(start);
        let mut never_seen = false;
        let finished = loop {
            if child.try_wait().expect("kos status").is_some() {
                break true;
            }
            if seen_at.is_none() && lines.lock().expect("lines").iter().any(|l| l.contains(point.after)) {
                seen_at = Some(Instant::now());
            }
            never_seen = seen_at.is_none() && start.elapsed() >= Duration::from_secs(300);
            if never_seen || seen_at.is_some_and(|t| t.elapsed() >= point.delay) {
                child.kill().expect("SIGKILL kos");
                let _ = child.wait();
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = reader.join();
        let errors = errors.join().unwrap_or_default();
        let lines = lines.lock().expect("lines");
        // Where it waited instead, in its own words.
        assert!(
            !never_seen,
            "kos up never printed {:?} in 300 s; its last lines:\n{}\nits stderr:\n{}",
            point.after,
            lines[lines.len().saturating_sub(15)..].join("\n"),
            errors[errors.len().saturating_sub(15)..].join("\n")
        );
        let tail = lines.iter().rev().take(2).rev().cloned().collect::<Vec<_>>().join(" | ");
        let errors: Vec<&String> = errors.iter().filter(|l| !l.trim().is_empty()).collect();
        let errors = errors[errors.len().saturating_sub(3)..].iter().map(|l| l.as_str()).collect::<Vec<_>>().join(" | ");
        (
            finished,
            format!(
                "after {:.1} s: {tail}{}",
                start.elapsed().as_secs_f64(),
                if errors.is_empty() { String::new() } else { format!(" | stderr: {errors}") }
            ),
        )
    }
}

/// What a poller saw: requests answered and failed, the longest stretch without an answer,
/// and each failure (its moment since the poller started, and why).
#[derive(Debug, Default, Clone)]
pub(crate) struct Polled {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) longest_gap: Duration,
    pub(crate) failures: Vec<(Duration, String)>,
}

impl Polled {
    /// The failures as stretches: those of one reason less than 2 s apart are one
    /// (`+12.3–15.1 s ×7: 10.59.0.5: connection refused`).
    pub(crate) fn stretches(&self) -> String {
        let mut out: Vec<(Duration, Duration, usize, &str)> = Vec::new();
        for (at, why) in &self.failures {
            match out.last_mut() {
                Some((_, end, n, last)) if *last == why.as_str() && *at - *end < Duration::from_secs(2) => {
                    *end = *at;
                    *n += 1;
                }
                _ => out.push((*at, *at, 1, why)),
            }
        }
        let lines: Vec<String> =
            out.iter().map(|(a, b, n, why)| format!("+{:.1}–{:.1} s ×{n}: {why}", a.as_secs_f64(), b.as_secs_f64())).collect();
        lines.join("; ")
    }
}

/// Calls `ask` every `every` until `stop`, in a thread of its own; `ask` says why a request
/// failed.
pub(crate) fn poll(
    stop: Arc<AtomicBool>,
    every: Duration,
    mut ask: impl FnMut() -> Result<(), String> + Send + 'static,
) -> std::thread::JoinHandle<Polled> {
    std::thread::spawn(move || {
        let mut p = Polled::default();
        let began = Instant::now();
        let mut last_ok = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            match ask() {
                Ok(()) => {
                    p.ok += 1;
                    last_ok = Instant::now();
                }
                Err(why) => {
                    p.failed += 1;
                    p.longest_gap = p.longest_gap.max(last_ok.elapsed());
                    p.failures.push((t - began, why));
                }
            }
            std::thread::sleep(every.saturating_sub(t.elapsed()));
        }
        p
    })
}

/// The service and API pollers of one stretch of the test: started together, stopped and
/// printed together.
pub(crate) struct Pollers {
    stop: Arc<AtomicBool>,
    service: std::thread::JoinHandle<Polled>,
    api: std::thread::JoinHandle<Polled>,
}

impl Pollers {
    /// The Service on the workers' fixed IPs (every 200 ms: `GET /hostname` on its nodePort)
    /// and `kubectl get nodes` through the context kos merged, the cluster's API endpoint
    /// (every 500 ms).
    pub(crate) fn start(c: &Cluster, worker_ips: &[String], node_port: u16) -> Pollers {
        let stop = Arc::new(AtomicBool::new(false));
        let ips = worker_ips.to_vec();
        let mut turn = 0usize;
        let service = poll(stop.clone(), Duration::from_millis(200), move || {
            turn += 1;
            let ip = &ips[turn % ips.len()];
            crate::testbed_serves::ask_hostname(ip, node_port, 2).map(drop).map_err(|why| format!("{ip}: {why}"))
        });
        let kubectl = artifact_set().join("bin/kubectl");
        let (kc, context) = (c.kubeconfig(), format!("kos-{}", c.name));
        let api = poll(stop.clone(), Duration::from_millis(500), move || {
            std::process::Command::new(&kubectl)
                .env("KUBECONFIG", &kc)
                .args(["--context", &context, "--request-timeout=2s", "get", "nodes", "-o", "name"])
                .output()
                .map_err(|e| e.to_string())
                .and_then(|o| {
                    let stderr = String::from_utf8_lossy(&o.stderr);
                    let first = stderr.lines().next().unwrap_or_default();
                    // Without klog's prefix (`E1127 21:04:36.971422 24180 memcache.go:265] `), so
                    // that one cause's failures read as one stretch.
                    let why = first.split_once("] ").map_or(first, |(_, cause)| cause).to_owned();
                    if o.status.success() { Ok(()) } else { Err(why) }
                })
        });
        Pollers { stop, service, api }
    }

    /// Stop both; print what they saw under `what`.
    pub(crate) fn finish(self, what: &str) -> (Polled, Polled) {
        self.stop.store(true, Ordering::Relaxed);
        let (service, api) = (self.service.join().expect("service poller"), self.api.join().expect("API poller"));
        eprintln!(
            "{what}: API: {} answered, {} failed, longest outage {:.1} s; Service on the workers: {} answered, {} failed",
            api.ok,
            api.failed,
            api.longest_gap.as_secs_f64(),
            service.ok,
            service.failed
        );
        // When: seconds since the pollers started, beside the test's own timed lines.
        for (who, p) in [("API", &api), ("Service", &service)] {
            if p.failed > 0 {
                eprintln!("{what}: {who} failures: {}", p.stretches());
            }
        }
        (service, api)
    }
}

/// The workload the availability tests poll: two busybox httpd replicas behind a NodePort
/// Service and a PodDisruptionBudget (`minAvailable: 1`), spread over the nodes
/// (`when_unsatisfiable`: `DoNotSchedule` or `ScheduleAnyway`), each Ready once it listens
/// and serving 5 s more when told to stop (preStop), so the Service's endpoints drop it
/// first. Returns the nodePort and the `workers`' addresses, each answering on it.
pub(crate) fn web_service(c: &Cluster, workers: &[&str], when_unsatisfiable: &str) -> (u16, Vec<String>) {
    let web = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: web}}}}\n  \
         template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      \
         topologySpreadConstraints: [{{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: {when_unsatisfiable}, labelSelector: {{matchLabels: {{app: web}}}}}}]\n      \
         containers:\n      - name: web\n        image: {BUSYBOX}\n        imagePullPolicy: IfNotPresent\n        \
         command: [sh, -c, 'exec httpd -f -p 8080 -h /etc']\n        \
         readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}\n        \
         lifecycle: {{preStop: {{exec: {{command: [sleep, '5']}}}}}}\n---\n\
         apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: web}}\nspec:\n  minAvailable: 1\n  selector: {{matchLabels: {{app: web}}}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  type: NodePort\n  selector: {{app: web}}\n  ports: [{{port: 80, targetPort: 8080}}]\n"
    );
    let file = c.dir.path().join("web.yaml");
    std::fs::write(&file, web).expect("web.yaml");
    c.kubectl_ok(&["apply", "-f", &file.display().to_string()]);
    c.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=180s"]);
    let node_port: u16 = c.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.ports[0].nodePort}"]).parse().expect("a nodePort");
    // (Read from the Node objects: `kos status` would ask every node of the settings.)
    let worker_ips: Vec<String> = workers
        .iter()
        .map(|w| c.kubectl_ok(&["get", "node", w, "-o", "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}"]))
        .collect();
    for ip in &worker_ips {
        wait_for(&format!("{ip}:{node_port} answers"), 60, || crate::testbed_serves::get_hostname(ip, node_port, 3), String::new);
    }
    (node_port, worker_ips)
}

/// What the admin saw looking at the nodes every second: looks answered, nodes seen
/// NotReady, refusals (Unauthorized, Forbidden, a certificate error), looks unanswered.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    pub(crate) looks: u32,
    pub(crate) not_ready: Vec<String>,
    pub(crate) refused: Vec<String>,
    pub(crate) unanswered: u32,
}

/// `kubectl get nodes` as the admin, every second, in a thread of its own until finished.
pub(crate) struct NodeWatcher {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Watched>,
}

impl NodeWatcher {
    pub(crate) fn start(c: &Cluster) -> NodeWatcher {
        let stop = Arc::new(AtomicBool::new(false));
        let (kubeconfig, context) = (c.kubeconfig(), format!("kos-{}", c.name));
        let kubectl = artifact_set().join("bin/kubectl");
        let handle = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut w = Watched::default();
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let out = Command::new(&kubectl)
                        .env("KUBECONFIG", &kubeconfig)
                        .args(["--context", &context, "get", "nodes", "-o", "json", "--request-timeout=5s"])
                        .output()
                        .expect("kubectl runs");
                    let err = text(&out.stderr);
                    if out.status.success() {
                        w.looks += 1;
                        let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
                        for n in nodes["items"].as_array().into_iter().flatten().filter(|n| !is_ready(n)) {
                            w.not_ready.push(n["metadata"]["name"].as_str().unwrap_or_default().to_owned());
                        }
                    } else if err.contains("Unauthorized") || err.contains("Forbidden") || err.contains("certificate") {
                        w.refused.push(format!("at {:.0} s: {}", started.elapsed().as_secs_f64(), err.trim()));
                    } else {
                        w.unanswered += 1;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                w
            })
        };
        NodeWatcher { stop, handle }
    }

    pub(crate) fn finish(self) -> Watched {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the watcher")
    }
}
