//! kos's pipelines as a library: what `kos up` does, in order, and the node-side looks that
//! `plan` and `status` share with it.
//!
//! Everything outside the machine kos runs on is reached through a trait: the cloud
//! ([`kos_cloud::Cloud`]), the nodes ([`nodes::Reach`], giving [`kos_node::remote::Remote`]
//! sessions) and the Kubernetes API ([`kos_kube::Connect`]). Progress goes to a
//! [`Reporter`]; the result is a typed [`report::UpReport`] that the binary prints as text or
//! JSON and the tests read. So the pipeline's order, its resumption after a failure and its
//! summary are tested with the in-memory cloud and a real API server on loopback, and the
//! binary keeps only the command line, the per-run session and the printer.

#![forbid(unsafe_code)]

pub mod backup;
pub mod certs;
pub mod etcd;
pub mod files;
pub mod inputs;
pub mod kubeconfig;
pub mod nodes;
pub mod ops;
pub mod plan;
pub mod report;
pub mod restore;
pub mod state;
pub mod status;
#[cfg(test)]
mod testing;
pub mod up;

pub use report::UpReport;
pub use state::LocalState;
pub use up::{LocalInputs, UpOptions, local_inputs, up};

use kos_core::plan::{ClusterPlan, Observed};
use kos_core::settings::Settings;

/// A phase of `kos up`, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Preflight against the cloud (as `kos check`); stops on a FAIL.
    Check,
    /// Security group, ports with allowed address pairs, servers, floating IPs.
    Instances,
    /// On nodes: sysctls, modules, swap off, containerd (+ docker), their configs.
    Runtime,
    /// On nodes: certificates, kubeconfigs, kubelet, kube-proxy, kubectl, control plane.
    Kubernetes,
    /// Only the cloud side of `network`: router routes, each node's pod CIDR via its fixed IP.
    Routes,
    /// Router routes (as `routes`), then on nodes: CNI config, cbr0, masquerade rule.
    Network,
    /// CoreDNS and the cluster-admins binding, through the API server; then every node, the
    /// control plane and CoreDNS Ready.
    Addons,
    /// Every node: units active, cbr0, masquerade rule, ip_forward.
    Verify,
}

impl Phase {
    /// Every phase, in order (`routes` is part of `network`).
    pub const ALL: [Phase; 7] =
        [Phase::Check, Phase::Instances, Phase::Runtime, Phase::Kubernetes, Phase::Network, Phase::Addons, Phase::Verify];

    /// The node-side phase it runs, if any.
    pub fn on_nodes(self) -> Option<kos_node::wanted::NodePhase> {
        use kos_node::wanted::NodePhase;
        match self {
            Phase::Runtime => Some(NodePhase::Runtime),
            Phase::Kubernetes => Some(NodePhase::Kubernetes),
            Phase::Network => Some(NodePhase::Network),
            _ => None,
        }
    }
}

/// Where progress goes while a pipeline runs (the binary: lines, or a spinner per node on a
/// terminal). What happened in the end is in the returned report, not here.
pub trait Reporter: Send + Sync {
    /// Something the operator wants to see as it happens: a change made, a warning, a note.
    fn line(&self, text: &str);
    /// Detail (`-v`): timings, unchanged objects, what a wait still waits for.
    fn detail(&self, text: &str);
    /// Node phases start on these nodes; their steps follow through [`Reporter::node_step`].
    fn nodes_started(&self, _nodes: &[&str]) {}
    /// A node began a step (`probing`, `runtime: 12 changes`, ...).
    fn node_step(&self, node: &str, step: &str) {
        self.detail(&format!("{node}: {step}"));
    }
    /// The node phases are over (before their summary lines).
    fn nodes_finished(&self) {}
    /// A bounded wait began: what it waits for, and at most how long.
    fn wait_started(&self, _what: &str, _bound: std::time::Duration) {}
    /// Still waiting (called every few seconds): what it still waits for.
    fn wait_progress(&self, _still: &str) {}
    /// The wait is over, whichever way.
    fn wait_finished(&self) {}
}

/// Run `work`, telling `reporter` every `every` what `still` says it still waits for.
pub(crate) async fn ticking<T>(
    work: impl std::future::Future<Output = T>,
    reporter: &dyn Reporter,
    every: std::time::Duration,
    still: impl Fn() -> String,
) -> T {
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            () = tokio::time::sleep(every) => reporter.wait_progress(&still()),
        }
    }
}

/// kos-node's progress events, to a [`Reporter`].
struct NodeSteps<'a>(&'a dyn Reporter);

impl std::fmt::Debug for NodeSteps<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeSteps")
    }
}

impl kos_node::provision::Progress for NodeSteps<'_> {
    fn event(&self, node: &str, message: &str) {
        self.0.node_step(node, message);
    }
}

/// Why a pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The user's input is wrong: the message says where and how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// Preflight found problems; nothing was changed.
    #[error("{0} preflight check(s) failed (see above); nothing was changed")]
    Checks(usize),
    #[error(transparent)]
    Cloud(#[from] kos_cloud::apply::ApplyError),
    #[error(transparent)]
    Kube(#[from] kos_kube::KubeError),
    /// etcd's membership could not be changed as the settings ask (the message says why).
    #[error("{0}")]
    Etcd(String),
    /// A removed node could not be drained, so its server stays (the message says why and what to do).
    #[error("{0}")]
    Drain(String),
    /// A rolling upgrade stopped where it was (the message says why and what to do).
    #[error("{0}")]
    Upgrade(String),
    /// Everything ran, but not everywhere: the report names each failure once.
    #[error("{0} node problem(s) (above); the other nodes are done; run `kos up` again once they are fixed")]
    Nodes(usize),
    /// The cluster did not become ready in time.
    #[error("{0}; run `kos up` again once it is fixed (`kos status` shows the cluster)")]
    NotReady(kos_kube::KubeError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl RunError {
    /// Bad input (exit 2), as opposed to a failure (exit 1).
    pub fn is_invalid(&self) -> bool {
        matches!(self, RunError::Invalid(_))
    }
}

/// The plan, with its refusals (a pin contradicting a recorded range, ...) as bad input.
pub fn plan_for(settings: &Settings, observed: &Observed) -> Result<ClusterPlan, RunError> {
    kos_core::plan::plan(settings, observed).map_err(|e| RunError::Invalid(e.to_string()))
}

/// The cluster as the cloud shows it now, for the commands that look before they act on
/// nodes (`status`, `backup`, `restore`, `certs check`): one survey, what it found, and the
/// settings' plan against it.
pub(crate) struct Looked {
    pub resolved: kos_cloud::apply::Resolved,
    pub have: kos_cloud::reconcile::ClusterResources,
    pub observed: Observed,
    pub plan: ClusterPlan,
}

pub(crate) async fn look<C: kos_cloud::Cloud>(cloud: &C, settings: &Settings) -> Result<Looked, RunError> {
    let survey = kos_cloud::survey::survey(cloud, settings, kos_cloud::survey::Asks::default()).await;
    let (resolved, have) = (survey.resolved()?, survey.have()?);
    let observed = have.observed(Some(resolved.subnet.cidr));
    let plan = plan_for(settings, &observed)?;
    Ok(Looked { resolved, have, observed, plan })
}

/// Wait, at most `wait`, for every node of the plan, the control plane and (with the DNS
/// add-on) CoreDNS to be Ready, telling `reporter` what is still missing; `step` names the
/// waiting command in its line (`ready`, `restore`).
pub(crate) async fn wait_ready<K: kos_kube::KubeApi>(
    api: &K,
    settings: &Settings,
    plan: &ClusterPlan,
    wait: std::time::Duration,
    reporter: &dyn Reporter,
    step: &str,
) -> Result<Vec<kos_kube::health::Item>, RunError> {
    reporter.wait_started(&format!("{step}: waiting for every node, the control plane and CoreDNS"), wait);
    let items = kos_kube::health::wait_ready(api, plan, settings.addons.dns.is_some(), wait, |missing| {
        let missing: Vec<String> = missing.iter().map(|i| format!("{} ({})", i.what, i.detail)).collect();
        reporter.wait_progress(&missing.join(", "));
    })
    .await;
    reporter.wait_finished();
    items.map_err(RunError::NotReady)
}

/// An error of a library below, as a pipeline's failure.
/// An error with its causes on one line (`a: b: c`), for a warning or a report.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

pub(crate) fn other(e: impl std::error::Error + Send + Sync + 'static) -> RunError {
    RunError::Other(anyhow::Error::new(e))
}
