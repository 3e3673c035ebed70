//! kos's local state folder: `<state dir>/<cluster>/` with `pki/` and `observed.yaml`.
//! The cloud is the truth; this folder holds what cannot live there (keys) and caches
//! what was last observed.

use super::CommandError;
use crate::cli::SettingsArg;
use anyhow::Context as _;
use kos_core::plan::Observed;
use kos_core::settings::Settings;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct State {
    pub dir: PathBuf,
}

impl State {
    pub fn for_settings(arg: &SettingsArg, settings: &Settings) -> State {
        let root = arg.state_dir.clone().unwrap_or_else(|| settings.base_dir().join(".kos"));
        // Absolute: files kos writes name their neighbours (`DOCKER_CERT_PATH` in
        // `<node>.env`), and must work from any folder they are used in.
        let root = std::path::absolute(&root).unwrap_or(root);
        State { dir: root.join(&settings.cluster.name) }
    }

    pub fn pki(&self) -> kos_pki::Pki {
        kos_pki::Pki::open(self.dir.join("pki"))
    }

    /// The operator's files: admin kubeconfigs, `<node>.env` + certs, add-on manifests.
    pub fn local_dir(&self) -> PathBuf {
        self.dir.join("local")
    }

    /// The generated ssh_config and the cluster's known_hosts.
    pub fn ssh_dir(&self) -> PathBuf {
        self.dir.join("ssh")
    }

    pub fn observed_file(&self) -> PathBuf {
        self.dir.join("observed.yaml")
    }
}

impl State {
    /// What the last `kos up` recorded; nothing yet when the file does not exist.
    pub fn observed(&self) -> Result<Observed, CommandError> {
        read_observed(&self.observed_file(), false)
    }

    /// Record what the cloud showed, for `kos render`, `kos certs renew` and later runs.
    pub fn write_observed(&self, observed: &Observed) -> Result<(), CommandError> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("cannot create {}", self.dir.display()))?;
        let text = serde_saphyr::to_string(observed).context("cannot serialise the observed state")?;
        let file = self.observed_file();
        std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
        Ok(())
    }
}

/// Read an observed-state file. A missing file is an empty observation unless `required`
/// (a file the user named); an unreadable or malformed one is always an error — treating
/// it as empty would, for one, re-issue the API server's certificate without its addresses.
pub fn read_observed(path: &Path, required: bool) -> Result<Observed, CommandError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Observed::parse(&text).map_err(|e| CommandError::Invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(Observed::default()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display())).into()),
    }
}

/// What `render` and `kubeconfig` start from: the settings, their state folder, the
/// addresses (from `observed`, a file the user named, else what `kos up` recorded) and the
/// plan.
pub fn load_with_observed(
    arg: &SettingsArg,
    observed: Option<&Path>,
) -> Result<(Settings, State, Observed, kos_core::plan::ClusterPlan), CommandError> {
    let settings = Settings::load(&arg.file)?;
    let state = State::for_settings(arg, &settings);
    let observed = match observed {
        Some(file) => read_observed(file, true)?,
        None => state.observed()?,
    };
    let plan = super::plan_for(&settings, &observed)?;
    Ok((settings, state, observed, plan))
}
