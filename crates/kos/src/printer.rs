//! All terminal output goes through one printer: quiet prints only errors, verbose adds
//! detail. Commands never call `println!` themselves.

use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Quiet,
    Normal,
    Verbose,
}

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    level: Level,
}

impl Printer {
    pub fn new(level: Level) -> Self {
        Printer { level }
    }

    /// The same printer at the quiet level (errors and data only).
    pub fn quiet(self) -> Self {
        Printer { level: Level::Quiet }
    }

    /// Live progress bars only at the normal level on a terminal; `-v` prints every
    /// step as a line instead, and pipes get plain lines.
    pub fn wants_bars(&self) -> bool {
        use std::io::IsTerminal;
        self.level == Level::Normal && std::io::stdout().is_terminal()
    }

    /// A result line (normal and verbose).
    pub fn line(&self, text: impl AsRef<str>) {
        if self.level != Level::Quiet {
            let _ = writeln!(std::io::stdout(), "{}", text.as_ref());
        }
    }

    /// Detail shown with `-v`.
    pub fn detail(&self, text: impl AsRef<str>) {
        if self.level == Level::Verbose {
            let _ = writeln!(std::io::stdout(), "{}", text.as_ref());
        }
    }

    /// Data a command exists to print (shown even with `-q`).
    pub fn data(&self, text: impl AsRef<str>) {
        let _ = writeln!(std::io::stdout(), "{}", text.as_ref());
    }

    /// The settings' problems: complete sentences with their own locations (stderr).
    pub fn diagnostics(&self, text: impl std::fmt::Display) {
        let _ = writeln!(std::io::stderr(), "{text}");
    }

    /// A question on the terminal (stderr), the answer read by the caller.
    pub fn prompt(&self, text: &str) {
        let mut err = std::io::stderr();
        let _ = write!(err, "{text}");
        let _ = err.flush();
    }

    /// An error, with its chain of causes.
    pub fn error(&self, err: &(dyn std::error::Error + 'static)) {
        let mut out = std::io::stderr();
        let _ = writeln!(out, "error: {err}");
        let mut source = err.source();
        while let Some(cause) = source {
            let _ = writeln!(out, "  caused by: {cause}");
            source = cause.source();
        }
    }
}
