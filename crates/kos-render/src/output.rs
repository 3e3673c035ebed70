//! Rendered files as values, and writing them out as a tree for review
//! (`DIR/nodes/<node>/<absolute path>`, `DIR/local/<path>`).

use crate::RenderError;
use kos_core::settings::RuntimeKind;
use std::path::{Path, PathBuf};

/// Where a file goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A node's filesystem (the path is absolute there).
    Node(String),
    /// The operator's machine (the path is relative to the local output folder).
    Local,
}

/// A phase of provisioning a node, in the order `kos up` runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodePhase {
    /// OS preparation and the container runtime.
    Runtime,
    /// Certificates, kubeconfigs, binaries, kubelet and kube-proxy, the control plane.
    Kubernetes,
    /// The node side of the routed pod network: CNI config, cbr0, masquerade rule.
    Network,
}

impl std::fmt::Display for NodePhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodePhase::Runtime => "runtime",
            NodePhase::Kubernetes => "kubernetes",
            NodePhase::Network => "network",
        })
    }
}

/// A systemd unit kos runs on every node (restarted when one of its files changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unit {
    /// The pod bridge `cbr0` and the masquerade rule.
    PodNetwork,
    Containerd,
    /// Only with the docker runtime.
    Docker,
    Kubelet,
    KubeProxy,
}

impl Unit {
    /// In the order they start: the pod bridge first (dockerd needs it).
    pub const ALL: [Unit; 5] = [Unit::PodNetwork, Unit::Containerd, Unit::Docker, Unit::Kubelet, Unit::KubeProxy];

    /// The systemd unit's name.
    pub fn name(self) -> &'static str {
        match self {
            Unit::PodNetwork => "kos-pod-network",
            Unit::Containerd => "containerd",
            Unit::Docker => "docker",
            Unit::Kubelet => "kubelet",
            Unit::KubeProxy => "kube-proxy",
        }
    }

    /// The phase that writes its files and (re)starts it. With docker, the pod bridge comes
    /// with the runtime: dockerd does not start without cbr0.
    pub fn phase(self, runtime: RuntimeKind) -> NodePhase {
        match self {
            Unit::PodNetwork if runtime == RuntimeKind::Docker => NodePhase::Runtime,
            Unit::PodNetwork => NodePhase::Network,
            Unit::Containerd | Unit::Docker => NodePhase::Runtime,
            Unit::Kubelet | Unit::KubeProxy => NodePhase::Kubernetes,
        }
    }

    /// Whether a node with this runtime runs it.
    pub fn runs_with(self, runtime: RuntimeKind) -> bool {
        self != Unit::Docker || runtime == RuntimeKind::Docker
    }
}

/// What a file is for, decided where it is rendered: what kos does with it besides
/// writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A node's file, written in `phase`; a change to it restarts `restarts`, and writing it
    /// where there was none restarts `restarts_if_new`.
    Node { phase: NodePhase, restarts: Option<Unit>, restarts_if_new: Option<Unit> },
    /// The operator's kubeconfig (group kos:cluster-admins), merged into the user's.
    AdminKubeconfig,
    /// The break-glass kubeconfig (system:masters): kos applies the add-ons with it.
    SuperAdminKubeconfig,
    /// A cluster add-on's manifests, applied through the API server.
    Addon,
    /// Any other file for the operator (certificates, `<node>.env`).
    Operator,
}

/// One file with its destination, mode and purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub target: Target,
    /// Absolute for nodes (`/etc/kubernetes/manifests/etcd.yaml`); relative for local.
    pub path: String,
    /// Unix mode; private keys and files embedding them are 0600.
    pub mode: u32,
    pub contents: String,
    pub kind: Kind,
}

impl RenderedFile {
    /// A node's file, written in `phase`; a change restarts `restarts`.
    pub fn node(node: &str, phase: NodePhase, restarts: Option<Unit>, path: &str, mode: u32, contents: String) -> Self {
        RenderedFile {
            target: Target::Node(node.to_string()),
            path: path.to_string(),
            mode,
            contents,
            kind: Kind::Node { phase, restarts, restarts_if_new: None },
        }
    }

    /// This node file also restarts `unit` when it is written where there was none.
    pub fn restarting_if_new(mut self, unit: Unit) -> Self {
        if let Kind::Node { restarts_if_new, .. } = &mut self.kind {
            *restarts_if_new = Some(unit);
        }
        self
    }

    /// A file for the operator, of a local `kind`.
    pub fn local(kind: Kind, path: &str, mode: u32, contents: String) -> Self {
        RenderedFile { target: Target::Local, path: path.to_string(), mode, contents, kind }
    }

    /// Whether it belongs on this node.
    pub fn is_on(&self, node: &str) -> bool {
        matches!(&self.target, Target::Node(n) if n == node)
    }

    /// Where the file lands below an output folder.
    pub fn tree_path(&self, out: &Path) -> PathBuf {
        match &self.target {
            Target::Node(n) => out.join("nodes").join(n).join(self.path.trim_start_matches('/')),
            Target::Local => out.join("local").join(&self.path),
        }
    }
}

impl std::fmt::Debug for RenderedFile {
    /// Never prints contents: they may hold private keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedFile")
            .field("target", &self.target)
            .field("path", &self.path)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("kind", &self.kind)
            .field("bytes", &self.contents.len())
            .finish()
    }
}

/// Write files below `out` with their modes, replacing each file atomically (new folders
/// 0700: most hold keys or files that embed them).
pub fn write_tree(out: &Path, files: &[RenderedFile]) -> Result<(), RenderError> {
    for file in files {
        let path = file.tree_path(out);
        kos_fs::write_atomic(&path, file.contents.as_bytes(), file.mode)
            .map_err(|source| RenderError::Write { path: path.clone(), source })?;
    }
    Ok(())
}
