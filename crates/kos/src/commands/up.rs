//! `kos up`: check → instances → runtime → kubernetes → network → addons → verify.
//!
//! The cloud phases (check, instances, the router's routes) run first; then the node
//! phases run over SSH, each node its own pipeline (see `kos_node::provision`); then the
//! add-ons go through the API server, and verify looks at every node. `--only` picks
//! phases (the seed's tags). Every phase compares before it changes, so a re-run after a
//! failure or Ctrl-C resumes, and a re-run on a converged cluster changes nothing.

use super::cloud::{observe, runtime, Observation};
use super::failed;
use super::nodes::{self, NodeSession};
use super::state::State;
use super::{plan_for, CommandError};
use crate::cli::{Phase, UpArgs};
use crate::printer::Printer;
use kos_cloud::apply::{self, NodeContext, Waits};
use kos_cloud::ops::{self, Verdict};
use kos_core::settings::Settings;
use kos_node::provision::{self, Provision};
use kos_node::remote::Remote as _;
use kos_node::wanted::NodePhase;
use std::time::{Duration, Instant};

/// All phases, in order.
pub const ALL_PHASES: [Phase; 7] =
    [Phase::Check, Phase::Instances, Phase::Runtime, Phase::Kubernetes, Phase::Network, Phase::Addons, Phase::Verify];

pub fn node_phase(p: Phase) -> Option<NodePhase> {
    match p {
        Phase::Runtime => Some(NodePhase::Runtime),
        Phase::Kubernetes => Some(NodePhase::Kubernetes),
        Phase::Network => Some(NodePhase::Network),
        _ => None,
    }
}

pub fn up(args: &UpArgs, printer: Printer) -> Result<(), CommandError> {
    let settings = Settings::load(&args.settings.file)?;
    let state = State::for_settings(&args.settings, &settings);
    let phases: Vec<Phase> = if args.only.is_empty() { ALL_PHASES.to_vec() } else { args.only.clone() };
    let started = Instant::now();
    let mut timings: Vec<(String, f64)> = Vec::new();
    runtime()?.block_on(async {
        // Local inputs first: nothing is created in the cloud for nodes kos could not then
        // reach or provision.
        let node_phases: Vec<NodePhase> = phases.iter().filter_map(|p| node_phase(*p)).collect();
        let wants_nodes = !node_phases.is_empty() || phases.contains(&Phase::Verify) || phases.contains(&Phase::Addons);
        let with_artifacts = node_phases.contains(&NodePhase::Kubernetes) || node_phases.contains(&NodePhase::Runtime);
        let t = Instant::now();
        let arts = if wants_nodes { nodes::local_inputs(&settings, with_artifacts).await? } else { Vec::new() };
        timings.push(("local inputs".into(), t.elapsed().as_secs_f64()));
        let Observation { cloud, resolved, mut have, mut plan } = observe(&settings).await?;
        let mut changed = 0usize;

        if phases.contains(&Phase::Check) {
            let t = Instant::now();
            let findings = ops::check(&cloud, &settings, &plan).await;
            let fails: Vec<_> = findings.iter().filter(|f| f.verdict == Verdict::Fail).collect();
            for f in &findings {
                let line = format!("check: {:<4} {}", f.verdict.to_string(), f.what);
                if f.verdict == Verdict::Ok { printer.detail(line) } else { printer.line(line) }
                if let Some(fix) = &f.fix
                    && f.verdict != Verdict::Ok
                {
                    printer.line(format!("           → {fix}"));
                }
            }
            timings.push(("check".into(), t.elapsed().as_secs_f64()));
            if !fails.is_empty() {
                return Err(CommandError::Failed(anyhow::anyhow!(
                    "{} preflight check(s) failed (see above); nothing was changed",
                    fails.len()
                )));
            }
        }

        if phases.contains(&Phase::Instances) {
            let t = Instant::now();
            let mut groups = Vec::new();
            if settings.cloud.manage_security_group {
                let (id, created) = apply::ensure_security_group(&cloud, &settings, &plan).await.map_err(failed)?;
                if created {
                    printer.line(format!("instances: security group {}-nodes created or completed", plan.cluster));
                    changed += 1;
                }
                groups.push(id);
            }
            groups.extend(settings.cloud.security_groups.iter().cloned());
            let tagged = apply::complete_tags(&cloud, &have).await.map_err(failed)?;
            for line in &tagged.0 {
                printer.line(format!("instances: {line}"));
            }
            changed += tagged.0.len();
            let ctx = NodeContext { settings: &settings, plan: &plan, resolved: &resolved, security_groups: &groups, waits: Waits::default() };
            let done = apply::apply_nodes(&cloud, ctx, &have).await.map_err(failed)?;
            for line in &done.0 {
                printer.line(format!("instances: {line}"));
            }
            changed += done.0.len();
            have = apply::discover(&cloud, &settings.cluster.name).await.map_err(failed)?;
            plan = plan_for(&settings, &have.observed(Some(resolved.subnet.cidr)))?;
            timings.push(("instances".into(), t.elapsed().as_secs_f64()));
        }
        // Remember what the cloud gave, for `kos render` and later runs (the cloud stays the truth).
        state.write_observed(&have.observed(Some(resolved.subnet.cidr)))?;

        if phases.contains(&Phase::Network) || phases.contains(&Phase::Routes) {
            let t = Instant::now();
            let done = apply::apply_routes(&cloud, &plan, &resolved, &have.node_addresses()).await.map_err(failed)?;
            for line in &done.0 {
                printer.line(format!("network: {line}"));
            }
            changed += done.0.len();
            timings.push(("network (routes)".into(), t.elapsed().as_secs_f64()));
        }

        let mut failures: Vec<String> = Vec::new();
        if wants_nodes {
            let t = Instant::now();
            let sessions = nodes::connect_all(&settings, &state, &plan, &have, Duration::from_secs(args.ssh_wait), printer).await?;
            let (facts, notes) = nodes::facts_all(&sessions).await;
            for n in notes {
                printer.line(n);
            }
            timings.push(("ssh".into(), t.elapsed().as_secs_f64()));
            let t = Instant::now();
            let cluster = nodes::prepare(&settings, &state, &plan, Some(resolved.subnet.cidr), &arts, &facts, printer).await?;
            timings.push(("render".into(), t.elapsed().as_secs_f64()));
            for s in &sessions {
                if let NodeSession::Failed { error, .. } = s {
                    failures.push(error.clone());
                }
            }
            if !node_phases.is_empty() {
                let t = Instant::now();
                let how = Provision { phases: node_phases.clone(), dry_run: false, parallel: args.parallel };
                let pairs = nodes::pairs(&sessions, &cluster.wants);
                let names: Vec<&str> = pairs.iter().map(|(n, _)| n.node()).collect();
                let progress = nodes::NodeProgress::new(printer, &names);
                let reports = provision::provision_all(&pairs, &how, &progress).await;
                progress.finish();
                for r in &reports {
                    for (phase, list) in &r.changes {
                        printer.line(format!("{phase}: {}: {} change(s)", r.node, list.len()));
                        for c in list {
                            printer.detail(format!("  {c}"));
                        }
                    }
                    for w in &r.warnings {
                        printer.line(format!("warning: {}: {w}", r.node));
                    }
                    if let Some(e) = &r.error {
                        failures.push(e.clone());
                    }
                    changed += r.change_count();
                }
                let names: Vec<String> = node_phases.iter().map(|p| p.to_string()).collect();
                timings.push((names.join(" + "), t.elapsed().as_secs_f64()));
                if node_phases.contains(&NodePhase::Kubernetes) {
                    match crate::kubeconfig::merge_admin_kubeconfig(&cluster.admin_kubeconfig, &settings.cluster.name) {
                        Ok(outcome) => printer.line(format!("kubeconfig: {outcome}")),
                        Err(e) => printer.line(format!("warning: could not merge the admin kubeconfig: {e:#}")),
                    }
                }
            }
            if phases.contains(&Phase::Addons) && failures.is_empty() {
                let t = Instant::now();
                // The super-admin applies them: they include the binding that gives `admin` its rights.
                let client = crate::addons::wait_for_api(&cluster.super_admin_kubeconfig, Duration::from_secs(args.api_wait))
                    .await
                    .map_err(failed)?;
                let applied = crate::addons::apply(&client, &cluster.addons).await.map_err(failed)?;
                for a in &applied {
                    if a.outcome == crate::addons::Outcome::Unchanged { printer.detail(format!("addons: {a}")) } else { printer.line(format!("addons: {a}")) }
                }
                changed += applied.iter().filter(|a| a.outcome != crate::addons::Outcome::Unchanged).count();
                timings.push(("addons".into(), t.elapsed().as_secs_f64()));
                // Done means working: every node Ready, the control plane and CoreDNS Ready.
                let t = Instant::now();
                let with_dns = settings.addons.dns.is_some();
                let items = crate::health::wait_ready(&client, &plan, with_dns, Duration::from_secs(args.ready_wait), |missing| {
                    printer.detail(format!("ready: waiting for {}", missing.iter().map(|i| format!("{} ({})", i.what, i.detail)).collect::<Vec<_>>().join(", ")));
                })
                .await
                .map_err(|e| CommandError::Failed(anyhow::anyhow!("{e}; run `kos up` again once it is fixed (`kos status` shows the cluster)")))?;
                let nodes = items.iter().filter(|i| i.node.is_some()).count();
                let versions: std::collections::BTreeSet<&str> = items.iter().filter_map(|i| i.node.as_ref()).map(|n| n.version.as_str()).collect();
                printer.line(format!(
                    "ready: {nodes} node(s) Ready ({}), control plane{} Ready",
                    versions.into_iter().collect::<Vec<_>>().join(", "),
                    if with_dns { " and CoreDNS" } else { "" }
                ));
                timings.push(("ready".into(), t.elapsed().as_secs_f64()));
            }
            if phases.contains(&Phase::Verify) {
                let t = Instant::now();
                // Nodes that already failed are named once, not again for every check.
                let failed_nodes: Vec<&str> = failures.iter().filter_map(|f| f.split([' ', ':']).next()).collect();
                let bad = nodes::verify_all(&sessions, &plan, &cluster.wants, &failed_nodes, printer).await;
                failures.extend(bad);
                timings.push(("verify".into(), t.elapsed().as_secs_f64()));
            }
            nodes::close_all(sessions).await;
        }

        for (name, secs) in &timings {
            printer.detail(format!("time: {name}: {secs:.1} s"));
        }
        let secs = started.elapsed().as_secs_f64();
        if !failures.is_empty() {
            for f in &failures {
                printer.line(format!("FAILED {f}"));
            }
            return Err(CommandError::Failed(anyhow::anyhow!(
                "{} node problem(s) (above); the other nodes are done; run `kos up` again once they are fixed",
                failures.len()
            )));
        }
        if changed == 0 {
            printer.line(format!("up to date: 0 changes ({secs:.1} s, {} API calls)", cloud.api_calls()));
        } else {
            printer.line(format!("{changed} change(s) ({secs:.1} s, {} API calls)", cloud.api_calls()));
        }
        Ok(())
    })
}
