//! `kos plan`: `kos_run::plan` with the real cloud, SSH and API server, printed for people
//! or as JSON.

use super::cloud::connect;
use super::session::{runtime, Session};
use super::CommandError;
use crate::cli::{OutputFormat, PlanArgs};
use crate::printer::Printer;
use kos_run::nodes::Ssh;
use kos_run::plan::{Looks, NodePlan, PlanReport};
use serde_json::json;
use std::time::Duration;

/// Prints the plan; returns how many changes are pending (nodes that cannot be looked at
/// count: their changes are unknown).
pub fn plan(args: &PlanArgs, tls: kos_cloud::openstack::ConnectOptions, printer: Printer) -> Result<usize, CommandError> {
    let Session { settings, state } = Session::load(&args.settings)?;
    // JSON alone on stdout: no progress lines then.
    let progress = crate::progress::Progress::new(if args.output == OutputFormat::Json { printer.quiet() } else { printer });
    let reach = Ssh::new(&settings, &state);
    let report = runtime()?.block_on(async {
        let cloud = connect(&settings, tls).await?;
        let looks = Looks { cloud: &cloud, reach: &reach, kube: &kos_kube::client::Connector, reporter: &progress, ssh_wait: Duration::from_secs(args.ssh_wait) };
        Ok::<_, CommandError>(kos_run::plan::plan(&settings, &state, looks).await?)
    })?;
    match args.output {
        OutputFormat::Json => printer.data(serde_json::to_string_pretty(&as_json(&report, &settings.cluster.name)).unwrap_or_default()),
        OutputFormat::Text => print(&report, printer),
    }
    Ok(report.pending())
}

fn as_json(report: &PlanReport, cluster: &str) -> serde_json::Value {
    let nodes: serde_json::Map<String, serde_json::Value> = report
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
    json!({"cluster": cluster, "cloud": report.cloud, "nodes": nodes, "addons": report.addons,
        "changes": report.pending() - report.unknown(), "unreachable": report.unknown()})
}

fn print(report: &PlanReport, printer: Printer) {
    for l in &report.cloud {
        printer.data(format!("cloud: {l}"));
    }
    for (node, plan) in &report.nodes {
        match plan {
            NodePlan::New => printer.data(format!("{node}: new server: everything (runtime, kubernetes, network)")),
            NodePlan::Changes(phases) => {
                for p in phases {
                    for c in &p.changes {
                        printer.data(format!("{node}: {}: {c}", p.phase));
                    }
                }
            }
            NodePlan::Unknown(error) => printer.data(format!("{node}: cannot look: {error}")),
        }
    }
    for l in &report.addons {
        printer.data(format!("addons: {l}"));
    }
    if report.pending() == 0 {
        printer.data("nothing to change: the cluster matches the settings");
    } else {
        let unknown = report.unknown();
        printer.data(format!(
            "{} change(s) in the cloud, {} on nodes, {} add-on object(s){}",
            report.cloud.len(),
            report.node_changes(),
            report.addons.len(),
            if unknown > 0 { format!(", {unknown} not reachable") } else { String::new() }
        ));
    }
}
