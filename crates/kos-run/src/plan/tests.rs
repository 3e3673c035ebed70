//! `plan` against the in-memory cloud and a real API server on loopback: on an empty cloud
//! it lists every change `up` then makes, in `up`'s words; after `up` it lists none.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::Phase;
use crate::testing::{Answer, Heard, NoAnswer, kubelets, run, settings, with_binaries};
use kos_cloud::fake::FakeCloud;
use kos_kube::loopback::{LoopbackApi, LoopbackConnect};

async fn look<R: Reach>(dir: &std::path::Path, cloud: &FakeCloud, reach: &R, kube: &LoopbackConnect) -> PlanReport {
    let settings = settings(dir);
    let state = LocalState::for_settings(Some(&dir.join(".kos")), &settings);
    let heard = Heard::default();
    let looks = Looks { cloud, reach, kube, reporter: &heard, ssh_wait: Duration::from_secs(1) };
    plan(&settings, &state, looks).await.unwrap()
}

fn starting(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn on_an_empty_cloud_the_plan_lists_everything_up_makes_and_after_up_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The plan renders every node's files, so it checks the artifact set's programs.
    let Some(()) = with_binaries(dir.path()) else { return };
    let Some(api) = LoopbackApi::start_bare().await else { return };
    let cloud = FakeCloud::new();
    let kube = kubelets(&api).await;
    let before = look(dir.path(), &cloud, &NoAnswer::default(), &kube).await;
    assert_eq!(kube.connects(), 0, "no server has an address yet: the API server is not asked");
    assert_eq!(cloud.write_count(), 0, "the plan changed nothing");
    let c = &before.cloud;
    assert_eq!(starting(c, "create security group demo-nodes with "), 1, "{c:#?}");
    assert_eq!((starting(c, "create port of "), starting(c, "create server of "), starting(c, "add route ")), (3, 3, 3), "{c:#?}");
    assert_eq!(starting(c, "allocate a floating IP for master-1"), 1, "{c:#?}");
    assert!(before.nodes.iter().all(|(_, n)| matches!(n, NodePlan::New)) && before.nodes.len() == 3, "{:?}", before.nodes);
    assert_eq!(before.addons.len(), 1, "{:?}", before.addons);
    assert_eq!(before.pending(), c.len() + 3 + 1);
    insta::assert_snapshot!("plan_on_an_empty_cloud", before.lines().join("\n"));

    // `up` makes exactly what the plan listed, in its words (compared as data: one made
    // change per planned one).
    let (report, result, _) = run(dir.path(), &[Phase::Instances, Phase::Routes], &cloud, &Answer::default(), &kube).await;
    result.unwrap();
    let made: Vec<&str> = report.cloud.iter().map(|r| r.change.as_str()).collect();
    assert_eq!(made.len(), c.len(), "{made:#?}\n{c:#?}");
    for planned in c {
        assert_eq!(made.iter().filter(|m| crate::up::made_as_planned(m, planned)).count(), 1, "{planned}: {made:#?}");
    }

    // The cloud matches; the nodes answer but cannot be probed here (the double runs no
    // script), so they are unknown, never taken for converged; the API server's dry run
    // says every add-on is to create, and nothing was.
    let after = look(dir.path(), &cloud, &Answer::default(), &kube).await;
    assert!(after.cloud.is_empty(), "{:#?}", after.cloud);
    assert_eq!(after.unknown(), 3, "{:?}", after.nodes);
    assert!(!after.addons.is_empty() && after.addons.iter().all(|a| a.ends_with(": would be created")), "{:?}", after.addons);
    assert_eq!(kube.connects(), 1);
    let coredns: kube::Api<kos_kube::Deployment> = kube::Api::namespaced(api.client(), "kube-system");
    assert!(coredns.get_opt("coredns").await.unwrap().is_none(), "a dry run applies nothing");
    let (_, result, _) = run(dir.path(), &[Phase::Addons], &cloud, &Answer::default(), &kube).await;
    result.unwrap();
    let last = look(dir.path(), &cloud, &Answer::default(), &kube).await;
    assert!(last.addons.is_empty(), "applied: {:?}", last.addons);
    insta::assert_snapshot!("plan_once_the_cloud_and_the_addons_match", last.lines().join("\n"));
}
