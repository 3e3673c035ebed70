//! `kos plan`: `kos_run::plan` with the real cloud, SSH and API server, printed for people
//! or as JSON.

use super::CommandError;
use super::cloud::connect;
use super::session::{Session, runtime};
use crate::cli::{OutputFormat, PlanArgs};
use crate::printer::Printer;
use kos_run::nodes::Ssh;
use kos_run::plan::Looks;
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
        let looks = Looks {
            cloud: &cloud,
            reach: &reach,
            kube: &kos_kube::client::Connector,
            reporter: &progress,
            ssh_wait: Duration::from_secs(args.ssh_wait),
        };
        Ok::<_, CommandError>(kos_run::plan::plan(&settings, &state, looks).await?)
    })?;
    match args.output {
        OutputFormat::Json => printer.data(serde_json::to_string_pretty(&report.to_json(&settings.cluster.name)).unwrap_or_default()),
        OutputFormat::Text => report.lines().into_iter().for_each(|l| printer.data(l)),
    }
    Ok(report.pending())
}
