//! Problems found in a settings file, each with where it is and how to fix it.

use super::document::Location;
use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in the settings file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where the offending key or value is (the parent mapping for a missing key).
    pub at: Location,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: Option<String>,
}

impl Diagnostic {
    pub fn new(at: Location, message: impl Into<String>) -> Self {
        Diagnostic { at, message: message.into(), fix: None }
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Every problem of one settings file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    pub file: PathBuf,
    pub problems: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: &Path, mut problems: Vec<Diagnostic>) -> Self {
        problems.sort_by_key(|d| d.at);
        problems.dedup();
        Diagnostics { file: file.to_path_buf(), problems }
    }
}

impl fmt::Display for Diagnostics {
    /// `FILE:LINE:COL: message` then an indented `fix:` line, one block per problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.problems {
            writeln!(f, "{}:{}: {}", self.file.display(), d.at, d.message)?;
            if let Some(fix) = &d.fix {
                writeln!(f, "    fix: {fix}")?;
            }
        }
        write!(f, "{} problem{} in {}", self.problems.len(), if self.problems.len() == 1 { "" } else { "s" }, self.file.display())
    }
}

impl std::error::Error for Diagnostics {}
