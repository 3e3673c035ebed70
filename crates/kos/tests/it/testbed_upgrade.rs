//! A rolling upgrade on the test bed, one cluster through it: 1 master and 2 workers made at
//! the previous minor's newest patch (the artifact set `testbed/k8s/build.sh --previous`
//! builds, 1.36.3), a Service behind a PodDisruptionBudget on the workers, then the settings
//! moved to the default version (1.37.2) with its own artifact set. `kos plan` shows the
//! steps and refuses a downgrade of a minor; `kos up` is killed
//! during the master's upgrade and again once a worker was drained, and the next run
//! finishes. A client polls the Service (and another the API) throughout and the test
//! prints what they saw: the Service must not fail once.

use crate::harness::*;
use std::time::{Duration, Instant};

const WORKERS: [&str; 2] = ["worker-1", "worker-2"];

/// Every node's kubelet version, as the API server has it.
fn kubelet_versions(c: &Cluster) -> Vec<(String, String)> {
    let nodes = c.kubectl_json(&["get", "nodes"]);
    let mut v: Vec<(String, String)> = nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let name = n["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            (name, n["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    v.sort();
    v
}

/// The nodes cordoned now, with kos's upgrade mark or without.
fn cordoned(c: &Cluster) -> Vec<String> {
    let nodes = c.kubectl_json(&["get", "nodes"]);
    nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["spec"]["unschedulable"] == true || n["metadata"]["annotations"].get(kos_run::up::CORDONED_FOR).is_some())
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_cluster_of_the_previous_minor_is_upgraded_node_by_node_while_its_service_serves() {
    if !nodes_are_up() {
        return;
    }
    let (old, new) = (pinned("KUBERNETES_PREVIOUS"), pinned("KUBERNETES"));
    let nodes = [master("master-1", false), worker("worker-1"), worker("worker-2")];
    let mut c = Cluster::new("upg", &nodes, "10.59.0.0/16", "{kind: containerd}");
    let settings = c.dir.path().join("settings.yaml");
    let target = std::fs::read_to_string(&settings).expect("settings");
    let at = |version: &str, set: &std::path::Path| c.at_version(&target, version, set);
    let start = at(&old, &previous_artifact_set());
    std::fs::write(&settings, &start).expect("settings written");

    // 1. The cluster at the previous minor.
    let first = c.kos_ok(&["up", "-o", "json"]);
    eprintln!("kos up at {old}: {:.1} s", first.secs);
    let v_old = format!("v{old}");
    let versions = kubelet_versions(&c);
    assert!(versions.iter().all(|(_, v)| *v == v_old), "{versions:?}");
    assert_eq!(c.kubectl_json(&["version"])["serverVersion"]["gitVersion"], v_old.as_str());

    // 2. A Service on the workers, two replicas behind a PodDisruptionBudget; a pod leaving
    // keeps serving for a few seconds (preStop) while the Service's endpoints drop it. Spread
    // only if it can be: a drained worker's replica goes to the other one at once.
    let (node_port, worker_ips) = web_service(&c, &WORKERS, "ScheduleAnyway");
    let pollers = Pollers::start(&c, &worker_ips, node_port);
    let t = Instant::now();

    // 3. Down a minor: refused, with the way back (by the plan here: `kos up` first checks
    // that its artifact set carries 1.35.4's images, which this test bed has none of).
    std::fs::write(&settings, at("1.35.4", &previous_artifact_set())).expect("settings written");
    let down = c.kos(&["plan"]);
    assert_eq!(down.code, Some(2), "bad input: {}\n{}", down.stdout, down.stderr);
    assert!(
        down.stderr.contains("upgrade refused, nothing was changed on the nodes: master-1 runs Kubernetes")
            && down.stderr.contains(&format!("set `cluster.kubernetes_version: \"{old}\"` again")),
        "{}",
        down.stderr
    );
    assert!(kubelet_versions(&c).iter().all(|(_, v)| *v == v_old), "nothing changed");

    // 4. Up a minor: the plan shows the rolling steps, masters first.
    std::fs::write(&settings, at(&new, &artifact_set())).expect("settings written");
    let plan = c.kos(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, Some(2), "{}\n{}", plan.stdout, plan.stderr);
    let step = format!(
        "upgrade: {old} → {new}: masters one at a time (master-1), then workers in batches of 1, each drained first (worker-1; worker-2)"
    );
    assert!(plan.stdout.contains(&step), "{}", plan.stdout);

    // 5. Killed while the master is upgraded, then once worker-1 was drained; the next run finishes.
    let (finished, last) = c.kos_killed(&["up", "-v"], &KillPoint { after: "upgrade: master-1 to ", delay: Duration::from_secs(4) });
    assert!(!finished, "kos up was to be killed during the master's upgrade: {last}");
    eprintln!("upgrade killed during the master's (+{:.1} s since the pollers began): {last}", t.elapsed().as_secs_f64());
    let (finished, last) = c.kos_killed(&["up", "-v"], &KillPoint { after: "upgrade: worker-1: cordoned", delay: Duration::ZERO });
    assert!(!finished, "kos up was to be killed after worker-1's drain: {last}");
    eprintln!("upgrade killed after worker-1's drain (+{:.1} s): {last}; cordoned then: {:?}", t.elapsed().as_secs_f64(), cordoned(&c));
    let done = c.kos_ok(&["up", "-o", "json"]);
    eprintln!("the upgrade finished by the next run in {:.1} s ({:.1} s since it began)", done.secs, t.elapsed().as_secs_f64());
    let (service, api) = pollers.finish("upgrade");
    let report = done.report();
    let notes = up_notes(&report);
    assert!(
        notes.iter().any(|n| n.starts_with("upgrade: the snapshot taken before it is ")),
        "the first run's snapshot is kept: {notes:#?}"
    );
    assert!(notes.contains(&format!("upgrade: every node runs {new}").as_str()), "{notes:#?}");
    // No worker was drained before the restarted master's controller-manager and scheduler
    // led again (else the Service's endpoints would not follow the pods that go).
    let led = notes.iter().position(|n| *n == "upgrade: kube-controller-manager and kube-scheduler lead");
    let drained = notes.iter().position(|n| n.starts_with("upgrade: worker-"));
    assert!(led.is_some() && led < drained, "{notes:#?}");

    // 6. Every node runs the new version, none is left cordoned, the Service never failed.
    let v_new = format!("v{new}");
    let versions = kubelet_versions(&c);
    assert_eq!(versions, [("master-1".into(), v_new.clone()), ("worker-1".into(), v_new.clone()), ("worker-2".into(), v_new.clone())]);
    assert_eq!(c.kubectl_json(&["version"])["serverVersion"]["gitVersion"], v_new.as_str());
    assert!(cordoned(&c).is_empty(), "{:?}", cordoned(&c));
    let snapshot = c.state().join("backups").join(format!("{}-before-upgrade-to-v{new}.tar.gz", c.name));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&snapshot).expect("the snapshot archive").permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", snapshot.display());
    eprintln!(
        "upgrade {old} → {new}: the Service {} answered, {} failed; the API {} answered, {} failed (longest outage {:.1} s: one master)",
        service.ok,
        service.failed,
        api.ok,
        api.failed,
        api.longest_gap.as_secs_f64()
    );
    assert!(
        service.ok > 0 && service.failed == 0,
        "the Service failed {} of {} requests: {}",
        service.failed,
        service.ok + service.failed,
        service.stretches()
    );

    // 7. Converged: a second run changes nothing.
    let again = c.kos_ok(&["up", "-v"]);
    let last = again.stdout.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("up to date: 0 changes ("), "{}", again.stdout);

    c.destroy();
}
