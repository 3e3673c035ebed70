//! Everything kos says to the Kubernetes API server, behind one small trait.
//!
//! - [`KubeApi`]: the few calls kos makes (readiness, server-side apply of one object, the
//!   nodes, the pods of a namespace, a deployment, a node label). [`client::KubeClient`] is
//!   the real one (kube-rs over mutual TLS). Tests run it against a real API server on
//!   loopback (`loopback::LoopbackApi`, feature `loopback` for other crates' tests: etcd,
//!   kube-apiserver and kube-controller-manager of the pinned versions); the pipeline's
//!   tests reach it through `loopback::LoopbackConnect`.
//! - [`Connect`]: how the pipeline gets a [`KubeApi`] once it has rendered a kubeconfig.
//! - [`apply`]: the add-on manifests mapped to their endpoints, every document checked
//!   before the first request, then applied in order.
//! - [`health`]: the cluster as kos judges it ready (every node, the control plane,
//!   CoreDNS), looked at once or waited for.
//! - [`drain`]: a node leaving the cluster: cordoned, its pods evicted (disruption budgets
//!   respected, a bounded wait that names the pod that blocks), its Node object deleted.

#![forbid(unsafe_code)]

pub mod apply;
pub mod client;
pub mod drain;
pub mod health;
#[cfg(any(test, feature = "loopback"))]
pub mod loopback;
#[cfg(any(test, feature = "loopback"))]
mod test_support;

use std::future::Future;
use std::time::Duration;

pub use apply::{Applied, Object, Outcome};
pub use drain::Drained;
pub use k8s_openapi::api::apps::v1::Deployment;
pub use k8s_openapi::api::coordination::v1::Lease;
pub use k8s_openapi::api::core::v1::{Node, Pod};

/// The calls kos makes to an API server. Errors are one readable line (the API's message
/// or the innermost transport cause).
pub trait KubeApi: Send + Sync {
    /// The server's URL, for messages.
    fn server(&self) -> &str;
    /// `GET /readyz`: `Ok` only when it answers `ok`.
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send;
    /// `GET /version`: the API server's `gitVersion` (`v1.37.2`).
    fn version(&self) -> impl Future<Output = Result<String, String>> + Send;
    /// Server-side apply of one object (field manager [`apply::FIELD_MANAGER`], taking over
    /// conflicting fields), and what it did.
    fn apply(&self, object: &Object) -> impl Future<Output = Result<Outcome, String>> + Send;
    /// What [`KubeApi::apply`] would do to the object, with nothing changed (a server-side
    /// dry run).
    fn would_apply(&self, object: &Object) -> impl Future<Output = Result<Outcome, String>> + Send;
    /// Every Node object.
    fn nodes(&self) -> impl Future<Output = Result<Vec<Node>, String>> + Send;
    /// Every pod of a namespace.
    fn pods(&self, namespace: &str) -> impl Future<Output = Result<Vec<Pod>, String>> + Send;
    /// One deployment, `None` when there is none.
    fn deployment(&self, namespace: &str, name: &str) -> impl Future<Output = Result<Option<Deployment>, String>> + Send;
    /// Set one label on a node.
    fn label_node(&self, node: &str, key: &str, value: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// Mark a node unschedulable (`spec.unschedulable`).
    fn cordon(&self, node: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// Set a node's `spec.unschedulable` and, in the same change, its annotation `key` to
    /// `value` (`None`: removed): what kos cordons for a while says so on the node, so a
    /// later run takes it back even after this one was killed.
    fn schedule(&self, node: &str, unschedulable: bool, key: &str, value: Option<&str>) -> impl Future<Output = Result<(), String>> + Send;
    /// Every pod bound to a node, in every namespace.
    fn pods_on(&self, node: &str) -> impl Future<Output = Result<Vec<Pod>, String>> + Send;
    /// Ask the API server to evict one pod (the eviction subresource: the pod's disruption
    /// budgets decide).
    fn evict(&self, namespace: &str, pod: &str) -> impl Future<Output = Result<Eviction, String>> + Send;
    /// Delete a pod (its grace period as it says); `false` when there was none.
    fn delete_pod(&self, namespace: &str, pod: &str) -> impl Future<Output = Result<bool, String>> + Send;
    /// Delete a Node object; `false` when there was none.
    fn delete_node(&self, node: &str) -> impl Future<Output = Result<bool, String>> + Send;
    /// One Lease (a leader election's record), `None` when there is none.
    fn lease(&self, namespace: &str, name: &str) -> impl Future<Output = Result<Option<Lease>, String>> + Send;
}

/// What the API server said to an eviction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eviction {
    /// Accepted: the pod is being deleted.
    Accepted,
    /// The pod was already gone.
    Gone,
    /// Refused for now (HTTP 429: a disruption budget allows no disruption); its message.
    Refused(String),
}

/// How the pipeline reaches an API server from a kubeconfig it rendered.
pub trait Connect: Send + Sync {
    type Api: KubeApi;
    /// A client of the kubeconfig's server once `GET /readyz` answers `ok`, waiting at most
    /// `wait` (each request bounded too).
    fn connect(&self, kubeconfig: &str, wait: Duration) -> impl Future<Output = Result<Self::Api, KubeError>> + Send;
}

/// Why kos could not do what it asked of the API server.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("the admin kubeconfig is not usable")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("cannot build the Kubernetes API client")]
    Client(#[source] kube::Error),
    #[error(
        "the API server at {server} was not ready within {} s (last: {last}); the add-ons were not applied: run `kos up --only addons` once it answers",
        waited.as_secs()
    )]
    NotReady { server: String, waited: Duration, last: String },
    #[error("{file}: document {index} is not a Kubernetes object kos can apply: {reason}")]
    Manifest { file: String, index: usize, reason: String },
    #[error("{file}: {kind} `{name}` ({api_version}) is not a kind kos knows how to apply (known: {known}); nothing was applied")]
    UnknownKind { file: String, api_version: String, kind: String, name: String, known: String },
    #[error(
        "cannot apply {object} from {file}: {reason}; the objects before it were applied, run `kos up --only addons` again once this is fixed"
    )]
    Apply { object: String, file: String, reason: String },
    /// A read the readiness check needs failed (`cannot list nodes: ...`).
    #[error("{0}")]
    Read(String),
    /// A node's pods did not all go in time; each one still there, with why.
    #[error("{node} was not drained within {} s: {}", waited.as_secs(), pods.join(", "))]
    NotDrained { node: String, waited: Duration, pods: Vec<String> },
    /// The cluster did not become ready in time; each item that is not, with its reason.
    #[error("the cluster was not ready within {} s: {}", waited.as_secs(), missing.join("; "))]
    NotReadyInTime { waited: Duration, missing: Vec<String> },
}
