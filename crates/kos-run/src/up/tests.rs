//! The pipeline with the in-memory cloud (`FakeCloud`), a real API server on loopback
//! (`LoopbackApi`, for the tests whose phases reach it; they run in real time) and node
//! doubles that stand in for the servers' operating systems (which a unit test cannot boot;
//! the end-to-end tests use real nodes): the order of the phases, a second run that changes
//! nothing, a run that resumes after a failure, a failed node named once, `--only` with the
//! add-ons, and the drain of a node that leaves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::report::UpReport;
use crate::testing::{Answer, NoAnswer, NoApiServer, kubelets, run, validator};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kos_cloud::fake::FakeCloud;
use kos_kube::loopback::LoopbackApi;

fn steps(report: &UpReport) -> Vec<&str> {
    report.timings.iter().map(|t| t.step.as_str()).collect()
}

#[tokio::test(start_paused = true)]
async fn the_cloud_phases_run_in_order_and_a_second_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let kube = NoApiServer::default();
    let phases = [Phase::Routes, Phase::Check, Phase::Instances];
    let (report, result, lines) = run(dir.path(), &phases, &cloud, &NoAnswer::default(), &kube).await;
    result.unwrap();
    assert!(report.ok && report.error.is_none() && report.failures.is_empty(), "{report:#?}");
    // Whatever the order asked, check → instances → routes.
    assert_eq!(steps(&report), ["local inputs", "observe", "check", "instances", "network (routes)"]);
    let servers = report.cloud.iter().filter(|c| c.change.starts_with("create server of ")).count();
    let routes = report.cloud.iter().filter(|c| c.phase == Phase::Network).count();
    assert_eq!((servers, routes), (3, 3), "{:#?}", report.cloud);
    assert_eq!(report.changes, report.cloud.len());
    assert_eq!(lines.iter().filter(|l| l.starts_with("instances: ") || l.starts_with("network: ")).count(), report.cloud.len());
    // What the cloud gave is recorded for `kos render`.
    let observed = std::fs::read_to_string(dir.path().join(".kos/demo/observed.yaml")).unwrap();
    assert!(observed.contains("worker-2"), "{observed}");

    let (writes, calls) = (cloud.write_count(), cloud.call_count());
    let (again, result, _) = run(dir.path(), &phases, &cloud, &NoAnswer::default(), &kube).await;
    result.unwrap();
    assert_eq!((again.changes, again.cloud.len()), (0, 0), "{:#?}", again.cloud);
    assert_eq!(cloud.write_count(), writes, "the second run wrote nothing to the cloud");
    // And read no more than one survey asks: the check, the security group and the
    // router's routes come from it, and nothing is looked at twice.
    let again_calls = cloud.call_count() - calls;
    let asks = kos_cloud::survey::Asks { checks: true, security_group: true };
    kos_cloud::survey::survey(&cloud, &crate::testing::settings(dir.path()), asks).await;
    assert_eq!(again_calls, cloud.call_count() - calls - again_calls, "{:#?}", cloud.state.lock().unwrap().calls);
    assert_eq!(kube.connects(), 0, "no phase asked for the API server");
}

#[tokio::test(start_paused = true)]
async fn a_node_that_does_not_answer_is_named_once_and_the_add_ons_wait_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let kube = NoApiServer::default();
    let reach = NoAnswer::default();
    let (report, result, _) =
        run(dir.path(), &[Phase::Instances, Phase::Network, Phase::Addons, Phase::Verify], &cloud, &reach, &kube).await;
    let err = result.unwrap_err();
    assert!(matches!(err, RunError::Nodes(3)), "{err}");
    assert_eq!(report.error.as_deref(), Some(err.to_string().as_str()));
    assert!(!report.ok);
    // Each node once, by the phase it failed in; verify did not name them again.
    let failed: Vec<(&str, &str)> = report.failures.iter().map(|f| (f.node.as_str(), f.phase.as_str())).collect();
    assert_eq!(failed, [("master-1", "ssh"), ("worker-1", "ssh"), ("worker-2", "ssh")]);
    assert!(report.failures.iter().all(|f| f.message.contains("SSH did not answer")), "{:#?}", report.failures);
    assert!(report.verified.is_empty());
    let mut tried = reach.tried.lock().unwrap().clone();
    tried.sort();
    assert_eq!(tried, ["master-1", "worker-1", "worker-2"]);
    // The add-ons need every node: not even the API server was asked.
    assert_eq!(kube.connects(), 0);
    assert!(report.addons.is_empty());
    // The cloud side was done all the same.
    assert_eq!(report.cloud.iter().filter(|c| c.phase == Phase::Network).count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_addons_applies_them_waits_for_ready_and_a_rerun_resumes_after_the_api_was_down() {
    let Some(api) = LoopbackApi::start_bare().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let kube = kubelets(&api).await;
    // The servers first (as `kos up --only instances`).
    let (_, result, _) = run(dir.path(), &[Phase::Instances], &cloud, &Answer::default(), &kube).await;
    result.unwrap();
    assert_eq!(kube.connects(), 0, "the servers are made without the API server");

    // The API server does not answer: the add-ons phase fails, naming it and the fix.
    kube.set_down(true);
    let (report, result, _) = run(dir.path(), &[Phase::Addons], &cloud, &Answer::default(), &kube).await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("was not ready within 1 s (last: ") && err.contains("Connection refused"), "{err}");
    assert!(err.ends_with("run `kos up --only addons` once it answers"), "{err}");
    assert!(report.addons.is_empty() && kube.connects() == 1, "{:#?}", report.addons);
    let coredns: kube::Api<Deployment> = kube::Api::namespaced(api.client(), "kube-system");
    let bindings: kube::Api<ClusterRoleBinding> = kube::Api::all(api.client());
    assert!(coredns.get_opt("coredns").await.unwrap().is_none(), "nothing was applied");
    assert!(bindings.get_opt("kos:cluster-admins").await.unwrap().is_none(), "nothing was applied");

    // Once it answers, the same command resumes: every object created, the cluster ready.
    kube.set_down(false);
    let (report, result, lines) = run(dir.path(), &[Phase::Addons], &cloud, &Answer::default(), &kube).await;
    result.unwrap();
    assert!(!report.addons.is_empty());
    assert!(report.addons.iter().all(|a| a.outcome == kos_kube::Outcome::Created), "{:#?}", report.addons);
    assert_eq!(report.changes, report.addons.len());
    // The server holds them now.
    let applied = coredns.get_opt("coredns").await.unwrap().unwrap();
    assert_eq!(applied.spec.replicas, Some(2));
    let binding = bindings.get_opt("kos:cluster-admins").await.unwrap().unwrap();
    assert_eq!(binding.role_ref.name, "cluster-admin");
    assert!(report.ready.iter().all(|i| i.ready) && report.ready.len() == 3 + 4 + 1, "{:#?}", report.ready);
    assert_eq!(lines.last().map(String::as_str), Some("ready: 3 node(s) Ready (v1.37.2), control plane and CoreDNS Ready"));
    // Each wait says what it waits for and its bound, and ends.
    let waits: Vec<&str> = lines.iter().filter(|l| l.starts_with("wait")).map(String::as_str).collect();
    assert_eq!(
        waits,
        [
            "wait: ssh: waiting for 3 node(s) to answer (at most 1 s)",
            "wait over",
            "wait: addons: waiting for the API server to answer /readyz (at most 1 s)",
            "wait over",
            "wait: ready: waiting for every node, the control plane and CoreDNS (at most 30 s)",
            "wait over",
        ]
    );
    assert_eq!(steps(&report), ["local inputs", "observe", "ssh", "render", "addons", "ready"]);
    assert!(report.cloud.is_empty(), "no cloud phase was asked: {:#?}", report.cloud);
    // The operator's files were written; the user's kubeconfig is merged only after
    // `kubernetes`, which did not run.
    assert!(dir.path().join(".kos/demo/local/admin.kubeconfig").exists());
    assert!(report.kubeconfig.is_none());

    // And again: nothing changes.
    let (report, result, _) = run(dir.path(), &[Phase::Addons], &cloud, &Answer::default(), &kube).await;
    result.unwrap();
    assert_eq!(report.changes, 0);
    assert!(report.addons.iter().all(|a| a.outcome == kos_kube::Outcome::Unchanged));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_serialises_to_its_schema_without_a_secret() {
    let Some(api) = LoopbackApi::start_bare().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let kube = kubelets(&api).await;
    let (report, result, _) = run(dir.path(), &[Phase::Instances, Phase::Addons], &cloud, &Answer::default(), &kube).await;
    result.unwrap();
    let json = serde_json::to_value(&report).unwrap();
    let text = json.to_string();
    assert!(!text.contains("PRIVATE KEY") && !text.contains("client-key-data"), "no secret in the report");
    assert_eq!(json["schema"], 1);
    assert_eq!(json["phases"], serde_json::json!(["instances", "addons"]));
    assert_eq!(json["addons"][0]["outcome"], "created");
    assert_eq!(json["ready"][0]["node"]["version"], "v1.37.2");
    // The schema is strict: a field it does not document, or a wrong type, fails it.
    let mut extra = json.clone();
    extra["surprise"] = serde_json::json!(1);
    assert!(!validator().is_valid(&extra));
    let mut wrong = json.clone();
    wrong["addons"][0]["outcome"] = serde_json::json!("replaced");
    assert!(!validator().is_valid(&wrong));
}

#[tokio::test(start_paused = true)]
async fn a_failed_check_changes_nothing_and_the_next_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    cloud.state.lock().unwrap().extensions.remove("allowed-address-pairs");
    let phases = [Phase::Check, Phase::Instances, Phase::Routes];
    let (report, result, lines) = run(dir.path(), &phases, &cloud, &NoAnswer::default(), &NoApiServer::default()).await;
    assert!(matches!(result, Err(RunError::Checks(1))), "{result:?}");
    assert_eq!(cloud.write_count(), 0, "nothing was created");
    assert!(report.cloud.is_empty() && !report.ok);
    let fail = report.checks.iter().find(|c| c.verdict == "FAIL").unwrap();
    assert!(fail.what.contains("allowed-address-pairs"), "{fail:?}");
    assert!(lines.iter().any(|l| l.starts_with("check: FAIL") && l.contains("allowed-address-pairs")), "{lines:#?}");
    assert!(report.summary().is_empty(), "no node failed and nothing is up to date; the error says the rest");

    // Fixed in the cloud: the same command makes everything.
    cloud.state.lock().unwrap().extensions.insert("allowed-address-pairs".into());
    let (report, result, _) = run(dir.path(), &phases, &cloud, &NoAnswer::default(), &NoApiServer::default()).await;
    result.unwrap();
    assert_eq!(report.cloud.iter().filter(|c| c.phase == Phase::Network).count(), 3);
}

#[tokio::test(start_paused = true)]
async fn instances_stopped_by_the_quota_resume_where_they_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    cloud.state.lock().unwrap().instance_quota = 2;
    let phases = [Phase::Instances, Phase::Routes];
    let (report, result, _) = run(dir.path(), &phases, &cloud, &NoAnswer::default(), &NoApiServer::default()).await;
    let err = crate::chain(&result.unwrap_err());
    assert!(err.starts_with("create server demo-") && err.contains(": Quota exceeded for instances"), "{err}");
    assert_eq!(report.error.as_deref(), Some(err.as_str()));
    // What was made before the quota stopped it is in the report, and no route yet.
    let made = report.cloud.iter().filter(|c| c.change.starts_with("create server of ")).count();
    assert_eq!(made, 2, "{:#?}", report.cloud);
    assert!(!report.cloud.iter().any(|c| c.phase == Phase::Network));

    // More quota: the next run makes only what is missing, then the routes.
    cloud.state.lock().unwrap().instance_quota = 20;
    let (report, result, _) = run(dir.path(), &phases, &cloud, &NoAnswer::default(), &NoApiServer::default()).await;
    result.unwrap();
    let servers: Vec<&str> = report.cloud.iter().filter(|c| c.change.starts_with("create server of ")).map(|c| c.change.as_str()).collect();
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert_eq!(cloud.state.lock().unwrap().servers.len(), 3);
    assert_eq!(report.cloud.iter().filter(|c| c.phase == Phase::Network).count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_takes_each_phase_alone_and_a_converged_run_says_up_to_date() {
    let Some(api) = LoopbackApi::start_bare().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let kube = kubelets(&api).await;
    // `check` alone: looks, creates nothing.
    let (report, result, _) = run(dir.path(), &[Phase::Check], &cloud, &Answer::default(), &kube).await;
    result.unwrap();
    assert_eq!((cloud.write_count(), report.changes), (0, 0));
    assert!(!report.checks.is_empty());
    // `routes` before any server: no address, no route.
    let (report, result, _) = run(dir.path(), &[Phase::Routes], &cloud, &Answer::default(), &kube).await;
    result.unwrap();
    assert_eq!(report.changes, 0);
    // `instances`, then `routes` alone adds one route per node, and nothing on the nodes.
    run(dir.path(), &[Phase::Instances], &cloud, &Answer::default(), &kube).await.1.unwrap();
    let (report, result, _) = run(dir.path(), &[Phase::Routes], &cloud, &Answer::default(), &kube).await;
    result.unwrap();
    assert_eq!(report.cloud.iter().filter(|c| c.phase == Phase::Network).count(), 3);
    assert!(report.nodes.is_empty() && report.addons.is_empty(), "{report:#?}");
    assert_eq!(kube.connects(), 0, "no phase so far asked for the API server");
    // `check,addons`: the check, then the add-ons through the API server, no cloud change.
    let (report, result, _) = run(dir.path(), &[Phase::Addons, Phase::Check], &cloud, &Answer::default(), &kube).await;
    result.unwrap();
    assert_eq!(steps(&report), ["local inputs", "observe", "check", "ssh", "render", "addons", "ready"]);
    assert!(report.cloud.is_empty() && !report.addons.is_empty());
    // All of it again: nothing to do, said once.
    let (report, result, _) =
        run(dir.path(), &[Phase::Check, Phase::Instances, Phase::Routes, Phase::Addons], &cloud, &Answer::default(), &kube).await;
    result.unwrap();
    assert_eq!(report.changes, 0, "{report:#?}");
    let summary = report.summary();
    assert_eq!(summary.len(), 1);
    assert!(summary[0].starts_with("up to date: 0 changes ("), "{summary:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_opens_its_sessions_while_the_cloud_is_asked_keeps_those_the_cloud_confirms_and_closes_each() {
    let Some(api) = LoopbackApi::start_bare().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let kube = kubelets(&api).await;
    let phases = [Phase::Check, Phase::Instances, Phase::Routes, Phase::Addons];
    let reach = Answer::default();
    // First run: nothing recorded, so no early session; one per node after the cloud phases.
    run(dir.path(), &phases, &cloud, &reach, &kube).await.1.unwrap();
    assert_eq!(reach.sessions(), (3, 3));
    // Re-run: the three early sessions are the ones used.
    run(dir.path(), &phases, &cloud, &reach, &kube).await.1.unwrap();
    assert_eq!(reach.sessions(), (6, 6));
    // A recorded address the cloud no longer shows: that early session is closed unused and
    // the node is reached where the cloud says it is.
    let settings = crate::testing::settings(dir.path());
    let state = LocalState::for_settings(Some(&dir.path().join(".kos")), &settings);
    let mut recorded = state.observed().unwrap();
    assert!(recorded.nodes.values().all(|n| n.server_id.is_some()), "{recorded:#?}");
    recorded.nodes.get_mut("worker-1").unwrap().fixed_ip = Some("10.0.0.250".parse().unwrap());
    state.write_observed(&recorded).unwrap();
    run(dir.path(), &phases, &cloud, &reach, &kube).await.1.unwrap();
    assert_eq!(reach.sessions(), (10, 10));
}

#[tokio::test(start_paused = true)]
async fn a_run_stopped_by_the_routes_phase_reports_what_it_made_and_the_next_run_adds_only_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let kube = NoApiServer::default();
    let phases = [Phase::Check, Phase::Instances, Phase::Routes];
    cloud.state.lock().unwrap().failing_calls.insert("add_routes", 1);
    let (report, result, _) = run(dir.path(), &phases, &cloud, &NoAnswer::default(), &kube).await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("add router routes"), "{err}");
    assert!(!report.ok && report.error.is_some());
    // The servers were made and said so; no route was.
    assert_eq!(report.cloud.iter().filter(|c| c.change.starts_with("create server of ")).count(), 3, "{:#?}", report.cloud);
    assert_eq!(report.cloud.iter().filter(|c| c.phase == Phase::Network).count(), 0);
    assert!(cloud.state.lock().unwrap().router.as_ref().unwrap().routes.is_empty());
    // The next run makes the routes and nothing else.
    let (report, result, _) = run(dir.path(), &phases, &cloud, &NoAnswer::default(), &kube).await;
    result.unwrap();
    let made: Vec<&str> = report.cloud.iter().map(|c| c.change.as_str()).collect();
    assert_eq!(made.len(), 3, "{made:?}");
    assert!(made.iter().all(|c| c.starts_with("add route ")), "{made:?}");
    assert!(report.cloud.iter().all(|c| c.phase == Phase::Network));
}

/// Whether the API server shows the node cordoned (`spec.unschedulable`).
async fn cordoned(api: &LoopbackApi, node: &str) -> bool {
    api.node_object(node).await.and_then(|n| n.spec?.unschedulable).unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_removed_from_the_settings_is_drained_and_its_node_object_deleted_before_its_server() {
    let Some(api) = LoopbackApi::start_bare().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (cloud, kube, _, _) = crate::testing::served(dir.path(), &api).await;
    let mut options = crate::testing::options(&[Phase::Instances]);
    api.pod_on("worker-2", "default", "web-1", Some("ReplicaSet")).await;
    api.pod_on("worker-1", "default", "web-2", Some("ReplicaSet")).await;
    let server = |name: &str| cloud.state.lock().unwrap().servers.values().any(|s| s.name == format!("demo-{name}"));
    assert!(server("worker-2"));

    // A disruption budget that never allows the eviction: the drain names the pod, and the
    // server stays. (Within 3 s the drain asks twice, 2 s apart.)
    api.budget("default", "web-1").await;
    options.drain_wait = Some(Duration::from_secs(3));
    let two = crate::testing::settings_with(dir.path(), &["worker-1"]);
    // `kos plan` says it first (it renders the nodes' files: it needs the artifact set).
    if crate::testing::with_binaries(dir.path()).is_some() {
        let state = LocalState::for_settings(Some(&dir.path().join(".kos")), &two);
        let heard = crate::testing::Heard::default();
        let looks = crate::plan::Looks {
            cloud: &cloud,
            reach: &Answer::default(),
            kube: &kube,
            reporter: &heard,
            ssh_wait: Duration::from_secs(1),
        };
        let planned = crate::plan::plan(&two, &state, looks).await.unwrap();
        assert_eq!(planned.cloud[0], "drain worker-2 (cordon, evict its pods, delete its Node object), before its server");
        assert!(planned.cloud[1].starts_with("remove worker-2 (no longer in the settings"), "{:#?}", planned.cloud);
    }
    let (report, result, _) = crate::testing::run_with(dir.path(), &two, &options, &cloud, &Answer::default(), &kube).await;
    let e = result.unwrap_err().to_string();
    assert!(
        e.starts_with("worker-2 was not drained within 3 s: default/web-1 (eviction refused: Cannot evict pod as it would violate"),
        "{e}"
    );
    assert!(e.contains("its server stays") && e.contains("`kos up --no-drain`"), "{e}");
    assert!(server("worker-2") && report.cloud.is_empty(), "{:#?}", report.cloud);
    assert!(cordoned(&api, "worker-2").await && !cordoned(&api, "worker-1").await);
    assert!(api.pod("default", "web-1").await.is_some() && api.node_object("worker-2").await.is_some());
    assert_eq!(report.error.as_deref(), Some(e.as_str()));

    // The budget is taken away: the pod goes, then the Node object, then the server.
    let budgets: kube::Api<PodDisruptionBudget> = kube::Api::namespaced(api.client(), "default");
    budgets.delete("web-1", &Default::default()).await.unwrap();
    options.drain_wait = Some(Duration::from_secs(30));
    let (report, result, lines) = crate::testing::run_with(dir.path(), &two, &options, &cloud, &Answer::default(), &kube).await;
    result.unwrap();
    assert!(api.pod("default", "web-1").await.is_none(), "evicted");
    assert!(api.node_object("worker-2").await.is_none(), "its Node object deleted");
    assert!(api.pod("default", "web-2").await.is_some() && api.node_object("worker-1").await.is_some(), "worker-1 untouched");
    assert!(!server("worker-2") && server("worker-1"));
    let drained = lines.iter().position(|l| l == "drain: worker-2: cordoned, 1 pod(s) evicted, Node object deleted");
    let deleted = lines.iter().position(|l| l.starts_with("instances: remove worker-2 (no longer in the settings"));
    assert!(drained.is_some() && deleted.is_some() && drained < deleted, "{lines:#?}");
    assert_eq!(report.drained.len(), 1);
    assert!(report.drained[0].registered && report.drained[0].evicted == ["default/web-1"]);

    // Nothing left to drain: a rerun changes nothing.
    let (report, result, _) = crate::testing::run_with(dir.path(), &two, &options, &cloud, &Answer::default(), &kube).await;
    result.unwrap();
    assert_eq!((report.changes, report.drained.len()), (0, 0), "{report:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_drain_deletes_a_removed_workers_server_without_the_api_server() {
    let Some(api) = LoopbackApi::start_bare().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (cloud, kube, _, _) = crate::testing::served(dir.path(), &api).await;
    kube.set_down(true);
    let two = crate::testing::settings_with(dir.path(), &["worker-1"]);
    let mut options = crate::testing::options(&[Phase::Instances]);
    // The API server is down: refused, naming both ways on.
    let (_, result, _) = crate::testing::run_with(dir.path(), &two, &options, &cloud, &Answer::default(), &kube).await;
    let e = result.unwrap_err().to_string();
    assert!(e.starts_with("cannot drain worker-2 before deleting their servers: the API server at"), "{e}");
    assert!(e.contains("Connection refused"), "{e}");
    assert!(e.ends_with("or run `kos up --no-drain` to delete their servers with whatever runs on them"), "{e}");
    let asked = kube.connects();
    options.drain_wait = None;
    let (report, result, lines) = crate::testing::run_with(dir.path(), &two, &options, &cloud, &Answer::default(), &kube).await;
    result.unwrap();
    assert!(lines.contains(&"drain: skipped for worker-2 (--no-drain): their pods go with their servers".to_string()), "{lines:#?}");
    assert!(report.cloud.iter().any(|c| c.change.starts_with("remove worker-2 (no longer in the settings")), "{:#?}", report.cloud);
    assert_eq!(kube.connects(), asked, "--no-drain does not ask the API server");
    assert!(api.node_object("worker-2").await.is_some() && !cordoned(&api, "worker-2").await, "its Node object was not touched");
}

#[tokio::test(flavor = "multi_thread")]
async fn replace_drains_a_worker_and_makes_its_server_again_on_the_same_port() {
    let Some(api) = LoopbackApi::start_bare().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (cloud, kube, s, _) = crate::testing::served(dir.path(), &api).await;
    api.pod_on("worker-2", "default", "web-1", Some("ReplicaSet")).await;
    let ids = |name: &str| {
        let st = cloud.state.lock().unwrap();
        let server = st.servers.values().find(|x| x.name == format!("demo-{name}")).map(|x| x.id.clone());
        let port = st.ports.values().find(|p| p.name == format!("demo-{name}")).map(|p| (p.id.clone(), p.fixed_ips.clone()));
        (server, port)
    };
    let (server_before, port_before) = ids("worker-2");
    let mut options = crate::testing::options(&[Phase::Instances]);

    // A master, or a node not in the settings, is refused before anything is asked.
    let asked = kube.connects();
    for (name, says) in [("master-1", "master-1 is a master: kos replace makes workers again"), ("worker-9", "worker-9 is not a node of ")]
    {
        options.replace = vec![name.into()];
        let (_, result, _) = crate::testing::run_with(dir.path(), &s, &options, &cloud, &Answer::default(), &kube).await;
        let e = result.unwrap_err();
        assert!(e.is_invalid() && e.to_string().starts_with(says), "{e}");
    }
    assert_eq!(kube.connects(), asked, "the API server was not asked");

    options.replace = vec!["worker-2".into()];
    let (report, result, _) = crate::testing::run_with(dir.path(), &s, &options, &cloud, &Answer::default(), &kube).await;
    result.unwrap();
    let made: Vec<&str> = report.cloud.iter().map(|c| c.change.as_str()).collect();
    assert_eq!(
        made,
        [
            "delete server of worker-2 to make it again (kos replace; its port, address and pod range kept): deleted",
            "create server of worker-2: demo-worker-2 ACTIVE"
        ],
        "{made:#?}"
    );
    assert_eq!(report.drained.len(), 1);
    assert_eq!(report.drained[0].evicted, ["default/web-1"]);
    assert!(api.pod("default", "web-1").await.is_none(), "evicted");
    assert!(api.node_object("worker-2").await.is_none(), "its Node object deleted");
    let (server_after, port_after) = ids("worker-2");
    assert!(server_after.is_some() && server_after != server_before, "a new server");
    assert_eq!(port_after, port_before, "the same port: the same address and pod range");
}
