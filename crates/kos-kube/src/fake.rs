//! An in-memory stand-in for an API server, for the pipeline's unit tests only, until they
//! move to the real one on loopback (`crate::loopback`, which this crate's own tests use;
//! the end-to-end tests use a real cluster). It keeps the objects applied to it, compares
//! an apply with what it holds (created, configured or unchanged, as the real server's
//! resourceVersion would say), and answers reads from the nodes, pods and deployments a
//! test gives it.

use crate::apply::{Object, Outcome};
use crate::{Connect, Eviction, KubeApi, KubeError, Lease};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus};
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus, NodeSystemInfo, Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What the fake server holds.
#[derive(Debug, Default)]
pub struct FakeKubeState {
    /// `GET /readyz`: `None` answers `ok`, else the reason it is not ready.
    pub not_ready: Option<String>,
    /// Applied objects by `Kind namespace/name`, as applied.
    pub objects: BTreeMap<String, serde_json::Value>,
    /// Every apply in order (`Kind namespace/name`).
    pub applies: Vec<String>,
    pub nodes: Vec<Node>,
    /// Pods by namespace.
    pub pods: BTreeMap<String, Vec<Pod>>,
    /// Deployments by `namespace/name`.
    pub deployments: BTreeMap<String, Deployment>,
    /// How many times [`Connect::connect`] was asked.
    pub connects: usize,
    /// Nodes cordoned, in order.
    pub cordoned: Vec<String>,
    /// Pods (`namespace/name`) whose next evictions are refused, as a disruption budget
    /// would, and how many times.
    pub refuse_evictions: BTreeMap<String, usize>,
    /// Evictions accepted, in order (`namespace/name`); the pod is gone at once, unless
    /// `evicted_finish`.
    pub evicted: Vec<String>,
    /// An evicted pod stays, Failed, as a bare pod's does once its kubelet has stopped it.
    pub evicted_finish: bool,
    /// `GET /version`'s gitVersion (`v1.37.2`); empty: the version of the first node.
    pub version: String,
    /// Node objects deleted, in order.
    pub deleted_nodes: Vec<String>,
    /// Pods deleted (not evicted), in order (`namespace/name`).
    pub deleted_pods: Vec<String>,
    /// Leases read, in order (`namespace/name`). Every Lease has a live holder: renewed
    /// between any two reads.
    pub leases_read: Vec<String>,
}

/// The double; clones share one state.
#[derive(Debug, Clone, Default)]
pub struct FakeKube {
    state: Arc<Mutex<FakeKubeState>>,
}

impl FakeKube {
    pub fn new() -> FakeKube {
        FakeKube::default()
    }

    /// The state, to arrange or to look at.
    pub fn state(&self) -> MutexGuard<'_, FakeKubeState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What a healthy cluster shows: every node named registered and Ready at `version`,
    /// each master's four control-plane pods Ready, CoreDNS 2/2.
    pub fn serving(masters: &[&str], workers: &[&str], version: &str) -> FakeKube {
        let fake = FakeKube::new();
        {
            let mut st = fake.state();
            for n in masters.iter().chain(workers) {
                st.nodes.push(ready_node(n, version));
            }
            let pods = st.pods.entry("kube-system".into()).or_default();
            for m in masters {
                for c in crate::health::CONTROL_PLANE {
                    pods.push(ready_pod(&format!("{c}-{m}")));
                }
            }
            st.deployments.insert("kube-system/coredns".into(), ready_deployment("coredns", 2));
        }
        fake
    }
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), ..Default::default() }
}

/// A registered node whose Ready condition is True.
pub fn ready_node(name: &str, version: &str) -> Node {
    let ready = NodeCondition { type_: "Ready".into(), status: "True".into(), ..Default::default() };
    let info = NodeSystemInfo { kubelet_version: version.into(), ..Default::default() };
    Node {
        metadata: meta(name),
        status: Some(NodeStatus { conditions: Some(vec![ready]), node_info: Some(info), ..Default::default() }),
        ..Default::default()
    }
}

/// A pod whose Ready condition is True.
pub fn ready_pod(name: &str) -> Pod {
    let ready = PodCondition { type_: "Ready".into(), status: "True".into(), ..Default::default() };
    Pod {
        metadata: meta(name),
        status: Some(PodStatus { phase: Some("Running".into()), conditions: Some(vec![ready]), ..Default::default() }),
        ..Default::default()
    }
}

/// A running pod of `namespace` bound to `node`, controlled by an object of kind `owner`
/// (`ReplicaSet`, `DaemonSet`, ...) or by nothing.
pub fn pod_on(node: &str, namespace: &str, name: &str, owner: Option<&str>) -> Pod {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    let mut pod = ready_pod(name);
    pod.metadata.namespace = Some(namespace.into());
    pod.spec = Some(k8s_openapi::api::core::v1::PodSpec { node_name: Some(node.into()), ..Default::default() });
    pod.metadata.owner_references =
        owner.map(|kind| vec![OwnerReference { kind: kind.into(), name: "owner".into(), controller: Some(true), ..Default::default() }]);
    pod
}

/// A deployment with all its `replicas` ready.
pub fn ready_deployment(name: &str, replicas: i32) -> Deployment {
    Deployment {
        metadata: meta(name),
        spec: DeploymentSpec { replicas: Some(replicas), ..Default::default() },
        status: Some(DeploymentStatus { ready_replicas: Some(replicas), ..Default::default() }),
    }
}

impl Connect for FakeKube {
    type Api = FakeKube;

    async fn connect(&self, _kubeconfig: &str, wait: Duration) -> Result<FakeKube, KubeError> {
        let mut st = self.state();
        st.connects += 1;
        match &st.not_ready {
            None => Ok(self.clone()),
            Some(last) => Err(KubeError::NotReady { server: self.server().into(), waited: wait, last: last.clone() }),
        }
    }
}

impl KubeApi for FakeKube {
    fn server(&self) -> &str {
        "https://fake-kube.invalid:6443"
    }

    async fn version(&self) -> Result<String, String> {
        let st = self.state();
        if !st.version.is_empty() {
            return Ok(st.version.clone());
        }
        let first = st.nodes.first().and_then(|n| n.status.as_ref()?.node_info.as_ref()).map(|i| i.kubelet_version.clone());
        first.ok_or_else(|| "no version".to_string())
    }

    async fn ready(&self) -> Result<(), String> {
        self.state().not_ready.clone().map_or(Ok(()), Err)
    }

    async fn apply(&self, object: &Object) -> Result<Outcome, String> {
        let key = object.describe();
        let value = serde_json::to_value(&object.object).map_err(|e| e.to_string())?;
        let mut st = self.state();
        st.applies.push(key.clone());
        Ok(match st.objects.insert(key, value.clone()) {
            None => Outcome::Created,
            Some(old) if old == value => Outcome::Unchanged,
            Some(_) => Outcome::Configured,
        })
    }

    async fn would_apply(&self, object: &Object) -> Result<Outcome, String> {
        let value = serde_json::to_value(&object.object).map_err(|e| e.to_string())?;
        Ok(match self.state().objects.get(&object.describe()) {
            None => Outcome::Created,
            Some(old) if *old == value => Outcome::Unchanged,
            Some(_) => Outcome::Configured,
        })
    }

    async fn nodes(&self) -> Result<Vec<Node>, String> {
        Ok(self.state().nodes.clone())
    }

    async fn pods(&self, namespace: &str) -> Result<Vec<Pod>, String> {
        Ok(self.state().pods.get(namespace).cloned().unwrap_or_default())
    }

    async fn deployment(&self, namespace: &str, name: &str) -> Result<Option<Deployment>, String> {
        Ok(self.state().deployments.get(&format!("{namespace}/{name}")).cloned())
    }

    async fn label_node(&self, node: &str, key: &str, value: &str) -> Result<(), String> {
        let mut st = self.state();
        let n = st.nodes.iter_mut().find(|n| n.metadata.name.as_deref() == Some(node)).ok_or(format!("nodes \"{node}\" not found"))?;
        n.metadata.labels.get_or_insert_with(Default::default).insert(key.into(), value.into());
        Ok(())
    }

    async fn cordon(&self, node: &str) -> Result<(), String> {
        let mut st = self.state();
        let n = st.nodes.iter_mut().find(|n| n.metadata.name.as_deref() == Some(node)).ok_or(format!("nodes \"{node}\" not found"))?;
        n.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
        st.cordoned.push(node.into());
        Ok(())
    }

    async fn schedule(&self, node: &str, unschedulable: bool, key: &str, value: Option<&str>) -> Result<(), String> {
        let mut st = self.state();
        let n = st.nodes.iter_mut().find(|n| n.metadata.name.as_deref() == Some(node)).ok_or(format!("nodes \"{node}\" not found"))?;
        n.spec.get_or_insert_with(Default::default).unschedulable = Some(unschedulable);
        let notes = n.metadata.annotations.get_or_insert_with(Default::default);
        match value {
            Some(v) => drop(notes.insert(key.into(), v.into())),
            None => drop(notes.remove(key)),
        }
        if unschedulable {
            st.cordoned.push(node.into());
        }
        Ok(())
    }

    async fn pods_on(&self, node: &str) -> Result<Vec<Pod>, String> {
        let st = self.state();
        let on = |p: &&Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node);
        Ok(st.pods.values().flatten().filter(on).cloned().collect())
    }

    async fn evict(&self, namespace: &str, pod: &str) -> Result<Eviction, String> {
        let mut st = self.state();
        let key = format!("{namespace}/{pod}");
        if let Some(left) = st.refuse_evictions.get_mut(&key)
            && *left > 0
        {
            *left -= 1;
            return Ok(Eviction::Refused("Cannot evict pod as it would violate the pod's disruption budget.".into()));
        }
        let finish = st.evicted_finish;
        let Some(pods) = st.pods.get_mut(namespace) else { return Ok(Eviction::Gone) };
        let Some(i) = pods.iter().position(|p| p.metadata.name.as_deref() == Some(pod)) else { return Ok(Eviction::Gone) };
        let is_running = pods[i].status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        match (finish, is_running) {
            (true, true) => pods[i].status.get_or_insert_with(Default::default).phase = Some("Failed".into()),
            (true, false) => return Ok(Eviction::Gone),
            (false, _) => drop(pods.remove(i)),
        }
        st.evicted.push(key);
        Ok(Eviction::Accepted)
    }

    async fn delete_pod(&self, namespace: &str, pod: &str) -> Result<bool, String> {
        let mut st = self.state();
        let Some(pods) = st.pods.get_mut(namespace) else { return Ok(false) };
        let before = pods.len();
        pods.retain(|p| p.metadata.name.as_deref() != Some(pod));
        let deleted = pods.len() < before;
        if deleted {
            st.deleted_pods.push(format!("{namespace}/{pod}"));
        }
        Ok(deleted)
    }

    async fn delete_node(&self, node: &str) -> Result<bool, String> {
        let mut st = self.state();
        let before = st.nodes.len();
        st.nodes.retain(|n| n.metadata.name.as_deref() != Some(node));
        let deleted = st.nodes.len() < before;
        if deleted {
            st.deleted_nodes.push(node.into());
        }
        Ok(deleted)
    }

    async fn lease(&self, namespace: &str, name: &str) -> Result<Option<Lease>, String> {
        use k8s_openapi::api::coordination::v1::LeaseSpec;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
        let mut st = self.state();
        st.leases_read.push(format!("{namespace}/{name}"));
        let renewed = k8s_openapi::jiff::Timestamp::from_second(st.leases_read.len() as i64).map_err(|e| e.to_string())?;
        let spec = LeaseSpec { holder_identity: Some("master-1_fake".into()), renew_time: Some(MicroTime(renewed)), ..Default::default() };
        Ok(Some(Lease { metadata: meta(name), spec: Some(spec) }))
    }
}
