//! `kos render`: settings + observed addresses → PKI (created or reused) → every file,
//! written as a tree for review.

use super::session::Session;
use super::CommandError;
use crate::cli::RenderArgs;
use crate::printer::Printer;
use anyhow::Context as _;
use kos_render::{Inputs, Target};

pub fn render(args: &RenderArgs, printer: Printer) -> Result<(), CommandError> {
    let (Session { settings, state }, observed, plan) = Session::load_with_observed(&args.settings, args.observed.as_deref())?;
    if let Some(node) = plan.nodes_without_address().first() {
        return Err(CommandError::Invalid(format!(
            "the address of node `{node}` is not known yet: run `kos up --only instances` first (it records addresses in {}), or pass --observed FILE (see examples/observed.yaml)",
            state.observed_file().display()
        )));
    }

    let pki = state.pki();
    let report = pki
        .ensure(&plan.certificates, kos_pki::OffsetDateTime::now_utc())
        .with_context(|| format!("cannot prepare the PKI in {}", pki.dir().display()))?;
    printer.detail(report.to_string());

    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let out = std::fs::canonicalize(&args.out).with_context(|| format!("cannot resolve {}", args.out.display()))?;
    let local_dir = out.join("local");
    let inputs = Inputs { settings: &settings, plan: &plan, tenant_cidr: observed.tenant_cidr, local_dir: &local_dir, env: &Default::default() };
    let files = kos_render::render(&inputs, &pki).context("cannot render the cluster's files")?;
    kos_render::write_tree(&out, &files).context("cannot write the rendered files")?;

    let local = files.iter().filter(|f| f.target == Target::Local).count();
    printer.line(format!(
        "rendered {} files for {} nodes and {} for you into {} (PKI in {})",
        files.len() - local,
        plan.nodes.len(),
        local,
        args.out.display(),
        pki.dir().display()
    ));
    Ok(())
}
