//! `kos kubeconfig`: the admin kubeconfig from the cluster's PKI, printed or merged into
//! the user's kubeconfig.

use super::session::Session;
use super::{CommandError, failed};
use crate::cli::KubeconfigArgs;
use crate::printer::Printer;

pub fn kubeconfig(args: &KubeconfigArgs, printer: Printer) -> Result<(), CommandError> {
    let (Session { settings, state }, observed, plan) = Session::load_with_observed(&args.settings, args.observed.as_deref())?;
    let admin = kos_run::files::admin_kubeconfig(&settings, &state, &observed, &plan)?;
    if args.merge {
        let outcome = kos_run::kubeconfig::merge_admin_kubeconfig(&admin, &settings.cluster.name).map_err(failed)?;
        printer.line(outcome.to_string());
    } else {
        // The YAML ends with a newline already.
        printer.data(admin.trim_end());
    }
    Ok(())
}
