//! What `up`, `plan` and `status` share on the node side: the PKI and every rendered
//! file, the artifacts, each node's wants, the per-cluster ssh_config and one SSH
//! session per node, and the verify checks.

use super::state::State;
use super::{failed, CommandError};
use crate::printer::Printer;
use anyhow::Context as _;
use futures_util::stream::{self, StreamExt};
use kos_cloud::reconcile::ClusterResources;
use kos_core::plan::ClusterPlan;
use kos_core::settings::Settings;
use kos_node::artifacts;
use kos_node::provision::{self, Progress};
use kos_node::remote::Remote as _;
use kos_node::ssh::{SshConfig, SshNode, SshTarget};
use kos_node::wanted::{node_wants, NodeWants};
use kos_render::{Environment, Inputs, NodeFacts, Target};
use std::collections::BTreeMap;
use std::time::Duration;

/// The cluster's node-side material, ready to provision.
pub struct Cluster {
    pub wants: Vec<NodeWants>,
    /// `admin.kubeconfig` (group kos:cluster-admins): what the user gets.
    pub admin_kubeconfig: String,
    /// `super-admin.kubeconfig` (system:masters): only for applying the add-ons, which
    /// include the binding that gives `admin` its rights.
    pub super_admin_kubeconfig: String,
    /// Add-on manifests: (file name, multi-document YAML).
    pub addons: Vec<(String, String)>,
}

/// The local inputs the node phases need, checked before anything changes anywhere: the
/// SSH private key exists, and the artifacts (when `with_binaries`) resolve: a local
/// folder's every file matches its SHA256SUMS line, a mirror's checksums answer.
pub async fn local_inputs(settings: &Settings, with_binaries: bool) -> Result<Vec<artifacts::Artifact>, CommandError> {
    check_key(settings)?;
    if !with_binaries {
        return Ok(Vec::new());
    }
    resolve_artifacts(settings).await
}

/// Every problem of the local inputs, not only the first, in the words `up` uses (for
/// `kos validate` and `kos check`); empty when all is well. Without `fetch` nothing goes
/// over the network: an `upstream` or `mirror` source's checksums are not fetched (the local
/// folders are still checked).
pub async fn local_problems(settings: &Settings, fetch: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = check_key(settings) {
        problems.push(e.to_string());
    }
    let result = if fetch || matches!(settings.artifacts.source, kos_core::settings::ArtifactSource::Local { .. }) {
        resolve_artifacts(settings).await.map(drop)
    } else {
        extra_images(settings).await.map(drop)
    };
    if let Err(e) = result {
        problems.push(e.to_string());
    }
    problems
}

/// The `artifacts.extra_images` folders' archives, checked (hashing is blocking work).
async fn extra_images(settings: &Settings) -> Result<Vec<artifacts::Artifact>, CommandError> {
    let (dirs, base) = (settings.artifacts.extra_images.clone(), settings.base_dir().to_path_buf());
    tokio::task::spawn_blocking(move || artifacts::resolve_extra_images(&dirs, &base))
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
        .map_err(failed)
}

fn check_key(settings: &Settings) -> Result<(), CommandError> {
    kos_node::ssh::check_private_key(settings).map(drop).map_err(failed)
}

/// The artifacts of the settings, checked: the binaries' source, the images an artifact
/// set that carries images must carry, the extra image folders.
async fn resolve_artifacts(settings: &Settings) -> Result<Vec<artifacts::Artifact>, CommandError> {
    let mut arts = artifacts::resolve(&settings.artifacts.source, settings.base_dir(), &settings.cluster.kubernetes_version.to_string(), "amd64")
        .await
        .map_err(failed)?;
    // An artifact set that carries images must carry every one the cluster runs: a missing
    // one would only show later, as a pod that cannot pull on an air-gapped node.
    let carried: Vec<&str> = arts.iter().filter_map(|a| match &a.kind {
        artifacts::Kind::Image(i) => Some(i.name.as_str()),
        _ => None,
    }).collect();
    if !carried.is_empty() {
        let missing: Vec<String> = kos_render::images(settings).into_iter().filter(|i| !carried.contains(&i.as_str())).collect();
        if !missing.is_empty() {
            return Err(CommandError::Invalid(format!(
                "the artifact set carries images, but not {}, which the cluster runs: add each as images/<name>.tar (an OCI archive naming it, e.g. from `ctr images export` or testbed/k8s/build.sh) and its line to SHA256SUMS",
                missing.join(", ")
            )));
        }
    }
    // The user's own images, imported on every node whatever the binaries' source.
    if !settings.artifacts.extra_images.is_empty() {
        arts.extend(extra_images(settings).await?);
        artifacts::check_unique_images(&arts).map_err(failed)?;
    }
    Ok(arts)
}

/// PKI (created or completed), every file rendered for the artifacts (`arts`, from
/// [`local_inputs`]) and what the nodes' probes saw (`facts`), the operator's files
/// written to `<state>/local/`.
pub async fn prepare(
    settings: &Settings,
    state: &State,
    plan: &ClusterPlan,
    tenant_cidr: Option<ipnet::Ipv4Net>,
    arts: &[artifacts::Artifact],
    facts: &BTreeMap<String, NodeFacts>,
    printer: Printer,
) -> Result<Cluster, CommandError> {
    if let Some(node) = plan.nodes_without_address().first() {
        return Err(CommandError::Invalid(format!(
            "node `{node}` has no address yet: run `kos up` (or `kos up --only instances`) first"
        )));
    }
    let pki = state.pki();
    let report = pki
        .ensure(&plan.certificates, kos_pki::OffsetDateTime::now_utc())
        .with_context(|| format!("cannot prepare the PKI in {}", pki.dir().display()))?;
    printer.detail(report.to_string());
    let env = Environment { runtime_from_artifacts: artifacts::runtime_from_artifacts(arts), nodes: facts.clone() };
    let local_dir = state.local_dir();
    let inputs = Inputs { settings, plan, tenant_cidr, local_dir: &local_dir, env: &env };
    let files = kos_render::render(&inputs, &pki).context("cannot render the cluster's files")?;
    let local: Vec<_> = files.iter().filter(|f| f.target == Target::Local).cloned().collect();
    kos_render::write_tree(&state.dir, &local).context("cannot write the operator's files")?;
    let find = |path: &str| local.iter().find(|f| f.path == path).map(|f| f.contents.clone());
    let admin_kubeconfig = find("admin.kubeconfig").context("the admin kubeconfig was not rendered")?;
    let super_admin_kubeconfig = find("super-admin.kubeconfig").context("the super-admin kubeconfig was not rendered")?;
    let addons = local.iter().filter(|f| f.path.starts_with("addons/")).map(|f| (f.path.clone(), f.contents.clone())).collect();
    let env = kos_render::node::proxy_environment(&inputs).unwrap_or_default();
    let wants = plan.nodes.iter().map(|n| node_wants(settings, &n.name, n.role, &files, arts).with_env(&env)).collect();
    Ok(Cluster { wants, admin_kubeconfig, super_admin_kubeconfig, addons })
}

/// A fact of a node and the operator's line for the nodes it holds on (`{}`: their names).
type FactLine = (fn(&NodeFacts) -> bool, &'static str);

/// What each reachable node's probe says about it (cgroup version, conntrack), which
/// shapes its files; plus one line for the operator per fact that needs their attention.
pub async fn facts_all(sessions: &[NodeSession]) -> (BTreeMap<String, NodeFacts>, Vec<String>) {
    let empty = kos_node::wanted::NodeWants { node: String::new(), phases: Vec::new() };
    let empty = &empty;
    let seen: Vec<(String, Option<NodeFacts>)> = stream::iter(sessions.iter())
        .filter_map(|s| async move {
            match s {
                NodeSession::Up(n) => Some(n),
                NodeSession::Failed { .. } => None,
            }
        })
        .map(|n| async move { (n.node().to_string(), provision::probe(n, empty).await.ok().map(|st| st.facts())) })
        .buffer_unordered(16)
        .collect()
        .await;
    let facts: BTreeMap<String, NodeFacts> = seen.into_iter().filter_map(|(n, f)| Some((n, f?))).collect();
    // One line per fact that needs the operator's attention, naming the nodes it holds on.
    let lines: [FactLine; 3] = [
        (|f| f.cgroup_v1, "warning: {} run cgroup v1: their kubelets get `failCgroupV1: false`; move the image to cgroup v2 (Kubernetes deprecated v1 in 1.35 and may remove it from 1.38)"),
        (|f| f.conntrack_max_fixed, "note: {}: nf_conntrack_max cannot be set there; kube-proxy is told to leave it"),
        (|f| f.oom_score_restricted, "note: {}: root lacks CAP_SYS_RESOURCE (a container, not a VM); containerd clamps pods' OOM scores to its own"),
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

/// A node's SSH session, or why there is none.
pub enum NodeSession {
    Up(SshNode),
    Failed { node: String, error: String },
}

/// SSH targets of the plan's nodes (alias `<cluster>-<node>`, host key alias = server ID).
pub fn targets(plan: &ClusterPlan, have: &ClusterResources) -> Vec<SshTarget> {
    plan.nodes
        .iter()
        .filter_map(|n| {
            let address = n.ssh_address()?;
            Some(SshTarget {
                node: n.name.clone(),
                alias: n.server_name.clone(),
                address: address.to_string(),
                host_key_alias: have.servers.get(&n.name).map(|s| s.id.clone()),
            })
        })
        .collect()
}

/// Write the ssh_config and open a session to every node (waiting for SSH to answer,
/// at most `wait`), in parallel.
pub async fn connect_all(
    settings: &Settings,
    state: &State,
    plan: &ClusterPlan,
    have: &ClusterResources,
    wait: Duration,
    printer: Printer,
) -> Result<Vec<NodeSession>, CommandError> {
    let targets = targets(plan, have);
    let config = SshConfig::write(&state.ssh_dir(), settings, &targets).map_err(failed)?;
    printer.detail(format!("ssh: {} (try `ssh -F {} {}`)", config.file.display(), config.file.display(), targets.first().map_or("", |t| t.alias.as_str())));
    let config = &config;
    let sessions: Vec<NodeSession> = stream::iter(targets.iter())
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
                return NodeSession::Failed { node: t.node.clone(), error: format!("{}: server {} is {}{fix}", t.node, server.name, server.status) };
            }
            match SshNode::connect(config, t, wait).await {
                Ok(s) => NodeSession::Up(s),
                Err(e) => NodeSession::Failed { node: t.node.clone(), error: e.to_string() },
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    // Keep the settings' order.
    let mut sessions = sessions;
    sessions.sort_by_key(|s| {
        let name = match s {
            NodeSession::Up(n) => n.node().to_string(),
            NodeSession::Failed { node, .. } => node.clone(),
        };
        plan.nodes.iter().position(|n| n.name == name).unwrap_or(usize::MAX)
    });
    Ok(sessions)
}

/// The reachable nodes with their wants.
pub fn pairs<'a>(sessions: &'a [NodeSession], wants: &'a [NodeWants]) -> Vec<(&'a SshNode, &'a NodeWants)> {
    sessions
        .iter()
        .filter_map(|s| match s {
            NodeSession::Up(n) => wants.iter().find(|w| w.node == n.node()).map(|w| (n, w)),
            NodeSession::Failed { .. } => None,
        })
        .collect()
}

pub async fn close_all(sessions: Vec<NodeSession>) {
    for s in sessions {
        if let NodeSession::Up(n) = s {
            n.close().await;
        }
    }
}

/// Progress: a spinner per node on a terminal (indicatif), else lines with `-v`.
pub struct NodeProgress {
    printer: Printer,
    bars: Option<(indicatif::MultiProgress, Vec<(String, indicatif::ProgressBar)>)>,
}

impl NodeProgress {
    pub fn new(printer: Printer, nodes: &[&str]) -> NodeProgress {
        if !printer.wants_bars() {
            return NodeProgress { printer, bars: None };
        }
        let multi = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template("{spinner} {prefix:<14} {wide_msg} {elapsed:>4}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let bars = nodes
            .iter()
            .map(|n| {
                let bar = multi.add(indicatif::ProgressBar::new_spinner().with_style(style.clone()).with_prefix(n.to_string()));
                bar.enable_steady_tick(Duration::from_millis(120));
                (n.to_string(), bar)
            })
            .collect();
        NodeProgress { printer, bars: Some((multi, bars)) }
    }

    /// Remove the bars (before the summary lines).
    pub fn finish(&self) {
        if let Some((multi, bars)) = &self.bars {
            for (_, b) in bars {
                b.finish_and_clear();
            }
            let _ = multi.clear();
        }
    }
}

impl Progress for NodeProgress {
    fn event(&self, node: &str, message: &str) {
        match &self.bars {
            Some((_, bars)) => {
                if let Some((_, bar)) = bars.iter().find(|(n, _)| n == node) {
                    bar.set_message(message.to_string());
                }
            }
            None => self.printer.detail(format!("{node}: {message}")),
        }
    }
}

/// Verify every reachable node; returns the failures as lines.
/// The units checked are those the node's wants run (one table: `kos_node::wanted`).
pub async fn verify_all(sessions: &[NodeSession], plan: &ClusterPlan, wants: &[NodeWants], skip: &[&str], printer: Printer) -> Vec<String> {
    let results: Vec<(String, Result<Vec<provision::Check>, String>)> = stream::iter(sessions.iter())
        .filter_map(|s| async move {
            match s {
                NodeSession::Up(n) if !skip.contains(&n.node()) => Some(n),
                _ => None,
            }
        })
        .map(|n| async move {
            let gateway = plan.nodes.iter().find(|p| p.name == n.node()).map(|p| p.pod_gateway.to_string()).unwrap_or_default();
            let units = wants.iter().find(|w| w.node == n.node()).map(NodeWants::all_units).unwrap_or_default();
            (n.node().to_string(), provision::verify(n, &units, &gateway).await.map_err(|e| e.to_string()))
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut results = results;
    results.sort_by_key(|(node, _)| plan.nodes.iter().position(|n| &n.name == node).unwrap_or(usize::MAX));
    let mut bad = Vec::new();
    for (node, r) in results {
        match r {
            Ok(checks) => {
                let failed: Vec<_> = checks.iter().filter(|c| !c.ok).collect();
                if failed.is_empty() {
                    printer.line(format!("verify: {node}: {} checks ok", checks.len()));
                } else {
                    for c in failed {
                        bad.push(format!("{node} (verify): {} ({})", c.what, c.detail));
                    }
                }
            }
            Err(e) => bad.push(format!("{node} (verify): {e}")),
        }
    }
    bad
}
