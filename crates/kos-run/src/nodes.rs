//! What `up`, `plan` and `status` share on the node side: the PKI and every rendered
//! file, each node's wants, one session per node (through [`Reach`]: SSH for real), the
//! nodes' facts and the verify checks.

use crate::report::{Failure, Verified};
use crate::state::LocalState;
use crate::{Reporter, RunError, other};
use anyhow::Context as _;
use futures_util::stream::{self, StreamExt};
use kos_cloud::reconcile::ClusterResources;
use kos_core::plan::ClusterPlan;
use kos_core::settings::Settings;
use kos_node::artifacts;
use kos_node::provision;
use kos_node::remote::Remote;
use kos_node::ssh::{SshConfig, SshNode, SshTarget};
use kos_node::wanted::{NodeWants, node_wants};
use kos_render::{Environment, Inputs, Kind, NodeFacts, Target};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// How the pipeline reaches nodes: sessions that run scripts as root.
pub trait Reach: Send + Sync {
    type Node: Remote;
    /// Get ready to reach these targets (for SSH: write the cluster's ssh_config); returns a
    /// line for the operator (how to log in by hand).
    fn prepare(&self, targets: &[SshTarget]) -> Result<String, RunError>;
    /// A session to one target, waiting at most `wait` for it to answer.
    fn connect(&self, target: &SshTarget, wait: Duration) -> impl Future<Output = Result<Self::Node, String>> + Send;
    /// End a session.
    fn close(&self, node: Self::Node) -> impl Future<Output = ()> + Send;
    /// Whether the target's host key is already trusted. Early sessions ([`connect_early`])
    /// go only to such nodes: a first contact is made once the cloud has confirmed the server.
    fn knows_host(&self, _target: &SshTarget) -> bool {
        true
    }
}

/// The real [`Reach`]: OpenSSH with the cluster's own ssh_config and known_hosts under
/// `<state>/ssh/`.
#[derive(Debug)]
pub struct Ssh<'a> {
    settings: &'a Settings,
    dir: std::path::PathBuf,
    config: Mutex<Option<SshConfig>>,
}

impl<'a> Ssh<'a> {
    pub fn new(settings: &'a Settings, state: &LocalState) -> Ssh<'a> {
        Ssh { settings, dir: state.ssh_dir(), config: Mutex::new(None) }
    }
}

impl Reach for Ssh<'_> {
    type Node = SshNode;

    fn prepare(&self, targets: &[SshTarget]) -> Result<String, RunError> {
        let config = SshConfig::write(&self.dir, self.settings, targets).map_err(other)?;
        let file = config.file.display().to_string();
        *self.config.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(config);
        Ok(format!("ssh: {file} (try `ssh -F {file} {}`)", targets.first().map_or("", |t| t.alias.as_str())))
    }

    async fn connect(&self, target: &SshTarget, wait: Duration) -> Result<SshNode, String> {
        let config = self.config.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let config = config.ok_or_else(|| format!("{}: no ssh_config was written", target.node))?;
        SshNode::connect(&config, target, wait).await.map_err(|e| e.to_string())
    }

    async fn close(&self, node: SshNode) {
        node.close().await;
    }

    /// A line of the cluster's known_hosts under the name the target's key is recorded under
    /// (the server's ID).
    fn knows_host(&self, target: &SshTarget) -> bool {
        let name = target.known_hosts_name(self.settings.ssh.port);
        let known = std::fs::read_to_string(self.dir.join("known_hosts")).unwrap_or_default();
        known.lines().any(|l| l.split_whitespace().next().is_some_and(|names| names.split(',').any(|n| n == name)))
    }
}

/// The cluster's node-side material, ready to provision.
#[derive(Debug)]
pub struct Prepared {
    pub wants: Vec<NodeWants>,
    /// `admin.kubeconfig` (group kos:cluster-admins): what the user gets.
    pub admin_kubeconfig: String,
    /// `super-admin.kubeconfig` (system:masters): only for applying the add-ons, which
    /// include the binding that gives `admin` its rights.
    pub super_admin_kubeconfig: String,
    /// Add-on manifests: (file name, multi-document YAML).
    pub addons: Vec<(String, String)>,
    /// The leaf certificates this run re-issued because they were expiring (file stems).
    pub renewed: Vec<String>,
}

/// PKI (created or completed), every file rendered for the artifacts (`arts`, from
/// [`crate::inputs::local_inputs`]) and what the nodes' probes saw (`facts`), the
/// operator's files written to `<state>/local/`.
pub fn prepare(
    settings: &Settings,
    state: &LocalState,
    plan: &ClusterPlan,
    tenant_cidr: Option<ipnet::Ipv4Net>,
    arts: &[artifacts::Artifact],
    facts: &BTreeMap<String, NodeFacts>,
    reporter: &dyn Reporter,
) -> Result<Prepared, RunError> {
    if let Some(node) = plan.nodes_without_address().first() {
        return Err(RunError::Invalid(format!("node `{node}` has no address yet: run `kos up` (or `kos up --only instances`) first")));
    }
    let pki = state.pki();
    let report = pki
        .ensure(&plan.certificates, kos_pki::OffsetDateTime::now_utc())
        .with_context(|| format!("cannot prepare the PKI in {}", pki.dir().display()))?;
    reporter.detail(&report.to_string());
    let renewed: Vec<String> = report.renewed_as_expiring().into_iter().map(str::to_owned).collect();
    if let Ok(secs) = std::env::var(kos_pki::TEST_VALIDITY_VAR) {
        reporter.line(&format!(
            "warning: {}={secs}: new leaf certificates are valid {secs} s (a test-only setting)",
            kos_pki::TEST_VALIDITY_VAR
        ));
    }
    let env = Environment { runtime_from_artifacts: artifacts::runtime_from_artifacts(arts), nodes: facts.clone() };
    let local_dir = state.local_dir();
    let inputs = Inputs { settings, plan, tenant_cidr, local_dir: &local_dir, env: &env };
    let files = kos_render::render(&inputs, &pki).context("cannot render the cluster's files")?;
    let local: Vec<_> = files.iter().filter(|f| f.target == Target::Local).cloned().collect();
    kos_render::write_tree(&state.dir, &local).context("cannot write the operator's files")?;
    let of_kind = |kind: Kind| local.iter().filter(move |f| f.kind == kind);
    let one = |kind: Kind| of_kind(kind).next().map(|f| f.contents.clone());
    let admin_kubeconfig = one(Kind::AdminKubeconfig).context("the admin kubeconfig was not rendered")?;
    let super_admin_kubeconfig = one(Kind::SuperAdminKubeconfig).context("the super-admin kubeconfig was not rendered")?;
    let addons = of_kind(Kind::Addon).map(|f| (f.path.clone(), f.contents.clone())).collect();
    let env = kos_render::node::proxy_environment(&inputs).unwrap_or_default();
    let wants = plan.nodes.iter().map(|n| node_wants(settings, &n.name, n.role, &files, arts).with_env(&env)).collect();
    Ok(Prepared { wants, admin_kubeconfig, super_admin_kubeconfig, addons, renewed })
}

/// A fact of a node and the operator's line for the nodes it holds on (`{}`: their names).
type FactLine = (fn(&NodeFacts) -> bool, &'static str);

/// What each reachable node's probe says about it (cgroup version, conntrack), which
/// shapes its files; plus one line for the operator per fact that needs their attention.
/// `known`: facts already probed on these very sessions (the early ones), not asked again.
pub async fn facts_all<N: Remote>(
    sessions: &[NodeSession<N>],
    known: &BTreeMap<String, NodeFacts>,
) -> (BTreeMap<String, NodeFacts>, Vec<String>) {
    let seen: Vec<(String, Option<NodeFacts>)> = stream::iter(sessions.iter())
        .filter_map(|s| async move {
            match s {
                NodeSession::Up(n) => Some(n),
                NodeSession::Failed { .. } => None,
            }
        })
        .map(|n| async move {
            let facts = match known.get(n.node()) {
                Some(f) => Some(f.clone()),
                None => probe_facts(n).await,
            };
            (n.node().to_string(), facts)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let facts: BTreeMap<String, NodeFacts> = seen.into_iter().filter_map(|(n, f)| Some((n, f?))).collect();
    // One line per fact that needs the operator's attention, naming the nodes it holds on.
    let lines: [FactLine; 3] = [
        (
            |f| f.cgroup_v1,
            "warning: {} run cgroup v1: their kubelets get `failCgroupV1: false`; move the image to cgroup v2 (Kubernetes deprecated v1 in 1.35 and may remove it from 1.38)",
        ),
        (|f| f.conntrack_max_fixed, "note: {}: nf_conntrack_max cannot be set there; kube-proxy is told to leave it"),
        (
            |f| f.oom_score_restricted,
            "note: {}: root lacks CAP_SYS_RESOURCE (a container, not a VM); containerd clamps pods' OOM scores to its own",
        ),
    ];
    let notes = lines
        .iter()
        .filter_map(|(holds, line)| {
            let on: Vec<&str> = facts.iter().filter(|(_, f)| holds(f)).map(|(n, _)| n.as_str()).collect();
            (!on.is_empty()).then(|| line.replacen("{}", &on.join(", "), 1))
        })
        .collect();
    (facts, notes)
}

/// A node's session, or why there is none.
#[derive(Debug)]
pub enum NodeSession<N> {
    Up(N),
    Failed { node: String, error: String },
}

impl<N: Remote> NodeSession<N> {
    pub fn node(&self) -> &str {
        match self {
            NodeSession::Up(n) => n.node(),
            NodeSession::Failed { node, .. } => node,
        }
    }
}

/// SSH targets of the plan's nodes (alias `<cluster>-<node>`, host key alias = server ID).
pub fn targets(plan: &ClusterPlan, have: &ClusterResources) -> Vec<SshTarget> {
    targets_with(plan, |node| have.servers.get(node).map(|s| s.id.clone()))
}

fn targets_with(plan: &ClusterPlan, server_id: impl Fn(&str) -> Option<String>) -> Vec<SshTarget> {
    plan.nodes
        .iter()
        .filter_map(|n| {
            let address = n.ssh_address()?;
            Some(SshTarget {
                node: n.name.clone(),
                alias: n.server_name.clone(),
                address: address.to_string(),
                host_key_alias: server_id(&n.name),
            })
        })
        .collect()
}

/// How long a node recorded by the last run gets to answer before the cloud is asked: a
/// converged node answers at once; one that does not is left to [`connect_all`], which
/// knows from the cloud whether it runs at all.
pub const EARLY_WAIT: Duration = Duration::from_secs(3);

/// Sessions opened while the cloud is being asked, to the nodes as the last run recorded
/// them (address and server ID). [`connect_all`] keeps those whose target the cloud
/// confirms and closes the others.
#[derive(Debug)]
pub struct Early<N> {
    sessions: Vec<(SshTarget, N)>,
    /// What each early node's probe said (asked right after it answered); after
    /// [`connect_all`], only of the nodes whose session was kept.
    pub facts: BTreeMap<String, NodeFacts>,
}

impl<N> Default for Early<N> {
    fn default() -> Self {
        Early { sessions: Vec::new(), facts: BTreeMap::new() }
    }
}

/// Open a session to each node the state folder recorded with its server ID, waiting at
/// most [`EARLY_WAIT`] for each; none when nothing usable is recorded. Nothing is waited
/// for twice: a node that does not answer now is connected to (or found stopped) after
/// the cloud has answered.
pub async fn connect_early<R: Reach>(reach: &R, settings: &Settings, state: &LocalState) -> Early<R::Node> {
    let Ok(observed) = state.observed() else { return Early::default() };
    let Ok(plan) = crate::plan_for(settings, &observed) else { return Early::default() };
    let mut targets = targets_with(&plan, |node| observed.nodes.get(node).and_then(|o| o.server_id.clone()));
    targets.retain(|t| t.host_key_alias.is_some() && reach.knows_host(t));
    if targets.is_empty() || reach.prepare(&targets).is_err() {
        return Early::default();
    }
    let answered: Vec<(SshTarget, R::Node, Option<NodeFacts>)> = stream::iter(targets)
        .map(|t| async move {
            let node = reach.connect(&t, EARLY_WAIT).await.ok()?;
            let facts = probe_facts(&node).await;
            Some((t, node, facts))
        })
        .buffer_unordered(16)
        .filter_map(|s| async move { s })
        .collect()
        .await;
    let mut early = Early::default();
    for (target, node, facts) in answered {
        if let Some(facts) = facts {
            early.facts.insert(target.node.clone(), facts);
        }
        early.sessions.push((target, node));
    }
    early
}

/// A node's facts from its probe (nothing wanted): `None` when the probe failed.
async fn probe_facts<N: Remote>(node: &N) -> Option<NodeFacts> {
    let empty = kos_node::wanted::NodeWants { node: String::new(), phases: Vec::new() };
    provision::probe(node, &empty).await.ok().map(|st| st.facts())
}

/// Close the early sessions no one took.
pub async fn close_early<R: Reach>(reach: &R, early: Early<R::Node>) {
    for (_, node) in early.sessions {
        reach.close(node).await;
    }
}

/// Open a session to every node of the plan (waiting for each to answer, at most `wait`),
/// in parallel, in the plan's order. A server that is not running is not waited for.
pub async fn connect_all<R: Reach>(
    reach: &R,
    plan: &ClusterPlan,
    have: &ClusterResources,
    wait: Duration,
    reporter: &dyn Reporter,
    early: &mut Early<R::Node>,
) -> Result<Vec<NodeSession<R::Node>>, RunError> {
    connect_some(reach, plan, have, |_| true, wait, reporter, early).await
}

/// [`connect_all`] to the nodes `wanted` keeps. The ssh_config still names every node of the
/// plan: it is the operator's too (`ssh -F <state>/ssh/config <cluster>-<node>`), and a command
/// that asks only the masters must not take the workers out of it.
pub async fn connect_some<R: Reach>(
    reach: &R,
    plan: &ClusterPlan,
    have: &ClusterResources,
    wanted: impl Fn(&str) -> bool,
    wait: Duration,
    reporter: &dyn Reporter,
    early: &mut Early<R::Node>,
) -> Result<Vec<NodeSession<R::Node>>, RunError> {
    let all = targets(plan, have);
    let targets: Vec<SshTarget> = all.iter().filter(|t| wanted(&t.node)).cloned().collect();
    // The early sessions to targets the cloud confirms (same address, same server, running).
    let mut kept = Vec::new();
    for (target, node) in std::mem::take(&mut early.sessions) {
        let running = have.servers.get(&target.node).is_some_and(|s| s.status == "ACTIVE");
        if running && targets.contains(&target) {
            kept.push((target, node));
        } else {
            early.facts.remove(&target.node);
            reach.close(node).await;
        }
    }
    let prepared = reach.prepare(&all);
    let prepared = match prepared {
        Ok(line) => line,
        Err(e) => {
            close_early(reach, Early { sessions: kept, facts: BTreeMap::new() }).await;
            return Err(e);
        }
    };
    reporter.detail(&prepared);
    let kept = Mutex::new(kept);
    let kept = &kept;
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let answered = &answered;
    reporter.wait_started(&format!("ssh: waiting for {} node(s) to answer", targets.len()), wait);
    let connect = stream::iter(targets.iter())
        .map(|t| async move {
            // A server that is not running will not answer: say so now instead of waiting.
            if let Some(server) = have.servers.get(&t.node)
                && server.status != "ACTIVE"
            {
                let fix = match server.status.as_str() {
                    "SHUTOFF" => format!(": start it (`openstack server start {}`) and run `kos up` again", server.name),
                    "BUILD" | "REBOOT" | "HARD_REBOOT" => ": wait for it to become ACTIVE and run `kos up` again".to_string(),
                    _ => String::new(),
                };
                return NodeSession::Failed {
                    node: t.node.clone(),
                    error: format!("{}: server {} is {}{fix}", t.node, server.name, server.status),
                };
            }
            let early = {
                let mut kept = kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                kept.iter().position(|(k, _)| k == t).map(|i| kept.swap_remove(i).1)
            };
            if let Some(node) = early {
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return NodeSession::Up(node);
            }
            let session = match reach.connect(t, wait).await {
                Ok(s) => NodeSession::Up(s),
                Err(error) => NodeSession::Failed { node: t.node.clone(), error },
            };
            answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            session
        })
        .buffer_unordered(16)
        .collect::<Vec<NodeSession<R::Node>>>();
    let still = || {
        let done = answered.load(std::sync::atomic::Ordering::Relaxed);
        format!("{done} of {} answered or gave up", targets.len())
    };
    let sessions = crate::ticking(connect, reporter, Duration::from_secs(5), still).await;
    reporter.wait_finished();
    // Keep the settings' order.
    let mut sessions = sessions;
    sessions.sort_by_key(|s| plan.nodes.iter().position(|n| n.name == s.node()).unwrap_or(usize::MAX));
    Ok(sessions)
}

/// The session to the node `name`, if it answered.
pub fn session<'s, N: Remote>(sessions: &'s [NodeSession<N>], name: &str) -> Option<&'s N> {
    sessions.iter().find_map(|s| match s {
        NodeSession::Up(n) if n.node() == name => Some(n),
        _ => None,
    })
}

/// The reachable nodes with their wants.
pub fn with_wants<'a, N: Remote>(sessions: &'a [NodeSession<N>], wants: &'a [NodeWants]) -> Vec<(&'a N, &'a NodeWants)> {
    sessions
        .iter()
        .filter_map(|s| match s {
            NodeSession::Up(n) => wants.iter().find(|w| w.node == n.node()).map(|w| (n, w)),
            NodeSession::Failed { .. } => None,
        })
        .collect()
}

pub async fn close_all<R: Reach>(reach: &R, sessions: Vec<NodeSession<R::Node>>) {
    for s in sessions {
        if let NodeSession::Up(n) = s {
            reach.close(n).await;
        }
    }
}

/// Verify every reachable node but those in `skip` (they failed already and are named
/// once), in the plan's order. The units checked are those the node's wants run (one table:
/// `kos_node::wanted`).
pub async fn verify_all<N: Remote>(sessions: &[NodeSession<N>], plan: &ClusterPlan, wants: &[NodeWants], skip: &[&str]) -> Vec<Verified> {
    let mut results: Vec<Verified> = stream::iter(sessions.iter())
        .filter_map(|s| async move {
            match s {
                NodeSession::Up(n) if !skip.contains(&n.node()) => Some(n),
                _ => None,
            }
        })
        .map(|n| async move {
            let gateway = plan.nodes.iter().find(|p| p.name == n.node()).map(|p| p.pod_gateway.to_string()).unwrap_or_default();
            let units = wants.iter().find(|w| w.node == n.node()).map(NodeWants::all_units).unwrap_or_default();
            let node = n.node().to_string();
            let failure =
                |message: String| Failure { node: node.clone(), phase: "verify".into(), message: format!("{node} (verify): {message}") };
            match provision::verify(n, &units, &gateway).await {
                Ok(checks) => Verified {
                    checks: checks.len(),
                    failures: checks.iter().filter(|c| !c.ok).map(|c| failure(format!("{} ({})", c.what, c.detail))).collect(),
                    node,
                },
                Err(e) => Verified { checks: 0, failures: vec![failure(e.to_string())], node },
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.sort_by_key(|v| plan.nodes.iter().position(|n| n.name == v.node).unwrap_or(usize::MAX));
    results
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn early_sessions_go_only_to_hosts_whose_key_is_known_under_the_server_id() {
        let dir = tempfile::tempdir().unwrap();
        let settings = crate::testing::settings(dir.path());
        let state = LocalState::for_settings(Some(&dir.path().join(".kos")), &settings);
        let ssh = Ssh::new(&settings, &state);
        let target = |id: Option<&str>| SshTarget::new("demo", "worker-1", "192.168.50.12", id);
        assert!(!ssh.knows_host(&target(Some("id-1"))), "no known_hosts yet");
        std::fs::create_dir_all(state.ssh_dir()).unwrap();
        std::fs::write(state.ssh_dir().join("known_hosts"), "id-0,other ssh-ed25519 AAAA\nid-1 ssh-ed25519 AAAB\n").unwrap();
        assert!(ssh.knows_host(&target(Some("id-1"))));
        assert!(ssh.knows_host(&target(Some("id-0"))));
        // A re-created server (a new ID at the same address) is a first contact: not early.
        assert!(!ssh.knows_host(&target(Some("id-2"))));
        assert!(!ssh.knows_host(&target(Some("id"))), "a prefix of a known name is not it");
    }
}
