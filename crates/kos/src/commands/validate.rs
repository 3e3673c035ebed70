//! `kos validate`: parse and check a settings file and the local inputs it names (the SSH
//! key, the artifacts), with no cloud.

use super::CommandError;
use crate::cli::SettingsArg;
use crate::printer::Printer;
use kos_core::settings::Settings;

pub fn validate(args: &SettingsArg, printer: Printer) -> Result<(), CommandError> {
    let settings = Settings::load(&args.file)?;
    let problems = super::session::runtime()?.block_on(kos_run::inputs::local_problems(&settings, false));
    if !problems.is_empty() {
        for p in &problems {
            printer.data(format!("{}: {p}", args.file.display()));
        }
        return Err(CommandError::Invalid(format!("{} problem(s) with the local inputs of {}", problems.len(), args.file.display())));
    }
    printer.line(format!(
        "{}: valid (cluster {}, Kubernetes {}, {} master{}, {} worker{})",
        args.file.display(),
        settings.cluster.name,
        settings.cluster.kubernetes_version,
        settings.masters().count(),
        if settings.masters().count() == 1 { "" } else { "s" },
        settings.workers().count(),
        if settings.workers().count() == 1 { "" } else { "s" },
    ));
    Ok(())
}
