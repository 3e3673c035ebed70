//! kos's local state folder: `<state dir>/<cluster>/` with `pki/` and `observed.yaml`.
//! The cloud is the truth; this folder holds what cannot live there (keys) and caches
//! what was last observed.

use crate::cli::SettingsArg;
use kos_core::settings::Settings;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct State {
    pub dir: PathBuf,
}

impl State {
    pub fn for_settings(arg: &SettingsArg, settings: &Settings) -> State {
        let root = arg.state_dir.clone().unwrap_or_else(|| settings.base_dir().join(".kos"));
        State { dir: root.join(&settings.cluster.name) }
    }

    pub fn pki(&self) -> kos_pki::Pki {
        kos_pki::Pki::open(self.dir.join("pki"))
    }

    pub fn observed_file(&self) -> PathBuf {
        self.dir.join("observed.yaml")
    }
}
