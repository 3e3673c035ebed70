//! `kos up` on nodes that run another Kubernetes than the settings name: the rolling
//! upgrade `kos_core::plan::upgrade` computes, carried out before the usual provisioning
//! (which then finds the upgraded nodes converged and provisions new ones).
//!
//! 1. The API server must answer and, unless an earlier run began this upgrade, every node
//!    and control-plane pod be Ready: kos upgrades only a cluster that serves.
//! 2. An etcd snapshot, with the PKI and the settings, into `<state>/backups/` (once per
//!    target version: a resumed upgrade keeps the first).
//! 3. Each master in turn: its node phases, then its control-plane pods run again (started
//!    after their manifests were written), its own API server answers at the new version,
//!    every etcd member is healthy, its Node is Ready at the new version with its
//!    control-plane pods; only then the next master. Never two masters down at once.
//!    ([`Run::masters_in_turn`] gives every later change of a running master the same care.)
//! 4. The workers batch by batch: cordoned (marked with [`CORDONED_FOR`]), their pods
//!    evicted (disruption budgets respected, bounded by `--drain-wait`), their node phases,
//!    Ready at the new version, uncordoned; only then the next batch.
//!
//! Killed anywhere, the next `kos up` starts again at the first node not at the version; a
//! node it cordoned and upgraded but did not uncordon is uncordoned once the cluster is Ready.

use super::{Run, RunError};
use crate::NodeSteps;
use crate::backup::{self, Archived};
use crate::nodes::{self, NodeSession, Prepared, Reach};
use kos_cloud::Cloud;
use kos_core::plan::ClusterPlan;
use kos_core::plan::upgrade::{Running, Upgrade, upgrade};
use kos_core::settings::Settings;
use kos_kube::{Connect, KubeApi};
use kos_node::provision::{self, Provision};
use kos_node::remote::Remote;
use kos_render::NodeFacts;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The annotation on a node kos cordoned for its upgrade; its value is the version it goes
/// to. A node cordoned by someone else is left cordoned.
pub const CORDONED_FOR: &str = "kos.dev/cordoned-for-upgrade";

/// How long one master, or one batch of workers, gets to come back at the new version.
const NODE_WAIT: Duration = Duration::from_secs(300);

/// The upgrade the nodes' versions (their probes' `facts`) call for, for `kos up` and `kos
/// plan`; refused as upstream's skew policy refuses.
pub(crate) fn upgrade_for(
    settings: &Settings,
    plan: &ClusterPlan,
    facts: &BTreeMap<String, NodeFacts>,
) -> Result<Option<Upgrade>, RunError> {
    let running: Vec<Running> = plan
        .nodes
        .iter()
        .map(|n| {
            let f = facts.get(&n.name);
            Running {
                node: n.name.clone(),
                role: n.role,
                kubelet: f.and_then(|f| f.kubelet_version),
                apiserver: f.and_then(|f| f.apiserver_version),
            }
        })
        .collect();
    upgrade(settings.cluster.kubernetes_version, &running).map_err(|e| {
        RunError::Invalid(format!("upgrade refused, nothing was changed on the nodes: {e}; {} in {}", e.fix(), settings.source.display()))
    })
}

impl<C: Cloud, R: Reach, K: Connect> Run<'_, C, R, K> {
    /// A step of the upgrade: printed, and kept in the report's notes.
    fn step(&mut self, text: String) {
        self.line(&text);
        self.report.notes.push(text);
    }

    /// Carry out `u` (see the module's steps); an error stops it where it is.
    pub(super) async fn rolling(
        &mut self,
        plan: &ClusterPlan,
        sessions: &[NodeSession<R::Node>],
        prepared: &Prepared,
        u: &Upgrade,
    ) -> Result<(), RunError> {
        let t = Instant::now();
        self.step(format!("upgrade: {u}"));
        let reporter = self.systems.reporter;
        reporter.wait_started("upgrade: waiting for the API server to answer /readyz", self.options.api_wait);
        let api = self.systems.kube.connect(&prepared.admin_kubeconfig, self.options.api_wait).await;
        reporter.wait_finished();
        let api = api.map_err(|e| {
            RunError::Upgrade(format!(
                "the API server does not answer ({e}): kos upgrades only a cluster that serves; bring it back and run `kos up` again"
            ))
        })?;
        let up = |name: &str| nodes::session(sessions, name);
        let todo: Vec<&String> = u.masters.iter().chain(u.batches.iter().flatten()).collect();
        if let Some(lost) = todo.iter().find(|n| up(n).is_none()) {
            return Err(RunError::Upgrade(format!(
                "{lost} does not answer: no node is upgraded while one of them cannot be; run `kos up` again once it answers"
            )));
        }
        if !u.resuming {
            self.healthy(&api, plan, &todo).await?;
        }
        let masters: Vec<&R::Node> = plan.masters().filter_map(|m| up(&m.name)).collect();
        self.snapshot_before(&masters, u).await?;

        let how = Provision { phases: self.options.node_phases(), dry_run: false, parallel: self.options.parallel };
        let wants = |name: &str| prepared.wants.iter().find(|w| w.node == name);
        let version = format!("v{}", u.to);
        for m in &u.masters {
            let (Some(node), Some(w)) = (up(m), wants(m)) else { continue };
            self.step(format!("upgrade: {m} to {}", u.to));
            self.one_master(node, w, &how, plan, prepared, &version).await.map_err(|e| {
                RunError::Upgrade(format!(
                    "{m} was not upgraded ({e}); the nodes after it were not touched: run `kos up` again once it is fixed"
                ))
            })?;
            self.wait_upgraded(&api, plan, std::slice::from_ref(m), &version).await?;
            self.step(format!("upgrade: {m} runs {} and serves; etcd healthy", u.to));
        }
        if !u.batches.is_empty() {
            self.wait_leading(&api).await?;
        }
        for batch in &u.batches {
            let names = batch.join(", ");
            let mut ours = Vec::new();
            for w in batch {
                if self.cordon(&api, w, u).await? {
                    ours.push(w.clone());
                }
                self.evict(&api, w).await?;
            }
            self.step(format!("upgrade: {names} to {}", u.to));
            let pairs: Vec<_> = batch.iter().filter_map(|w| Some((up(w)?, wants(w)?))).collect();
            let reports = provision::provision_all(&pairs, &how, &NodeSteps(reporter)).await;
            self.upgraded(reports, &names)?;
            self.wait_upgraded(&api, plan, batch, &version).await?;
            for w in &ours {
                api.schedule(w, false, CORDONED_FOR, None).await.map_err(|e| RunError::Upgrade(format!("cannot uncordon {w}: {e}")))?;
            }
            self.step(format!("upgrade: {names} runs {}, uncordoned", u.to));
        }
        self.step(format!("upgrade: every node runs {}", u.to));
        self.timed("upgrade", t);
        Ok(())
    }

    /// The masters already running (etcd has data there), their changes first and one
    /// master at a time: a master that changed must serve again (its control-plane pods
    /// started again, its own API server answering at the settings' version, every etcd
    /// member healthy) before the next is touched, so a certificate rolled out or a flag
    /// changed never restarts two control planes at once, and the nodes after them (and
    /// `kos up`'s readiness) find a control plane that serves, not one about to restart. A
    /// master that fails stops the ones after it (each named as a failure). Returns the
    /// masters dealt with here, for the parallel provisioning to skip.
    pub(super) async fn masters_in_turn(
        &mut self,
        plan: &ClusterPlan,
        sessions: &[NodeSession<R::Node>],
        wants: &[kos_node::wanted::NodeWants],
        how: &Provision,
        prepared: &Prepared,
        facts: &BTreeMap<String, NodeFacts>,
    ) -> Vec<String> {
        let running: Vec<String> =
            plan.masters().filter(|m| facts.get(&m.name).is_some_and(|f| f.etcd_data)).map(|m| m.name.clone()).collect();
        if running.is_empty() {
            return Vec::new();
        }
        let version = format!("v{}", self.settings.cluster.kubernetes_version);
        let mut stopped: Option<String> = None;
        for m in &running {
            if let Some(why) = &stopped {
                let message = format!("{m}: not changed: {why}; run `kos up` again once it is fixed");
                self.report.failures.push(crate::report::Failure { node: m.clone(), phase: "kubernetes".into(), message });
                continue;
            }
            let (Some(node), Some(w)) = (nodes::session(sessions, m), wants.iter().find(|w| &w.node == m)) else { continue };
            match self.one_master(node, w, how, plan, prepared, &version).await {
                Ok(true) => self.step(format!("kubernetes: {m} serves again; etcd healthy")),
                Ok(false) => {}
                // A failed provisioning is in the report already.
                Err(MasterFailed::Provisioning(_)) => stopped = Some(format!("{m} failed before it")),
                Err(MasterFailed::Serving(message)) => {
                    self.report.failures.push(crate::report::Failure { node: m.clone(), phase: "kubernetes".into(), message });
                    stopped = Some(format!("{m} did not serve again after its changes"));
                }
            }
        }
        running
    }

    /// One master's wants, and when they changed it, the wait until it serves again at
    /// `version` ([`Self::master_serves`]); whether it changed.
    async fn one_master(
        &mut self,
        node: &R::Node,
        wants: &kos_node::wanted::NodeWants,
        how: &Provision,
        plan: &ClusterPlan,
        prepared: &Prepared,
        version: &str,
    ) -> Result<bool, MasterFailed> {
        let report = provision::provision_node(node, wants, how, &NodeSteps(self.systems.reporter)).await;
        let (error, changed) = (report.error.clone(), report.change_count() > 0);
        self.node_reports(vec![report]);
        if let Some(e) = error {
            return Err(MasterFailed::Provisioning(e));
        }
        if changed {
            self.master_serves(node, plan, prepared, version).await.map_err(|e| MasterFailed::Serving(e.to_string()))?;
        }
        Ok(changed)
    }

    /// Every node to upgrade Ready, and every control-plane pod, before anything changes.
    async fn healthy<A: KubeApi>(&self, api: &A, plan: &ClusterPlan, todo: &[&String]) -> Result<(), RunError> {
        let items = kos_kube::health::look(api, plan, false).await?;
        let ours = |what: &str| todo.iter().any(|n| what == format!("node {n}") || what.ends_with(&format!("-{n}")));
        let sick: Vec<String> = items.iter().filter(|i| !i.ready && ours(&i.what)).map(|i| format!("{}: {}", i.what, i.detail)).collect();
        match sick.is_empty() {
            true => Ok(()),
            false => Err(RunError::Upgrade(format!(
                "the cluster is not healthy, so nothing is upgraded: {}; fix it (`kos status`), then run `kos up` again",
                sick.join("; ")
            ))),
        }
    }

    /// The etcd snapshot of this upgrade, unless an earlier run of it took one.
    async fn snapshot_before(&mut self, masters: &[&R::Node], u: &Upgrade) -> Result<(), RunError> {
        let name = format!("before-upgrade-to-v{}", u.to);
        let path = self.state.dir.join("backups").join(format!("{}-{name}.tar.gz", self.settings.cluster.name));
        if path.exists() {
            self.step(format!("upgrade: the snapshot taken before it is {}", path.display()));
            return Ok(());
        }
        let from = u.from.first().map(ToString::to_string).unwrap_or_default();
        let what = Archived { kubernetes_version: from, kos_version: self.options.kos_version.clone(), out: Some(path), name: None };
        let report = backup::write_archive(self.settings, self.state, masters, Vec::new(), what, self.systems.reporter)
            .await
            .map_err(|e| RunError::Upgrade(format!("no etcd snapshot could be taken, so nothing is upgraded: {e}")))?;
        let etcd = &report.manifest.etcd;
        self.step(format!(
            "upgrade: etcd snapshot before it: {} (revision {}, {} keys; `kos restore` takes the cluster back to it)",
            report.archive.display(),
            etcd.revision,
            etcd.total_keys
        ));
        Ok(())
    }

    /// The nodes' reports, an error if one failed.
    fn upgraded(&mut self, reports: Vec<provision::NodeReport>, names: &str) -> Result<(), RunError> {
        let errors: Vec<String> = reports.iter().filter_map(|r| r.error.clone()).collect();
        self.node_reports(reports);
        match errors.is_empty() {
            true => Ok(()),
            false => Err(RunError::Upgrade(format!(
                "{names} was not upgraded ({}); the nodes after it were not touched: run `kos up` again once it is fixed",
                errors.join("; ")
            ))),
        }
    }

    /// The master's control-plane pods run containers started after their manifests were
    /// last written, its own API server answers at `version`, and every etcd member is healthy.
    async fn master_serves(&self, node: &R::Node, plan: &ClusterPlan, prepared: &Prepared, version: &str) -> Result<(), RunError> {
        let name = node.node();
        let address = plan.node(name).and_then(|n| n.fixed_ip).map(|ip| format!("https://{ip}:{}", plan.api_port));
        let Some(server) = address else { return Err(RunError::Upgrade(format!("{name} has no address in the plan"))) };
        let kubeconfig = kos_kube::client::pointed_at(&prepared.admin_kubeconfig, &server)?;
        let reporter = self.systems.reporter;
        reporter.wait_started(&format!("upgrade: waiting for {name}'s API server to answer at {version}"), NODE_WAIT);
        let deadline = Instant::now() + NODE_WAIT;
        let mut last = String::from("not asked yet");
        let served = loop {
            match self.serves_now(node, &kubeconfig, version).await {
                Ok(()) => break true,
                Err(why) => last = why,
            }
            reporter.wait_progress(&last);
            if Instant::now() >= deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        reporter.wait_finished();
        match served {
            true => Ok(()),
            false => Err(RunError::Upgrade(format!(
                "{name}'s API server did not serve {version} within {} s ({last}); the other masters were not touched: run `kos up` again once it does",
                NODE_WAIT.as_secs()
            ))),
        }
    }

    /// One look for [`Self::master_serves`]: why not yet.
    async fn serves_now(&self, node: &R::Node, kubeconfig: &str, version: &str) -> Result<(), String> {
        // The kubelet first starts again every pod whose manifest changed (the API server
        // that still answers may be the one it is about to replace).
        let stale = crate::etcd::stale_static_pods(node).await?;
        if !stale.is_empty() {
            return Err(stale.join(", "));
        }
        let api = self.systems.kube.connect(kubeconfig, Duration::from_secs(10)).await.map_err(|e| e.to_string())?;
        match api.version().await? {
            v if v == version => {}
            v => return Err(format!("it answers {v}")),
        }
        let members = crate::etcd::health(node).await.map_err(|e| format!("etcd: {e}"))?;
        let healthy = members.iter().filter(|m| m.health).count();
        match healthy == members.len() && healthy > 0 {
            true => Ok(()),
            false => Err(format!("etcd: {healthy} of {} members healthy", members.len())),
        }
    }

    async fn wait_upgraded<A: KubeApi>(&self, api: &A, plan: &ClusterPlan, nodes: &[String], version: &str) -> Result<(), RunError> {
        let reporter = self.systems.reporter;
        reporter.wait_started(&format!("upgrade: waiting for {} to be Ready at {version}", nodes.join(", ")), NODE_WAIT);
        let waited = kos_kube::health::wait_upgraded(api, plan, nodes, version, NODE_WAIT, |missing| {
            let missing: Vec<String> = missing.iter().map(|i| format!("{} ({})", i.what, i.detail)).collect();
            reporter.wait_progress(&missing.join(", "));
        })
        .await;
        reporter.wait_finished();
        waited.map(drop).map_err(|e| RunError::Upgrade(format!("{e}; run `kos up` again once it is fixed")))
    }

    /// Before the first drain: the controller-manager and the scheduler lead again (their
    /// Leases renewed since kos looked), in this run too when an earlier one upgraded the
    /// masters. A master's restarted controller-manager serves its health check while the
    /// old one's Lease has not yet expired; a drain then would stop pods whose endpoints
    /// nothing removes, and the Service would send requests to them.
    async fn wait_leading<A: KubeApi>(&mut self, api: &A) -> Result<(), RunError> {
        let reporter = self.systems.reporter;
        let leaders = kos_kube::health::LEADERS;
        reporter.wait_started(&format!("upgrade: waiting for {} to lead (their Leases renewed)", leaders.join(" and ")), NODE_WAIT);
        let led = kos_kube::health::wait_leading(api, &leaders, NODE_WAIT, |waiting| reporter.wait_progress(&waiting.join("; "))).await;
        reporter.wait_finished();
        led.map_err(|e| RunError::Upgrade(format!("{e}; no worker was drained: run `kos up` again once they lead")))?;
        self.step(format!("upgrade: {} lead", leaders.join(" and ")));
        Ok(())
    }

    /// Cordon a worker for its upgrade; whether kos did (a node already cordoned by someone
    /// else stays so afterwards).
    async fn cordon<A: KubeApi>(&mut self, api: &A, node: &str, u: &Upgrade) -> Result<bool, RunError> {
        let nodes = api.nodes().await.map_err(|e| RunError::Upgrade(format!("cannot list the nodes: {e}")))?;
        let Some(found) = nodes.iter().find(|n| n.metadata.name.as_deref() == Some(node)) else {
            return Ok(false);
        };
        let ours = found.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(CORDONED_FOR));
        let cordoned = found.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
        if cordoned && !ours {
            self.step(format!("upgrade: {node} was cordoned already: it stays cordoned after its upgrade"));
            return Ok(false);
        }
        let to = format!("v{}", u.to);
        api.schedule(node, true, CORDONED_FOR, Some(&to)).await.map_err(|e| RunError::Upgrade(format!("cannot cordon {node}: {e}")))?;
        Ok(true)
    }

    /// Evict a cordoned worker's pods (unless `--no-drain`).
    async fn evict<A: KubeApi>(&mut self, api: &A, node: &str) -> Result<(), RunError> {
        let Some(wait) = self.options.drain_wait else {
            self.step(format!("upgrade: {node} cordoned, not drained (--no-drain)"));
            return Ok(());
        };
        let reporter = self.systems.reporter;
        reporter.wait_started(&format!("upgrade: evicting {node}'s pods"), wait);
        let drained = kos_kube::drain::evict_all(api, node, wait, |waiting| reporter.wait_progress(waiting)).await;
        reporter.wait_finished();
        let drained = drained.map_err(|e| {
            RunError::Upgrade(format!(
                "{e}; it stays cordoned and is not upgraded: free what blocks (a PodDisruptionBudget that allows no disruption: scale its workload up) and run `kos up` again"
            ))
        })?;
        self.step(format!("upgrade: {drained}"));
        Ok(())
    }

    /// Nodes an earlier run cordoned for an upgrade and upgraded, but did not uncordon (it
    /// was stopped): uncordoned, now that the cluster is Ready at the settings' version.
    pub(super) async fn uncordon_left<A: KubeApi>(&mut self, api: &A) -> Result<(), RunError> {
        let version = format!("v{}", self.settings.cluster.kubernetes_version);
        let nodes = api.nodes().await.map_err(|e| RunError::Upgrade(format!("cannot list the nodes: {e}")))?;
        for n in nodes {
            let Some(name) = n.metadata.name.as_deref() else { continue };
            let marked = n.metadata.annotations.as_ref().and_then(|a| a.get(CORDONED_FOR));
            let at = n.status.as_ref().and_then(|s| s.node_info.as_ref()).is_some_and(|i| i.kubelet_version == version);
            if marked.is_some() && at {
                api.schedule(name, false, CORDONED_FOR, None)
                    .await
                    .map_err(|e| RunError::Upgrade(format!("cannot uncordon {name}: {e}")))?;
                self.step(format!("upgrade: {name} uncordoned (an earlier run upgraded it and stopped before)"));
                self.report.changes += 1;
            }
        }
        Ok(())
    }
}

/// Why [`Run::one_master`] stopped.
#[derive(Debug)]
enum MasterFailed {
    /// Its node phases failed (also in the node's report): why.
    Provisioning(String),
    /// It did not serve again: why.
    Serving(String),
}

impl std::fmt::Display for MasterFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterFailed::Provisioning(why) | MasterFailed::Serving(why) => f.write_str(why),
        }
    }
}
