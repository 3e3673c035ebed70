//! `kos certs check` and `kos certs renew`.

use super::CommandError;
use super::cloud::connect;
use super::session::{Session, runtime};
use crate::cli::{CertsAction, CertsArgs};
use crate::printer::Printer;
use anyhow::Context as _;
use kos_pki::{OffsetDateTime, RenewFilter};

pub fn certs(args: &CertsArgs, tls: kos_cloud::openstack::ConnectOptions, printer: Printer) -> Result<(), CommandError> {
    match &args.action {
        CertsAction::Check { settings: s, local, ssh_wait } => {
            let Session { settings, state } = Session::load(s)?;
            let pki = state.pki();
            let statuses = pki.check(OffsetDateTime::now_utc()).context("cannot read the PKI")?;
            if statuses.is_empty() {
                return Err(CommandError::Invalid(format!(
                    "no certificates in {}: `kos render` or `kos up` creates them",
                    pki.dir().display()
                )));
            }
            printer.data(format!("{:<48} {:>9}  {}", "CERTIFICATE", "DAYS LEFT", "EXPIRES"));
            for s in statuses {
                match s.details {
                    Ok(d) => printer.data(format!("{:<48} {:>9}  {}", s.file, d.days_left, d.not_after.date())),
                    Err(e) => printer.data(format!("{:<48} {:>9}  {e}", s.file, "?")),
                }
            }
            if *local {
                return Ok(());
            }
            // What the nodes hold, compared with those.
            let progress = crate::progress::Progress::new(printer);
            let reach = kos_run::nodes::Ssh::new(&settings, &state);
            let report = runtime()?.block_on(async {
                let cloud = connect(&settings, tls).await?;
                let wait = std::time::Duration::from_secs(*ssh_wait);
                Ok::<_, CommandError>(kos_run::certs::node_certs(&settings, &state, &cloud, &reach, wait, &progress).await?)
            })?;
            printer.data(String::new());
            report.table().into_iter().for_each(|l| printer.data(l));
            let problems = report.problems();
            problems.iter().for_each(|p| printer.line(p));
            match problems.len() {
                0 => Ok(()),
                n => Err(CommandError::Failed(anyhow::anyhow!("{n} certificate problem(s) on the nodes (above)"))),
            }
        }
        CertsAction::Renew { settings: s, only } => {
            let Session { settings, state } = Session::load(s)?;
            let plan = kos_run::plan_for(&settings, &state.observed()?)?;
            let filter = if only.is_empty() { RenewFilter::All } else { RenewFilter::Only(only.clone()) };
            let report = state
                .pki()
                .renew(&plan.certificates, &filter, OffsetDateTime::now_utc())
                .map_err(|e| CommandError::Invalid(e.to_string()))?;
            printer.line(report.to_string());
            printer.line("run `kos up --only kubernetes` to put the renewed certificates on the nodes");
            Ok(())
        }
    }
}
