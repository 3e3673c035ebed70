//! What the unit tests of the pipelines share: a small cluster in the in-memory cloud, node
//! doubles that stand in for the servers' operating systems (which a unit test cannot boot;
//! the end-to-end tests use real nodes), the cluster's kubelets as a real API server on
//! loopback shows them (`kos_kube::loopback`), a reporter that keeps what it heard, and one
//! `up`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::nodes::Reach;
use crate::report::UpReport;
use crate::up::{Systems, UpOptions, local_inputs, up};
use crate::{LocalState, Phase, Reporter, RunError};
use kos_cloud::fake::FakeCloud;
use kos_core::settings::Settings;
use kos_kube::client::KubeClient;
use kos_kube::loopback::{LoopbackApi, LoopbackConnect};
use kos_kube::{Connect, KubeError};
use kos_node::remote::{Output, Remote, RemoteError, Stdin};
use kos_node::ssh::SshTarget;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A cluster of one master and two workers in the fake cloud's project, its key in `dir`,
/// and a local artifact folder `dir/artifacts` (filled by [`with_binaries`] for the tests
/// that need it; nothing is fetched from the internet).
pub fn settings(dir: &Path) -> Settings {
    settings_with(dir, &["worker-1", "worker-2"])
}

/// The test settings (cluster `demo`, master-1 with a floating IP) with these workers.
pub fn settings_with(dir: &Path, workers: &[&str]) -> Settings {
    std::fs::write(dir.join("id_kos"), "a key\n").unwrap();
    let mut text = "cluster: {name: demo}\n\
        cloud: {image: tiny, flavor: m1.tiny, network: net, router: router, floating_ip_pool: public, key_name: kos-key}\n\
        ssh: {user: debian, private_key: id_kos}\n\
        artifacts: {source: local, dir: ./artifacts}\n\
        nodes:\n  - {name: master-1, role: master, floating_ip: true}\n"
        .to_string();
    for w in workers {
        text.push_str(&format!("  - {{name: {w}, role: worker}}\n"));
    }
    let file = dir.join("settings.yaml");
    std::fs::write(&file, text).unwrap();
    Settings::load(&file).unwrap()
}

pub fn options(phases: &[Phase]) -> UpOptions {
    UpOptions {
        phases: phases.to_vec(),
        ssh_wait: Duration::from_secs(1),
        api_wait: Duration::from_secs(1),
        ready_wait: Duration::from_secs(30),
        parallel: 10,
        kubeconfig: None,
        drain_wait: Some(Duration::from_secs(30)),
        replace: Vec::new(),
        kos_version: "test".into(),
    }
}

/// Link the built artifact set's real kubelet, kube-proxy and kubectl into `dir/artifacts`,
/// with their SHA256SUMS lines. `None` when the set is not built (outside CI).
pub fn with_binaries(dir: &Path) -> Option<()> {
    let set = kos_node::test_support::artifact_set()?;
    let files = ["bin/kubelet", "bin/kube-proxy", "bin/kubectl"];
    let pairs: Vec<(&str, &str)> = files.iter().map(|f| (*f, *f)).collect();
    let hashes = kos_node::test_support::link_from_set(&set, &dir.join("artifacts"), &pairs);
    let sums: String = files.iter().zip(&hashes).map(|(f, h)| format!("{h}  {f}\n")).collect();
    std::fs::write(dir.join("artifacts/SHA256SUMS"), sums).unwrap();
    Some(())
}

/// Stands in for servers whose operating system never answers (what a unit test cannot
/// boot): every connection is refused.
#[derive(Debug, Default)]
pub struct NoAnswer {
    pub tried: Mutex<Vec<String>>,
}

/// Reaches the stand-ins given for the servers a unit test cannot boot, by node name; any
/// other node refuses the connection.
#[derive(Debug)]
pub struct StandIns<N>(pub Vec<N>);

impl<N: Remote + Clone + std::fmt::Debug + 'static> Reach for StandIns<N> {
    type Node = N;

    fn prepare(&self, _targets: &[kos_node::ssh::SshTarget]) -> Result<String, RunError> {
        Ok(String::new())
    }

    async fn connect(&self, target: &kos_node::ssh::SshTarget, _wait: Duration) -> Result<N, String> {
        self.0.iter().find(|m| m.node() == target.node).cloned().ok_or_else(|| format!("{}: connection refused", target.node))
    }

    async fn close(&self, _node: N) {}
}

/// A node that answers but runs nothing (every script fails): enough for phases that only
/// look at nodes (the add-ons, whose probe is best effort).
#[derive(Debug)]
pub struct Mute(String);

impl Remote for Mute {
    fn node(&self) -> &str {
        &self.0
    }

    async fn run(&self, _script: &str, _stdin: Stdin) -> Result<Output, RemoteError> {
        Ok(Output { status: Some(127), stdout: Vec::new(), stderr: b"sh: not found in this test".to_vec() })
    }
}

impl Reach for NoAnswer {
    type Node = Mute;

    fn prepare(&self, targets: &[SshTarget]) -> Result<String, RunError> {
        Ok(format!("{} targets", targets.len()))
    }

    async fn connect(&self, target: &SshTarget, _wait: Duration) -> Result<Mute, String> {
        self.tried.lock().unwrap().push(target.node.clone());
        Err(format!("{}: SSH did not answer within 1 s (connection refused)", target.node))
    }

    async fn close(&self, _node: Mute) {}
}

/// Every node answers, as a [`Mute`] node; counts the sessions opened and closed.
#[derive(Debug, Default)]
pub struct Answer {
    pub connects: std::sync::atomic::AtomicUsize,
    pub closes: std::sync::atomic::AtomicUsize,
}

impl Answer {
    /// (sessions opened, sessions closed) so far.
    pub fn sessions(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.connects.load(Relaxed), self.closes.load(Relaxed))
    }
}

impl Reach for Answer {
    type Node = Mute;

    fn prepare(&self, _targets: &[SshTarget]) -> Result<String, RunError> {
        Ok(String::new())
    }

    async fn connect(&self, target: &SshTarget, _wait: Duration) -> Result<Mute, String> {
        self.connects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Mute(target.node.clone()))
    }

    async fn close(&self, _node: Mute) {
        self.closes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Lines the pipeline reported, in order.
#[derive(Debug, Default)]
pub struct Heard(pub Mutex<Vec<String>>);

impl Reporter for Heard {
    fn line(&self, text: &str) {
        self.0.lock().unwrap().push(text.to_string());
    }
    fn detail(&self, _text: &str) {}
    fn wait_started(&self, what: &str, bound: Duration) {
        self.0.lock().unwrap().push(format!("wait: {what} (at most {} s)", bound.as_secs()));
    }
    fn wait_finished(&self) {
        self.0.lock().unwrap().push("wait over".into());
    }
}

pub async fn run<R: Reach, K: Connect>(
    dir: &Path,
    phases: &[Phase],
    cloud: &FakeCloud,
    reach: &R,
    kube: &K,
) -> (UpReport, Result<(), RunError>, Vec<String>) {
    run_with(dir, &settings(dir), &options(phases), cloud, reach, kube).await
}

/// [`run`] with these settings and options.
pub async fn run_with<R: Reach, K: Connect>(
    dir: &Path,
    settings: &Settings,
    options: &UpOptions,
    cloud: &FakeCloud,
    reach: &R,
    kube: &K,
) -> (UpReport, Result<(), RunError>, Vec<String>) {
    let state = LocalState::for_settings(Some(&dir.join(".kos")), settings);
    let heard = Heard::default();
    let local = local_inputs(settings, options).await.unwrap();
    let systems = Systems { cloud, reach, kube, reporter: &heard };
    let (report, result) = up(settings, &state, options, &local, systems).await;
    conforms(&report);
    let lines = heard.0.into_inner().unwrap();
    (report, result, lines)
}

pub fn validator() -> jsonschema::Validator {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/up-report.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// The report's JSON matches its documented schema (docs/up-report.schema.json).
pub fn conforms(report: &UpReport) {
    let validator = validator();
    let json = serde_json::to_value(report).unwrap();
    let errors: Vec<String> = validator.iter_errors(&json).map(|e| format!("{}: {e}", e.instance_path())).collect();
    assert!(errors.is_empty(), "the report does not match docs/up-report.schema.json: {errors:#?}\n{json:#}");
}

/// For the tests in which no phase may reach the API server: there is none, and every
/// connection is refused (and counted), so a phase that asks fails and the test sees it.
#[derive(Debug, Default)]
pub struct NoApiServer {
    connects: AtomicUsize,
}

impl NoApiServer {
    /// How many times a phase asked for the API server.
    pub fn connects(&self) -> usize {
        self.connects.load(Ordering::SeqCst)
    }
}

impl Connect for NoApiServer {
    type Api = KubeClient;

    async fn connect(&self, _kubeconfig: &str, wait: Duration) -> Result<KubeClient, KubeError> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        Err(KubeError::NotReady { server: "(none)".into(), waited: wait, last: "this test has no API server".into() })
    }
}

/// The test settings' servers made in the in-memory cloud and the cluster's PKI made as
/// `kos render` makes it (no API server needed): the cloud, the settings and the state.
pub async fn made_with_pki(dir: &Path) -> (FakeCloud, Settings, LocalState) {
    let cloud = FakeCloud::new();
    run(dir, &[Phase::Instances], &cloud, &NoAnswer::default(), &NoApiServer::default()).await.1.unwrap();
    let s = settings(dir);
    let state = LocalState::for_settings(Some(&dir.join(".kos")), &s);
    let observed = state.observed().unwrap();
    let plan = crate::plan_for(&s, &observed).unwrap();
    crate::files::render_tree(&s, &state, &observed, &plan, &dir.join("rendered")).unwrap();
    (cloud, s, state)
}

/// The test settings' three nodes on the loopback API server as their kubelets would show
/// them once serving (registered and Ready at v1.37.2, master-1's control-plane pods
/// Ready), and kos's way to it. No deployment controller runs there, so once kos has
/// applied CoreDNS the test plays that controller's part: its replicas ready.
pub async fn kubelets(api: &LoopbackApi) -> LoopbackConnect {
    api.kubelets_serving(&["master-1"], &["worker-1", "worker-2"], "v1.37.2").await;
    api.ready_once_applied("kube-system", "coredns");
    api.connector()
}

/// The test settings' cluster made on the in-memory cloud and the loopback API server (the
/// instances and add-ons phases run: servers, PKI, the add-ons applied, the cluster Ready):
/// the cloud, kos's way to the API server, the settings and the state.
pub async fn served(dir: &Path, api: &LoopbackApi) -> (FakeCloud, LoopbackConnect, Settings, LocalState) {
    let cloud = FakeCloud::new();
    let kube = kubelets(api).await;
    run(dir, &[Phase::Instances, Phase::Addons], &cloud, &Answer::default(), &kube).await.1.unwrap();
    let s = settings(dir);
    let state = LocalState::for_settings(Some(&dir.join(".kos")), &s);
    (cloud, kube, s, state)
}
