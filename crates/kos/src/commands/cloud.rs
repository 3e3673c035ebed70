//! The commands that talk to OpenStack: `check`, `up`, `inventory`, `destroy`. Each
//! connects with the settings' cloud (else `OS_CLOUD` / `OS_*`), runs the matching
//! function of `kos_cloud` and prints its result.

use super::session::{Session, runtime};
use super::{CommandError, failed};
use crate::cli::{DestroyArgs, ExposeArgs, InventoryArgs, SettingsArg};
use crate::printer::Printer;
use anyhow::Context as _;
use kos_cloud::Cloud as _;
use kos_cloud::openstack::{ConnectOptions, OpenStackCloud};
use kos_core::settings::Settings;
use kos_run::ops::Expose;

pub(crate) async fn connect(settings: &Settings, tls: ConnectOptions) -> Result<OpenStackCloud, CommandError> {
    OpenStackCloud::connect_with(settings.cloud.name.as_deref(), tls).await.map_err(failed)
}

/// `kos check`: exit 1 when any finding is FAIL.
pub fn check(args: &SettingsArg, tls: ConnectOptions, printer: Printer) -> Result<(), CommandError> {
    let settings = Settings::load(&args.file)?;
    let report =
        runtime()?.block_on(async { Ok::<_, CommandError>(kos_run::ops::check(&connect(&settings, tls).await?, &settings).await?) })?;
    report.lines().into_iter().for_each(|l| printer.data(l));
    printer.line(report.summary());
    match report.fails() {
        0 => Ok(()),
        fails => Err(CommandError::Failed(anyhow::anyhow!("{fails} preflight check(s) failed; nothing was created"))),
    }
}

/// `kos inventory --list | --host NAME`.
pub fn inventory(args: &InventoryArgs, tls: ConnectOptions, printer: Printer) -> Result<(), CommandError> {
    let Session { settings, state } = Session::load(&args.settings)?;
    let inventory = runtime()?.block_on(async {
        let cloud = connect(&settings, tls).await?;
        Ok::<_, CommandError>(kos_run::ops::inventory(&cloud, &settings, &state, args.mode.host.as_deref()).await?)
    })?;
    printer.data(serde_json::to_string_pretty(&inventory).context("cannot print the inventory")?);
    Ok(())
}

/// `kos destroy [--yes] [--purge]`.
pub fn destroy(args: &DestroyArgs, tls: ConnectOptions, printer: Printer) -> Result<(), CommandError> {
    let Session { settings, state } = Session::load(&args.settings)?;
    runtime()?.block_on(async {
        let cloud = connect(&settings, tls).await?;
        let found = kos_run::ops::find_teardown(&cloud, &settings).await?;
        if found.is_empty() {
            printer.line(format!("nothing of cluster {} in cloud {}", settings.cluster.name, cloud.name()));
        } else {
            printer.data(format!("kos destroy will delete from cloud {}:", cloud.name()));
            found.lines().iter().for_each(|line| printer.data(format!("  {line}")));
            if !args.yes && !confirm("destroy", &settings.cluster.name, "delete all of this", printer)? {
                return Err(CommandError::Invalid("not confirmed; nothing was deleted".into()));
            }
            kos_run::ops::destroy(&cloud, &settings, &found).await?;
            printer.line(format!("deleted {} resources; nothing of cluster {} is left", found.lines().len(), settings.cluster.name));
        }
        let kubeconfig = kos_run::kubeconfig::admin_kubeconfig_path().ok();
        kos_run::ops::forget_locally(&settings, &state, args.purge, kubeconfig.as_deref())?.into_iter().for_each(|l| printer.line(l));
        Ok(())
    })
}

/// Ask on the terminal for the cluster's name before `command` does `what`; without a
/// terminal, refuse (use --yes).
pub(super) fn confirm(command: &str, cluster: &str, what: &str, printer: Printer) -> Result<bool, CommandError> {
    use std::io::{BufRead, IsTerminal};
    if !std::io::stdin().is_terminal() {
        return Err(CommandError::Invalid(format!("kos {command} needs --yes when not run on a terminal")));
    }
    printer.prompt(&format!("type the cluster's name ({cluster}) to {what}: "));
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the answer")?;
    Ok(line.trim() == cluster)
}

/// `kos expose SERVICE --node-port P [--port 80] [--delete]`.
pub fn expose(args: &ExposeArgs, tls: ConnectOptions, printer: Printer) -> Result<(), CommandError> {
    let settings = Settings::load(&args.settings.file)?;
    let how = match (args.delete, args.node_port) {
        (true, _) => Expose::Delete,
        (false, Some(node_port)) => Expose::Create { node_port, port: args.port },
        (false, None) => return Err(CommandError::Invalid("--node-port is required".into())),
    };
    let done = runtime()?.block_on(async {
        Ok::<_, CommandError>(kos_run::ops::expose(&connect(&settings, tls).await?, &settings, &args.service, how).await?)
    })?;
    printer.line(done.to_string());
    Ok(())
}
