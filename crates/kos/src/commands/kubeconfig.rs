//! `kos kubeconfig`: the admin kubeconfig from the cluster's PKI, printed or merged into
//! the user's kubeconfig.
//!
//! It reads the PKI and never changes it: a kubeconfig for a CA that no cluster trusts
//! would only mislead, so without a PKI the command says which command creates one.

use super::session::Session;
use super::{failed, CommandError};
use crate::cli::KubeconfigArgs;
use crate::printer::Printer;
use anyhow::Context as _;
use kos_core::plan::CaId;
use kos_render::{Inputs, RenderError};


pub fn kubeconfig(args: &KubeconfigArgs, printer: Printer) -> Result<(), CommandError> {
    let (Session { settings, state }, observed, plan) = Session::load_with_observed(&args.settings, args.observed.as_deref())?;

    let pki = state.pki();
    if pki.ca_cert_pem(CaId::Cluster).is_err() {
        return Err(CommandError::Invalid(format!(
            "cluster `{}` has no PKI in {} yet: `kos up` (or `kos render`) creates it",
            settings.cluster.name,
            pki.dir().display()
        )));
    }
    let inputs = Inputs { settings: &settings, plan: &plan, tenant_cidr: observed.tenant_cidr, local_dir: &state.dir, env: &Default::default() };
    let files = kos_render::local::render_local(&inputs, &pki).map_err(|e| match e {
        e @ RenderError::AddressUnknown { .. } => CommandError::Invalid(e.to_string()),
        other => anyhow::Error::new(other).context("cannot render the admin kubeconfig").into(),
    })?;
    let admin = files
        .into_iter()
        .find(|f| f.kind == kos_render::Kind::AdminKubeconfig)
        .context("kos rendered no admin kubeconfig (a bug in kos)")?;

    if !args.merge {
        // The YAML ends with a newline already.
        printer.data(admin.contents.trim_end());
        return Ok(());
    }
    let outcome = kos_run::kubeconfig::merge_admin_kubeconfig(&admin.contents, &settings.cluster.name)
        .map_err(failed)?;
    printer.line(outcome.to_string());
    Ok(())
}
