//! kos's local state folder: `<state dir>/<cluster>/` with `pki/` and `observed.yaml`.
//! The cloud is the truth; this folder holds what cannot live there (keys) and caches
//! what was last observed.

use crate::RunError;
use anyhow::Context as _;
use kos_core::plan::Observed;
use kos_core::settings::Settings;
use std::path::{Path, PathBuf};

/// The one owner of the folder's layout.
#[derive(Debug, Clone)]
pub struct LocalState {
    pub dir: PathBuf,
}

impl LocalState {
    /// `<state_dir>/<cluster>/`; the state folder defaults to `.kos` beside the settings file.
    pub fn for_settings(state_dir: Option<&Path>, settings: &Settings) -> LocalState {
        let root = state_dir.map(Path::to_path_buf).unwrap_or_else(|| settings.base_dir().join(".kos"));
        // Absolute: files kos writes name their neighbours (`DOCKER_CERT_PATH` in
        // `<node>.env`), and must work from any folder they are used in.
        let root = std::path::absolute(&root).unwrap_or(root);
        LocalState { dir: root.join(&settings.cluster.name) }
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

    /// The admin kubeconfig `kos up` wrote for the operator.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.local_dir().join(kos_render::local::ADMIN_KUBECONFIG)
    }

    pub fn observed_file(&self) -> PathBuf {
        self.dir.join("observed.yaml")
    }
}

impl LocalState {
    /// What the last `kos up` recorded; nothing yet when the file does not exist.
    pub fn observed(&self) -> Result<Observed, RunError> {
        read_observed(&self.observed_file(), false)
    }

    /// Record what the cloud showed, for `kos render`, `kos certs renew` and later runs.
    /// Written whole or not at all (a temporary file renamed over the old one): a run cut
    /// short never leaves half a file that the next run would refuse.
    pub fn write_observed(&self, observed: &Observed) -> Result<(), RunError> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("cannot create {}", self.dir.display()))?;
        let text = serde_saphyr::to_string(observed).context("cannot serialise the observed state")?;
        let file = self.observed_file();
        kos_fs::write_atomic(&file, text.as_bytes(), 0o600).with_context(|| format!("cannot write {}", file.display()))?;
        Ok(())
    }
}

/// Read an observed-state file. A missing file is an empty observation unless `required`
/// (a file the user named); an unreadable or malformed one is always an error — treating
/// it as empty would, for one, re-issue the API server's certificate without its addresses.
pub fn read_observed(path: &Path, required: bool) -> Result<Observed, RunError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Observed::parse(&text).map_err(|e| RunError::Invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(Observed::default()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display())).into()),
    }
}
