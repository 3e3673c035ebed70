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
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::fake::{FakeKube, pod_on as on};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[tokio::test(start_paused = true)]
    async fn drain_evicts_what_would_be_rescheduled_waits_for_it_and_deletes_the_node_object() {
        let kube = FakeKube::serving(&["master-1"], &["worker-1", "worker-2"], "v1.37.2");
        {
            let mut st = kube.state();
            let pods = st.pods.entry("default".into()).or_default();
            pods.push(on("worker-2", "default", "web-1", Some("ReplicaSet")));
            pods.push(on("worker-2", "default", "lonely", None));
            pods.push(on("worker-1", "default", "web-2", Some("ReplicaSet")));
            let mut done = on("worker-2", "default", "job-1", Some("Job"));
            done.status.as_mut().unwrap().phase = Some("Succeeded".into());
            pods.push(done);
            st.pods.entry("kube-system".into()).or_default().push(on("worker-2", "kube-system", "agent-x", Some("DaemonSet")));
            let mut mirror = on("worker-2", "kube-system", "static-worker-2", Some("Node"));
            mirror.metadata.annotations = Some([(MIRROR.to_string(), "abc".to_string())].into());
            st.pods.get_mut("kube-system").unwrap().push(mirror);
            // A disruption budget refuses web-1's first two evictions.
            st.refuse_evictions.insert("default/web-1".into(), 2);
        }
        let heard = std::sync::Mutex::new(Vec::new());
        let drained = drain(&kube, "worker-2", Duration::from_secs(60), |w| heard.lock().unwrap().push(w.to_string())).await.unwrap();
        assert_eq!(drained.evicted, ["default/lonely", "default/web-1"]);
        assert_eq!(drained.unmanaged, ["default/lonely"]);
        assert_eq!(
            drained.left,
            ["default/job-1 (finished)", "kube-system/agent-x (DaemonSet)", "kube-system/static-worker-2 (static pod)"]
        );
        let st = kube.state();
        assert_eq!(st.cordoned, ["worker-2"]);
        assert!(st.nodes.iter().all(|n| n.metadata.name.as_deref() != Some("worker-2")), "the Node object is deleted");
        assert!(st.pods["default"].iter().any(|p| p.metadata.name.as_deref() == Some("web-2")), "other nodes' pods stay");
        let heard = heard.lock().unwrap();
        assert!(
            heard[0].contains("default/web-1 (eviction refused: Cannot evict pod as it would violate the pod's disruption budget.)"),
            "{heard:?}"
        );
        assert_eq!(
            drained.to_string(),
            "worker-2: cordoned, 2 pod(s) evicted (1 owned by no controller, not recreated: default/lonely), 3 left with the node, Node object deleted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn evicting_for_an_upgrade_keeps_the_node_object_cordoned_until_scheduled_again() {
        let kube = FakeKube::serving(&["master-1"], &["worker-1"], "v1.36.3");
        kube.state().pods.entry("default".into()).or_default().push(on("worker-1", "default", "web-1", Some("ReplicaSet")));
        kube.schedule("worker-1", true, "kos.dev/mark", Some("v1.37.2")).await.unwrap();
        let drained = evict_all(&kube, "worker-1", Duration::from_secs(30), |_| ()).await.unwrap();
        assert_eq!((drained.evicted.as_slice(), drained.deleted), (["default/web-1".to_string()].as_slice(), false));
        assert_eq!(drained.to_string(), "worker-1: cordoned, 1 pod(s) evicted");
        let node = |kube: &FakeKube| kube.state().nodes.iter().find(|n| n.metadata.name.as_deref() == Some("worker-1")).cloned().unwrap();
        let n = node(&kube);
        assert_eq!(n.spec.as_ref().and_then(|s| s.unschedulable), Some(true));
        assert_eq!(n.metadata.annotations.as_ref().and_then(|a| a.get("kos.dev/mark")).map(String::as_str), Some("v1.37.2"));
        kube.schedule("worker-1", false, "kos.dev/mark", None).await.unwrap();
        let n = node(&kube);
        assert_eq!(n.spec.as_ref().and_then(|s| s.unschedulable), Some(false));
        assert!(n.metadata.annotations.as_ref().is_none_or(|a| !a.contains_key("kos.dev/mark")), "the mark goes with the cordon");
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_that_cannot_finish_names_the_pod_and_keeps_the_node_object() {
        let kube = FakeKube::serving(&["master-1"], &["worker-1"], "v1.37.2");
        {
            let mut st = kube.state();
            st.pods.entry("default".into()).or_default().push(on("worker-1", "default", "db-0", Some("StatefulSet")));
            st.refuse_evictions.insert("default/db-0".into(), usize::MAX);
        }
        let e = drain(&kube, "worker-1", Duration::from_secs(30), |_| ()).await.unwrap_err().to_string();
        assert_eq!(
            e,
            "worker-1 was not drained within 30 s: default/db-0 (eviction refused: Cannot evict pod as it would violate the pod's disruption budget.)"
        );
        assert!(kube.state().nodes.iter().any(|n| n.metadata.name.as_deref() == Some("worker-1")));
        // No Node object: nothing to do.
        let none = drain(&kube, "worker-9", Duration::from_secs(30), |_| ()).await.unwrap();
        assert!(!none.registered);
        assert_eq!(none.to_string(), "worker-9: no Node object (nothing to drain)");
    }

    #[tokio::test(start_paused = true)]
    async fn on_a_node_whose_kubelet_is_not_ready_pods_are_deleted_and_not_waited_for() {
        let kube = FakeKube::serving(&["master-1"], &["worker-1"], "v1.37.2");
        {
            let mut st = kube.state();
            let mut stuck = on("worker-1", "default", "slow", Some("ReplicaSet"));
            stuck.metadata.deletion_timestamp = Some(Time(Default::default()));
            st.pods.entry("default".into()).or_default().push(stuck);
        }
        let e = drain(&kube, "worker-1", Duration::from_secs(10), |_| ()).await.unwrap_err().to_string();
        assert!(e.ends_with("default/slow (terminating)"), "{e}");
        // Its kubelet gone, no one would end it: the Node object goes and the API server collects it.
        kube.state().nodes.iter_mut().for_each(|n| {
            if n.metadata.name.as_deref() == Some("worker-1") {
                n.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "Unknown".into();
            }
        });
        // And a pod a budget guards is deleted, not evicted: it no longer runs anyway.
        kube.state().pods.get_mut("default").unwrap().push(on("worker-1", "default", "guarded", Some("ReplicaSet")));
        kube.state().refuse_evictions.insert("default/guarded".into(), usize::MAX);
        let drained = drain(&kube, "worker-1", Duration::from_secs(10), |_| ()).await.unwrap();
        assert!(drained.registered && drained.evicted == ["default/guarded"], "{drained:?}");
        let st = kube.state();
        assert_eq!((st.deleted_pods.clone(), st.evicted.len()), (vec!["default/guarded".to_string()], 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pod_evicted_and_finished_since_is_not_listed_as_left_with_the_node() {
        let kube = FakeKube::serving(&["master-1"], &["worker-1"], "v1.37.2");
        {
            let mut st = kube.state();
            st.evicted_finish = true;
            st.pods.entry("default".into()).or_default().push(on("worker-1", "default", "bare", None));
        }
        let drained = drain(&kube, "worker-1", Duration::from_secs(30), |_| ()).await.unwrap();
        assert_eq!((drained.evicted.as_slice(), drained.left.as_slice()), (["default/bare".to_string()].as_slice(), [].as_slice()));
    }
}
