//! What a `kos up` did, as typed values: the binary prints them as text (the summary) or as
//! JSON (`kos up -o json`, documented in `docs/up-report.md`), and the tests read them.

use crate::Phase;
use kos_kube::Applied;
use kos_kube::health::Item;
use kos_node::changes::Change;
use serde::Serialize;

/// The version of the JSON form; raised when a field changes meaning or goes away.
pub const SCHEMA: u32 = 1;

/// Everything a `kos up` did, in the order it did it.
#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    /// [`SCHEMA`].
    pub schema: u32,
    pub cluster: String,
    /// The phases asked for, in the order they ran.
    pub phases: Vec<Phase>,
    /// Done everywhere: no error, no failure.
    pub ok: bool,
    /// Why the run stopped (one line), when it did.
    pub error: Option<String>,
    /// Changes made: cloud, nodes and add-ons together.
    pub changes: usize,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// Requests sent to the cloud's APIs (filled in by whoever holds the real client).
    pub api_calls: Option<u64>,
    /// Wall time of each step, in order.
    pub timings: Vec<Timing>,
    /// Preflight findings.
    pub checks: Vec<CheckLine>,
    /// Changes made in the cloud.
    pub cloud: Vec<CloudChange>,
    /// Facts of the nodes that shape their files, for the operator (cgroup v1, ...).
    pub notes: Vec<String>,
    /// Each node that was provisioned: its changes by phase, its warnings.
    pub nodes: Vec<NodeOutcome>,
    /// What happened to the admin kubeconfig in the user's kubeconfig file.
    pub kubeconfig: Option<String>,
    /// The nodes removed from the settings, drained before their servers were deleted.
    pub drained: Vec<kos_kube::Drained>,
    /// Every add-on object applied, and what the apply did.
    pub addons: Vec<Applied>,
    /// What the cluster showed when kos judged it ready.
    pub ready: Vec<Item>,
    /// The verify checks of each node looked at.
    pub verified: Vec<Verified>,
    /// Every failure, each node named once.
    pub failures: Vec<Failure>,
}

impl UpReport {
    /// The end of a run for people: every failure once, then the count of changes.
    pub fn summary(&self) -> Vec<String> {
        let mut out: Vec<String> = self.failures.iter().map(|f| format!("FAILED {f}")).collect();
        if self.ok {
            let calls = self.api_calls.map(|n| format!(", {n} API calls")).unwrap_or_default();
            out.push(match self.changes {
                0 => format!("up to date: 0 changes ({:.1} s{calls})", self.seconds),
                n => format!("{n} change(s) ({:.1} s{calls})", self.seconds),
            });
        }
        out
    }

    pub fn new(cluster: &str, phases: &[Phase]) -> UpReport {
        UpReport {
            schema: SCHEMA,
            cluster: cluster.to_string(),
            phases: phases.to_vec(),
            ok: false,
            error: None,
            changes: 0,
            seconds: 0.0,
            api_calls: None,
            timings: Vec::new(),
            checks: Vec::new(),
            cloud: Vec::new(),
            notes: Vec::new(),
            nodes: Vec::new(),
            kubeconfig: None,
            drained: Vec::new(),
            addons: Vec::new(),
            ready: Vec::new(),
            verified: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// The nodes that failed, each once, in the order of their first failure.
    pub fn failed_nodes(&self) -> Vec<&str> {
        let mut nodes: Vec<&str> = Vec::new();
        for f in &self.failures {
            if !nodes.contains(&f.node.as_str()) {
                nodes.push(&f.node);
            }
        }
        nodes
    }
}

/// How long one step took.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub step: String,
    pub seconds: f64,
}

/// A preflight finding.
#[derive(Debug, Clone, Serialize)]
pub struct CheckLine {
    /// `OK`, `WARN` or `FAIL`.
    pub verdict: String,
    pub what: String,
    /// What kos will do, or how to fix it.
    pub fix: Option<String>,
}

/// One change made in the cloud.
#[derive(Debug, Clone, Serialize)]
pub struct CloudChange {
    /// `instances` or `network`.
    pub phase: Phase,
    /// In the words `kos up` prints it.
    pub change: String,
}

/// What provisioning did on one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeOutcome {
    pub node: String,
    /// The changes of each node phase that changed something, in order.
    pub phases: Vec<NodePhaseChanges>,
    pub warnings: Vec<String>,
}

/// The changes of one node phase.
#[derive(Debug, Clone, Serialize)]
pub struct NodePhaseChanges {
    /// `runtime`, `kubernetes` or `network`.
    pub phase: String,
    pub changes: Vec<Change>,
}

/// The verify checks of one node.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub node: String,
    /// Checks run.
    pub checks: usize,
    /// The checks that failed.
    pub failures: Vec<Failure>,
}

/// One thing that failed on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub node: String,
    /// The phase it failed in (`ssh`, `runtime`, `kubernetes`, `network`, `verify`).
    pub phase: String,
    /// The whole line, naming the node.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
