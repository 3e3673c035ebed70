//! The cluster as the API server sees it: every node registered and Ready (with its kubelet
//! version), every control-plane pod of every master Ready, CoreDNS Ready. `kos up` waits
//! for it (bounded, naming what is missing); `kos status` prints it.

use crate::{KubeApi, KubeError};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kos_core::plan::ClusterPlan;
use kos_core::settings::Role;
use std::time::Duration;
use tokio::time::Instant;

/// The static pods of a master, as their mirror pods are named (`<component>-<node>`).
pub const CONTROL_PLANE: [&str; 4] = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"];

/// The label kubeadm gives control-plane nodes; a kubelet may not set it on itself
/// (NodeRestriction), so kos does, through the API.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// Pause between looks.
const POLL: Duration = Duration::from_secs(2);

/// Why a node is not ready when the API server has no Node object for it.
const NOT_REGISTERED: &str = "not registered (its kubelet has not reached the API server)";

/// One thing the cluster is made of, and whether it is ready.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Item {
    /// `node worker-1`, `pod kube-system/etcd-master-1`, `deployment kube-system/coredns`.
    pub what: String,
    pub ready: bool,
    /// `Ready v1.37.2`, or why not: the condition's message, the container's waiting reason.
    pub detail: String,
    /// For a node: what the API server knows of it.
    pub node: Option<NodeSeen>,
}

/// A node as the API server knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeSeen {
    /// Its kubelet has registered the Node object.
    pub registered: bool,
    /// The kubelet's version (`v1.37.2`), empty while unregistered.
    pub version: String,
}

impl std::fmt::Display for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<48} {}", self.what, self.detail)
    }
}

/// Everything kos expects of the cluster, in the plan's order.
pub async fn look<K: KubeApi>(api: &K, plan: &ClusterPlan, with_dns: bool) -> Result<Vec<Item>, KubeError> {
    let nodes = api.nodes().await.map_err(|e| KubeError::Read(format!("cannot list nodes: {e}")))?;
    let pods = api.pods("kube-system").await.map_err(|e| KubeError::Read(format!("cannot list pods: {e}")))?;
    let mut items = Vec::new();
    for n in &plan.nodes {
        let node = nodes.iter().find(|x| x.metadata.name.as_deref() == Some(&n.name));
        items.push(node_item(&n.name, node));
    }
    for m in plan.nodes.iter().filter(|n| n.role == Role::Master) {
        for c in CONTROL_PLANE {
            let name = format!("{c}-{}", m.name);
            let pod = pods.iter().find(|p| p.metadata.name.as_deref() == Some(&name));
            items.push(pod_item(&format!("pod kube-system/{name}"), pod));
        }
    }
    if with_dns {
        let d = api
            .deployment("kube-system", "coredns")
            .await
            .map_err(|e| KubeError::Read(format!("cannot read the CoreDNS deployment: {e}")))?;
        items.push(deployment_item(d.as_ref(), &pods));
    }
    Ok(items)
}

fn node_item(name: &str, node: Option<&Node>) -> Item {
    let what = format!("node {name}");
    let Some(node) = node else {
        return Item {
            what,
            ready: false,
            detail: NOT_REGISTERED.into(),
            node: Some(NodeSeen { registered: false, version: String::new() }),
        };
    };
    let status = node.status.as_ref();
    let version = status.and_then(|s| s.node_info.as_ref()).map_or(String::new(), |i| i.kubelet_version.clone());
    let ready = status.and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let seen = Some(NodeSeen { registered: true, version: version.clone() });
    match ready {
        Some(c) if c.status == "True" => Item { what, ready: true, detail: format!("Ready {version}"), node: seen },
        Some(c) => {
            Item { what, ready: false, detail: format!("NotReady {version}: {}", c.message.clone().unwrap_or_default()), node: seen }
        }
        None => Item { what, ready: false, detail: "NotReady: no Ready condition yet".into(), node: seen },
    }
}

/// A pod's readiness, or the first reason one of its containers gives.
fn pod_item(what: &str, pod: Option<&Pod>) -> Item {
    let what = what.to_string();
    let Some(pod) = pod else {
        return Item { what, ready: false, detail: "no such pod yet".into(), node: None };
    };
    let status = pod.status.as_ref();
    let ready = status.and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    if ready {
        return Item { what, ready, detail: "Ready".into(), node: None };
    }
    let phase = status.and_then(|s| s.phase.clone()).unwrap_or_else(|| "Unknown".into());
    let why = status.and_then(|s| s.container_statuses.as_ref()).into_iter().flatten().find_map(|c| {
        let state = c.state.as_ref()?;
        if let Some(w) = &state.waiting {
            return Some(format!("{}: {} {}", c.name, w.reason.clone().unwrap_or_default(), w.message.clone().unwrap_or_default()));
        }
        if let Some(t) = &state.terminated {
            return Some(format!(
                "{}: terminated ({}) {}",
                c.name,
                t.reason.clone().unwrap_or_default(),
                t.message.clone().unwrap_or_default()
            ));
        }
        (!c.ready).then(|| format!("{}: running, not ready (restarts: {})", c.name, c.restart_count))
    });
    Item { what, ready: false, detail: format!("{phase}{}", why.map(|w| format!(", {}", w.trim())).unwrap_or_default()), node: None }
}

fn deployment_item(d: Option<&Deployment>, pods: &[Pod]) -> Item {
    let what = "deployment kube-system/coredns".to_string();
    let Some(d) = d else {
        return Item { what, ready: false, detail: "not applied yet".into(), node: None };
    };
    let want = d.spec.replicas.unwrap_or(1);
    let have = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    if have >= want {
        return Item { what, ready: true, detail: format!("Ready {have}/{want}"), node: None };
    }
    let stuck = pods
        .iter()
        .filter(|p| p.metadata.labels.as_ref().and_then(|l| l.get("k8s-app")).map(String::as_str) == Some("kube-dns"))
        .map(|p| pod_item(&p.metadata.name.clone().unwrap_or_default(), Some(p)))
        .find(|i| !i.ready);
    Item {
        what,
        ready: false,
        detail: format!("{have}/{want} ready{}", stuck.map(|i| format!("; {}: {}", i.what, i.detail)).unwrap_or_default()),
        node: None,
    }
}

/// Label every master `node-role.kubernetes.io/control-plane` (kubectl's ROLES column and
/// node selectors rely on it); returns the nodes labelled now.
pub async fn label_masters<K: KubeApi>(api: &K, plan: &ClusterPlan) -> Result<Vec<String>, KubeError> {
    let nodes = api.nodes().await.map_err(|e| KubeError::Read(format!("cannot list nodes: {e}")))?;
    let mut done = Vec::new();
    for m in plan.nodes.iter().filter(|n| n.role == Role::Master) {
        let Some(node) = nodes.iter().find(|n| n.metadata.name.as_deref() == Some(&m.name)) else { continue };
        if node.metadata.labels.as_ref().is_some_and(|l| l.contains_key(CONTROL_PLANE_LABEL)) {
            continue;
        }
        api.label_node(&m.name, CONTROL_PLANE_LABEL, "")
            .await
            .map_err(|e| KubeError::Read(format!("cannot label node {}: {e}", m.name)))?;
        done.push(m.name.clone());
    }
    Ok(done)
}

/// Wait, at most `wait`, until `nodes` are Ready with their kubelets at `version`
/// (`v1.37.2`) and, on masters, their control-plane pods Ready: what an upgraded node (or
/// batch) must show before the next. `progress` hears what is still missing.
pub async fn wait_upgraded<K: KubeApi>(
    api: &K,
    plan: &ClusterPlan,
    nodes: &[String],
    version: &str,
    wait: Duration,
    progress: impl Fn(&[Item]),
) -> Result<Vec<Item>, KubeError> {
    let ours = |i: &Item| {
        nodes.iter().any(|n| i.what == format!("node {n}") || CONTROL_PLANE.iter().any(|c| i.what == format!("pod kube-system/{c}-{n}")))
    };
    let not_there = |i: &Item| match &i.node {
        Some(seen) => seen.version != version,
        None => false,
    };
    let mut items = wait_until(api, plan, false, wait, |i| ours(i) && (!i.ready || not_there(i)), progress).await?;
    items.retain(ours);
    Ok(items)
}

/// Wait, at most `wait`, until every item is ready; on a timeout the error names each
/// one that is not, with its reason. `progress` hears what is still missing after each look.
pub async fn wait_ready<K: KubeApi>(
    api: &K,
    plan: &ClusterPlan,
    with_dns: bool,
    wait: Duration,
    progress: impl Fn(&[Item]),
) -> Result<Vec<Item>, KubeError> {
    wait_until(api, plan, with_dns, wait, |i| !i.ready, progress).await
}

/// [`wait_ready`] until no item is `missing`.
async fn wait_until<K: KubeApi>(
    api: &K,
    plan: &ClusterPlan,
    with_dns: bool,
    wait: Duration,
    missing: impl Fn(&Item) -> bool,
    progress: impl Fn(&[Item]),
) -> Result<Vec<Item>, KubeError> {
    let deadline = Instant::now() + wait;
    let mut labelled = false;
    loop {
        let items = match look(api, plan, with_dns).await {
            Ok(items) => items,
            // A read that fails while there is time left is asked again.
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        // Once every node is registered, the masters get their role label (once).
        if !labelled && items.iter().filter_map(|i| i.node.as_ref()).all(|n| n.registered) {
            labelled = label_masters(api, plan).await.is_ok();
        }
        let missing: Vec<Item> = items.iter().filter(|i| missing(i)).cloned().collect();
        if missing.is_empty() {
            return Ok(items);
        }
        progress(&missing);
        if Instant::now() >= deadline {
            let missing = missing.iter().map(|i| format!("{}: {}", i.what, i.detail)).collect();
            return Err(KubeError::NotReadyInTime { waited: wait, missing });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The control-plane components whose masters elect a leader (their Leases in `kube-system`
/// are named after them): only the leader's controllers run (endpoint slices, disruption
/// budgets, scheduling).
pub const LEADERS: [&str; 2] = ["kube-controller-manager", "kube-scheduler"];

/// Wait, at most `wait`, until each of `names` (Leases in `kube-system`) has a leader that
/// is alive: its Lease written since kos first looked, renewed or taken over. A Lease that
/// still names a process that is gone (a restarted master's old controller-manager, until
/// the Lease expires) is not: while it does, no Service's endpoints follow a pod that
/// goes, and a drain then sends requests to stopped pods. A Ready pod does not tell it: a
/// controller-manager answers its health check while it waits for the Lease.
/// `progress` hears which still wait, after each look.
pub async fn wait_leading<K: KubeApi>(api: &K, names: &[&str], wait: Duration, progress: impl Fn(&[String])) -> Result<(), KubeError> {
    type Mark = Option<(Option<String>, Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>)>;
    let deadline = Instant::now() + wait;
    let mut first: std::collections::BTreeMap<&str, Mark> = Default::default();
    loop {
        let mut waiting = Vec::new();
        for &name in names {
            let lease = match api.lease("kube-system", name).await {
                Ok(lease) => lease,
                Err(e) => {
                    waiting.push(format!("lease kube-system/{name}: cannot read it: {e}"));
                    continue;
                }
            };
            let mark: Mark = lease.map(|l| l.spec.map(|s| (s.holder_identity, s.renew_time)).unwrap_or_default());
            let seen = first.entry(name).or_insert_with(|| mark.clone());
            let holder = mark.as_ref().and_then(|m| m.0.clone()).filter(|h| !h.is_empty());
            match (holder, *seen != mark) {
                (Some(_), true) => {}
                (Some(h), false) => {
                    let renewed = mark.and_then(|m| m.1).and_then(|t| serde_json::to_value(t).ok());
                    let since = renewed.as_ref().and_then(|v| v.as_str()).unwrap_or("never");
                    waiting.push(format!("lease kube-system/{name}: held by {h}, not renewed since {since}"));
                }
                (None, _) if mark.is_none() => waiting.push(format!("lease kube-system/{name}: none yet")),
                (None, _) => waiting.push(format!("lease kube-system/{name}: no holder")),
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        progress(&waiting);
        if Instant::now() >= deadline {
            return Err(KubeError::NotReadyInTime { waited: wait, missing: waiting });
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    //! Against a real API server on loopback ([`crate::loopback`]); the test registers the
    //! nodes and writes their pods' and CoreDNS's status, as their kubelets and the
    //! deployment controller would.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::loopback::LoopbackApi;

    fn example_plan() -> ClusterPlan {
        crate::test_support::example().2
    }

    fn names(plan: &ClusterPlan, role: Role) -> Vec<&str> {
        plan.nodes.iter().filter(|n| n.role == role).map(|n| n.name.as_str()).collect()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_serving_cluster_is_ready_and_its_masters_get_their_role_label() {
        let Some(api) = LoopbackApi::start().await else { return };
        let plan = example_plan();
        api.serving(&names(&plan, Role::Master), &names(&plan, Role::Worker), "v1.37.2").await;
        let kube = api.kube().await;
        let items = wait_ready(&kube, &plan, true, Duration::from_secs(10), |_| panic!("nothing is missing")).await.unwrap();
        // Every node, four control-plane pods per master, CoreDNS.
        assert_eq!(items.len(), plan.nodes.len() + 4 * names(&plan, Role::Master).len() + 1);
        assert!(items.iter().all(|i| i.ready), "{items:?}");
        for n in kube.nodes().await.unwrap() {
            let name = n.metadata.name.as_deref().unwrap();
            let labelled = n.metadata.labels.as_ref().is_some_and(|l| l.contains_key(CONTROL_PLANE_LABEL));
            assert_eq!(labelled, names(&plan, Role::Master).contains(&name), "{name}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_missing_node_and_a_stuck_coredns_are_named_when_the_wait_ends() {
        let Some(api) = LoopbackApi::start().await else { return };
        let plan = example_plan();
        let workers = names(&plan, Role::Worker);
        api.serving(&names(&plan, Role::Master), &workers[1..], "v1.37.2").await;
        api.deployment_ready("kube-system", "coredns", 2, 1).await;
        let kube = api.kube().await;
        let heard = std::sync::Mutex::new(0);
        let err = wait_ready(&kube, &plan, true, Duration::from_secs(5), |missing| {
            *heard.lock().unwrap() += 1;
            assert_eq!(missing.len(), 2, "{missing:?}");
        })
        .await
        .unwrap_err()
        .to_string();
        // A look at once, then one each POLL (2 s) within the 5 s.
        assert!(*heard.lock().unwrap() >= 2, "progress is heard after each look");
        assert_eq!(
            err,
            format!(
                "the cluster was not ready within 5 s: node {}: {NOT_REGISTERED}; deployment kube-system/coredns: 1/2 ready",
                workers[0]
            )
        );
        // Not every node registered: nobody was labelled yet.
        assert!(
            kube.nodes().await.unwrap().iter().all(|n| n.metadata.labels.as_ref().is_none_or(|l| !l.contains_key(CONTROL_PLANE_LABEL)))
        );
    }

    // It says how long the controller-manager took to lead, for whoever reads the output.
    #[allow(clippy::print_stderr)]
    #[tokio::test(flavor = "multi_thread")]
    async fn a_leader_that_renews_its_lease_leads_and_one_that_is_gone_is_named() {
        let Some(api) = LoopbackApi::start().await else { return };
        let kube = api.kube().await;
        // The real controller-manager holds its Lease and renews it (every 2 s).
        let started = Instant::now();
        wait_leading(&kube, &["kube-controller-manager"], Duration::from_secs(60), |_| {}).await.unwrap();
        eprintln!("the controller-manager led after {:.1} s", started.elapsed().as_secs_f64());

        // A Lease whose holder is gone (written once, as by a master's old scheduler before
        // its restart), and one that does not exist: both named when the wait ends.
        api.lease("kube-scheduler", "master-1_gone").await;
        let heard = std::sync::Mutex::new(Vec::new());
        let err = wait_leading(&kube, &["kube-controller-manager", "kube-scheduler", "kube-nothing"], Duration::from_secs(5), |w| {
            heard.lock().unwrap().push(w.to_vec())
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "the cluster was not ready within 5 s: lease kube-system/kube-scheduler: held by master-1_gone, not renewed since 20"
            ),
            "{err}"
        );
        assert!(err.ends_with("; lease kube-system/kube-nothing: none yet"), "{err}");
        assert!(!err.contains("kube-controller-manager"), "the live leader is not named: {err}");
        assert!(heard.lock().unwrap().len() >= 2, "progress after each look");

        // A new holder takes the Lease over during the wait: it leads.
        let renew = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            api.lease("kube-scheduler", "master-1_new").await;
        };
        let (led, ()) = tokio::join!(wait_leading(&kube, &["kube-scheduler"], Duration::from_secs(20), |_| {}), renew);
        led.unwrap();
    }
}
