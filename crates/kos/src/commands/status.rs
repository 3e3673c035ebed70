//! `kos status`: `kos_run::status` with the real cloud, SSH and API server; a table for
//! people, or JSON. `kos backup` and `kos restore`: `kos_run::backup` and
//! `kos_run::restore` with the real cloud, SSH and API server.

use super::CommandError;
use super::cloud::connect;
use super::session::{Session, runtime};
use crate::cli::{BackupArgs, OutputFormat, RestoreArgs, StatusArgs};
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

/// `kos restore ARCHIVE [--yes]`: says what it replaces, asks, restores.
pub fn restore(args: &RestoreArgs, tls: kos_cloud::openstack::ConnectOptions, printer: Printer) -> Result<(), CommandError> {
    let Session { settings, state } = Session::load(&args.settings)?;
    let cluster = &settings.cluster.name;
    printer.data(format!(
        "kos restore will replace every object of cluster {cluster} with those of {} (every master's etcd, the control plane down meanwhile)",
        args.archive.display()
    ));
    if !args.yes && !super::cloud::confirm("restore", cluster, "replace them", printer)? {
        return Err(CommandError::Invalid("not confirmed; nothing was changed".into()));
    }
    let progress = crate::progress::Progress::new(printer);
    let reach = Ssh::new(&settings, &state);
    let options = kos_run::restore::RestoreOptions {
        archive: args.archive.clone(),
        ssh_wait: Duration::from_secs(args.ssh_wait),
        api_wait: Duration::from_secs(args.api_wait),
        ready_wait: Duration::from_secs(args.ready_wait),
    };
    let report = runtime()?.block_on(async {
        let cloud = connect(&settings, tls).await?;
        let systems = (&cloud, &reach, &kos_kube::client::Connector);
        Ok::<_, CommandError>(kos_run::restore::restore(&settings, &state, systems, &options, &progress).await?)
    })?;
    report.lines().into_iter().for_each(|l| printer.data(l));
    Ok(())
}
