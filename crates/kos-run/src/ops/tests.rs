//! The cloud-only commands against the in-memory cloud: what `check` reports, what
//! `destroy` finds and leaves, the local state it forgets, and `expose` both ways.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::Phase;
use crate::testing::{NoAnswer, NoApiServer, run, settings};
use kos_cloud::fake::FakeCloud;

/// Snapshots of what the binary prints, the test's temporary folder shown as `[DIR]`.
fn transcript(dir: &std::path::Path, name: &str, lines: &[String]) {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&kos_node::test_support::regex_escape(&dir.display().to_string()), "[DIR]");
    settings.bind(|| insta::assert_snapshot!(name, lines.join("\n")));
}

/// A cluster whose servers (and, with `Phase::Routes`, routes) `up` made in the fake cloud.
async fn made(phases: &[Phase]) -> (tempfile::TempDir, FakeCloud, Settings, LocalState) {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let kube = NoApiServer::default();
    let (_, result, _) = run(dir.path(), phases, &cloud, &NoAnswer::default(), &kube).await;
    result.unwrap();
    assert_eq!(kube.connects(), 0, "the cloud phases do without the API server");
    let settings = settings(dir.path());
    let state = LocalState::for_settings(Some(&dir.path().join(".kos")), &settings);
    (dir, cloud, settings, state)
}

#[tokio::test]
async fn check_names_each_missing_local_input_beside_the_clouds_findings() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let report = check(&FakeCloud::new(), &settings).await.unwrap();
    let lines = report.lines();
    // The artifacts folder was never made: one FAIL, in `up`'s words, and it counts.
    let local: Vec<&String> = lines.iter().filter(|l| l.starts_with("FAIL local inputs: ")).collect();
    assert_eq!(local.len(), report.local.len(), "{lines:#?}");
    assert!(local.iter().any(|l| l.contains("artifacts")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("OK   authenticated to cloud")), "{lines:#?}");
    assert_eq!(report.fails(), report.local.len(), "the fake cloud itself has nothing to fail: {lines:#?}");
    transcript(dir.path(), "check_without_the_artifacts", &[lines.clone(), vec![report.summary()]].concat());
    assert_eq!(
        report.summary(),
        format!("{} checks: {} failed, {} warnings", report.findings.len() + report.local.len(), report.fails(), report.warns())
    );

    std::fs::create_dir(dir.path().join("artifacts")).unwrap();
    if crate::testing::with_binaries(dir.path()).is_some() {
        let report = check(&FakeCloud::new(), &settings).await.unwrap();
        assert_eq!(report.fails(), 0, "{:#?}", report.lines());
        assert!(report.lines()[0].starts_with("OK   local inputs"), "{:#?}", report.lines());
    }
}

#[tokio::test(start_paused = true)]
async fn destroy_removes_what_up_made_then_forgets_the_context_and_the_state() {
    let (dir, cloud, settings, state) = made(&[Phase::Instances, Phase::Routes]).await;

    let found = find_teardown(&cloud, &settings).await.unwrap();
    let lines = found.lines();
    transcript(dir.path(), "destroy_lists_what_it_deletes", &lines);
    for what in ["router route", "server demo-master-1", "server demo-worker-2", "floating IP", "security group"] {
        assert!(lines.iter().any(|l| l.contains(what)), "{what} in {lines:#?}");
    }
    destroy(&cloud, &settings, &found).await.unwrap();
    assert!(find_teardown(&cloud, &settings).await.unwrap().is_empty());

    // The user's kubeconfig keeps every other entry; ours leaves, and it was current.
    let kubeconfig = dir.path().join("config");
    let lab = "apiVersion: v1\nkind: Config\nclusters: [{name: lab, cluster: {server: 'https://lab:6443'}}]\nusers: [{name: lab, user: {}}]\ncontexts: [{name: lab, context: {cluster: lab, user: lab}}]\ncurrent-context: lab\n";
    std::fs::write(&kubeconfig, lab).unwrap();
    let admin = "apiVersion: v1\nkind: Config\nclusters: [{name: x, cluster: {server: 'https://10.0.0.5:6443'}}]\nusers: [{name: x, user: {}}]\ncontexts: [{name: x, context: {cluster: x, user: x}}]\ncurrent-context: x\n";
    crate::kubeconfig::merge_into_file(&kubeconfig, admin, "kos-demo").unwrap();

    let kept = forget_locally(&settings, &state, false, Some(&kubeconfig)).unwrap();
    assert_eq!(
        kept[0],
        format!(
            "removed context `kos-demo` from {}; it was the current context: choose another with `kubectl config use-context`",
            kubeconfig.display()
        )
    );
    assert!(kept.last().unwrap().contains("`kos destroy --purge` deletes it"), "{kept:#?}");
    assert!(state.dir.exists());
    let left = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(!left.contains("kos-demo") && left.contains("https://lab:6443"), "{left}");

    transcript(dir.path(), "destroy_forgets_the_context_and_keeps_the_state", &kept);
    let purged = forget_locally(&settings, &state, true, Some(&kubeconfig)).unwrap();
    assert_eq!(purged, [format!("deleted the local state {}", state.dir.display())]);
    assert!(!state.dir.exists());
}

#[tokio::test(start_paused = true)]
async fn expose_creates_one_load_balancer_for_the_workers_and_deletes_it() {
    let (_dir, cloud, settings, _) = made(&[Phase::Instances]).await;
    let how = Expose::Create { node_port: 30080, port: 80 };

    let made = expose(&cloud, &settings, "web", how).await.unwrap().to_string();
    assert!(made.starts_with("created load balancer demo-web: ") && made.ends_with(":80 → 2 worker(s)"), "{made}");
    let again = expose(&cloud, &settings, "web", how).await.unwrap().to_string();
    assert!(again.ends_with("has its 2 worker(s) as members"), "{again}");
    assert_eq!(cloud.state.lock().unwrap().load_balancers.len(), 1);

    assert_eq!(expose(&cloud, &settings, "web", Expose::Delete).await.unwrap().to_string(), "deleted load balancer demo-web");
    assert_eq!(expose(&cloud, &settings, "web", Expose::Delete).await.unwrap().to_string(), "no load balancer demo-web: nothing to delete");
    assert!(cloud.state.lock().unwrap().load_balancers.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_inventory_tells_ansible_how_kos_logs_in() {
    let (_dir, cloud, settings, state) = made(&[Phase::Instances]).await;

    let all = inventory(&cloud, &settings, &state, None).await.unwrap();
    let hosts = all["_meta"]["hostvars"].as_object().unwrap();
    assert_eq!(hosts.keys().collect::<Vec<_>>(), ["master-1", "worker-1", "worker-2"]);
    let one = inventory(&cloud, &settings, &state, Some("worker-1")).await.unwrap();
    assert_eq!(one, hosts["worker-1"]);
    assert_eq!(one["ansible_user"], "debian");
    assert!(one["ansible_ssh_private_key_file"].as_str().unwrap().ends_with("/id_kos"), "{one:#}");
    assert!(one["ansible_ssh_common_args"].as_str().unwrap().contains("-o IdentitiesOnly=yes"), "{one:#}");
    assert_eq!(inventory(&cloud, &settings, &state, Some("nobody")).await.unwrap(), serde_json::json!({}));
}
