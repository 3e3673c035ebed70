//! The commands that talk to OpenStack: `check`, `up`, `inventory`, `destroy`. Each
//! connects with the settings' cloud (else `OS_CLOUD` / `OS_*`), runs the matching
//! function of `kos_cloud` and prints its result.

use super::session::{runtime, Session};
use super::{failed, CommandError};
use crate::cli::{DestroyArgs, ExposeArgs, InventoryArgs, SettingsArg};
use crate::printer::Printer;
use anyhow::Context as _;
use kos_cloud::apply::{self, Waits};
use kos_cloud::ops::{self, Exposed, Verdict};
use kos_cloud::Cloud as _;
use kos_cloud::openstack::{ConnectOptions, OpenStackCloud};
use kos_core::settings::Settings;

pub(crate) async fn connect(settings: &Settings, tls: ConnectOptions) -> Result<OpenStackCloud, CommandError> {
    OpenStackCloud::connect_with(settings.cloud.name.as_deref(), tls).await.map_err(failed)
}

/// `kos check`: exit 1 when any finding is FAIL.
pub fn check(args: &SettingsArg, tls: ConnectOptions, printer: Printer) -> Result<(), CommandError> {
    let settings = Settings::load(&args.file)?;
    runtime()?.block_on(async {
        let cloud = connect(&settings, tls).await?;
        let have = apply::discover(&cloud, &settings.cluster.name).await.map_err(failed)?;
        let plan = kos_run::plan_for(&settings, &have.observed(None))?;
        let findings = ops::check(&cloud, &settings, &plan).await;
        // The local inputs `up` checks first, in its words.
        let local = kos_run::inputs::local_problems(&settings, true).await;
        if local.is_empty() {
            printer.data(format!("{:<4} local inputs: the SSH key and the artifacts", Verdict::Ok.to_string()));
        }
        for p in &local {
            printer.data(format!("{:<4} local inputs: {p}", Verdict::Fail.to_string()));
        }
        for f in &findings {
            printer.data(format!("{:<4} {}", f.verdict.to_string(), f.what));
            if let Some(fix) = &f.fix {
                printer.data(format!("     → {fix}"));
            }
        }
        let fails = findings.iter().filter(|f| f.verdict == Verdict::Fail).count() + local.len();
        let warns = findings.iter().filter(|f| f.verdict == Verdict::Warn).count();
        printer.line(format!("{} checks: {fails} failed, {warns} warnings", findings.len() + local.len().max(1)));
        if fails > 0 {
            return Err(CommandError::Failed(anyhow::anyhow!("{fails} preflight check(s) failed; nothing was created")));
        }
        Ok(())
    })
}

/// `kos inventory --list | --host NAME`.
pub fn inventory(args: &InventoryArgs, tls: ConnectOptions, printer: Printer) -> Result<(), CommandError> {
    let Session { settings, state } = Session::load(&args.settings)?;
    runtime()?.block_on(async {
        let cloud = connect(&settings, tls).await?;
        let mut inv = ops::inventory(&cloud, &settings.cluster.name).await.map_err(failed)?;
        // How to log in, the way kos does (its ssh_config's options, its known_hosts).
        let ssh_dir = state.ssh_dir();
        if let Some(hosts) = inv["_meta"]["hostvars"].as_object_mut() {
            for vars in hosts.values_mut() {
                let id = vars["kos_server_id"].as_str().map(str::to_owned);
                for (k, v) in kos_node::ssh::ansible_vars(&settings, &ssh_dir, id.as_deref()) {
                    vars[k] = v;
                }
            }
        }
        let out = match &args.mode.host {
            Some(host) => inv["_meta"]["hostvars"].get(host).cloned().unwrap_or_else(|| serde_json::json!({})),
            None => inv,
        };
        printer.data(serde_json::to_string_pretty(&out).context("cannot print the inventory")?);
        Ok(())
    })
}

/// `kos destroy [--yes]`.
pub fn destroy(args: &DestroyArgs, tls: ConnectOptions, printer: Printer) -> Result<(), CommandError> {
    let Session { settings, state } = Session::load(&args.settings)?;
    runtime()?.block_on(async {
        let cloud = connect(&settings, tls).await?;
        let found = ops::find_teardown(&cloud, &settings).await.map_err(failed)?;
        if found.is_empty() {
            printer.line(format!("nothing of cluster {} in cloud {}", settings.cluster.name, cloud.name()));
            return forget_locally(args, &settings, &state, printer);
        }
        printer.data(format!("kos destroy will delete from cloud {}:", cloud.name()));
        for line in found.lines() {
            printer.data(format!("  {line}"));
        }
        if !args.yes && !confirm(&settings.cluster.name)? {
            return Err(CommandError::Invalid("not confirmed; nothing was deleted".into()));
        }
        let left = ops::destroy(&cloud, &settings, &found, Waits::default()).await.map_err(failed)?;
        if left.is_empty() {
            printer.line(format!("deleted {} resources; nothing of cluster {} is left", found.lines().len(), settings.cluster.name));
            forget_locally(args, &settings, &state, printer)
        } else {
            for line in left.lines() {
                printer.data(format!("  left: {line}"));
            }
            Err(CommandError::Failed(anyhow::anyhow!("{} resource(s) are left; run `kos destroy` again", left.lines().len())))
        }
    })
}

/// Once the cloud holds nothing of the cluster: its context leaves the user's kubeconfig,
/// and the local state folder is deleted (`--purge`) or named with what it keeps.
fn forget_locally(args: &DestroyArgs, settings: &Settings, state: &kos_run::LocalState, printer: Printer) -> Result<(), CommandError> {
    let context = kos_run::kubeconfig::context_name(&settings.cluster.name);
    match kos_run::kubeconfig::remove_admin_context(&settings.cluster.name).map_err(failed)? {
        Some((path, true)) => printer.line(format!(
            "removed context `{context}` from {}; it was the current context: choose another with `kubectl config use-context`",
            path.display()
        )),
        Some((path, false)) => printer.line(format!("removed context `{context}` from {}", path.display())),
        None => {}
    }
    if !state.dir.exists() {
        return Ok(());
    }
    if args.purge {
        std::fs::remove_dir_all(&state.dir).with_context(|| format!("cannot delete {}", state.dir.display()))?;
        printer.line(format!("deleted the local state {}", state.dir.display()));
    } else {
        printer.line(format!(
            "kept the local state {} (the cluster's CA and certificates, SSH known_hosts, last observed addresses): `kos destroy --purge` deletes it",
            state.dir.display()
        ));
    }
    Ok(())
}

/// Ask on the terminal; without one, refuse (use --yes).
fn confirm(cluster: &str) -> Result<bool, CommandError> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(CommandError::Invalid("kos destroy needs --yes when not run on a terminal".into()));
    }
    eprint!("type the cluster's name ({cluster}) to delete all of this: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the answer")?;
    Ok(line.trim() == cluster)
}

/// `kos expose SERVICE --node-port P [--port 80] [--delete]`.
pub fn expose(args: &ExposeArgs, tls: ConnectOptions, printer: Printer) -> Result<(), CommandError> {
    let settings = Settings::load(&args.settings.file)?;
    runtime()?.block_on(async {
        let cloud = connect(&settings, tls).await?;
        let result = if args.delete {
            ops::unexpose(&cloud, &settings.cluster.name, &args.service).await.map_err(failed)?
        } else {
            let have = apply::discover(&cloud, &settings.cluster.name).await.map_err(failed)?;
            let plan = kos_run::plan_for(&settings, &have.observed(None))?;
            let node_port = args.node_port.ok_or_else(|| CommandError::Invalid("--node-port is required".into()))?;
            ops::expose(&cloud, &settings, &plan, &args.service, node_port, args.port).await.map_err(failed)?
        };
        printer.line(match result {
            Exposed::Created { name, vip, members } => format!("created load balancer {name}: {vip}:{} → {members} worker(s)", args.port),
            Exposed::Updated { name, vip, members } => format!("load balancer {name} ({vip}) has its {members} worker(s) as members"),
            Exposed::Deleted { name } => format!("deleted load balancer {name}"),
            Exposed::Absent { name } => format!("no load balancer {name}: nothing to delete"),
        });
        Ok(())
    })
}
