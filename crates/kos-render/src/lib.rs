//! Every file a cluster needs, rendered from the plan.
//!
//! Input: validated settings, the plan, and the key material (through [`Material`], so
//! this crate never touches the PKI directory itself). Output: a flat list of
//! [`RenderedFile`]s, each bound for one node's filesystem or for the operator's machine.
//! Kubernetes objects are built as typed values (k8s-openapi, kube's `Kubeconfig`) and
//! serialised; text without a schema (systemd units, scripts) comes from minijinja
//! templates. Nothing here does I/O except [`write_tree`].

pub mod addons;
pub mod control_plane;
pub mod endpoint;
#[cfg(test)]
pub(crate) mod fixture;
pub mod kubeconfig;
pub mod local;
mod material;
pub mod node;
mod output;

pub use output::{Kind, NodePhase, RenderedFile, Target, Unit, write_tree};

use kos_core::plan::{CaId, ClusterPlan};
use kos_core::settings::Settings;

/// Key material the renderer embeds or copies. Implemented by `kos_pki::Pki` (via the
/// binary) and by test fixtures.
pub trait Material {
    /// A CA's certificate, PEM.
    fn ca_cert(&self, ca: CaId) -> Result<String, RenderError>;
    /// A CA's private key, PEM (only ever written to masters, mode 0600).
    fn ca_key(&self, ca: CaId) -> Result<String, RenderError>;
    /// A leaf certificate by file stem (`apiserver`, `nodes/w1/kubelet-client`), PEM.
    fn cert(&self, stem: &str) -> Result<String, RenderError>;
    /// A leaf's private key by file stem, PEM.
    fn key(&self, stem: &str) -> Result<String, RenderError>;
    /// The service-account signing key (private, PEM).
    fn sa_key(&self) -> Result<String, RenderError>;
    /// The service-account verification key (public, PEM).
    fn sa_pub(&self) -> Result<String, RenderError>;
    /// 32 random bytes, base64, for encrypting Secrets at rest; stable across runs.
    fn encryption_key(&self) -> Result<String, RenderError>;
}

/// What the renderer needs besides the plan.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub settings: &'a Settings,
    pub plan: &'a ClusterPlan,
    /// The tenant subnet, when known: pod traffic to it is not masqueraded.
    pub tenant_cidr: Option<ipnet::Ipv4Net>,
    /// Absolute path the operator's files will live in (`<out>/local`), for files that
    /// name their neighbours (`DOCKER_CERT_PATH` in `<node>.env`).
    pub local_dir: &'a std::path::Path,
    /// What kos learned about the nodes and the artifact set (`Environment::default()`:
    /// current VMs, the runtime from the distribution).
    pub env: &'a Environment,
}

/// What kos learned before rendering, which shapes the files: where the container runtime
/// comes from, and what each node's probe saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// containerd, runc and the CNI plugins come from the artifact set (under /usr/local
    /// and /opt/cni/bin, run by kos's containerd unit), not from the distribution.
    pub runtime_from_artifacts: bool,
    /// Per node, what its probe saw; a node not listed is taken to be a current VM.
    pub nodes: std::collections::BTreeMap<String, NodeFacts>,
}

impl Environment {
    pub fn facts(&self, node: &str) -> NodeFacts {
        self.nodes.get(node).cloned().unwrap_or_default()
    }
}

/// What a node's probe saw that changes what it gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NodeFacts {
    /// The node runs cgroup v1: the kubelet refuses it since 1.35 unless told
    /// `failCgroupV1: false`.
    pub cgroup_v1: bool,
    /// `net.netfilter.nf_conntrack_max` cannot be set on the node (a container-like node,
    /// or a network namespace): kube-proxy must not try.
    pub conntrack_max_fixed: bool,
    /// Root on the node lacks CAP_SYS_RESOURCE (a container, not a VM), so no OOM score can
    /// go below its parent's: containerd is told to clamp pods' scores instead of failing.
    pub oom_score_restricted: bool,
    /// The interface of the node's default route (its tenant network NIC: `ens3`, `eth0`),
    /// where keepalived holds the API's VIP on a master; `None` when the probe saw none.
    pub interface: Option<String>,
    /// etcd has data on the node (`/var/lib/etcd/member`): its member has started once.
    pub etcd_data: bool,
    /// What the manifest of a member with data started it with: kept as it is, so that the
    /// membership changing around it (a master before it in the joining order replaced or
    /// removed) does not rewrite its manifest and restart it. etcd reads these only once.
    pub etcd_started_with: Option<EtcdStartedWith>,
    /// The Kubernetes the node runs: its installed kubelet's version (`None` before kos
    /// installed one) and, on a master, its API server's (from its static pod's image).
    /// They shape no file; `kos up` reads them to roll an upgrade.
    #[serde(skip)]
    pub kubelet_version: Option<kos_core::settings::KubeVersion>,
    #[serde(skip)]
    pub apiserver_version: Option<kos_core::settings::KubeVersion>,
}

/// A running etcd member's `--initial-cluster` and `--initial-cluster-state`, as its
/// manifest on the node holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EtcdStartedWith {
    pub members: String,
    pub state: String,
}

/// Rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("key material `{what}` is missing or unreadable: {why}")]
    Material { what: String, why: String },
    #[error(
        "the address of {what} is not known yet: run `kos up --only instances` first, or pass the addresses with --observed FILE (see examples/observed.yaml)"
    )]
    AddressUnknown { what: String },
    #[error("`{node}` has no etcd member in the plan (not a master of it): a bug in kos, please report it")]
    NotAMaster { node: String },
    #[error("cannot serialise {what}")]
    Serialise {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("template {name}")]
    Template {
        name: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A rendered file's SHA-256, as lowercase hex (what a node's probe reports of its copy).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Render every file of the cluster: each node's, the operator's and the add-ons.
/// Every image the rendered cluster runs (static pods, the sandbox, the add-ons), by the
/// names its manifests use: what an air-gapped artifact set must carry.
pub fn images(settings: &Settings) -> Vec<String> {
    let repo = &settings.artifacts.image_repository;
    let mut out: Vec<String> = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]
        .iter()
        .map(|c| format!("{repo}/{c}:v{}", settings.cluster.kubernetes_version))
        .collect();
    out.push(format!("{repo}/etcd:{}", control_plane::ETCD_IMAGE_TAG));
    out.push(format!("{repo}/pause:{}", node::PAUSE_TAG));
    if settings.addons.dns == Some(kos_core::settings::DnsAddon::CoreDns) {
        out.push(format!("{repo}/coredns/coredns:{}", addons::COREDNS_VERSION));
    }
    out.extend(endpoint::images(settings.cluster.api_endpoint));
    out
}

pub fn render(inputs: &Inputs<'_>, material: &dyn Material) -> Result<Vec<RenderedFile>, RenderError> {
    let plan = inputs.plan;
    if let Some(missing) = plan.nodes_without_address().first() {
        return Err(RenderError::AddressUnknown { what: format!("node `{missing}`") });
    }
    let mut files = Vec::new();
    for node in &plan.nodes {
        files.extend(node::render_node(inputs, node, material)?);
        files.extend(endpoint::render(inputs, node)?);
        if node.role == kos_core::settings::Role::Master {
            files.extend(control_plane::render_master(inputs, node, material)?);
        }
    }
    files.extend(local::render_local(inputs, material)?);
    files.extend(addons::render_addons(inputs)?);
    Ok(files)
}

/// Serialise a value as YAML (the form Kubernetes tools and humans read).
pub(crate) fn to_yaml<T: serde::Serialize>(what: &str, value: &T) -> Result<String, RenderError> {
    serde_saphyr::to_string(value).map_err(|e| RenderError::Serialise { what: what.to_string(), source: Box::new(e) })
}

/// Several objects as one multi-document YAML file.
pub(crate) fn to_yaml_documents(what: &str, docs: &[serde_json::Value]) -> Result<String, RenderError> {
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml(what, doc)?);
    }
    Ok(out)
}

/// A Kubernetes object as JSON value with apiVersion/kind set (k8s-openapi's Resource).
pub(crate) fn object<T: k8s_openapi::Resource + serde::Serialize>(what: &str, value: &T) -> Result<serde_json::Value, RenderError> {
    serde_json::to_value(value).map_err(|e| RenderError::Serialise { what: what.to_string(), source: Box::new(e) })
}

/// Render a minijinja template (units, scripts) with `ctx`. Templates keep their
/// trailing newline.
pub(crate) fn template(name: &str, source: &str, ctx: minijinja::Value) -> Result<String, RenderError> {
    let mut env = minijinja::Environment::new();
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .trim_blocks(true)
        .build()
        .map_err(|source| RenderError::Template { name: name.to_string(), source })?;
    env.set_syntax(syntax);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.render_str(source, ctx).map_err(|source| RenderError::Template { name: name.to_string(), source })
}
