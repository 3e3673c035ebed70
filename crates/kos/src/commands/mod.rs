//! One function per subcommand, and the error type they share.

mod certs;
mod cloud;
mod kubeconfig;
mod plan;
mod render;
mod session;
mod status;
mod up;
mod validate;

pub use certs::certs;
pub use cloud::{check, destroy, expose, inventory};
pub use kubeconfig::kubeconfig;
pub use plan::plan;
pub use render::render;
pub use status::{backup, restore, status};
pub use up::{replace, up};
pub use validate::validate;

use kos_core::settings::{Diagnostics, LoadError};

/// What went wrong, sorted by the exit code it gives.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The user's input is wrong (exit 2): the message says where and how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// The settings file has problems (exit 2).
    #[error("{0}")]
    Settings(Diagnostics),
    /// Anything else (exit 1).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl CommandError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CommandError::Invalid(_) | CommandError::Settings(_) => 2,
            CommandError::Failed(_) => 1,
        }
    }
}

/// An error of a library below, as a command's failure (exit 1).
pub(crate) fn failed(e: impl std::error::Error + Send + Sync + 'static) -> CommandError {
    CommandError::Failed(anyhow::Error::new(e))
}

impl From<kos_run::RunError> for CommandError {
    fn from(e: kos_run::RunError) -> Self {
        match e {
            kos_run::RunError::Invalid(message) => CommandError::Invalid(message),
            kos_run::RunError::Other(e) => CommandError::Failed(e),
            other => failed(other),
        }
    }
}

impl From<LoadError> for CommandError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Invalid(d) => CommandError::Settings(d),
            other => CommandError::Failed(anyhow::Error::new(other)),
        }
    }
}
