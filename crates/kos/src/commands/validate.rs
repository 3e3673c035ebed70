//! `kos validate`: parse and check a settings file, nothing else.

use super::CommandError;
use crate::cli::SettingsArg;
use crate::printer::Printer;
use kos_core::settings::Settings;

pub fn validate(args: &SettingsArg, printer: Printer) -> Result<(), CommandError> {
    let settings = Settings::load(&args.file)?;
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
