//! `kos plan`: what `kos up` would change, in the cloud, on each node and through the API
//! server, with nothing changed. The cloud side comes from the same pure functions `up`
//! uses (`security_group_change`, `node_changes`, `route_changes`); the node side from one
//! read-only probe per node and the same diff `up` carries out; the add-ons from a
//! server-side dry run of the same apply. (The local PKI is created if it is missing: the
//! node files cannot be compared without it.)

use crate::nodes::{self, NodeSession, Prepared, Reach};
use crate::report::NodePhaseChanges;
use crate::state::LocalState;
use crate::{Reporter, RunError, plan_for};
use kos_cloud::Cloud;
use kos_cloud::apply::{self, CloudChange, Resolved};
use kos_cloud::reconcile::{ClusterResources, RouteChange, api_changes, api_member_change, node_changes, route_changes};
use kos_cloud::survey::{self, Asks, Survey};
use kos_core::plan::ClusterPlan;
use kos_core::settings::Settings;
use kos_kube::Connect;
use kos_node::provision::{self, Provision};
use kos_node::wanted::NodePhase;
use std::time::Duration;

/// How long the plan waits for the API server: it only looks.
const API_LOOK: Duration = Duration::from_secs(5);

/// What `kos up` would do.
#[derive(Debug, Default)]
pub struct PlanReport {
    /// Cloud changes, in the words `up` prints.
    pub cloud: Vec<String>,
    /// Each node of the plan that has something to do, in the plan's order.
    pub nodes: Vec<(String, NodePlan)>,
    /// Add-on objects that would be created or configured (or why that is not known).
    pub addons: Vec<String>,
    /// The rolling upgrade `up` would carry out first (its steps in one line).
    pub upgrade: Option<String>,
}

/// What `kos up` would do on one node.
#[derive(Debug, Clone)]
pub enum NodePlan {
    /// Its server is still to be made: everything.
    New,
    /// The changes of each phase that has any.
    Changes(Vec<NodePhaseChanges>),
    /// It could not be looked at: its changes are unknown.
    Unknown(String),
}

impl PlanReport {
    pub fn node_changes(&self) -> usize {
        self.nodes
            .iter()
            .map(|(_, n)| match n {
                NodePlan::New => 1,
                NodePlan::Changes(phases) => phases.iter().map(|p| p.changes.len()).sum(),
                NodePlan::Unknown(_) => 0,
            })
            .sum()
    }

    /// Nodes (or the API server) that could not be looked at.
    pub fn unknown(&self) -> usize {
        self.nodes.iter().filter(|(_, n)| matches!(n, NodePlan::Unknown(_))).count()
    }

    /// Changes pending, the unknown counted too: a script must not take them for none.
    pub fn pending(&self) -> usize {
        self.cloud.len() + self.node_changes() + self.addons.len() + self.unknown() + usize::from(self.upgrade.is_some())
    }

    /// `kos plan -o json`.
    pub fn to_json(&self, cluster: &str) -> serde_json::Value {
        use serde_json::json;
        let nodes: serde_json::Map<String, serde_json::Value> = self
            .nodes
            .iter()
            .map(|(node, plan)| {
                let value = match plan {
                    NodePlan::New => json!({"new": true}),
                    NodePlan::Changes(phases) => {
                        json!({"changes": phases.iter().map(|p| (p.phase.clone(), json!(p.changes))).collect::<serde_json::Map<_, _>>()})
                    }
                    NodePlan::Unknown(error) => json!({"error": error}),
                };
                (node.clone(), value)
            })
            .collect();
        json!({"cluster": cluster, "cloud": self.cloud, "nodes": nodes, "addons": self.addons, "upgrade": self.upgrade,
            "changes": self.pending() - self.unknown(), "unreachable": self.unknown()})
    }

    /// `kos plan` for people: a line per change, in `up`'s words, then the count.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.cloud.iter().map(|l| format!("cloud: {l}")).collect();
        if let Some(u) = &self.upgrade {
            out.push(format!(
                "upgrade: {u}; an etcd snapshot first, and each master (each batch) healthy at the new version before the next"
            ));
        }
        for (node, plan) in &self.nodes {
            match plan {
                NodePlan::New => out.push(format!("{node}: new server: everything (runtime, kubernetes, network)")),
                NodePlan::Changes(phases) => {
                    out.extend(phases.iter().flat_map(|p| p.changes.iter().map(move |c| format!("{node}: {}: {c}", p.phase))))
                }
                // The error names the node already.
                NodePlan::Unknown(error) => {
                    out.push(format!("{node}: cannot look: {}", error.strip_prefix(&format!("{node}: ")).unwrap_or(error)))
                }
            }
        }
        out.extend(self.addons.iter().map(|l| format!("addons: {l}")));
        let unknown = self.unknown();
        out.push(match self.pending() {
            0 => "nothing to change: the cluster matches the settings".to_string(),
            _ => format!(
                "{} change(s) in the cloud, {} on nodes, {} add-on object(s){}",
                self.cloud.len(),
                self.node_changes(),
                self.addons.len(),
                if unknown > 0 { format!(", {unknown} not reachable") } else { String::new() }
            ),
        });
        out
    }
}

/// How `plan` reaches what it looks at.
pub struct Looks<'a, C, R, K> {
    pub cloud: &'a C,
    pub reach: &'a R,
    pub kube: &'a K,
    pub reporter: &'a dyn Reporter,
    /// How long to wait for each node to answer.
    pub ssh_wait: Duration,
}

impl<C, R, K> std::fmt::Debug for Looks<'_, C, R, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Looks")
    }
}

/// Everything `kos up` would change now.
pub async fn plan<C: Cloud, R: Reach, K: Connect>(
    settings: &Settings,
    state: &LocalState,
    looks: Looks<'_, C, R, K>,
) -> Result<PlanReport, RunError> {
    let cloud = looks.cloud;
    let asks = Asks { checks: false, security_group: settings.cloud.manage_security_group };
    let survey = survey::survey(cloud, settings, asks).await;
    let (resolved, have) = (survey.resolved()?, survey.have()?);
    let observed = have.observed(Some(resolved.subnet.cidr));
    kos_core::plan::check_control_plane_change(settings, &observed).map_err(|e| RunError::Invalid(e.to_string()))?;
    let plan = plan_for(settings, &observed)?;
    let mut report = PlanReport { cloud: cloud_changes(cloud, settings, &plan, &survey, &have, &resolved).await?, ..Default::default() };
    // A removed node is drained, then a removed master's etcd member goes, before their
    // servers, as `kos up` does it.
    let leaving = kos_core::plan::membership::removed_nodes(settings, &observed);
    let removed = kos_core::plan::membership::removed_masters(settings, &observed);
    let first = leaving
        .iter()
        .map(|n| format!("drain {n} (cordon, evict its pods, delete its Node object), before its server"))
        .chain(removed.iter().map(|m| format!("remove {m}'s etcd member (one at a time, a healthy majority kept), before its server")));
    report.cloud.splice(0..0, first);
    // Nodes whose server is missing or has no address yet are provisioned from scratch.
    let missing = plan.nodes_without_address();
    for n in plan.nodes.iter().filter(|n| !have.servers.contains_key(&n.name) || missing.contains(&n.name.as_str())) {
        report.nodes.push((n.name.clone(), NodePlan::New));
    }
    if !missing.is_empty() {
        report.addons.push("every add-on object would be created, once the API server runs".into());
        return Ok(report);
    }
    let sessions = nodes::connect_all(looks.reach, &plan, &have, looks.ssh_wait, looks.reporter, &mut nodes::Early::default()).await?;
    let (facts, _) = nodes::facts_all(&sessions, &Default::default()).await;
    let arts = crate::inputs::local_inputs(settings, true).await;
    let prepared = arts.and_then(|arts| nodes::prepare(settings, state, &plan, Some(resolved.subnet.cidr), &arts, &facts, looks.reporter));
    if let Ok(prepared) = &prepared {
        on_nodes(&mut report, &sessions, prepared, &have).await;
    }
    nodes::close_all(looks.reach, sessions).await;
    report.upgrade = crate::up::rolling::upgrade_for(settings, &plan, &facts)?.map(|u| u.to_string());
    let prepared = prepared?;
    addons(&mut report, looks.kube, &prepared).await;
    Ok(report)
}

/// The cloud's changes, in the words `up` prints: the security group, ports, servers,
/// floating IPs, routes. `have` and `resolved` are what the caller took from `survey`, which
/// also holds the security group.
async fn cloud_changes<C: Cloud>(
    cloud: &C,
    settings: &Settings,
    plan: &ClusterPlan,
    survey: &Survey,
    have: &ClusterResources,
    resolved: &Resolved,
) -> Result<Vec<String>, RunError> {
    let mut lines: Vec<String> = Vec::new();
    if settings.cloud.manage_security_group {
        let group = survey.security_group(cloud, &settings.cluster.name).await?;
        lines.extend(apply::security_group_change(settings, plan, group.as_ref()).map(|c| CloudChange::SecurityGroup(c).to_string()));
    }
    lines.extend(api_changes(plan, have).into_iter().map(|c| CloudChange::Api(c).to_string()));
    lines.extend(node_changes(plan, have).into_iter().map(|c| CloudChange::Node(c).to_string()));
    // The API load balancer's members, once the masters' ports are made.
    let addresses = plan.nodes.iter().filter_map(|n| n.fixed_ip.map(|ip| (n.name.clone(), ip))).collect();
    lines.extend(api_member_change(plan, have, &addresses).map(|c| CloudChange::Api(c).to_string()));
    // A node without an address yet gets its route once its port has one.
    lines.extend(
        plan.nodes
            .iter()
            .filter(|n| n.fixed_ip.is_none())
            .map(|n| format!("add route {} via {}'s address, once its port exists", n.pod_cidr, n.name)),
    );
    // The router as the survey read it: nothing was changed since.
    match route_changes(plan, &resolved.router, &have.node_addresses(), resolved.atomic_routes) {
        RouteChange::None => {}
        RouteChange::Atomic { add, remove } | RouteChange::Replace { add, remove, .. } => {
            lines.extend(add.into_iter().map(|r| CloudChange::AddRoute(r).to_string()));
            lines.extend(remove.into_iter().map(|r| CloudChange::RemoveRoute(r).to_string()));
        }
    }
    Ok(lines)
}

/// Each reachable node's changes: one read-only probe and the diff `up` carries out.
async fn on_nodes<N: kos_node::remote::Remote>(
    report: &mut PlanReport,
    sessions: &[NodeSession<N>],
    prepared: &Prepared,
    have: &ClusterResources,
) {
    let how = Provision { phases: vec![NodePhase::Runtime, NodePhase::Kubernetes, NodePhase::Network], dry_run: true, parallel: 10 };
    let reports = provision::provision_all(&nodes::with_wants(sessions, &prepared.wants), &how, &Silent).await;
    for s in sessions {
        if let NodeSession::Failed { node, error } = s
            && have.servers.contains_key(node)
        {
            report.nodes.push((node.clone(), NodePlan::Unknown(error.clone())));
        }
    }
    for r in reports {
        if let Some(e) = r.error {
            report.nodes.push((r.node, NodePlan::Unknown(e)));
        } else if r.change_count() > 0 {
            let phases = r.changes.into_iter().map(|(p, changes)| NodePhaseChanges { phase: p.to_string(), changes }).collect();
            report.nodes.push((r.node, NodePlan::Changes(phases)));
        }
    }
}

/// The add-ons `up` would apply: a server-side dry run of each object. An API server that
/// does not answer yet (a cluster still being made) means every object is to be applied.
async fn addons<K: Connect>(report: &mut PlanReport, kube: &K, prepared: &Prepared) {
    let api = match kube.connect(&prepared.super_admin_kubeconfig, API_LOOK).await {
        Ok(api) => api,
        Err(e) => {
            let objects = kos_kube::apply::objects(&prepared.addons).map(|o| o.len()).unwrap_or(0);
            report.addons.push(format!("{objects} add-on object(s) would be applied once the API server answers (now: {e})"));
            return;
        }
    };
    match kos_kube::apply::would_apply(&api, &prepared.addons).await {
        Ok(planned) => report.addons.extend(planned.iter().filter(|a| a.outcome != kos_kube::Outcome::Unchanged).map(|a| a.planned())),
        Err(e) => report.nodes.push(("addons".into(), NodePlan::Unknown(e.to_string()))),
    }
}

/// A plan's probes report nothing as they go.
struct Silent;

impl provision::Progress for Silent {
    fn event(&self, _node: &str, _message: &str) {}
}

#[cfg(test)]
mod tests;
