//! `kos render`: settings + observed addresses → PKI (created or reused) → every file,
//! written as a tree for review.

use super::CommandError;
use super::session::Session;
use crate::cli::RenderArgs;
use crate::printer::Printer;

pub fn render(args: &RenderArgs, printer: Printer) -> Result<(), CommandError> {
    let (Session { settings, state }, observed, plan) = Session::load_with_observed(&args.settings, args.observed.as_deref())?;
    let done = kos_run::files::render_tree(&settings, &state, &observed, &plan, &args.out)?;
    printer.detail(&done.pki);
    printer.line(format!(
        "rendered {} files for {} nodes and {} for you into {} (PKI in {})",
        done.node_files,
        done.nodes,
        done.local_files,
        args.out.display(),
        state.pki().dir().display()
    ));
    Ok(())
}
