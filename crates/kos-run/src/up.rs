//! `kos up`: check → instances → runtime → kubernetes → network → addons → verify.
//!
//! The cloud phases (check, instances, the router's routes) run first; then the node
//! phases run through [`Reach`], each node its own pipeline (see `kos_node::provision`);
//! then the add-ons go through the API server, and verify looks at every node. Phases may
//! be chosen (the seed's tags). Every phase compares before it changes, so a re-run after a
//! failure or Ctrl-C resumes, and a re-run on a converged cluster changes nothing.

use crate::nodes::{self, NodeSession, Prepared, Reach};
use crate::report::{CheckLine, CloudChange, Failure, NodeOutcome, NodePhaseChanges, Timing, UpReport};
use crate::state::LocalState;
use crate::{NodeSteps, Phase, Reporter, RunError, plan_for};
use crate::{chain, inputs};
use kos_cloud::Cloud;
use kos_cloud::apply::{self, NodeContext, Resolved, Waits};
use kos_cloud::ops::Verdict;
use kos_cloud::reconcile::ClusterResources;
use kos_cloud::survey::{self, Asks, Survey};
use kos_core::plan::ClusterPlan;
use kos_core::settings::Settings;
use kos_kube::Connect;
use kos_node::artifacts::Artifact;
use kos_node::provision::{self, Provision};
use kos_node::wanted::{NodePhase, NodeWants};
use std::time::{Duration, Instant};

/// How `up` runs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The phases to run (in [`Phase::ALL`]'s order whatever the order here).
    pub phases: Vec<Phase>,
    /// How long to wait for each node to answer.
    pub ssh_wait: Duration,
    /// How long to wait for the API server before applying the add-ons.
    pub api_wait: Duration,
    /// How long to wait, after the add-ons, for the cluster to be ready.
    pub ready_wait: Duration,
    /// Nodes provisioned at the same time.
    pub parallel: usize,
    /// The user's kubeconfig file, into which the admin kubeconfig is merged as context
    /// `kos-<cluster>` once the `kubernetes` phase has run; `None`: not merged.
    pub kubeconfig: Option<std::path::PathBuf>,
    /// How long to wait for a removed node's pods to go; `None`: removed nodes are not
    /// drained (their servers are deleted with whatever runs on them).
    pub drain_wait: Option<Duration>,
    /// `kos replace`: workers whose servers are made again (drained, their Node objects and
    /// servers deleted, their ports kept), then provisioned like new ones.
    pub replace: Vec<String>,
    /// kos's own version, recorded in the etcd snapshot taken before an upgrade.
    pub kos_version: String,
}

impl UpOptions {
    fn has(&self, p: Phase) -> bool {
        self.phases.contains(&p)
    }

    fn node_phases(&self) -> Vec<NodePhase> {
        self.phases.iter().filter_map(|p| p.on_nodes()).collect()
    }

    /// Whether any phase needs the nodes (their sessions, the rendered files).
    fn wants_nodes(&self) -> bool {
        !self.node_phases().is_empty() || self.has(Phase::Verify) || self.has(Phase::Addons)
    }
}

/// Whether `made` (a change `up` reported) is `planned` (a line of `kos plan`): the same
/// words, with the result after a colon; a route planned for a node without an address yet
/// is made via the address its port got.
pub fn made_as_planned(made: &str, planned: &str) -> bool {
    if let Some(rest) = planned.strip_prefix("add route ")
        && let Some((destination, _)) = rest.split_once(" via ")
        && planned.ends_with(", once its port exists")
    {
        return made.starts_with(&format!("add route {destination} via "));
    }
    made == planned || made.strip_prefix(planned).is_some_and(|r| r.starts_with(": "))
}

/// The local inputs of a run, checked before anything else is touched: only
/// [`local_inputs`] makes one, and [`up`] needs one, so no cloud is reached for nodes kos
/// could not then reach or provision.
#[derive(Debug)]
pub struct LocalInputs {
    artifacts: Vec<Artifact>,
    took: Duration,
}

/// Check the local inputs the chosen phases need: the SSH key for any node phase, the
/// artifacts for `runtime` and `kubernetes`.
pub async fn local_inputs(settings: &Settings, options: &UpOptions) -> Result<LocalInputs, RunError> {
    let t = Instant::now();
    let node_phases = options.node_phases();
    let with_artifacts = node_phases.contains(&NodePhase::Kubernetes) || node_phases.contains(&NodePhase::Runtime);
    let artifacts = if options.wants_nodes() { inputs::local_inputs(settings, with_artifacts).await? } else { Vec::new() };
    Ok(LocalInputs { artifacts, took: t.elapsed() })
}

/// The external systems one run uses.
pub struct Systems<'a, C, R, K> {
    pub cloud: &'a C,
    pub reach: &'a R,
    pub kube: &'a K,
    pub reporter: &'a dyn Reporter,
}

/// Run `kos up`. The report says what was done even when the run stopped early (then the
/// error says why); node failures leave the other nodes done and end in
/// [`RunError::Nodes`].
pub async fn up<C: Cloud, R: Reach, K: Connect>(
    settings: &Settings,
    state: &LocalState,
    options: &UpOptions,
    local: &LocalInputs,
    systems: Systems<'_, C, R, K>,
) -> (UpReport, Result<(), RunError>) {
    let started = Instant::now();
    let mut run = Run { settings, state, options, systems, report: UpReport::new(&settings.cluster.name, &options.phases) };
    if let Err(e) = replaceable(settings, options) {
        run.report.error = Some(e.to_string());
        return (run.report, Err(e));
    }
    run.report.timings.push(Timing { step: "local inputs".into(), seconds: local.took.as_secs_f64() });
    let result = run.all(&local.artifacts).await;
    let mut report = run.report;
    report.seconds = (started.elapsed() + local.took).as_secs_f64();
    let result = result.and_then(|()| if report.failures.is_empty() { Ok(()) } else { Err(RunError::Nodes(report.failures.len())) });
    report.ok = result.is_ok();
    // With its causes: a script reading the JSON gets the whole reason on one line.
    report.error = result.as_ref().err().map(|e| chain(e));
    (report, result)
}

/// The nodes `kos replace` is asked for: workers of the settings, with the instances phase.
fn replaceable(settings: &Settings, options: &UpOptions) -> Result<(), RunError> {
    for name in &options.replace {
        match settings.nodes.iter().find(|n| &n.name == name) {
            None => {
                let known: Vec<&str> = settings.nodes.iter().map(|n| n.name.as_str()).collect();
                return Err(RunError::Invalid(format!(
                    "{name} is not a node of {} (its nodes: {})",
                    settings.source.display(),
                    known.join(", ")
                )));
            }
            Some(n) if n.role == kos_core::settings::Role::Master => {
                return Err(RunError::Invalid(format!(
                    "{name} is a master: kos replace makes workers again. To make a master again, take it out of `nodes` and run `kos up` \
                     (its etcd member is removed first), then put it back and run `kos up` (it joins as a new member)"
                )));
            }
            Some(_) => {}
        }
    }
    if !options.replace.is_empty() && !options.has(Phase::Instances) {
        return Err(RunError::Invalid("kos replace needs the instances phase".into()));
    }
    Ok(())
}

impl<C, R, K> std::fmt::Debug for Systems<'_, C, R, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Systems")
    }
}

/// One run: what it uses and what it has done so far.
struct Run<'a, C, R, K> {
    settings: &'a Settings,
    state: &'a LocalState,
    options: &'a UpOptions,
    systems: Systems<'a, C, R, K>,
    report: UpReport,
}

/// What the cloud phases leave for the node phases.
struct CloudView {
    resolved: Resolved,
    have: ClusterResources,
    plan: ClusterPlan,
    /// The router as the survey read it, while nothing of this run has changed the cloud.
    router: Option<kos_cloud::model::Router>,
}

impl<C: Cloud, R: Reach, K: Connect> Run<'_, C, R, K> {
    fn timed(&mut self, step: &str, since: Instant) {
        self.report.timings.push(Timing { step: step.to_string(), seconds: since.elapsed().as_secs_f64() });
    }

    fn line(&self, text: &str) {
        self.systems.reporter.line(text);
    }

    async fn all(&mut self, arts: &[Artifact]) -> Result<(), RunError> {
        // While the cloud is asked, SSH sessions open to the nodes as the last run recorded
        // them: on a converged cluster the nodes have answered by the time the cloud has.
        let (reach, settings, state) = (self.systems.reach, self.settings, self.state);
        let wants_nodes = self.options.wants_nodes();
        let early = async move {
            match wants_nodes {
                true => nodes::connect_early(reach, settings, state).await,
                false => nodes::Early::default(),
            }
        };
        let (observed, early) = futures_util::join!(self.observe(), early);
        let mut early = Some(early);
        let result = match observed {
            Ok((view, survey)) => self.phases(view, &survey, arts, &mut early).await,
            Err(e) => Err(e),
        };
        if let Some(unused) = early.take() {
            nodes::close_early(reach, unused).await;
        }
        for t in &self.report.timings {
            self.systems.reporter.detail(&format!("time: {}: {:.1} s", t.step, t.seconds));
        }
        result
    }

    /// Every chosen phase after the survey; `early` is taken by the node phases.
    async fn phases(
        &mut self,
        mut view: CloudView,
        survey: &Survey,
        arts: &[Artifact],
        early: &mut Option<nodes::Early<R::Node>>,
    ) -> Result<(), RunError> {
        if self.options.has(Phase::Check) {
            self.check(survey, &view.plan)?;
        }
        if self.options.has(Phase::Instances) {
            self.instances(&mut view, survey).await?;
        }
        // Remember what the cloud gave, for `kos render` and later runs (the cloud stays the truth).
        self.state.write_observed(&view.have.observed(Some(view.resolved.subnet.cidr)))?;
        if self.options.has(Phase::Network) || self.options.has(Phase::Routes) {
            self.routes(&view).await?;
        }
        if self.options.wants_nodes() {
            self.on_nodes(&view, arts, early.take().unwrap_or_default()).await?;
        }
        Ok(())
    }

    /// The cloud as it is now, in one round of calls: the settings' names resolved, the
    /// cluster's resources found by their marks (and what the check and the instances phase
    /// read), and the plan computed from them.
    async fn observe(&mut self) -> Result<(CloudView, Survey), RunError> {
        let t = Instant::now();
        let asks = Asks {
            checks: self.options.has(Phase::Check),
            security_group: self.options.has(Phase::Instances) && self.settings.cloud.manage_security_group,
        };
        let survey = survey::survey(self.systems.cloud, self.settings, asks).await;
        let (resolved, have) = (survey.resolved()?, survey.have()?);
        let observed = have.observed(Some(resolved.subnet.cidr));
        kos_core::plan::check_control_plane_change(self.settings, &observed).map_err(|e| RunError::Invalid(e.to_string()))?;
        let plan = plan_for(self.settings, &observed)?;
        self.timed("observe", t);
        let router = Some(resolved.router.clone());
        Ok((CloudView { resolved, have, plan, router }, survey))
    }

    fn check(&mut self, survey: &Survey, plan: &ClusterPlan) -> Result<(), RunError> {
        let t = Instant::now();
        let findings = survey.findings(self.systems.cloud.name(), self.settings, plan);
        for f in &findings {
            let line = format!("check: {:<4} {}", f.verdict.to_string(), f.what);
            if f.verdict == Verdict::Ok {
                self.systems.reporter.detail(&line);
            } else {
                self.line(&line);
                if let Some(fix) = &f.fix {
                    self.line(&format!("           → {fix}"));
                }
            }
            self.report.checks.push(CheckLine { verdict: f.verdict.to_string(), what: f.what.clone(), fix: f.fix.clone() });
        }
        self.timed("check", t);
        match findings.iter().filter(|f| f.verdict == Verdict::Fail).count() {
            0 => Ok(()),
            fails => Err(RunError::Checks(fails)),
        }
    }

    fn cloud_changed(&mut self, phase: Phase, changes: Vec<apply::Done>) {
        for done in changes {
            let change = done.to_string();
            self.line(&format!("{}: {change}", if phase == Phase::Instances { "instances" } else { "network" }));
            self.report.changes += 1;
            self.report.cloud.push(CloudChange { phase, change });
        }
    }

    async fn instances(&mut self, view: &mut CloudView, survey: &Survey) -> Result<(), RunError> {
        let t = Instant::now();
        let (cloud, settings) = (self.systems.cloud, self.settings);
        let changes_before = self.report.changes;
        let mut groups = Vec::new();
        if settings.cloud.manage_security_group {
            let existing = survey.security_group(cloud, &settings.cluster.name).await?;
            let (id, change) = apply::ensure_security_group(cloud, settings, &view.plan, existing).await?;
            let change = change.map(|c| apply::Done { change: apply::CloudChange::SecurityGroup(c), result: None });
            self.cloud_changed(Phase::Instances, change.into_iter().collect());
            groups.push(id);
        }
        groups.extend(settings.cloud.security_groups.iter().cloned());
        let tagged = apply::complete_tags(cloud, &view.have).await?;
        self.cloud_changed(Phase::Instances, tagged.0);
        // The API's VIP first: the masters' ports carry it among their address pairs.
        let ctx = NodeContext { settings, plan: &view.plan, resolved: &view.resolved, security_groups: &groups, waits: Waits::default() };
        let api = apply::apply_api(cloud, ctx, &view.have).await.map_err(|stopped| {
            self.cloud_changed(Phase::Instances, stopped.done.0);
            stopped.error
        })?;
        if !api.is_empty() {
            self.cloud_changed(Phase::Instances, api.0);
            view.have = apply::discover(cloud, &settings.cluster.name).await?;
            view.plan = plan_for(settings, &view.have.observed(Some(view.resolved.subnet.cidr)))?;
        }
        // The nodes the settings removed (a replaced node is not one: the replace below
        // changes neither list), and the masters among them.
        let (leaving, removed) = {
            use kos_core::plan::membership::{removed_masters, removed_nodes};
            let observed = view.have.observed(None);
            let owned = |names: Vec<&str>| names.into_iter().map(String::from).collect::<Vec<_>>();
            (owned(removed_nodes(settings, &observed)), owned(removed_masters(settings, &observed)))
        };
        // A removed node is drained, and its Node object deleted, before its server goes.
        if !leaving.is_empty() {
            self.drain(view, &leaving).await?;
        }
        // `kos replace`: drained (also when the server is already lost: its Node object and
        // pods stay behind), then the server deleted (its port kept); made again below.
        if !self.options.replace.is_empty() {
            self.drain(view, &self.options.replace).await?;
            let servers: Vec<(&String, String)> =
                self.options.replace.iter().filter_map(|n| view.have.servers.get(n).map(|s| (n, s.id.clone()))).collect();
            for (node, id) in &servers {
                let done = apply::replace_server(cloud, node, id, Waits::default()).await?;
                self.cloud_changed(Phase::Instances, vec![done]);
            }
            if !servers.is_empty() {
                view.have = apply::discover(cloud, &settings.cluster.name).await?;
                view.plan = plan_for(settings, &view.have.observed(Some(view.resolved.subnet.cidr)))?;
            }
        }
        // A removed master's etcd member goes before its server does.
        if !removed.is_empty() {
            self.remove_members(view, &removed).await?;
        }
        let ctx = NodeContext { settings, plan: &view.plan, resolved: &view.resolved, security_groups: &groups, waits: Waits::default() };
        let done = apply::apply_nodes(cloud, ctx, &view.have).await;
        // What was made before an error is reported (and in the JSON) all the same.
        let done = done.map_err(|stopped| {
            self.cloud_changed(Phase::Instances, stopped.done.0);
            stopped.error
        })?;
        self.cloud_changed(Phase::Instances, done.0);
        // What changed is looked at again (new servers' addresses, removed nodes' routes);
        // an unchanged cloud is as the survey saw it.
        if self.report.changes > changes_before {
            view.have = apply::discover(cloud, &settings.cluster.name).await?;
            view.plan = plan_for(settings, &view.have.observed(Some(view.resolved.subnet.cidr)))?;
            view.router = None;
        }
        self.timed("instances", t);
        Ok(())
    }

    /// The nodes the settings removed, one at a time, through the API server: cordoned,
    /// their pods evicted (their disruption budgets respected), their Node objects deleted.
    /// Refused, before any server is deleted, when the API server does not answer or a pod
    /// does not go in time; `--no-drain` deletes the servers without it.
    async fn drain(&mut self, view: &CloudView, leaving: &[String]) -> Result<(), RunError> {
        let t = Instant::now();
        let names = leaving.join(", ");
        let Some(wait) = self.options.drain_wait else {
            self.line(&format!("drain: skipped for {names} (--no-drain): their pods go with their servers"));
            return Ok(());
        };
        // No cluster CA here: no Kubernetes was made from this state, so there is nothing to drain.
        if self.state.pki().ca_cert_pem(kos_core::plan::CaId::Cluster).is_err() {
            self.line(&format!("drain: skipped for {names}: {} holds no cluster CA", self.state.dir.join("pki").display()));
            return Ok(());
        }
        let observed = view.have.observed(Some(view.resolved.subnet.cidr));
        let kubeconfig = crate::files::admin_kubeconfig(self.settings, self.state, &observed, &view.plan)?;
        let fix = "bring the API server back and run `kos up` again, or run `kos up --no-drain` to delete their servers with whatever runs on them";
        let reporter = self.systems.reporter;
        reporter.wait_started("drain: waiting for the API server to answer /readyz", self.options.api_wait);
        let api = self.systems.kube.connect(&kubeconfig, self.options.api_wait).await;
        reporter.wait_finished();
        let api = api.map_err(|e| RunError::Drain(format!("cannot drain {names} before deleting their servers: {e}; {fix}")))?;
        for node in leaving {
            reporter.wait_started(&format!("drain: evicting {node}'s pods"), wait);
            let drained = kos_kube::drain::drain(&api, node, wait, |waiting| reporter.wait_progress(waiting)).await;
            reporter.wait_finished();
            let drained = drained.map_err(|e| {
                RunError::Drain(format!(
                    "{e}; its server stays: free what blocks (a PodDisruptionBudget that allows no disruption: scale its workload up) and run `kos up` again, or `kos up --no-drain`"
                ))
            })?;
            self.line(&format!("drain: {drained}"));
            if drained.registered {
                self.report.changes += 1;
            }
            self.report.drained.push(drained);
        }
        self.timed("drain", t);
        Ok(())
    }

    /// The etcd members of the masters the settings removed, one at a time, asked of the
    /// first running master kept that answers; refused (before any server is deleted) when a
    /// removal would leave no healthy majority.
    async fn remove_members(&mut self, view: &CloudView, removed: &[String]) -> Result<(), RunError> {
        let reach = self.systems.reach;
        let kept: Vec<String> = view.plan.masters().filter(|m| view.have.servers.contains_key(&m.name)).map(|m| m.name.clone()).collect();
        // The ssh_config names every node (it is the operator's too); only the kept masters are asked.
        let all = nodes::targets(&view.plan, &view.have);
        reach.prepare(&all)?;
        let targets: Vec<_> = all.into_iter().filter(|t| kept.contains(&t.node)).collect();
        let mut last = format!("no running master is kept ({})", removed.join(", "));
        for t in &targets {
            let node = match reach.connect(t, self.options.ssh_wait).await {
                Ok(node) => node,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let names: Vec<&str> = removed.iter().map(String::as_str).collect();
            let outcome = crate::etcd::remove(&node, &names).await;
            reach.close(node).await;
            match outcome {
                Ok(lines) => {
                    self.etcd_lines(lines);
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        Err(RunError::Etcd(format!("the etcd members of {} were not removed, so their servers stay: {last}", removed.join(", "))))
    }

    async fn routes(&mut self, view: &CloudView) -> Result<(), RunError> {
        let t = Instant::now();
        let done =
            apply::apply_routes(self.systems.cloud, &view.plan, &view.resolved, &view.have.node_addresses(), view.router.clone()).await?;
        self.cloud_changed(Phase::Network, done.0);
        self.timed("network (routes)", t);
        Ok(())
    }

    /// Everything that needs the nodes: sessions, the rendered files, the node phases, the
    /// add-ons and readiness, verify. The sessions are closed whatever happens.
    async fn on_nodes(&mut self, view: &CloudView, arts: &[Artifact], mut early: nodes::Early<R::Node>) -> Result<(), RunError> {
        let t = Instant::now();
        let reach = self.systems.reach;
        let sessions = nodes::connect_all(reach, &view.plan, &view.have, self.options.ssh_wait, self.systems.reporter, &mut early).await?;
        let result = self.with_sessions(view, arts, &sessions, &early.facts, t).await;
        nodes::close_all(reach, sessions).await;
        result
    }

    async fn with_sessions(
        &mut self,
        view: &CloudView,
        arts: &[Artifact],
        sessions: &[NodeSession<R::Node>],
        known_facts: &std::collections::BTreeMap<String, kos_render::NodeFacts>,
        since: Instant,
    ) -> Result<(), RunError> {
        let (facts, notes) = nodes::facts_all(sessions, known_facts).await;
        for n in notes {
            self.line(&n);
            self.report.notes.push(n);
        }
        self.timed("ssh", since);
        let t = Instant::now();
        let cidr = Some(view.resolved.subnet.cidr);
        let prepared = nodes::prepare(self.settings, self.state, &view.plan, cidr, arts, &facts, self.systems.reporter)?;
        self.timed("render", t);
        if !prepared.renewed.is_empty() {
            let n = format!(
                "certificates: {} leaf certificate(s) renewed before they expire ({}); rolled out below",
                prepared.renewed.len(),
                prepared.renewed.join(", ")
            );
            self.line(&n);
            self.report.notes.push(n);
        }
        for s in sessions {
            if let NodeSession::Failed { node, error } = s {
                self.report.failures.push(Failure { node: node.clone(), phase: "ssh".into(), message: error.clone() });
            }
        }
        // Nodes at another Kubernetes than the settings': upgraded one by one first (the
        // provisioning below then finds them converged).
        if self.options.has(Phase::Kubernetes)
            && let Some(upgrade) = rolling::upgrade_for(self.settings, &view.plan, &facts)?
        {
            self.rolling(&view.plan, sessions, &prepared, &upgrade).await?;
        }
        self.provision(&view.plan, sessions, &prepared, &facts).await;
        // Verify looks at the nodes only (units, cbr0, the masquerade rule, forwarding): it runs
        // while the add-ons go through the API server, and reports after them. Nodes that
        // failed already are named once, not verified.
        let failed: Vec<String> = self.report.failed_nodes().into_iter().map(str::to_string).collect();
        let skip: Vec<&str> = failed.iter().map(String::as_str).collect();
        let verify = async {
            let t = Instant::now();
            let verified = nodes::verify_all(sessions, &view.plan, &prepared.wants, &skip).await;
            (verified, t.elapsed())
        };
        let verify = async { if self.options.has(Phase::Verify) { Some(verify.await) } else { None } };
        let addons_wanted = self.options.has(Phase::Addons) && self.report.failures.is_empty();
        let addons = async { if addons_wanted { self.addons(&view.plan, &prepared).await } else { Ok(()) } };
        let (addons, verified) = futures_util::join!(addons, verify);
        if let Some((verified, took)) = verified {
            for v in verified {
                if v.failures.is_empty() {
                    self.line(&format!("verify: {}: {} checks ok", v.node, v.checks));
                }
                self.report.failures.extend(v.failures.iter().cloned());
                self.report.verified.push(v);
            }
            self.report.timings.push(Timing { step: "verify".into(), seconds: took.as_secs_f64() });
        }
        addons
    }

    /// The node phases on every reachable node, in parallel; then the masters that join etcd
    /// in this run, one at a time.
    async fn provision(
        &mut self,
        plan: &ClusterPlan,
        sessions: &[NodeSession<R::Node>],
        prepared: &Prepared,
        facts: &std::collections::BTreeMap<String, kos_render::NodeFacts>,
    ) {
        let node_phases = self.options.node_phases();
        if node_phases.is_empty() {
            return;
        }
        let t = Instant::now();
        let how = Provision { phases: node_phases.clone(), dry_run: false, parallel: self.options.parallel };
        // A master whose etcd has no data yet and does not make the cluster gets its static
        // pods only once its member was added (see `etcd_joins`).
        let mut wants = prepared.wants.clone();
        let mut deferred = std::collections::BTreeMap::new();
        if node_phases.contains(&NodePhase::Kubernetes) {
            for w in &mut wants {
                let joins = plan.node(&w.node).and_then(|n| n.etcd.as_ref()).is_some_and(|e| !e.is_first());
                if joins && !facts.get(&w.node).is_some_and(|f| f.etcd_data) {
                    let (now, etcd, rest) = crate::etcd::split_joiner(w);
                    *w = now;
                    deferred.insert(w.node.clone(), (etcd, rest));
                }
            }
        }
        // The running masters first, one at a time (see `masters_in_turn`).
        let in_turn = match node_phases.contains(&NodePhase::Kubernetes) {
            true => self.masters_in_turn(plan, sessions, &wants, &how, prepared, facts).await,
            false => Vec::new(),
        };
        let mut pairs = nodes::with_wants(sessions, &wants);
        pairs.retain(|(n, _)| !in_turn.iter().any(|m| m == kos_node::remote::Remote::node(*n)));
        let names: Vec<&str> = pairs.iter().map(|(n, _)| kos_node::remote::Remote::node(*n)).collect();
        let reporter = self.systems.reporter;
        reporter.nodes_started(&names);
        let reports = provision::provision_all(&pairs, &how, &NodeSteps(reporter)).await;
        reporter.nodes_finished();
        self.node_reports(reports);
        if node_phases.contains(&NodePhase::Kubernetes) {
            self.etcd_joins(plan, sessions, &deferred).await;
        }
        let names: Vec<String> = node_phases.iter().map(ToString::to_string).collect();
        self.timed(&names.join(" + "), t);
        // The user gets the admin kubeconfig even when a later phase fails.
        if node_phases.contains(&NodePhase::Kubernetes)
            && let Some(path) = &self.options.kubeconfig
        {
            let context = crate::kubeconfig::context_name(&self.settings.cluster.name);
            match crate::kubeconfig::merge_into_file(path, &prepared.admin_kubeconfig, &context) {
                Ok(outcome) => {
                    self.line(&format!("kubeconfig: {outcome}"));
                    self.report.kubeconfig = Some(outcome.to_string());
                }
                Err(e) => {
                    let warning = format!("warning: could not merge the admin kubeconfig: {}", crate::chain(&e));
                    self.line(&warning);
                    self.report.notes.push(warning);
                }
            }
        }
    }

    /// Every master after the first in etcd's joining order, one at a time: added as a
    /// learner when it is not a member (asking the first master before it that answers),
    /// its etcd started (the manifest deferred by `provision`), promoted once caught up,
    /// then its other static pods. The first failure stops the joins after it.
    async fn etcd_joins(
        &mut self,
        plan: &ClusterPlan,
        sessions: &[NodeSession<R::Node>],
        deferred: &std::collections::BTreeMap<String, (NodeWants, NodeWants)>,
    ) {
        let order = crate::etcd::joining_order(plan);
        let up = |name: &str| nodes::session(sessions, name);
        for (k, joiner) in order.iter().enumerate().skip(1) {
            if self.report.failed_nodes().contains(&joiner.name.as_str()) {
                return;
            }
            let fail = |me: &mut Self, message: String| {
                me.report.failures.push(Failure { node: joiner.name.clone(), phase: "etcd".into(), message });
            };
            let (Some(me), Some(asked)) = (up(&joiner.name), order[..k].iter().find_map(|m| up(&m.name))) else {
                fail(self, format!("no session to {} or to a master before it in etcd's joining order", joiner.name));
                return;
            };
            let (member, lines) = match crate::etcd::add(asked, joiner).await {
                Ok(added) => added,
                Err(e) => return fail(self, e),
            };
            self.etcd_lines(lines);
            let (etcd, rest) = match deferred.get(&joiner.name) {
                Some((etcd, rest)) => (Some(etcd), Some(rest)),
                None => (None, None),
            };
            let written = match etcd {
                Some(w) => match self.provision_one(me, w).await {
                    Ok(changes) => changes,
                    Err(e) => return fail(self, e),
                },
                None => 0,
            };
            // A member never started whose manifest was already in place (a run stopped
            // after writing it): the kubelet may sit on the pod; a restart starts it.
            if etcd.is_some() && written == 0 && member.name.is_empty() {
                if let Err(e) = crate::etcd::restart_kubelet(me).await {
                    return fail(self, e);
                }
                self.etcd_lines(vec![format!("etcd: {}'s kubelet restarted to start its member", joiner.name)]);
            }
            match crate::etcd::promote(asked, &joiner.name, &member).await {
                Ok(line) => self.etcd_lines(line.into_iter().collect()),
                Err(e) => return fail(self, e),
            }
            if let Some(w) = rest
                && let Err(e) = self.provision_one(me, w).await
            {
                return fail(self, e);
            }
        }
    }

    fn etcd_lines(&mut self, lines: Vec<String>) {
        for l in lines {
            self.line(&l);
            self.report.notes.push(l);
            self.report.changes += 1;
        }
    }

    /// One node's wants written now (the kubernetes phase only), reported like the others';
    /// how many changes it made.
    async fn provision_one(&mut self, node: &R::Node, wants: &NodeWants) -> Result<usize, String> {
        let how = Provision { phases: vec![NodePhase::Kubernetes], dry_run: false, parallel: 1 };
        let report = provision::provision_node(node, wants, &how, &NodeSteps(self.systems.reporter)).await;
        let (error, changes) = (report.error.clone(), report.change_count());
        self.node_reports(vec![report]);
        error.map_or(Ok(changes), Err)
    }

    fn node_reports(&mut self, reports: Vec<provision::NodeReport>) {
        let reporter = self.systems.reporter;
        for r in reports {
            for (phase, list) in &r.changes {
                self.line(&format!("{phase}: {}: {} change(s)", r.node, list.len()));
                for c in list {
                    reporter.detail(&format!("  {c}"));
                }
            }
            for w in &r.warnings {
                self.line(&format!("warning: {}: {w}", r.node));
            }
            self.report.changes += r.change_count();
            if let Some(e) = &r.error {
                let phase = r.failed_phase.clone().unwrap_or_default();
                self.report.failures.push(Failure { node: r.node.clone(), phase, message: e.clone() });
            }
            let phases = r.changes.into_iter().map(|(p, changes)| NodePhaseChanges { phase: p.to_string(), changes }).collect();
            match self.report.nodes.iter_mut().find(|o| o.node == r.node) {
                // A joining master's static pods, written after the others' phases.
                Some(o) => {
                    o.phases.extend(phases);
                    o.warnings.extend(r.warnings);
                }
                None => self.report.nodes.push(NodeOutcome { node: r.node, phases, warnings: r.warnings }),
            }
        }
    }

    /// The add-ons through the API server, then the cluster Ready: every node, the control
    /// plane and CoreDNS.
    async fn addons(&mut self, plan: &ClusterPlan, prepared: &Prepared) -> Result<(), RunError> {
        let t = Instant::now();
        let reporter = self.systems.reporter;
        // The super-admin applies them: they include the binding that gives `admin` its rights.
        let wait = self.options.api_wait;
        reporter.wait_started("addons: waiting for the API server to answer /readyz", wait);
        let connect = self.systems.kube.connect(&prepared.super_admin_kubeconfig, wait);
        let api = crate::ticking(connect, reporter, Duration::from_secs(5), || "no `ok` yet".to_string()).await;
        reporter.wait_finished();
        let api = api?;
        let applied = kos_kube::apply::apply(&api, &prepared.addons).await?;
        for a in &applied {
            if a.outcome == kos_kube::Outcome::Unchanged {
                reporter.detail(&format!("addons: {a}"));
            } else {
                self.line(&format!("addons: {a}"));
                self.report.changes += 1;
            }
        }
        self.report.addons = applied;
        self.timed("addons", t);
        let t = Instant::now();
        let with_dns = self.settings.addons.dns.is_some();
        let items = crate::wait_ready(&api, self.settings, plan, self.options.ready_wait, reporter, "ready").await?;
        let nodes = items.iter().filter(|i| i.node.is_some()).count();
        let versions: std::collections::BTreeSet<&str> = items.iter().filter_map(|i| i.node.as_ref()).map(|n| n.version.as_str()).collect();
        self.line(&format!(
            "ready: {nodes} node(s) Ready ({}), control plane{} Ready",
            versions.into_iter().collect::<Vec<_>>().join(", "),
            if with_dns { " and CoreDNS" } else { "" }
        ));
        self.report.ready = items;
        self.uncordon_left(&api).await?;
        self.timed("ready", t);
        Ok(())
    }
}

pub(crate) mod rolling;
pub use rolling::CORDONED_FOR;

#[cfg(test)]
mod tests;
