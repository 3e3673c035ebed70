//! What a node should have, per phase: packages, files (with their SHA-256), and the
//! systemd units that run from them. Built from the rendered files and the resolved
//! artifacts; pure, no I/O.
//!
//! Which phase writes a rendered file and which unit restarts when it changes is decided
//! by the renderer ([`kos_render::Kind::Node`]); for the binaries of the artifact set,
//! here ([`unit_of`]). The executor and `kos plan` both read it from the wants.

use crate::artifacts::{self, Artifact, Fetch, Kind};
use kos_core::settings::{Role, RuntimeKind, Settings};
use kos_render::{Kind as FileKind, RenderedFile};
use std::sync::Arc;

pub use kos_render::{NodePhase, Unit};

/// Where a file's bytes come from.
#[derive(Clone)]
pub enum Content {
    /// Uploaded by kos.
    Bytes(Arc<Vec<u8>>),
    /// Streamed by kos from this local file of this size (checked against the SHA-256 on
    /// the node after the transfer).
    File { path: std::path::PathBuf, len: u64 },
    /// Downloaded by the node itself and checked against the file's SHA-256.
    Download { url: String },
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Content::File { path, len } => write!(f, "File({}, {len} bytes)", path.display()),
            Content::Download { url } => write!(f, "Download({url})"),
        }
    }
}

/// One file as it must be on the node (owner root:root).
#[derive(Clone)]
pub struct WantedFile {
    pub path: String,
    pub mode: u32,
    /// Lowercase hex SHA-256 of the contents.
    pub sha256: String,
    pub content: Content,
}

impl std::fmt::Debug for WantedFile {
    /// Never the contents: they may be private keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WantedFile({} {:o} {})", self.path, self.mode, &self.sha256[..self.sha256.len().min(12)])
    }
}

impl WantedFile {
    pub fn from_bytes(path: &str, mode: u32, bytes: Vec<u8>) -> WantedFile {
        WantedFile { path: path.to_string(), mode, sha256: sha256_hex(&bytes), content: Content::Bytes(Arc::new(bytes)) }
    }
}

/// A systemd unit kos runs, and the files whose change means it must restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedUnit {
    pub name: &'static str,
    /// Restart (or start) it when one of these changed in this run.
    pub restart_on: Vec<String>,
    /// Restart it when one of these was written where there was none.
    pub restart_on_new: Vec<String>,
}

impl WantedUnit {
    /// Whether a change to `path` restarts it.
    pub fn restarts_on(&self, path: &str) -> bool {
        self.restart_on.iter().any(|p| p == path)
    }

    /// Whether writing `path` for `reason` restarts it.
    pub fn restarts_for(&self, path: &str, reason: crate::changes::FileReason) -> bool {
        match reason {
            crate::changes::FileReason::Mode => false,
            crate::changes::FileReason::Content => self.restarts_on(path),
            crate::changes::FileReason::New => self.restarts_on(path) || self.restart_on_new.iter().any(|p| p == path),
        }
    }
}

/// A container image the node's containerd must hold (namespace `k8s.io`), and the
/// archive it is imported from when it does not.
#[derive(Debug, Clone)]
pub struct WantedImage {
    /// `registry.k8s.io/pause:3.10.2`
    pub name: String,
    /// The manifest digest containerd must list for it.
    pub digest: String,
    /// The archive (uploaded only when the image is missing or differs).
    pub archive: WantedFile,
}

/// Everything one phase wants on one node.
#[derive(Debug, Clone, Default)]
pub struct PhaseWants {
    pub packages: Vec<String>,
    pub files: Vec<WantedFile>,
    /// Imported after the phase's units (re)started: containerd must run.
    pub images: Vec<WantedImage>,
    pub units: Vec<WantedUnit>,
    /// Swap must be off (the kubelet refuses to run with it by default).
    pub swap_off: bool,
    /// `NAME=value` for apt and downloads on the node (the settings' proxy).
    pub env: Vec<String>,
}

/// Everything a node wants, by phase.
#[derive(Debug, Clone)]
pub struct NodeWants {
    pub node: String,
    pub phases: Vec<(NodePhase, PhaseWants)>,
}

impl NodeWants {
    /// Give every phase these environment lines (`HTTP_PROXY=...`).
    pub fn with_env(mut self, env: &[String]) -> NodeWants {
        for (_, w) in &mut self.phases {
            w.env = env.to_vec();
        }
        self
    }

    pub fn phase(&self, phase: NodePhase) -> Option<&PhaseWants> {
        self.phases.iter().find(|(p, _)| *p == phase).map(|(_, w)| w)
    }

    /// Every file path of every phase (what the probe looks at).
    pub fn all_paths(&self) -> Vec<&str> {
        self.phases.iter().flat_map(|(_, w)| w.files.iter().map(|f| f.path.as_str())).collect()
    }

    pub fn all_packages(&self) -> Vec<&str> {
        self.phases.iter().flat_map(|(_, w)| w.packages.iter().map(String::as_str)).collect()
    }

    pub fn all_units(&self) -> Vec<&'static str> {
        self.phases.iter().flat_map(|(_, w)| w.units.iter().map(|u| u.name)).collect()
    }

    pub fn all_images(&self) -> Vec<&WantedImage> {
        self.phases.iter().flat_map(|(_, w)| w.images.iter()).collect()
    }
}

pub use kos_render::sha256_hex;

/// The unit a binary of the artifact set runs as: a new binary restarts it.
pub fn unit_of(artifact: &Artifact) -> Option<Unit> {
    match (&artifact.kind, artifact.name.as_str()) {
        (Kind::Kubernetes, "kubelet") => Some(Unit::Kubelet),
        (Kind::Kubernetes, "kube-proxy") => Some(Unit::KubeProxy),
        (Kind::Runtime, "containerd") => Some(Unit::Containerd),
        _ => None,
    }
}

/// Distribution packages per phase (Debian/Ubuntu names). With the runtime from the
/// artifact set, containerd, runc and the CNI plugins are not the distribution's.
fn packages(phase: NodePhase, runtime: RuntimeKind, runtime_from_artifacts: bool) -> Vec<String> {
    let mut p: Vec<&str> = match phase {
        // conntrack and iptables: kube-proxy; curl + ca-certificates: binaries the node downloads.
        NodePhase::Runtime => vec!["iptables", "conntrack", "ca-certificates", "curl"],
        NodePhase::Kubernetes | NodePhase::Network => vec![],
    };
    if phase == NodePhase::Runtime && !runtime_from_artifacts {
        p.splice(0..0, ["containerd", "runc", "containernetworking-plugins"]);
    }
    if phase == NodePhase::Runtime && runtime == RuntimeKind::Docker {
        p.push("docker.io");
    }
    p.into_iter().map(str::to_string).collect()
}

/// The images only the control plane runs (keepalived holds the API's VIP on masters).
const CONTROL_PLANE_IMAGES: [&str; 5] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "keepalived"];

/// The artifacts a node of `role` gets: kubectl and the control plane's images only on masters
/// (the user's extra images go everywhere, whatever their names).
fn wants_artifact(a: &Artifact, role: Role) -> bool {
    let control_plane_only = match &a.kind {
        Kind::Kubernetes => a.name == "kubectl",
        Kind::Image(image) if image.origin == artifacts::ImageOrigin::Extra => false,
        Kind::Image(image) => {
            let repo = image.name.rsplit_once(':').map_or(image.name.as_str(), |(r, _)| r);
            CONTROL_PLANE_IMAGES.contains(&repo.rsplit('/').next().unwrap_or(repo))
        }
        Kind::Runtime | Kind::Cni => false,
    };
    !control_plane_only || role == Role::Master
}

/// Build one node's wants from its rendered files and the cluster's artifacts.
pub fn node_wants(settings: &Settings, node: &str, role: Role, rendered: &[RenderedFile], artifacts: &[Artifact]) -> NodeWants {
    let runtime = settings.runtime.kind;
    let from_artifacts = artifacts::runtime_from_artifacts(artifacts);
    let mut phases: Vec<(NodePhase, PhaseWants)> = [NodePhase::Runtime, NodePhase::Kubernetes, NodePhase::Network]
        .into_iter()
        .map(|p| {
            (p, PhaseWants { packages: packages(p, runtime, from_artifacts), swap_off: p == NodePhase::Runtime, ..Default::default() })
        })
        .collect();
    // The wants of one phase (every phase is in `phases`).
    fn slot(phases: &mut [(NodePhase, PhaseWants)], phase: NodePhase) -> &mut PhaseWants {
        let i = phases.iter().position(|(p, _)| *p == phase).unwrap_or(0);
        &mut phases[i].1
    }
    // Which files restart which unit, from the renderer's word and the binaries'.
    let mut restart_on: std::collections::BTreeMap<Unit, Vec<String>> = Default::default();
    let mut restart_on_new: std::collections::BTreeMap<Unit, Vec<String>> = Default::default();
    for file in rendered.iter().filter(|f| f.is_on(node)) {
        let FileKind::Node { phase, restarts, restarts_if_new } = file.kind else { continue };
        if let Some(unit) = restarts {
            restart_on.entry(unit).or_default().push(file.path.clone());
        }
        if let Some(unit) = restarts_if_new {
            restart_on_new.entry(unit).or_default().push(file.path.clone());
        }
        slot(&mut phases, phase).files.push(WantedFile::from_bytes(&file.path, file.mode, file.contents.clone().into_bytes()));
    }
    for a in artifacts.iter().filter(|a| wants_artifact(a, role)) {
        let content = match &a.fetch {
            Fetch::Upload { path, len } => Content::File { path: path.clone(), len: *len },
            Fetch::Download { url } => Content::Download { url: url.clone() },
        };
        let (phase, mode) = match a.kind {
            Kind::Kubernetes => (NodePhase::Kubernetes, 0o755),
            Kind::Runtime | Kind::Cni | Kind::Image(_) => (NodePhase::Runtime, 0o755),
        };
        if let Some(unit) = unit_of(a) {
            restart_on.entry(unit).or_default().push(a.install_path.clone());
        }
        let file = WantedFile { path: a.install_path.clone(), mode, sha256: a.sha256.clone(), content };
        let wants = slot(&mut phases, phase);
        match &a.kind {
            // Only the image in containerd counts, not the archive on disk.
            Kind::Image(image) => wants.images.push(WantedImage {
                name: image.name.clone(),
                digest: image.digest.clone(),
                archive: WantedFile { mode: 0o600, ..file },
            }),
            _ => wants.files.push(file),
        }
    }
    for unit in Unit::ALL.into_iter().filter(|u| u.runs_with(runtime)) {
        let restart_on = restart_on.remove(&unit).unwrap_or_default();
        let restart_on_new = restart_on_new.remove(&unit).unwrap_or_default();
        slot(&mut phases, unit.phase(runtime)).units.push(WantedUnit { name: unit.name(), restart_on, restart_on_new });
    }
    for (_, w) in &mut phases {
        w.files.sort_by(|a, b| a.path.cmp(&b.path));
    }
    NodeWants { node: node.to_string(), phases }
}

#[cfg(test)]
mod tests;
