//! `kos status`: `kos_run::status` with the real cloud, SSH and API server; a table for
//! people, or JSON.

use super::cloud::connect;
use super::session::{runtime, Session};
use super::CommandError;
use crate::cli::{OutputFormat, StatusArgs};
use crate::printer::Printer;
use kos_run::nodes::Ssh;
use kos_run::status::{ApiView, StatusReport};
use std::time::Duration;

pub fn status(args: &StatusArgs, tls: kos_cloud::openstack::ConnectOptions, printer: Printer) -> Result<(), CommandError> {
    let Session { settings, state } = Session::load(&args.settings)?;
    // JSON alone on stdout: no progress lines then.
    let progress = crate::progress::Progress::new(if args.output == OutputFormat::Json { printer.quiet() } else { printer });
    let reach = Ssh::new(&settings, &state);
    let report = runtime()?.block_on(async {
        let cloud = connect(&settings, tls).await?;
        let wait = Duration::from_secs(args.ssh_wait);
        Ok::<_, CommandError>(kos_run::status::status(&settings, &state, &cloud, &reach, &kos_kube::client::Connector, wait, &progress).await?)
    })?;
    match args.output {
        OutputFormat::Json => printer.data(serde_json::to_string_pretty(&report).unwrap_or_default()),
        OutputFormat::Text => print(&report, printer),
    }
    Ok(())
}

fn print(report: &StatusReport, printer: Printer) {
    if !report.exists {
        // Never made, or destroyed: no addresses to probe, no API to ask.
        printer.data(format!(
            "cluster {} has no server in cloud {}: it does not exist (yet); `kos up` creates it",
            report.cluster, report.cloud
        ));
        return;
    }
    let row = |c: [&str; 8]| format!("{:<14} {:<8} {:<15} {:<15} {:<15} {:<6} {:<6} {}", c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
    printer.data(row(["NODE", "SERVER", "FIXED IP", "FLOATING IP", "POD CIDR", "ROUTE", "SSH", "KUBELET"]));
    for n in &report.nodes {
        let ip = |v: Option<std::net::Ipv4Addr>| v.map_or("-".to_string(), |a| a.to_string());
        let (fixed, floating) = (ip(n.fixed_ip), ip(n.floating_ip));
        printer.data(row([&n.node, &n.server, &fixed, &floating, &n.pod_cidr, if n.route { "yes" } else { "no" }, &n.ssh, &n.kubelet]));
    }
    for p in &report.problems {
        printer.line(p);
    }
    match &report.api {
        // `print` returns before this for a cluster without servers.
        ApiView::NotAsked => {}
        ApiView::NoKubeconfig { path } => printer.data(format!("API server: no admin kubeconfig yet ({path}); run `kos up`")),
        ApiView::Unreachable { error } => printer.data(format!("API server: {error}")),
        ApiView::Answered { items } => {
            printer.data("API server's view:");
            for i in items {
                printer.data(format!("  {} {i}", if i.ready { "ok  " } else { "WAIT" }));
            }
        }
    }
}
