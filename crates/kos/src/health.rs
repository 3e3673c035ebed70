//! The cluster as the API server sees it: every node registered and Ready (with its kubelet
//! version), every control-plane pod of every master Ready, CoreDNS Ready. `kos up` waits
//! for it (bounded, naming what is missing); `kos status` prints it.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;
use kos_core::plan::ClusterPlan;
use kos_core::settings::Role;
use std::time::Duration;
use tokio::time::Instant;

/// The static pods of a master, as their mirror pods are named (`<component>-<node>`).
pub const CONTROL_PLANE: [&str; 4] = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"];

/// The label kubeadm gives control-plane nodes; a kubelet may not set it on itself
/// (NodeRestriction), so kos does, through the API.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// Why a node is not ready when the API server has no Node object for it.
const NOT_REGISTERED: &str = "not registered (its kubelet has not reached the API server)";

/// One thing the cluster is made of, and whether it is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
pub async fn look(client: &Client, plan: &ClusterPlan, with_dns: bool) -> Result<Vec<Item>, String> {
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await.map_err(|e| format!("cannot list nodes: {e}"))?;
    let pods = Api::<Pod>::namespaced(client.clone(), "kube-system")
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("cannot list pods: {e}"))?;
    let mut items = Vec::new();
    for n in &plan.nodes {
        let node = nodes.items.iter().find(|x| x.metadata.name.as_deref() == Some(&n.name));
        items.push(node_item(&n.name, node));
    }
    for m in plan.nodes.iter().filter(|n| n.role == Role::Master) {
        for c in CONTROL_PLANE {
            let name = format!("{c}-{}", m.name);
            let pod = pods.items.iter().find(|p| p.metadata.name.as_deref() == Some(&name));
            items.push(pod_item(&format!("pod kube-system/{name}"), pod));
        }
    }
    if with_dns {
        let d = Api::<Deployment>::namespaced(client.clone(), "kube-system").get_opt("coredns").await.map_err(|e| format!("cannot read the CoreDNS deployment: {e}"))?;
        items.push(deployment_item(d.as_ref(), &pods.items));
    }
    Ok(items)
}

fn node_item(name: &str, node: Option<&Node>) -> Item {
    let what = format!("node {name}");
    let Some(node) = node else {
        return Item { what, ready: false, detail: NOT_REGISTERED.into(), node: Some(NodeSeen { registered: false, version: String::new() }) };
    };
    let status = node.status.as_ref();
    let version = status.and_then(|s| s.node_info.as_ref()).map_or(String::new(), |i| i.kubelet_version.clone());
    let ready = status.and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let seen = Some(NodeSeen { registered: true, version: version.clone() });
    match ready {
        Some(c) if c.status == "True" => Item { what, ready: true, detail: format!("Ready {version}"), node: seen },
        Some(c) => Item { what, ready: false, detail: format!("NotReady {version}: {}", c.message.clone().unwrap_or_default()), node: seen },
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
            return Some(format!("{}: terminated ({}) {}", c.name, t.reason.clone().unwrap_or_default(), t.message.clone().unwrap_or_default()));
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
    Item { what, ready: false, detail: format!("{have}/{want} ready{}", stuck.map(|i| format!("; {}: {}", i.what, i.detail)).unwrap_or_default()), node: None }
}

/// Label every master `node-role.kubernetes.io/control-plane` (kubectl's ROLES column and
/// node selectors rely on it); returns the nodes labelled now.
pub async fn label_masters(client: &Client, plan: &ClusterPlan) -> Result<Vec<String>, String> {
    let api = Api::<Node>::all(client.clone());
    let mut done = Vec::new();
    for m in plan.nodes.iter().filter(|n| n.role == Role::Master) {
        let Some(node) = api.get_opt(&m.name).await.map_err(|e| format!("cannot read node {}: {e}", m.name))? else { continue };
        if node.metadata.labels.as_ref().is_some_and(|l| l.contains_key(CONTROL_PLANE_LABEL)) {
            continue;
        }
        let patch = serde_json::json!({"metadata": {"labels": {CONTROL_PLANE_LABEL: ""}}});
        api.patch(&m.name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|e| format!("cannot label node {}: {e}", m.name))?;
        done.push(m.name.clone());
    }
    Ok(done)
}

/// Wait, at most `wait`, until every item is ready; on a timeout the error names each
/// one that is not, with its reason. `progress` hears what is still missing after each look.
pub async fn wait_ready(client: &Client, plan: &ClusterPlan, with_dns: bool, wait: Duration, progress: impl Fn(&[Item])) -> Result<Vec<Item>, String> {
    let deadline = Instant::now() + wait;
    let mut labelled = false;
    loop {
        let items = match look(client, plan, with_dns).await {
            Ok(items) => items,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        // Once every node is registered, the masters get their role label (once).
        if !labelled && items.iter().filter_map(|i| i.node.as_ref()).all(|n| n.registered) {
            labelled = label_masters(client, plan).await.is_ok();
        }
        let missing: Vec<Item> = items.iter().filter(|i| !i.ready).cloned().collect();
        if missing.is_empty() {
            return Ok(items);
        }
        progress(&missing);
        if Instant::now() >= deadline {
            let lines: Vec<String> = missing.iter().map(|i| format!("{}: {}", i.what, i.detail)).collect();
            return Err(format!("the cluster was not ready within {} s: {}", wait.as_secs(), lines.join("; ")));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
