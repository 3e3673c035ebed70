//! The local inputs kos needs before it touches anything: the SSH private key, and the
//! artifacts (every file of a local folder matching its SHA256SUMS line, a mirror's checksums
//! answering, the images the cluster runs, the user's extra image folders).

use crate::{RunError, other};
use kos_core::settings::Settings;
use kos_node::artifacts;

/// The local inputs the node phases need, checked before anything changes anywhere: the
/// SSH private key exists, and the artifacts (when `with_binaries`) resolve: a local
/// folder's every file matches its SHA256SUMS line, a mirror's checksums answer.
pub async fn local_inputs(settings: &Settings, with_binaries: bool) -> Result<Vec<artifacts::Artifact>, RunError> {
    check_key(settings)?;
    if !with_binaries {
        return Ok(Vec::new());
    }
    resolve_artifacts(settings).await
}

/// Every problem of the local inputs, not only the first, in the words `up` uses (for
/// `kos validate` and `kos check`); empty when all is well. Without `fetch` nothing goes
/// over the network: an `upstream` or `mirror` source's checksums are not fetched (the local
/// folders are still checked).
pub async fn local_problems(settings: &Settings, fetch: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = check_key(settings) {
        problems.push(e.to_string());
    }
    let result = if fetch || matches!(settings.artifacts.source, kos_core::settings::ArtifactSource::Local { .. }) {
        resolve_artifacts(settings).await.map(drop)
    } else {
        extra_images(settings).await.map(drop)
    };
    if let Err(e) = result {
        problems.push(e.to_string());
    }
    problems
}

/// The `artifacts.extra_images` folders' archives, checked (hashing is blocking work).
async fn extra_images(settings: &Settings) -> Result<Vec<artifacts::Artifact>, RunError> {
    let (dirs, base) = (settings.artifacts.extra_images.clone(), settings.base_dir().to_path_buf());
    tokio::task::spawn_blocking(move || artifacts::resolve_extra_images(&dirs, &base))
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
        .map_err(other)
}

fn check_key(settings: &Settings) -> Result<(), RunError> {
    kos_node::ssh::check_private_key(settings).map(drop).map_err(other)
}

/// The artifacts of the settings, checked: the binaries' source, the images an artifact
/// set that carries images must carry, the extra image folders.
async fn resolve_artifacts(settings: &Settings) -> Result<Vec<artifacts::Artifact>, RunError> {
    let mut arts =
        artifacts::resolve(&settings.artifacts.source, settings.base_dir(), &settings.cluster.kubernetes_version.to_string(), "amd64")
            .await
            .map_err(other)?;
    // An artifact set that carries images must carry every one the cluster runs: a missing
    // one would only show later, as a pod that cannot pull on an air-gapped node.
    let carried: Vec<&str> = arts
        .iter()
        .filter_map(|a| match &a.kind {
            artifacts::Kind::Image(i) => Some(i.name.as_str()),
            _ => None,
        })
        .collect();
    if !carried.is_empty() {
        let missing: Vec<String> = kos_render::images(settings).into_iter().filter(|i| !carried.contains(&i.as_str())).collect();
        if !missing.is_empty() {
            return Err(RunError::Invalid(format!(
                "the artifact set carries images, but not {}, which the cluster runs: add each as images/<name>.tar (an OCI archive naming it, e.g. from `ctr images export` or testbed/k8s/build.sh) and its line to SHA256SUMS",
                missing.join(", ")
            )));
        }
    }
    // The user's own images, imported on every node whatever the binaries' source.
    if !settings.artifacts.extra_images.is_empty() {
        arts.extend(extra_images(settings).await?);
        artifacts::check_unique_images(&arts).map_err(other)?;
    }
    Ok(arts)
}
