//! `kos render` and `kos kubeconfig`: the cluster's files from the settings, the recorded
//! (or given) addresses and the PKI, without touching the cloud or a node.

use crate::RunError;
use crate::state::LocalState;
use anyhow::Context as _;
use kos_core::plan::{CaId, ClusterPlan, Observed};
use kos_core::settings::Settings;
use kos_render::{Inputs, Kind, RenderError, Target};
use std::path::Path;

/// What `kos render` wrote.
#[derive(Debug)]
pub struct Rendered {
    pub node_files: usize,
    pub nodes: usize,
    pub local_files: usize,
    /// What the PKI did (created, reused, completed).
    pub pki: String,
}

/// Render every file (the PKI created or completed first) into `out` as a tree for review.
pub fn render_tree(
    settings: &Settings,
    state: &LocalState,
    observed: &Observed,
    plan: &ClusterPlan,
    out: &Path,
) -> Result<Rendered, RunError> {
    if let Some(node) = plan.nodes_without_address().first() {
        return Err(RunError::Invalid(format!(
            "the address of node `{node}` is not known yet: run `kos up --only instances` first (it records addresses in {}), or pass --observed FILE (see examples/observed.yaml)",
            state.observed_file().display()
        )));
    }
    let pki = state.pki();
    let report = pki
        .ensure(&plan.certificates, kos_pki::OffsetDateTime::now_utc())
        .with_context(|| format!("cannot prepare the PKI in {}", pki.dir().display()))?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let out = std::fs::canonicalize(out).with_context(|| format!("cannot resolve {}", out.display()))?;
    let local_dir = out.join("local");
    let inputs = Inputs { settings, plan, tenant_cidr: observed.tenant_cidr, local_dir: &local_dir, env: &Default::default() };
    let files = kos_render::render(&inputs, &pki).context("cannot render the cluster's files")?;
    kos_render::write_tree(&out, &files).context("cannot write the rendered files")?;
    let local_files = files.iter().filter(|f| f.target == Target::Local).count();
    Ok(Rendered { node_files: files.len() - local_files, nodes: plan.nodes.len(), local_files, pki: report.to_string() })
}

/// The admin kubeconfig, from the cluster's PKI, which it reads and never changes: a
/// kubeconfig for a CA that no cluster trusts would only mislead.
pub fn admin_kubeconfig(settings: &Settings, state: &LocalState, observed: &Observed, plan: &ClusterPlan) -> Result<String, RunError> {
    local_kubeconfig(Kind::AdminKubeconfig, settings, state, observed, plan)
}

/// The super-admin kubeconfig (`system:masters`: it needs no binding from etcd), as
/// [`admin_kubeconfig`].
pub fn super_admin_kubeconfig(
    settings: &Settings,
    state: &LocalState,
    observed: &Observed,
    plan: &ClusterPlan,
) -> Result<String, RunError> {
    local_kubeconfig(Kind::SuperAdminKubeconfig, settings, state, observed, plan)
}

fn local_kubeconfig(
    kind: Kind,
    settings: &Settings,
    state: &LocalState,
    observed: &Observed,
    plan: &ClusterPlan,
) -> Result<String, RunError> {
    let pki = state.pki();
    if pki.ca_cert_pem(CaId::Cluster).is_err() {
        return Err(RunError::Invalid(format!(
            "cluster `{}` has no PKI in {} yet: `kos up` (or `kos render`) creates it",
            settings.cluster.name,
            pki.dir().display()
        )));
    }
    let inputs = Inputs { settings, plan, tenant_cidr: observed.tenant_cidr, local_dir: &state.dir, env: &Default::default() };
    let files = kos_render::local::render_local(&inputs, &pki).map_err(|e| match e {
        e @ RenderError::AddressUnknown { .. } => RunError::Invalid(e.to_string()),
        other => RunError::Other(anyhow::Error::new(other).context("cannot render the admin kubeconfig")),
    })?;
    let file = files.into_iter().find(|f| f.kind == kind).with_context(|| format!("kos rendered no {kind:?} (a bug in kos)"))?;
    Ok(file.contents)
}
