//! `kos plan`: what `kos up` would change, in the cloud and on each node, with nothing
//! changed. The cloud side comes from the same pure functions `up` uses
//! (`node_changes`, `route_changes`); the node side from one read-only probe per node
//! and the same diff `up` carries out. (The local PKI is created if it is missing: the
//! node files cannot be compared without it.)

use super::cloud::{observe, Observation};
use super::session::{runtime, Session};
use super::{failed, CommandError};
use crate::cli::{OutputFormat, PlanArgs};
use crate::printer::Printer;
use kos_cloud::Cloud as _;
use kos_cloud::reconcile::{node_changes, route_changes, NodeChange, RouteChange};
use kos_run::nodes::{self, NodeSession, Ssh};
use kos_node::provision::{self, Provision};
use kos_node::wanted::NodePhase;
use serde_json::json;
use std::time::Duration;

fn describe(c: &NodeChange) -> String {
    match c {
        NodeChange::CreatePort { node } => format!("create port of {node} (its pod CIDR as allowed address pair)"),
        NodeChange::SetAddressPairs { node, cidrs, .. } => format!("set allowed address pairs of {node}'s port to {}", cidrs.join(", ")),
        NodeChange::CreateServer { node } => format!("create server of {node}"),
        NodeChange::RecreateServer { node, fault, .. } => {
            format!("re-create server of {node} (ERROR{})", fault.as_ref().map(|f| format!(": {f}")).unwrap_or_default())
        }
        NodeChange::AttachFloatingIp { node, reuse } => {
            format!("{} floating IP for {node}", if reuse.is_some() { "attach a free" } else { "allocate a" })
        }
        NodeChange::DeleteStrayPort { name, port_id } => format!("delete stray port {name} ({port_id}): a second, unattached port of its node"),
        NodeChange::Remove { node, .. } => format!("remove {node} (server, port, floating IP): it is no longer in the settings"),
    }
}

/// Prints the plan; returns how many changes are pending (nodes that cannot be looked at
/// count: their changes are unknown).
pub fn plan(args: &PlanArgs, printer: Printer) -> Result<usize, CommandError> {
    let Session { settings, state } = Session::load(&args.settings)?;
    let progress = crate::progress::Progress::new(printer);
    let reach = Ssh::new(&settings, &state);
    runtime()?.block_on(async {
        let Observation { cloud, resolved, have, plan } = observe(&settings).await?;
        let mut cloud_lines: Vec<String> = node_changes(&plan, &have).iter().map(describe).collect();
        let router = cloud.router(&resolved.router.id).await.map_err(failed)?;
        match route_changes(&plan, &router, &have.node_addresses(), resolved.atomic_routes) {
            RouteChange::None => {}
            RouteChange::Atomic { add, remove } | RouteChange::Replace { add, remove, .. } => {
                cloud_lines.extend(add.iter().map(|r| format!("add route {} via {}", r.destination, r.nexthop)));
                cloud_lines.extend(remove.iter().map(|r| format!("remove route {} via {}", r.destination, r.nexthop)));
            }
        }
        // Nodes whose server is missing or has no address yet are provisioned from scratch.
        let mut node_json = serde_json::Map::new();
        let mut node_lines: Vec<String> = Vec::new();
        let mut node_changes_total = 0usize;
        let mut unreachable = 0usize;
        let missing: Vec<String> = plan.nodes_without_address().iter().map(|s| s.to_string()).collect();
        if !missing.is_empty() || plan.nodes.iter().any(|n| !have.servers.contains_key(&n.name)) {
            for n in &plan.nodes {
                if !have.servers.contains_key(&n.name) || missing.contains(&n.name) {
                    node_lines.push(format!("{}: new server: everything (runtime, kubernetes, network)", n.name));
                    node_json.insert(n.name.clone(), json!({"new": true}));
                    node_changes_total += 1;
                }
            }
        }
        if missing.is_empty() {
            let sessions = nodes::connect_all(&reach, &plan, &have, Duration::from_secs(args.ssh_wait), &progress).await?;
            let (facts, _) = nodes::facts_all(&sessions).await;
            let arts = kos_run::inputs::local_inputs(&settings, true).await?;
            let cluster = nodes::prepare(&settings, &state, &plan, Some(resolved.subnet.cidr), &arts, &facts, &progress)?;
            let how = Provision { phases: vec![NodePhase::Runtime, NodePhase::Kubernetes, NodePhase::Network], dry_run: true, parallel: 10 };
            let pairs = nodes::with_wants(&sessions, &cluster.wants);
            let reports = provision::provision_all(&pairs, &how, &Silent).await;
            for s in &sessions {
                if let NodeSession::Failed { node, error } = s
                    && have.servers.contains_key(node)
                {
                    node_lines.push(format!("{node}: cannot look: {error}"));
                    node_json.insert(node.clone(), json!({"error": error}));
                    unreachable += 1;
                }
            }
            for r in &reports {
                if let Some(e) = &r.error {
                    node_lines.push(format!("{}: cannot look: {e}", r.node));
                    node_json.insert(r.node.clone(), json!({"error": e}));
                    unreachable += 1;
                    continue;
                }
                let mut phases = serde_json::Map::new();
                for (phase, list) in &r.changes {
                    for c in list {
                        node_lines.push(format!("{}: {phase}: {c}", r.node));
                    }
                    phases.insert(phase.to_string(), serde_json::to_value(list).unwrap_or_default());
                    node_changes_total += list.len();
                }
                node_json.insert(r.node.clone(), json!({"changes": phases}));
            }
            nodes::close_all(&reach, sessions).await;
        }
        match args.output {
            OutputFormat::Json => {
                let doc = json!({"cluster": settings.cluster.name, "cloud": cloud_lines, "nodes": node_json,
                    "changes": cloud_lines.len() + node_changes_total, "unreachable": unreachable});
                printer.data(serde_json::to_string_pretty(&doc).unwrap_or_default());
            }
            OutputFormat::Text => {
                for l in &cloud_lines {
                    printer.data(format!("cloud: {l}"));
                }
                for l in &node_lines {
                    printer.data(l);
                }
                if cloud_lines.is_empty() && node_changes_total == 0 && unreachable == 0 {
                    printer.data("nothing to change: the cluster matches the settings");
                } else {
                    printer.data(format!(
                        "{} change(s) in the cloud, {node_changes_total} on nodes{}",
                        cloud_lines.len(),
                        if unreachable > 0 { format!(", {unreachable} node(s) not reachable") } else { String::new() }
                    ));
                }
            }
        }
        Ok(cloud_lines.len() + node_changes_total + unreachable)
    })
}

/// A plan's probes report nothing as they go.
struct Silent;

impl provision::Progress for Silent {
    fn event(&self, _node: &str, _message: &str) {}
}
