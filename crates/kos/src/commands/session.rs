//! What every command starts from, loaded once: the settings, their local state folder and
//! the async runtime.

use super::CommandError;
use crate::cli::SettingsArg;
use anyhow::Context as _;
use kos_core::plan::{ClusterPlan, Observed};
use kos_core::settings::Settings;
use kos_run::LocalState;
use kos_run::state::read_observed;
use std::path::Path;

#[derive(Debug)]
pub struct Session {
    pub settings: Settings,
    pub state: LocalState,
}

impl Session {
    /// The settings file (every problem of it at once) and its state folder.
    pub fn load(arg: &SettingsArg) -> Result<Session, CommandError> {
        let settings = Settings::load(&arg.file)?;
        let state = LocalState::for_settings(arg.state_dir.as_deref(), &settings);
        Ok(Session { settings, state })
    }

    /// With the addresses (from `observed`, a file the user named, else what `kos up`
    /// recorded) and the plan: what `render` and `kubeconfig` start from.
    pub fn load_with_observed(arg: &SettingsArg, observed: Option<&Path>) -> Result<(Session, Observed, ClusterPlan), CommandError> {
        let session = Session::load(arg)?;
        let observed = match observed {
            Some(file) => read_observed(file, true)?,
            None => session.state.observed()?,
        };
        let plan = kos_run::plan_for(&session.settings, &observed)?;
        Ok((session, observed, plan))
    }
}

/// The async runtime a command's cloud, node and API work runs on.
pub fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?)
}
