//! Provision nodes: for each node, one probe, then each chosen phase's changes in order
//! (runtime → kubernetes → network). Nodes run in parallel, at most
//! [`Provision::parallel`] at a time; each node runs its own phases in sequence, so one
//! slow or dead node holds nobody else, and the report names it.

use crate::changes::{Change, check_supported, diff_phase};
use crate::execute::{ExecuteError, execute};
use crate::probe::{self, NodeState};
use crate::remote::{Remote, RemoteError};
use crate::wanted::{NodePhase, NodeWants};
use futures_util::stream::{self, StreamExt};

/// Progress events, for the binary's printer (plain lines or bars).
pub trait Progress: Send + Sync {
    /// A node started or finished a step (`probing`, `runtime: 12 changes`, ...).
    fn event(&self, node: &str, message: &str);
}

/// What happened on one node.
#[derive(Debug, Default)]
pub struct NodeReport {
    pub node: String,
    /// Changes carried out (or, for a plan, to be carried out), by phase.
    pub changes: Vec<(NodePhase, Vec<Change>)>,
    pub warnings: Vec<String>,
    /// The first failure; phases after it did not run on this node.
    pub error: Option<String>,
    /// The phase that failed.
    pub failed_phase: Option<String>,
}

impl NodeReport {
    pub fn change_count(&self) -> usize {
        self.changes.iter().map(|(_, c)| c.len()).sum()
    }
}

/// How to provision.
#[derive(Debug, Clone)]
pub struct Provision {
    pub phases: Vec<NodePhase>,
    /// Only compute the changes (`kos plan`): the probe runs, nothing is changed.
    pub dry_run: bool,
    pub parallel: usize,
}

/// Probe a node and read the result.
pub async fn probe<R: Remote>(remote: &R, wants: &NodeWants) -> Result<NodeState, String> {
    let out = remote.run(&probe::script(wants), Default::default()).await.map_err(|e| e.to_string())?;
    if !out.success() {
        return Err(format!("{}: the probe failed: {}", remote.node(), out.stderr_text().trim()));
    }
    probe::parse(&out.stdout_text()).map_err(|e| format!("{}: {e}", remote.node()))
}

/// One node's pipeline.
pub async fn provision_node<R: Remote>(remote: &R, wants: &NodeWants, how: &Provision, progress: &dyn Progress) -> NodeReport {
    let node = remote.node().to_string();
    let mut report = NodeReport { node: node.clone(), ..Default::default() };
    progress.event(&node, "probing");
    let has = match probe(remote, wants).await {
        Ok(h) => h,
        Err(e) => {
            report.error = Some(e);
            report.failed_phase = Some("probe".into());
            return report;
        }
    };
    if let Err(e) = check_supported(&node, &has) {
        report.error = Some(e);
        report.failed_phase = Some("probe".into());
        return report;
    }
    if has.machine != "x86_64" {
        report.error = Some(format!(
            "{node} is `{}`: kos resolved amd64 (x86_64) binaries for this cluster; other architectures are not supported yet",
            has.machine
        ));
        report.failed_phase = Some("probe".into());
        return report;
    }
    for (phase, wants) in &wants.phases {
        if !how.phases.contains(phase) {
            continue;
        }
        let changes = diff_phase(*phase, wants, &has);
        if changes.is_empty() {
            progress.event(&node, &format!("{phase}: up to date"));
            continue;
        }
        if !how.dry_run {
            progress.event(&node, &format!("{phase}: {} change(s)", changes.len()));
            match execute(remote, *phase, wants, &changes).await {
                Ok(w) => report.warnings.extend(w.into_iter().map(|w| format!("{phase}: {w}"))),
                Err(e) => {
                    report.error = Some(match e {
                        ExecuteError::Remote(r) => r.to_string(),
                        other => other.to_string(),
                    });
                    report.failed_phase = Some(phase.to_string());
                    report.changes.push((*phase, changes));
                    return report;
                }
            }
        }
        report.changes.push((*phase, changes));
    }
    progress.event(&node, if how.dry_run { "probed" } else { "done" });
    report
}

/// Every node's pipeline, bounded parallel; reports in the order of `nodes`.
pub async fn provision_all<R: Remote>(nodes: &[(&R, &NodeWants)], how: &Provision, progress: &dyn Progress) -> Vec<NodeReport> {
    let mut reports: Vec<(usize, NodeReport)> = stream::iter(nodes.iter().enumerate())
        .map(|(i, (remote, wants))| async move { (i, provision_node(*remote, wants, how, progress).await) })
        .buffer_unordered(how.parallel.max(1))
        .collect()
        .await;
    reports.sort_by_key(|(i, _)| *i);
    reports.into_iter().map(|(_, r)| r).collect()
}

/// One verification on a node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

/// The node-side checks of `kos up`'s verify phase and of `kos status`: kos's units
/// active, cbr0 holding the pod gateway, the masquerade jump in place.
pub fn verify_script(units: &[&str], gateway: &str) -> String {
    let mut s = String::from("set -u\n");
    for u in units {
        let q = probe::sh_quote(u);
        s.push_str(&format!("printf 'unit\\t%s\\t%s\\n' {q} \"$(systemctl is-active {q} 2>/dev/null || true)\"\n"));
    }
    s.push_str(&format!(
        "if ip -4 -o addr show dev cbr0 2>/dev/null | grep -q ' {gw}/'; then printf 'cbr0\\tok\\n'; else printf 'cbr0\\tmissing\\n'; fi\n\
         if iptables -w -t nat -S POSTROUTING 2>/dev/null | grep -q -- '-j KOS-POD-MASQ'; then printf 'masq\\tok\\n'; else printf 'masq\\tmissing\\n'; fi\n\
         printf 'forward\\t%s\\n' \"$(cat /proc/sys/net/ipv4/ip_forward)\"\n",
        gw = gateway
    ));
    s
}

pub fn parse_verify(out: &str, gateway: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let check = match f.as_slice() {
            ["unit", name, state] => Check { what: format!("{name} active"), ok: *state == "active", detail: state.to_string() },
            ["cbr0", s] => Check { what: format!("cbr0 holds {gateway}"), ok: *s == "ok", detail: s.to_string() },
            ["masq", s] => Check { what: "masquerade rule for pod traffic".into(), ok: *s == "ok", detail: s.to_string() },
            ["forward", v] => Check { what: "ip_forward".into(), ok: *v == "1", detail: v.to_string() },
            _ => continue,
        };
        checks.push(check);
    }
    checks
}

/// Run the verify checks on a node.
pub async fn verify<R: Remote>(remote: &R, units: &[&str], gateway: &str) -> Result<Vec<Check>, RemoteError> {
    let out = remote.run(&verify_script(units, gateway), Default::default()).await?;
    Ok(parse_verify(&out.stdout_text(), gateway))
}
