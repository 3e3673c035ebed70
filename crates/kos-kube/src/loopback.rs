//! A real Kubernetes API server on loopback, for tests (this crate's and the pipeline's): etcd,
//! kube-apiserver and kube-controller-manager of the pinned versions (the binaries
//! `testbed/k8s/build.sh` builds from their Go modules), with the certificates kos's own PKI
//! makes for the repository's example cluster, mutual TLS everywhere, in a temporary folder.
//!
//! There is no kubelet and no scheduler: a test registers the nodes and writes the pods'
//! and nodes' status itself, as their kubelets would ([`LoopbackApi::node`],
//! [`LoopbackApi::pod_on`]). The controller manager runs only the controllers a test of kos
//! meets without a kubelet: `disruption` (disruption budgets decide evictions, as in a real
//! cluster) and `serviceaccount` (every namespace's `default` account); it elects itself
//! leader through its Lease, as on a master. Every process is
//! started under `setpriv --pdeathsig KILL`, so it ends with the test even when the test is
//! killed; dropping the [`LoopbackApi`] ends them at once.
//!
//! The pipeline's tests reach it through [`LoopbackConnect`], kos's [`Connect`] for this
//! server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use crate::client::{KubeClient, wait_for_api};
use crate::{Connect, KubeError};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the three programs may take to serve (2 cores, a test bed beside them).
const START: Duration = Duration::from_secs(120);

/// The running programs and an admin's client of them.
pub struct LoopbackApi {
    dir: tempfile::TempDir,
    children: Vec<(&'static str, Child)>,
    /// The admin kubeconfig kos renders (group `kos:cluster-admins`), its server moved here.
    pub admin_kubeconfig: String,
    /// The super-admin kubeconfig kos renders (`system:masters`), its server moved here.
    pub super_admin_kubeconfig: String,
    /// The super-admin's client: the test's own hand, which kos's RBAC does not restrict.
    client: kube::Client,
}

impl std::fmt::Debug for LoopbackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackApi").field("dir", &self.dir.path()).finish()
    }
}

impl Drop for LoopbackApi {
    fn drop(&mut self) {
        for (_, child) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The pinned versions (`testbed/k8s/versions.env`) and the folder their builds are cached in.
fn binary(component: &str, pin: &str, file: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let pins = std::fs::read_to_string(repo.join("testbed/k8s/versions.env")).expect("testbed/k8s/versions.env");
    let version = pins.lines().find_map(|l| l.strip_prefix(&format!("{pin}="))).unwrap_or_else(|| panic!("{pin}= in versions.env"));
    let cache = std::env::var_os("KOS_K8S_CACHE").map_or_else(|| PathBuf::from("/var/tmp/kos-k8s"), PathBuf::from);
    cache.join(format!("{component}-v{version}")).join(file)
}

/// Start `command` under `setpriv --pdeathsig KILL` (it ends with the test, even a killed
/// one), its output in `dir/<name>.log`.
fn spawn_logged(dir: &Path, name: &str, command: &Command) -> Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "--"])
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("setpriv (util-linux) starts {name}: {e}"))
}

/// The last lines of `dir/<name>.log`, for a failure's message.
fn log_tail(dir: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// One etcd member on loopback: its name, client and peer URLs, and the certificate (stem in
/// kos's PKI folder) it shows its peers.
struct EtcdMember<'a> {
    name: &'a str,
    client: &'a str,
    peer: &'a str,
    peer_cert: &'a str,
}

/// etcd as kos runs it on a master (mutual TLS for clients and peers, certificates of kos's
/// etcd CA), on loopback, joining the cluster `initial` (`name=peer-url,...`).
fn etcd_command(etcd: &Path, pki: &Path, data: &Path, member: &EtcdMember<'_>, initial: &str) -> Command {
    let pki = |f: &str| pki.join(f).display().to_string();
    let mut command = Command::new(etcd);
    command
        .args(["--name", member.name, "--data-dir"])
        .arg(data)
        .args(["--listen-client-urls", member.client, "--advertise-client-urls", member.client])
        .args(["--listen-peer-urls", member.peer, "--initial-advertise-peer-urls", member.peer])
        .args(["--initial-cluster", initial])
        .args(["--cert-file", &pki("etcd/server-master-1.crt"), "--key-file", &pki("etcd/server-master-1.key")])
        .args(["--client-cert-auth", "--trusted-ca-file", &pki("etcd/ca.crt")])
        .args(["--peer-cert-file", &pki(&format!("{}.crt", member.peer_cert))])
        .args(["--peer-key-file", &pki(&format!("{}.key", member.peer_cert))])
        .args(["--peer-client-cert-auth", "--peer-trusted-ca-file", &pki("etcd/ca.crt")])
        // A test's data: no fsync (seconds on a loaded disk), gone with the folder.
        .arg("--unsafe-no-fsync");
    command
}

/// A real etcd cluster of several members on loopback (the pinned etcd, kos's etcd CA and
/// certificates, mutual TLS between clients and members and among members), for tests of
/// kos's membership changes. Every member serves on 127.0.0.1 with its own ports and shows
/// the certificate `etcd/server-master-1` (its addresses include 127.0.0.1) as server and as
/// peer; a member may be stopped ([`LoopbackEtcd::stop`]) to be a member that is down.
pub struct LoopbackEtcd {
    dir: tempfile::TempDir,
    /// The pinned etcd's folder (etcd, etcdctl, etcdutl).
    tools: PathBuf,
    /// Name, client URL and process (`None` once stopped).
    members: Vec<(String, String, Option<Child>)>,
}

impl std::fmt::Debug for LoopbackEtcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackEtcd").field("dir", &self.dir.path()).finish()
    }
}

impl Drop for LoopbackEtcd {
    fn drop(&mut self) {
        for (_, _, child) in &mut self.members {
            if let Some(mut child) = child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl LoopbackEtcd {
    /// Start a member for each name, all of one cluster, and wait until each answers a
    /// health check; `None`, with a note, when the pinned etcd is not built here (with `CI`
    /// set that is a failure).
    pub fn start(names: &[&str]) -> Option<LoopbackEtcd> {
        let tools = binary("etcd", "ETCD", "");
        let etcd = tools.join("etcd");
        if !built(&[etcd.clone(), tools.join("etcdctl")]) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        kubeconfigs(&pki);
        // The etcd certificates' folder as on master-1 (/etc/kubernetes/pki/etcd).
        let on_master = dir.path().join("master-pki-etcd");
        std::fs::create_dir(&on_master).unwrap();
        for (there, here) in [
            ("ca.crt", "ca.crt"),
            ("healthcheck-client.crt", "healthcheck-client-master-1.crt"),
            ("healthcheck-client.key", "healthcheck-client-master-1.key"),
        ] {
            std::os::unix::fs::symlink(pki.join("etcd").join(here), on_master.join(there)).unwrap();
        }
        let urls: Vec<(String, String)> =
            names.iter().map(|_| (format!("https://127.0.0.1:{}", free_port()), format!("https://127.0.0.1:{}", free_port()))).collect();
        let initial = names.iter().zip(&urls).map(|(n, (_, peer))| format!("{n}={peer}")).collect::<Vec<_>>().join(",");
        let mut cluster = LoopbackEtcd { members: Vec::new(), dir, tools };
        for (name, (client, peer)) in names.iter().zip(&urls) {
            let member = EtcdMember { name, client, peer, peer_cert: "etcd/server-master-1" };
            let command = etcd_command(&etcd, &pki, &cluster.dir.path().join(name), &member, &initial);
            let child = spawn_logged(cluster.dir.path(), name, &command);
            cluster.members.push((name.to_string(), client.clone(), Some(child)));
        }
        let started = Instant::now();
        for (name, client, _) in &cluster.members {
            loop {
                let health = cluster.etcdctl(&["--endpoints", client, "endpoint", "health"]);
                if health.status.success() {
                    break;
                }
                let why = String::from_utf8_lossy(&health.stderr);
                assert!(
                    started.elapsed() < START,
                    "etcd member {name} not healthy in {START:?} ({why}):\n{}",
                    log_tail(cluster.dir.path(), name)
                );
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        Some(cluster)
    }

    /// The pinned etcdctl with the health-check client's certificate (what kos uses on a
    /// master), run here.
    pub fn etcdctl(&self, args: &[&str]) -> std::process::Output {
        let pki = |f: &str| self.pki().join(f).display().to_string();
        Command::new(self.tools.join("etcdctl"))
            .args(["--cacert", &pki("ca.crt"), "--cert", &pki("healthcheck-client.crt")])
            .args(["--key", &pki("healthcheck-client.key"), "--command-timeout=5s"])
            .args(args)
            .output()
            .unwrap()
    }

    /// The folder of the pinned etcd's tools (etcdctl, etcdutl).
    pub fn tools(&self) -> &Path {
        &self.tools
    }

    /// The etcd certificates' folder as kos writes it on a master (`/etc/kubernetes/pki/etcd`:
    /// the CA's certificate and the health-check client's key pair, of master-1).
    pub fn pki(&self) -> PathBuf {
        self.dir.path().join("master-pki-etcd")
    }

    /// The client URL of member `name`.
    pub fn client_url(&self, name: &str) -> &str {
        &self.members.iter().find(|m| m.0 == name).unwrap_or_else(|| panic!("no member {name}")).1
    }

    /// Stop member `name` (killed, as a master that lost its power): it is down from now on.
    pub fn stop(&mut self, name: &str) {
        let member = self.members.iter_mut().find(|m| m.0 == name).unwrap_or_else(|| panic!("no member {name}"));
        if let Some(mut child) = member.2.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// The members' names as the cluster lists them, asking member `asked`.
    pub fn names(&self, asked: &str) -> Vec<String> {
        let out = self.etcdctl(&["--endpoints", self.client_url(asked), "member", "list", "-w", "json"]);
        assert!(out.status.success(), "member list: {}", String::from_utf8_lossy(&out.stderr));
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut names: Vec<String> =
            list["members"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap_or_default().to_string()).collect();
        names.sort();
        names
    }
}

/// Whether every one of `programs` is built; a note when one is not (with `CI` set that is a
/// failure: ./test.sh builds them).
fn built(programs: &[PathBuf]) -> bool {
    let Some(missing) = programs.iter().find(|p| !p.exists()) else { return true };
    assert!(std::env::var_os("CI").is_none(), "CI is set but {} is missing: run testbed/k8s/build.sh", missing.display());
    eprintln!("skipped: {} is missing (testbed/k8s/build.sh builds it)", missing.display());
    false
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl LoopbackApi {
    /// Start etcd, the API server and the controller manager, and apply the binding that
    /// gives the admin its rights (what `kos up` applies first, with the super-admin); `None`,
    /// with a note, when their binaries are not built here (with `CI` set that is a failure:
    /// ./test.sh builds them).
    pub async fn start() -> Option<LoopbackApi> {
        let (api, cluster_admins) = LoopbackApi::launch().await?;
        let objects = crate::apply::objects(&[cluster_admins]).unwrap();
        let sa = KubeClient::new(&api.super_admin_kubeconfig).await.unwrap();
        for o in &objects {
            crate::KubeApi::apply(&sa, o).await.unwrap();
        }
        Some(api)
    }

    /// [`LoopbackApi::start`] without the admin's binding: the API server of a cluster
    /// `kos up` is making, before its add-ons. The admin has no rights until kos applies
    /// them; the super-admin (and the test, through [`LoopbackApi::client`]) may do anything.
    pub async fn start_bare() -> Option<LoopbackApi> {
        Some(LoopbackApi::launch().await?.0)
    }

    /// The three programs serving, and the add-on file that binds the admin's group.
    async fn launch() -> Option<(LoopbackApi, (String, String))> {
        let programs = [
            binary("etcd", "ETCD", "etcd"),
            binary("kubernetes", "KUBERNETES", "kube-apiserver"),
            binary("kubernetes", "KUBERNETES", "kube-controller-manager"),
        ];
        if !built(&programs) {
            return None;
        }
        let [etcd, apiserver, controller_manager] = programs;
        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("pki");
        let (admin, super_admin, cluster_admins) = kubeconfigs(&pki_dir);
        let pki = |f: &str| pki_dir.join(f).display().to_string();
        let (client_port, peer_port, api_port) = (free_port(), free_port(), free_port());
        let super_admin = at_port(&super_admin, api_port);
        let mut api = LoopbackApi {
            dir,
            children: Vec::new(),
            admin_kubeconfig: at_port(&admin, api_port),
            client: client(&super_admin).await,
            super_admin_kubeconfig: super_admin,
        };

        let peer = format!("https://127.0.0.1:{peer_port}");
        let clients = format!("https://127.0.0.1:{client_port}");
        let member = EtcdMember { name: "master-1", client: &clients, peer: &peer, peer_cert: "etcd/peer-master-1" };
        let mut etcd = etcd_command(&etcd, &pki_dir, &api.dir.path().join("etcd"), &member, &format!("master-1={peer}"));
        api.spawn("etcd", &mut etcd);
        api.spawn(
            "kube-apiserver",
            Command::new(apiserver)
                .args(["--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", &api_port.to_string()])
                .args(["--etcd-servers", &clients, "--etcd-cafile", &pki("etcd/ca.crt")])
                .args(["--etcd-certfile", &pki("apiserver-etcd-client.crt"), "--etcd-keyfile", &pki("apiserver-etcd-client.key")])
                .args(["--tls-cert-file", &pki("apiserver.crt"), "--tls-private-key-file", &pki("apiserver.key")])
                .args(["--client-ca-file", &pki("ca.crt"), "--authorization-mode", "Node,RBAC"])
                .args(["--service-account-issuer", "https://kubernetes.default.svc.cluster.local"])
                .args(["--service-account-key-file", &pki("sa.pub"), "--service-account-signing-key-file", &pki("sa.key")])
                .args(["--service-cluster-ip-range", "10.96.0.0/12", "--profiling=false"])
                // No `kubernetes` Service endpoints: a loopback address may not be one.
                .arg("--endpoint-reconciler-type=none")
                .arg("--cert-dir")
                .arg(api.dir.path().join("apiserver")),
        );
        let admin_file = api.dir.path().join("super-admin.kubeconfig");
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).open(&admin_file).unwrap();
            f.write_all(api.super_admin_kubeconfig.as_bytes()).unwrap();
        }
        // The controller manager once the API server is ready: it gives the server only 10 s to
        // become healthy once it leads, which a loaded machine's server starting beside it can miss.
        api.wait_ready().await;
        api.spawn(
            "kube-controller-manager",
            Command::new(controller_manager).arg("--kubeconfig").arg(&admin_file).args([
                "--controllers",
                "disruption,serviceaccount",
                // Elected as on a master: its Lease `kube-system/kube-controller-manager`.
                "--leader-elect=true",
                "--secure-port=0",
            ]),
        );
        api.wait_for_default_accounts(&["default", "kube-system"]).await;
        Some((api, cluster_admins))
    }

    fn spawn(&mut self, name: &'static str, command: &mut Command) {
        self.children.push((name, spawn_logged(self.dir.path(), name, command)));
    }

    /// A program's log so far (its last lines), for a failure's message.
    pub fn log(&self, name: &str) -> String {
        log_tail(self.dir.path(), name)
    }

    async fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            let exited = self.children.iter_mut().find_map(|(name, child)| Some((*name, child.try_wait().unwrap()?)));
            if let Some((name, status)) = exited {
                panic!("{name} exited ({status}):\n{}", self.log(name));
            }
            let ready = self.client.request_text(http::Request::get("/readyz").body(Vec::new()).unwrap()).await;
            if matches!(ready.as_deref(), Ok("ok")) {
                return;
            }
            assert!(started.elapsed() < START, "the API server was not ready in {START:?} ({ready:?}):\n{}", self.log("kube-apiserver"));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn wait_for_default_accounts(&self, namespaces: &[&str]) {
        let started = Instant::now();
        for ns in namespaces {
            let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
            while accounts.get_opt("default").await.unwrap().is_none() {
                assert!(started.elapsed() < START, "no `default` service account in {ns}:\n{}", self.log("kube-controller-manager"));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }

    /// kos's client of this server, with the admin kubeconfig.
    pub async fn kube(&self) -> KubeClient {
        KubeClient::new(&self.admin_kubeconfig).await.unwrap()
    }

    /// The super-admin's kube-rs client, to arrange what a test needs and to look at the
    /// result.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Register a node as its kubelet would: the Node object, then its status (Ready
    /// `True`, or `ready` as given: `"False"`, `"Unknown"`) with the kubelet's version.
    pub async fn node(&self, name: &str, version: &str, ready: &str) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        nodes.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()).await.unwrap();
        let info = json!({"kubeletVersion": version, "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
            "osImage": "", "containerRuntimeVersion": "", "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"});
        nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": {"nodeInfo": info}}))).await.unwrap();
        self.node_ready(name, ready).await;
    }

    /// Set a node's Ready condition (`True`, `False`, `Unknown`: what the node controller
    /// writes once its kubelet stops posting).
    pub async fn node_ready(&self, name: &str, ready: &str) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let condition = json!({"type": "Ready", "status": ready, "reason": "SetByTheTest", "message": "set by the test"});
        nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": {"conditions": [condition]}}))).await.unwrap();
    }

    /// A pod bound to `node`, running and Ready as its kubelet would say, controlled by an
    /// object of kind `owner` (`ReplicaSet`, `DaemonSet`, `Job`, `Node` for a static pod's
    /// mirror, ...) or by nothing, labelled `app: <name>`. Its grace period is 0: with no
    /// kubelet to finish a graceful deletion, an evicted pod is gone at once, as it is once a
    /// kubelet has stopped it.
    pub async fn pod_on(&self, node: &str, namespace: &str, name: &str, owner: Option<&str>) -> Pod {
        self.pod_with_grace(node, namespace, name, owner, 0).await
    }

    /// [`LoopbackApi::pod_on`] with a grace period of `grace` seconds: deleted or evicted,
    /// it stays terminating until a kubelet (here: the test) ends it.
    pub async fn pod_with_grace(&self, node: &str, namespace: &str, name: &str, owner: Option<&str>, grace: i64) -> Pod {
        self.create_pod(node, namespace, name, owner, grace, json!({})).await
    }

    /// A static pod's mirror on `node`, as its kubelet makes it (the mirror annotation, which
    /// only a creation may carry, and the Node as owner).
    pub async fn mirror_pod_on(&self, node: &str, namespace: &str, name: &str) -> Pod {
        self.create_pod(node, namespace, name, Some("Node"), 0, json!({"kubernetes.io/config.mirror": "set-by-the-test"})).await
    }

    async fn create_pod(
        &self,
        node: &str,
        namespace: &str,
        name: &str,
        owner: Option<&str>,
        grace: i64,
        annotations: serde_json::Value,
    ) -> Pod {
        self.namespace(namespace).await;
        let owners = owner.map_or(json!([]), |kind| {
            let api_version = match kind {
                "Node" => "v1",
                "Job" => "batch/v1",
                _ => "apps/v1",
            };
            json!([{"apiVersion": api_version, "kind": kind, "name": "owner", "uid": "00000000-0000-0000-0000-000000000001", "controller": true}])
        });
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}, "ownerReferences": owners, "annotations": annotations},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": grace, "automountServiceAccountToken": false,
                "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10.2"}]},
        }))
        .unwrap();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        pods.create(&PostParams::default(), &pod).await.unwrap();
        self.pod_status(namespace, name, "Running").await
    }

    /// The pod, if there is one.
    pub async fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        Api::<Pod>::namespaced(self.client.clone(), namespace).get_opt(name).await.unwrap()
    }

    /// The Node object, if there is one.
    pub async fn node_object(&self, name: &str) -> Option<Node> {
        Api::<Node>::all(self.client.clone()).get_opt(name).await.unwrap()
    }

    /// A disruption budget over the pods labelled `app: <app>` that allows none of them to
    /// go (`minAvailable: 1` of one), once the disruption controller has counted it (before
    /// that an eviction is refused for another reason).
    pub async fn budget(&self, namespace: &str, app: &str) {
        use k8s_openapi::api::policy::v1::PodDisruptionBudget;
        let budgets: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), namespace);
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": app, "namespace": namespace},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": app}}},
        }))
        .unwrap();
        budgets.create(&PostParams::default(), &pdb).await.unwrap();
        let started = Instant::now();
        loop {
            let pdb = budgets.get(app).await.unwrap();
            let status = pdb.status.as_ref();
            if status.and_then(|s| s.observed_generation) == pdb.metadata.generation
                && status.is_some_and(|s| s.current_healthy.unwrap_or(0) >= 1)
            {
                return;
            }
            assert!(
                started.elapsed() < START,
                "the disruption controller did not count {namespace}/{app}:\n{}",
                self.log("kube-controller-manager")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Set a pod's phase as its kubelet would (Ready while `Running`).
    pub async fn pod_status(&self, namespace: &str, name: &str, phase: &str) -> Pod {
        let ready = if phase == "Running" { "True" } else { "False" };
        let status = json!({"status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}});
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status)).await.unwrap()
    }

    /// The namespace, made if there is none.
    pub async fn namespace(&self, name: &str) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if namespaces.get_opt(name).await.unwrap().is_none() {
            namespaces.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()).await.unwrap();
            self.wait_for_default_accounts(&[name]).await;
        }
    }

    /// What a healthy cluster shows: every node named registered and Ready at `version`,
    /// each master's four control-plane pods Ready, the CoreDNS deployment 2/2 ready.
    pub async fn serving(&self, masters: &[&str], workers: &[&str], version: &str) {
        self.kubelets_serving(masters, workers, version).await;
        self.deployment("kube-system", "coredns", 2, 2).await;
    }

    /// What the kubelets of a healthy cluster show: every node named registered and Ready at
    /// `version`, each master's four control-plane pods (static pods' mirrors) Ready.
    pub async fn kubelets_serving(&self, masters: &[&str], workers: &[&str], version: &str) {
        for n in masters.iter().chain(workers) {
            self.node(n, version, "True").await;
        }
        for m in masters {
            for c in crate::health::CONTROL_PLANE {
                self.mirror_pod_on(m, "kube-system", &format!("{c}-{m}")).await;
            }
        }
    }

    /// Play the deployment controller's part for one deployment a test does not make itself
    /// (kos applies it): once it exists, its status says all its replicas are ready, as
    /// that controller would write once their pods run. In the background; it ends then.
    pub fn ready_once_applied(&self, namespace: &str, name: &str) {
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let name = name.to_string();
        tokio::spawn(async move {
            loop {
                // A read or write that fails is tried again; should none succeed, the test
                // sees the deployment never ready.
                if let Ok(Some(d)) = deployments.get_opt(&name).await {
                    let replicas = d.spec.replicas.unwrap_or(1);
                    let status = deployment_status(replicas, replicas, d.metadata.generation);
                    if deployments.patch_status(&name, &PatchParams::default(), &Patch::Merge(status)).await.is_ok() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    /// kos's way to this server for the pipeline's tests (see [`LoopbackConnect`]).
    pub fn connector(&self) -> LoopbackConnect {
        LoopbackConnect {
            admin: self.admin_kubeconfig.clone(),
            super_admin: self.super_admin_kubeconfig.clone(),
            closed_port: free_port(),
            connects: AtomicUsize::new(0),
            down: AtomicBool::new(false),
        }
    }

    /// A deployment of `replicas`, `ready` of them ready as its controller would say.
    pub async fn deployment(&self, namespace: &str, name: &str, replicas: i32, ready: i32) {
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10.2"}]}}},
        }))
        .unwrap();
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        deployments.create(&PostParams::default(), &deployment).await.unwrap();
        self.deployment_ready(namespace, name, replicas, ready).await;
    }

    /// Write the Lease `kube-system/<name>` as a leader election's holder `holder` does, renewed
    /// now (made if there is none).
    pub async fn lease(&self, name: &str, holder: &str) {
        use k8s_openapi::api::coordination::v1::Lease;
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-system");
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(k8s_openapi::jiff::Timestamp::now());
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name, "namespace": "kube-system"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": now, "acquireTime": now}});
        leases.patch(name, &PatchParams::apply("kos-test").force(), &Patch::Apply(lease)).await.unwrap();
    }

    /// Set how many of a deployment's `replicas` are ready, as its controller would.
    pub async fn deployment_ready(&self, namespace: &str, name: &str, replicas: i32, ready: i32) {
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        deployments.patch_status(name, &PatchParams::default(), &Patch::Merge(deployment_status(replicas, ready, Some(1)))).await.unwrap();
    }
}

/// A deployment's status as its controller writes it: `ready` of `replicas` ready, at
/// `generation`.
fn deployment_status(replicas: i32, ready: i32, generation: Option<i64>) -> serde_json::Value {
    json!({"status": {"replicas": replicas, "updatedReplicas": replicas, "readyReplicas": ready,
        "availableReplicas": ready, "observedGeneration": generation}})
}

/// The [`Connect`] of the pipeline's tests: a client of the loopback API server, counting
/// how often it was asked, and able to play an API server that is down.
///
/// The cluster a test renders has a CA of its own, which this server does not trust (it
/// serves the repository's example PKI). So the kubeconfig the pipeline passes is read only
/// for whom it names: `kos-<cluster>-super-admin` (`system:masters`) connects with this
/// server's super-admin kubeconfig, any other user with its admin kubeconfig (group
/// `kos:cluster-admins`, whose rights come from the binding kos applies). That the rendered
/// kubeconfigs themselves reach their cluster is proven by the end-to-end tests on real
/// nodes.
#[derive(Debug)]
pub struct LoopbackConnect {
    admin: String,
    super_admin: String,
    /// A loopback port nothing listens on, for an API server that is down.
    closed_port: u16,
    connects: AtomicUsize,
    down: AtomicBool,
}

impl LoopbackConnect {
    /// How many times [`Connect::connect`] was asked.
    pub fn connects(&self) -> usize {
        self.connects.load(Ordering::SeqCst)
    }

    /// Down (`true`): connections go to a closed loopback port, so the pipeline meets a real
    /// `Connection refused`; `false`: to the server again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

impl Connect for LoopbackConnect {
    type Api = KubeClient;

    async fn connect(&self, kubeconfig: &str, wait: Duration) -> Result<KubeClient, KubeError> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        let ours = if names_super_admin(kubeconfig)? { &self.super_admin } else { &self.admin };
        if self.down.load(Ordering::SeqCst) {
            wait_for_api(&with_server(ours, &format!("https://127.0.0.1:{}", self.closed_port)), wait).await
        } else {
            wait_for_api(ours, wait).await
        }
    }
}

/// Whether a kubeconfig kos rendered is the super-admin's: its current context's user is
/// `kos-<cluster>-super-admin`.
fn names_super_admin(kubeconfig: &str) -> Result<bool, KubeError> {
    let config = Kubeconfig::from_yaml(kubeconfig).map_err(KubeError::Kubeconfig)?;
    let current = config.current_context.as_deref();
    let context = config.contexts.iter().find(|c| Some(c.name.as_str()) == current).and_then(|c| c.context.as_ref());
    Ok(context.and_then(|c| c.user.as_deref()).is_some_and(|u| u.ends_with("-super-admin")))
}

/// The example cluster's PKI in `pki_dir` and the kubeconfigs kos renders from it: the
/// admin's, the super-admin's, and the add-on binding the admin group to `cluster-admin`.
pub fn kubeconfigs(pki_dir: &Path) -> (String, String, (String, String)) {
    let (settings, observed, plan) = crate::test_support::example();
    let pki = kos_pki::Pki::open(pki_dir);
    pki.ensure(&plan.certificates, kos_pki::OffsetDateTime::now_utc()).unwrap();
    let inputs = kos_render::Inputs {
        settings: &settings,
        plan: &plan,
        tenant_cidr: observed.tenant_cidr,
        local_dir: pki_dir,
        env: &Default::default(),
    };
    let files = kos_render::local::render_local(&inputs, &pki).unwrap();
    let file = |path: &str| files.iter().find(|f| f.path == path).unwrap_or_else(|| panic!("{path} rendered")).contents.clone();
    let bindings = kos_render::addons::CLUSTER_ADMINS_FILE;
    let addons = kos_render::addons::render_addons(&inputs).unwrap();
    let binding = addons.into_iter().find(|f| f.path == bindings).unwrap_or_else(|| panic!("{bindings} rendered")).contents;
    (file("admin.kubeconfig"), file("super-admin.kubeconfig"), (bindings.to_string(), binding))
}

/// A kubeconfig with its server moved to `server`.
pub fn with_server(kubeconfig: &str, server: &str) -> String {
    let mut config = Kubeconfig::from_yaml(kubeconfig).unwrap();
    config.clusters[0].cluster.as_mut().unwrap().server = Some(server.to_string());
    serde_saphyr::to_string(&config).unwrap()
}

/// A kubeconfig with its server moved to the loopback API server on `port`.
fn at_port(kubeconfig: &str, port: u16) -> String {
    with_server(kubeconfig, &format!("https://127.0.0.1:{port}"))
}

async fn client(kubeconfig: &str) -> kube::Client {
    let config = Kubeconfig::from_yaml(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KubeApi;

    /// The loopback API server serves kos's own certificates over mutual TLS, and the admin
    /// kos renders has its rights through the binding kos applies.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_loopback_api_server_answers_kos_with_the_admin_kos_renders() {
        let Some(api) = LoopbackApi::start().await else { return };
        let kube = api.kube().await;
        kube.ready().await.unwrap();
        let version = kube.version().await.unwrap();
        let pinned = binary("kubernetes", "KUBERNETES", "");
        assert!(pinned.display().to_string().contains(&format!("kubernetes-{version}")), "{version} is not {}", pinned.display());
        api.serving(&["master-1"], &["worker-1"], &version).await;
        let nodes = kube.nodes().await.unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(kube.pods("kube-system").await.unwrap().len(), 4);
    }
}
