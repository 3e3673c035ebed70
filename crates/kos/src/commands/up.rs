//! `kos up`: the pipeline of `kos_run::up` with the real cloud, SSH and API server; its
//! report printed as the summary (or as JSON with `-o json`).

use super::CommandError;
use super::cloud::connect;
use super::session::{Session, runtime};
use crate::cli::{OutputFormat, Phase, ReplaceArgs, UpArgs};
use crate::printer::Printer;
use crate::progress::Progress;
use kos_run::nodes::Ssh;
use kos_run::up::Systems;
use kos_run::{UpOptions, UpReport};
use std::time::Duration;

pub fn up(args: &UpArgs, tls: kos_cloud::openstack::ConnectOptions, printer: Printer) -> Result<(), CommandError> {
    run_up(args, Session::load(&args.settings)?, Vec::new(), tls, printer)
}

/// `kos replace NODE… [--yes]`: says what it rebuilds, asks, then `kos up` with those workers'
/// servers made again.
pub fn replace(args: &ReplaceArgs, tls: kos_cloud::openstack::ConnectOptions, printer: Printer) -> Result<(), CommandError> {
    let session = Session::load(&args.up.settings)?;
    let names = args.nodes.join(", ");
    // (With -o json, stdout is the report alone.)
    if args.up.output != OutputFormat::Json {
        printer.data(format!(
            "kos replace will drain {names}, delete their Node objects and servers (their ports, addresses and pod ranges kept), make them again and provision them"
        ));
    }
    if !args.yes && !super::cloud::confirm("replace", &session.settings.cluster.name, &format!("rebuild {names}"), printer)? {
        return Err(CommandError::Invalid("not confirmed; nothing was changed".into()));
    }
    run_up(&args.up, session, args.nodes.clone(), tls, printer)
}

fn run_up(
    args: &UpArgs,
    session: Session,
    replace: Vec<String>,
    tls: kos_cloud::openstack::ConnectOptions,
    printer: Printer,
) -> Result<(), CommandError> {
    let Session { settings, state } = session;
    let json = args.output == OutputFormat::Json;
    // With JSON on stdout, the progress lines go nowhere but the report.
    let shown = if json { printer.quiet() } else { printer };
    let progress = Progress::new(shown);
    let mut notes = Vec::new();
    let options = UpOptions {
        phases: if args.only.is_empty() { Phase::ALL.to_vec() } else { args.only.clone() },
        ssh_wait: Duration::from_secs(args.ssh_wait),
        api_wait: Duration::from_secs(args.api_wait),
        ready_wait: Duration::from_secs(args.ready_wait),
        parallel: args.parallel,
        drain_wait: (!args.no_drain).then(|| Duration::from_secs(args.drain_wait)),
        replace,
        kos_version: env!("KOS_VERSION").to_string(),
        kubeconfig: match kos_run::kubeconfig::admin_kubeconfig_path() {
            Ok(path) => Some(path),
            Err(e) => {
                let warning = format!("warning: the admin kubeconfig will not be merged: {e}");
                shown.line(&warning);
                notes.push(warning);
                None
            }
        },
    };
    let run = runtime()?.block_on(async {
        // The local inputs are checked while kos logs in to the cloud (which creates
        // nothing), and their error comes first: nothing is created in the cloud for nodes
        // kos could not then reach or provision.
        let (local, cloud) = tokio::join!(kos_run::local_inputs(&settings, &options), connect(&settings, tls));
        let (local, cloud) = (local?, cloud?);
        let reach = Ssh::new(&settings, &state);
        let systems = Systems { cloud: &cloud, reach: &reach, kube: &kos_kube::client::Connector, reporter: &progress };
        let (mut report, result) = kos_run::up(&settings, &state, &options, &local, systems).await;
        report.api_calls = Some(cloud.api_calls());
        Ok::<_, CommandError>((report, result.map_err(CommandError::from)))
    });
    // With -o json a run that could not start (a local input, the cloud's login) is a
    // report too: empty, with its error, so that a script always reads JSON.
    let (mut report, result) = match run {
        Ok(done) => done,
        Err(e) if json => (UpReport::new(&settings.cluster.name, &options.phases), Err(e)),
        Err(e) => return Err(e),
    };
    report.notes.splice(0..0, notes);
    if json {
        if let Err(e) = &result {
            report.error.get_or_insert_with(|| e.to_string());
        }
        printer.data(serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        report.summary().into_iter().for_each(|l| printer.line(l));
    }
    result
}
