//! `kos status`: `kos_run::status` with the real cloud, SSH and API server; a table for
//! people, or JSON. `kos backup`: `kos_run::backup` with the real cloud and SSH.

use super::CommandError;
use super::cloud::connect;
use super::session::{Session, runtime};
use crate::cli::{BackupArgs, OutputFormat, StatusArgs};
use crate::printer::Printer;
use kos_run::nodes::Ssh;
use std::time::Duration;

pub fn status(args: &StatusArgs, tls: kos_cloud::openstack::ConnectOptions, printer: Printer) -> Result<(), CommandError> {
    let Session { settings, state } = Session::load(&args.settings)?;
    // JSON alone on stdout: no progress lines then.
    let progress = crate::progress::Progress::new(if args.output == OutputFormat::Json { printer.quiet() } else { printer });
    let reach = Ssh::new(&settings, &state);
    let report = runtime()?.block_on(async {
        let cloud = connect(&settings, tls).await?;
        let wait = Duration::from_secs(args.ssh_wait);
        Ok::<_, CommandError>(
            kos_run::status::status(&settings, &state, &cloud, &reach, &kos_kube::client::Connector, wait, &progress).await?,
        )
    })?;
    match args.output {
        OutputFormat::Json => printer.data(serde_json::to_string_pretty(&report).unwrap_or_default()),
        OutputFormat::Text => {
            report.table().into_iter().for_each(|l| printer.data(l));
            report.problems.iter().for_each(|p| printer.line(p));
            report.api_lines().into_iter().for_each(|l| printer.data(l));
        }
    }
    Ok(())
}

pub fn backup(args: &BackupArgs, tls: kos_cloud::openstack::ConnectOptions, printer: Printer) -> Result<(), CommandError> {
    let Session { settings, state } = Session::load(&args.settings)?;
    let progress = crate::progress::Progress::new(printer);
    let reach = Ssh::new(&settings, &state);
    let options = kos_run::backup::BackupOptions {
        out: args.out.clone(),
        ssh_wait: Duration::from_secs(args.ssh_wait),
        kos_version: env!("KOS_VERSION").to_string(),
    };
    let report = runtime()?.block_on(async {
        let cloud = connect(&settings, tls).await?;
        Ok::<_, CommandError>(kos_run::backup::backup(&settings, &state, &cloud, &reach, &options, &progress).await?)
    })?;
    report.lines().into_iter().for_each(|l| printer.data(l));
    Ok(())
}
