//! The commands that talk only to the cloud (and the local state): `check`, `inventory`,
//! `destroy` and `expose`, generic over [`kos_cloud::Cloud`], each returning a typed
//! result whose lines the binary prints.

use crate::state::LocalState;
use crate::{RunError, plan_for};
use kos_cloud::Cloud;
use kos_cloud::apply::{self, Waits};
use kos_cloud::ops::{self, Exposed, Finding, Teardown, Verdict};
use kos_core::settings::Settings;
use std::fmt;
use std::path::Path;

/// What `kos check` found: the cloud's findings and the local inputs `up` checks first.
#[derive(Debug)]
pub struct CheckReport {
    pub findings: Vec<Finding>,
    /// Each missing or broken local input, in `up`'s words.
    pub local: Vec<String>,
}

impl CheckReport {
    pub fn fails(&self) -> usize {
        self.findings.iter().filter(|f| f.verdict == Verdict::Fail).count() + self.local.len()
    }

    pub fn warns(&self) -> usize {
        self.findings.iter().filter(|f| f.verdict == Verdict::Warn).count()
    }

    /// One line per check (a fix on the line below its finding).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.local.is_empty() {
            out.push(format!("{:<4} local inputs: the SSH key and the artifacts", Verdict::Ok.to_string()));
        }
        out.extend(self.local.iter().map(|p| format!("{:<4} local inputs: {p}", Verdict::Fail.to_string())));
        for f in &self.findings {
            out.push(format!("{:<4} {}", f.verdict.to_string(), f.what));
            if let Some(fix) = &f.fix {
                out.push(format!("     → {fix}"));
            }
        }
        out
    }

    /// `N checks: F failed, W warnings`.
    pub fn summary(&self) -> String {
        let checks = self.findings.len() + self.local.len().max(1);
        format!("{checks} checks: {} failed, {} warnings", self.fails(), self.warns())
    }
}

/// `kos check`: the cloud's preflight against the plan of what the cloud holds now, and
/// the local inputs.
pub async fn check<C: Cloud>(cloud: &C, settings: &Settings) -> Result<CheckReport, RunError> {
    let survey = kos_cloud::survey::survey(cloud, settings, kos_cloud::survey::Asks { checks: true, security_group: false }).await;
    // The plan of what the cloud holds now; the tenant range only when the network resolved.
    let tenant = survey.resolved().ok().map(|r| r.subnet.cidr);
    let plan = plan_for(settings, &survey.have()?.observed(tenant))?;
    let findings = survey.findings(cloud.name(), settings, &plan);
    let local = crate::inputs::local_problems(settings, true).await;
    Ok(CheckReport { findings, local })
}

/// `kos inventory --list` (or one host's variables): the cloud's view, with how to log in
/// the way kos does (its ssh_config's options, its known_hosts under the server's ID).
pub async fn inventory<C: Cloud>(
    cloud: &C,
    settings: &Settings,
    state: &LocalState,
    host: Option<&str>,
) -> Result<serde_json::Value, RunError> {
    let mut inv = ops::inventory(cloud, &settings.cluster.name).await?;
    let ssh_dir = state.ssh_dir();
    if let Some(hosts) = inv["_meta"]["hostvars"].as_object_mut() {
        for vars in hosts.values_mut() {
            let id = vars["kos_server_id"].as_str().map(str::to_owned);
            for (k, v) in kos_node::ssh::ansible_vars(settings, &ssh_dir, id.as_deref()) {
                vars[k] = v;
            }
        }
    }
    Ok(match host {
        Some(host) => inv["_meta"]["hostvars"].get(host).cloned().unwrap_or_else(|| serde_json::json!({})),
        None => inv,
    })
}

/// What `kos destroy` would delete: every resource marked as the cluster's.
pub async fn find_teardown<C: Cloud>(cloud: &C, settings: &Settings) -> Result<Teardown, RunError> {
    Ok(ops::find_teardown(cloud, settings).await?)
}

/// Delete what was found; an error names what is left.
pub async fn destroy<C: Cloud>(cloud: &C, settings: &Settings, found: &Teardown) -> Result<(), RunError> {
    let left = ops::destroy(cloud, settings, found, Waits::default()).await?;
    if left.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = left.lines().iter().map(|l| format!("  left: {l}")).collect();
    Err(RunError::Other(anyhow::anyhow!("{} resource(s) are left; run `kos destroy` again:\n{}", lines.len(), lines.join("\n"))))
}

/// Once the cloud holds nothing of the cluster: its context leaves the user's kubeconfig
/// (`kubeconfig`: the file `up` merged it into), and the local state folder is deleted
/// (`purge`) or named with what it keeps. Returns what was done, a line each.
pub fn forget_locally(settings: &Settings, state: &LocalState, purge: bool, kubeconfig: Option<&Path>) -> Result<Vec<String>, RunError> {
    let mut out = Vec::new();
    let context = crate::kubeconfig::context_name(&settings.cluster.name);
    if let Some(path) = kubeconfig {
        match crate::kubeconfig::remove_from_file(path, &settings.cluster.name).map_err(crate::other)? {
            Some(true) => out.push(format!(
                "removed context `{context}` from {}; it was the current context: choose another with `kubectl config use-context`",
                path.display()
            )),
            Some(false) => out.push(format!("removed context `{context}` from {}", path.display())),
            None => {}
        }
    }
    if !state.dir.exists() {
        return Ok(out);
    }
    if purge {
        std::fs::remove_dir_all(&state.dir).map_err(|e| RunError::Other(anyhow::anyhow!("cannot delete {}: {e}", state.dir.display())))?;
        out.push(format!("deleted the local state {}", state.dir.display()));
    } else {
        out.push(format!(
            "kept the local state {} (the cluster's CA and certificates, SSH known_hosts, last observed addresses): `kos destroy --purge` deletes it",
            state.dir.display()
        ));
    }
    Ok(out)
}

/// `kos expose`: a load balancer whose members are the workers on `node_port`, or its
/// deletion.
#[derive(Debug, Clone, Copy)]
pub enum Expose {
    /// Listen on `port`, forward to the workers' `node_port`.
    Create {
        node_port: u16,
        port: u16,
    },
    Delete,
}

/// What `kos expose` did, worded for the operator.
#[derive(Debug)]
pub struct ExposeOutcome {
    pub exposed: Exposed,
    pub port: Option<u16>,
}

impl fmt::Display for ExposeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.exposed {
            Exposed::Created { name, vip, members } => {
                let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
                write!(f, "created load balancer {name}: {vip}{port} → {members} worker(s)")
            }
            Exposed::Updated { name, vip, members } => write!(f, "load balancer {name} ({vip}) has its {members} worker(s) as members"),
            Exposed::Deleted { name } => write!(f, "deleted load balancer {name}"),
            Exposed::Absent { name } => write!(f, "no load balancer {name}: nothing to delete"),
        }
    }
}

pub async fn expose<C: Cloud>(cloud: &C, settings: &Settings, service: &str, how: Expose) -> Result<ExposeOutcome, RunError> {
    match how {
        Expose::Delete => {
            let exposed = ops::unexpose(cloud, &settings.cluster.name, service).await?;
            Ok(ExposeOutcome { exposed, port: None })
        }
        Expose::Create { node_port, port } => {
            let have = apply::discover(cloud, &settings.cluster.name).await?;
            let plan = plan_for(settings, &have.observed(None))?;
            let exposed = ops::expose(cloud, settings, &plan, service, node_port, port).await?;
            Ok(ExposeOutcome { exposed, port: Some(port) })
        }
    }
}

#[cfg(test)]
mod tests;
