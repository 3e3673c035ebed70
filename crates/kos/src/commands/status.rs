//! `kos status`: one line per node: server state, addresses, pod CIDR, whether its
//! route is on the router, whether SSH answers and the kubelet unit's state; then the
//! API server's view of the nodes when it answers.

use super::cloud::{observe, Observation};
use super::session::{runtime, Session};
use super::CommandError;
use crate::cli::StatusArgs;
use crate::printer::Printer;
use kos_cloud::model::Route;
use kos_run::nodes::{self, NodeSession, Ssh};
use kos_node::remote::Remote as _;
use std::time::Duration;

pub fn status(args: &StatusArgs, printer: Printer) -> Result<(), CommandError> {
    let Session { settings, state } = Session::load(&args.settings)?;
    let progress = crate::progress::Progress::new(printer);
    let reach = Ssh::new(&settings, &state);
    runtime()?.block_on(async {
        let Observation { cloud, resolved, have, plan } = observe(&settings).await?;
        if have.servers.is_empty() {
            // Never made, or destroyed: no addresses to probe, no API to ask.
            use kos_cloud::Cloud as _;
            printer.data(format!(
                "cluster {} has no server in cloud {}: it does not exist (yet); `kos up` creates it",
                settings.cluster.name,
                cloud.name()
            ));
            return Ok(());
        }
        let sessions = nodes::connect_all(&reach, &plan, &have, Duration::from_secs(args.ssh_wait), &progress).await?;
        printer.data(format!("{:<14} {:<8} {:<15} {:<15} {:<15} {:<6} {:<6} {}", "NODE", "SERVER", "FIXED IP", "FLOATING IP", "POD CIDR", "ROUTE", "SSH", "KUBELET"));
        for n in &plan.nodes {
            let server = have.servers.get(&n.name).map_or("absent".to_string(), |s| s.status.clone());
            let route = n.fixed_ip.is_some_and(|ip| resolved.router.routes.contains(&Route { destination: n.pod_cidr, nexthop: ip }));
            let session = sessions.iter().find(|s| s.node() == n.name);
            let (ssh, kubelet) = match session {
                Some(NodeSession::Up(x)) => {
                    let out = x.run("systemctl is-active kubelet 2>/dev/null || true", Default::default()).await;
                    ("ok", out.map(|o| o.stdout_text().trim().to_string()).unwrap_or_else(|e| e.to_string()))
                }
                Some(NodeSession::Failed { .. }) => ("no", "?".to_string()),
                None => ("-", "?".to_string()),
            };
            let ip = |v: Option<std::net::Ipv4Addr>| v.map_or("-".to_string(), |a| a.to_string());
            printer.data(format!(
                "{:<14} {:<8} {:<15} {:<15} {:<15} {:<6} {:<6} {}",
                n.name,
                server,
                ip(n.fixed_ip),
                ip(n.floating_ip),
                n.pod_cidr.to_string(),
                if route { "yes" } else { "no" },
                ssh,
                kubelet
            ));
        }
        for s in &sessions {
            if let NodeSession::Failed { node, error } = s {
                printer.line(format!("{node}: {error}"));
            }
        }
        nodes::close_all(&reach, sessions).await;
        let admin = state.local_dir().join("admin.kubeconfig");
        match std::fs::read_to_string(&admin) {
            Ok(kubeconfig) => match api_view(&kubeconfig, &plan, settings.addons.dns.is_some()).await {
                Ok(lines) => {
                    printer.data("API server's view:");
                    for l in lines {
                        printer.data(format!("  {l}"));
                    }
                }
                Err(e) => printer.data(format!("API server: {e}")),
            },
            Err(_) => printer.data(format!("API server: no admin kubeconfig yet ({}); run `kos up`", admin.display())),
        }
        Ok(())
    })
}

/// The API server's view: every node (Ready, kubelet version), every control-plane pod,
/// CoreDNS.
async fn api_view(kubeconfig: &str, plan: &kos_core::plan::ClusterPlan, with_dns: bool) -> Result<Vec<String>, String> {
    let client = kos_kube::client::wait_for_api(kubeconfig, Duration::from_secs(5)).await.map_err(|e| e.to_string())?;
    let items = kos_kube::health::look(&client, plan, with_dns).await.map_err(|e| e.to_string())?;
    Ok(items.iter().map(|i| format!("{} {i}", if i.ready { "ok  " } else { "WAIT" })).collect())
}
