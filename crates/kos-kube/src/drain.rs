//! A node leaving the cluster, as `kubectl drain` and then `kubectl delete node` would do
//! it: cordoned, each of its pods evicted through the eviction subresource (so the pods'
//! disruption budgets decide, and a refused eviction is asked again), waited for until they
//! are gone, at most a bounded time that names the pod that blocks; then its Node object
//! deleted.
//!
//! A pod stays with its node when draining it would do nothing: a DaemonSet's (its controller
//! ignores `unschedulable` and the pod goes with the Node object), a static pod's mirror (the
//! kubelet owns it), a finished pod. A pod no controller owns is evicted all the same, as the
//! server holding it is about to go, and is named in the outcome: nothing recreates it.
//! On a node whose kubelet is not Ready (a lost or broken server) the pods no longer run:
//! they are deleted rather than evicted (a disruption budget counts them unhealthy already and
//! would refuse their eviction for ever, as `kubectl drain` then waits), and not waited for, as
//! no kubelet will confirm their end; deleting the Node object lets the API server collect them.

use crate::{Eviction, KubeApi, KubeError};
use k8s_openapi::api::core::v1::{Node, Pod};
use std::time::Duration;
use tokio::time::Instant;

/// Pause between looks at the node's pods.
const POLL: Duration = Duration::from_secs(2);

/// The annotation the kubelet puts on a static pod's mirror.
const MIRROR: &str = "kubernetes.io/config.mirror";

/// What draining one node did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Drained {
    pub node: String,
    /// The API server had a Node object for it (and now has none).
    pub registered: bool,
    /// Pods evicted, `namespace/name`.
    pub evicted: Vec<String>,
    /// Of those, the ones no controller owns: nothing recreates them.
    pub unmanaged: Vec<String>,
    /// Pods that went with the node: `namespace/name (why)`.
    pub left: Vec<String>,
    /// Its Node object was deleted (a node leaving; one drained for an upgrade stays).
    pub deleted: bool,
}

impl Drained {
    /// `pod` (`key`) was evicted or deleted: recorded once, and among the unmanaged when no
    /// controller owns it.
    fn took(&mut self, key: String, pod: &Pod) {
        if self.evicted.contains(&key) {
            return;
        }
        if owner(pod).is_none() {
            self.unmanaged.push(key.clone());
        }
        self.evicted.push(key);
    }
}

impl std::fmt::Display for Drained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.registered {
            return write!(f, "{}: no Node object (nothing to drain)", self.node);
        }
        write!(f, "{}: cordoned, {} pod(s) evicted", self.node, self.evicted.len())?;
        if !self.unmanaged.is_empty() {
            write!(f, " ({} owned by no controller, not recreated: {})", self.unmanaged.len(), self.unmanaged.join(", "))?;
        }
        if !self.left.is_empty() {
            write!(f, ", {} left with the node", self.left.len())?;
        }
        if self.deleted {
            write!(f, ", Node object deleted")?;
        }
        Ok(())
    }
}

/// Why a pod is not evicted.
fn stays(pod: &Pod) -> Option<&'static str> {
    if pod.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(MIRROR)) {
        return Some("static pod");
    }
    if owner(pod) == Some("DaemonSet") {
        return Some("DaemonSet");
    }
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Succeeded" | "Failed") => Some("finished"),
        _ => None,
    }
}

fn owner(pod: &Pod) -> Option<&str> {
    pod.metadata.owner_references.as_ref()?.iter().find(|o| o.controller == Some(true)).map(|o| o.kind.as_str())
}

fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or("default"), pod.metadata.name.as_deref().unwrap_or(""))
}

fn is_ready(node: &Node) -> bool {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Drain `node` and delete its Node object, waiting at most `wait` for its pods to go;
/// `progress` hears what is still waited for. Nothing is deleted when the wait runs out.
pub async fn drain<K: KubeApi>(api: &K, node: &str, wait: Duration, progress: impl Fn(&str)) -> Result<Drained, KubeError> {
    let mut drained = evict_all(api, node, wait, progress).await?;
    if drained.registered {
        api.delete_node(node).await.map_err(|e| KubeError::Read(format!("cannot delete its Node object to drain {node}: {e}")))?;
        drained.deleted = true;
    }
    Ok(drained)
}

/// Cordon `node` and evict its pods as [`drain`] does, waiting at most `wait` for them to
/// go; its Node object stays (cordoned: [`KubeApi::schedule`] takes it back).
pub async fn evict_all<K: KubeApi>(api: &K, node: &str, wait: Duration, progress: impl Fn(&str)) -> Result<Drained, KubeError> {
    let read = |what: &str, e: String| KubeError::Read(format!("cannot {what} to drain {node}: {e}"));
    let nodes = api.nodes().await.map_err(|e| read("list the nodes", e))?;
    let mut drained = Drained { node: node.to_string(), ..Drained::default() };
    let Some(found) = nodes.iter().find(|n| n.metadata.name.as_deref() == Some(node)) else {
        return Ok(drained);
    };
    drained.registered = true;
    let mut kubelet_ready = is_ready(found);
    api.cordon(node).await.map_err(|e| read("cordon it", e))?;
    let deadline = Instant::now() + wait;
    loop {
        let pods = api.pods_on(node).await.map_err(|e| read("list its pods", e))?;
        let mut waiting = Vec::new();
        for pod in &pods {
            let k = key(pod);
            if let Some(why) = stays(pod) {
                let line = format!("{k} ({why})");
                // An evicted pod that has finished since is not one left behind.
                if !drained.evicted.contains(&k) && !drained.left.contains(&line) {
                    drained.left.push(line);
                }
                continue;
            }
            if pod.metadata.deletion_timestamp.is_some() {
                if kubelet_ready {
                    waiting.push(format!("{k} (terminating)"));
                }
                continue;
            }
            let (ns, name) = (pod.metadata.namespace.as_deref().unwrap_or("default"), pod.metadata.name.as_deref().unwrap_or(""));
            if !kubelet_ready {
                if api.delete_pod(ns, name).await.map_err(|e| read(&format!("delete {k}"), e))? {
                    drained.took(k, pod);
                }
                continue;
            }
            match api.evict(ns, name).await.map_err(|e| read(&format!("evict {k}"), e))? {
                Eviction::Accepted => {
                    waiting.push(format!("{k} (evicted, terminating)"));
                    drained.took(k, pod);
                }
                Eviction::Gone => {}
                Eviction::Refused(why) => waiting.push(format!("{k} (eviction refused: {why})")),
            }
        }
        if waiting.is_empty() {
            break;
        }
        if Instant::now() + POLL > deadline {
            return Err(KubeError::NotDrained { node: node.to_string(), waited: wait, pods: waiting });
        }
        progress(&waiting.join(", "));
        tokio::time::sleep(POLL).await;
        // A server lost just now still shows Ready until the node controller's grace is over.
        let nodes = api.nodes().await.map_err(|e| read("list the nodes", e))?;
        kubelet_ready = nodes.iter().find(|n| n.metadata.name.as_deref() == Some(node)).is_some_and(is_ready);
    }
    drained.left.sort();
    Ok(drained)
}

#[cfg(test)]
mod tests {
    //! Against a real API server on loopback ([`crate::loopback`]): real evictions, real
    //! disruption budgets counted by the real disruption controller. There is no kubelet:
    //! the test registers the nodes and writes their pods' status as a kubelet would.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::loopback::LoopbackApi;
    use std::sync::{Arc, Mutex};

    /// The eviction API's own words when a disruption budget refuses.
    const REFUSED: &str = "eviction refused: Cannot evict pod as it would violate the pod's disruption budget.";

    #[tokio::test(flavor = "multi_thread")]
    async fn drain_evicts_what_would_be_rescheduled_waits_for_it_and_deletes_the_node_object() {
        let Some(api) = LoopbackApi::start().await else { return };
        api.serving(&["master-1"], &["worker-1", "worker-2"], "v1.37.2").await;
        api.pod_on("worker-2", "default", "web-1", Some("ReplicaSet")).await;
        api.pod_on("worker-2", "default", "lonely", None).await;
        api.pod_on("worker-1", "default", "web-2", Some("ReplicaSet")).await;
        api.pod_on("worker-2", "default", "job-1", Some("Job")).await;
        api.pod_status("default", "job-1", "Succeeded").await;
        api.pod_on("worker-2", "kube-system", "agent-x", Some("DaemonSet")).await;
        api.mirror_pod_on("worker-2", "kube-system", "static-worker-2").await;
        // A disruption budget refuses web-1's eviction until it is taken away, once refused.
        api.budget("default", "web-1").await;
        let heard = Arc::new(Mutex::new(Vec::<String>::new()));
        let relaxed = tokio::spawn({
            let (heard, client) = (heard.clone(), api.client());
            async move {
                while !heard.lock().unwrap().iter().any(|h| h.contains(REFUSED)) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let budgets: kube::Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> = kube::Api::namespaced(client, "default");
                budgets.delete("web-1", &Default::default()).await.unwrap();
            }
        });
        let kube = api.kube().await;
        let drained = drain(&kube, "worker-2", Duration::from_secs(60), |w| heard.lock().unwrap().push(w.to_string())).await.unwrap();
        relaxed.await.unwrap();
        assert_eq!(drained.evicted, ["default/lonely", "default/web-1"]);
        assert_eq!(drained.unmanaged, ["default/lonely"]);
        assert_eq!(
            drained.left,
            ["default/job-1 (finished)", "kube-system/agent-x (DaemonSet)", "kube-system/static-worker-2 (static pod)"]
        );
        assert!(api.node_object("worker-2").await.is_none(), "the Node object is deleted");
        assert!(api.pod("default", "web-1").await.is_none() && api.pod("default", "lonely").await.is_none(), "evicted");
        assert!(api.pod("default", "web-2").await.is_some(), "other nodes' pods stay");
        let heard = heard.lock().unwrap();
        assert!(heard[0].contains(&format!("default/web-1 ({REFUSED}")), "{heard:?}");
        assert_eq!(
            drained.to_string(),
            "worker-2: cordoned, 2 pod(s) evicted (1 owned by no controller, not recreated: default/lonely), 3 left with the node, Node object deleted"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn evicting_for_an_upgrade_keeps_the_node_object_cordoned_until_scheduled_again() {
        let Some(api) = LoopbackApi::start().await else { return };
        api.serving(&["master-1"], &["worker-1"], "v1.36.3").await;
        api.pod_on("worker-1", "default", "web-1", Some("ReplicaSet")).await;
        let kube = api.kube().await;
        kube.schedule("worker-1", true, "kos.dev/mark", Some("v1.37.2")).await.unwrap();
        let drained = evict_all(&kube, "worker-1", Duration::from_secs(30), |_| ()).await.unwrap();
        assert_eq!((drained.evicted.as_slice(), drained.deleted), (["default/web-1".to_string()].as_slice(), false));
        assert_eq!(drained.to_string(), "worker-1: cordoned, 1 pod(s) evicted");
        let n = api.node_object("worker-1").await.unwrap();
        assert_eq!(n.spec.as_ref().and_then(|s| s.unschedulable), Some(true));
        assert_eq!(n.metadata.annotations.as_ref().and_then(|a| a.get("kos.dev/mark")).map(String::as_str), Some("v1.37.2"));
        kube.schedule("worker-1", false, "kos.dev/mark", None).await.unwrap();
        let n = api.node_object("worker-1").await.unwrap();
        assert_ne!(n.spec.as_ref().and_then(|s| s.unschedulable), Some(true));
        assert!(n.metadata.annotations.as_ref().is_none_or(|a| !a.contains_key("kos.dev/mark")), "the mark goes with the cordon");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_drain_that_cannot_finish_names_the_pod_and_keeps_the_node_object() {
        let Some(api) = LoopbackApi::start().await else { return };
        api.serving(&["master-1"], &["worker-1"], "v1.37.2").await;
        api.pod_on("worker-1", "default", "db-0", Some("StatefulSet")).await;
        api.budget("default", "db-0").await;
        let kube = api.kube().await;
        let e = drain(&kube, "worker-1", Duration::from_secs(5), |_| ()).await.unwrap_err().to_string();
        assert_eq!(e, format!("worker-1 was not drained within 5 s: default/db-0 ({REFUSED})"));
        assert!(api.node_object("worker-1").await.is_some());
        assert!(api.pod("default", "db-0").await.is_some());
        // No Node object: nothing to do.
        let none = drain(&kube, "worker-9", Duration::from_secs(5), |_| ()).await.unwrap();
        assert!(!none.registered);
        assert_eq!(none.to_string(), "worker-9: no Node object (nothing to drain)");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn on_a_node_whose_kubelet_is_not_ready_pods_are_deleted_and_not_waited_for() {
        let Some(api) = LoopbackApi::start().await else { return };
        api.serving(&["master-1"], &["worker-1"], "v1.37.2").await;
        // Deleted with an hour's grace, and no kubelet to end it: terminating for good.
        api.pod_with_grace("worker-1", "default", "slow", Some("ReplicaSet"), 3600).await;
        let pods: kube::Api<Pod> = kube::Api::namespaced(api.client(), "default");
        pods.delete("slow", &Default::default()).await.unwrap();
        let kube = api.kube().await;
        let e = drain(&kube, "worker-1", Duration::from_secs(5), |_| ()).await.unwrap_err().to_string();
        assert!(e.ends_with("default/slow (terminating)"), "{e}");
        // Its kubelet gone, no one would end it: the Node object goes and the API server collects it.
        api.node_ready("worker-1", "Unknown").await;
        // And a pod a budget guards is deleted, not evicted (the budget would refuse for
        // ever): it no longer runs anyway.
        api.pod_on("worker-1", "default", "guarded", Some("ReplicaSet")).await;
        api.budget("default", "guarded").await;
        let drained = drain(&kube, "worker-1", Duration::from_secs(5), |_| ()).await.unwrap();
        assert!(drained.registered && drained.evicted == ["default/guarded"], "{drained:?}");
        assert!(api.pod("default", "guarded").await.is_none(), "deleted");
        assert!(api.node_object("worker-1").await.is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_pod_evicted_and_finished_since_is_not_listed_as_left_with_the_node() {
        let Some(api) = LoopbackApi::start().await else { return };
        api.serving(&["master-1"], &["worker-1"], "v1.37.2").await;
        api.pod_with_grace("worker-1", "default", "bare", None, 30).await;
        // Playing its kubelet: once the eviction marked it for deletion, it stops it and
        // reports it Failed, where the pod then stays.
        let kubelet = tokio::spawn({
            let pods: kube::Api<Pod> = kube::Api::namespaced(api.client(), "default");
            async move {
                while pods.get("bare").await.unwrap().metadata.deletion_timestamp.is_none() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        let kube = api.kube().await;
        let drain = tokio::spawn(async move { drain(&kube, "worker-1", Duration::from_secs(30), |_| ()).await });
        kubelet.await.unwrap();
        api.pod_status("default", "bare", "Failed").await;
        let drained = drain.await.unwrap().unwrap();
        assert_eq!((drained.evicted.as_slice(), drained.left.as_slice()), (["default/bare".to_string()].as_slice(), [].as_slice()));
    }
}
