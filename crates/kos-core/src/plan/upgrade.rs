//! A rolling upgrade: what `kos up` does when the settings name another Kubernetes version
//! than the nodes run, and what it refuses.
//!
//! Upstream's version-skew policy decides what may run together: an API server one minor
//! ahead of another during an upgrade, kubelets and kube-proxies never newer than any API
//! server and at most three minors older, and minors upgraded one at a time. So kos goes
//! one minor at most per upgrade, never down a minor, the masters first (one at a time, each
//! healthy before the next), then the workers in bounded batches (drained, upgraded,
//! uncordoned, Ready before the next batch). A node already at the version is done: a run
//! killed half-way is finished by the next one, which starts where that one stopped.
//!
//! Pure: the nodes' versions come from the executor's probe.

use crate::settings::{KubeVersion, Role};
use std::fmt;

/// What one node runs, as its probe saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub node: String,
    pub role: Role,
    /// The installed kubelet's version; `None` on a node not provisioned yet.
    pub kubelet: Option<KubeVersion>,
    /// The API server its static pod runs (masters); `None` elsewhere or not yet.
    pub apiserver: Option<KubeVersion>,
}

impl Running {
    /// The oldest Kubernetes it runs, `None` on a new node.
    fn oldest(&self) -> Option<KubeVersion> {
        [self.kubelet, self.apiserver].into_iter().flatten().min()
    }

    fn newest(&self) -> Option<KubeVersion> {
        [self.kubelet, self.apiserver].into_iter().flatten().max()
    }
}

/// The steps of an upgrade, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The versions the cluster runs now (the nodes to upgrade), oldest first.
    pub from: Vec<KubeVersion>,
    pub to: KubeVersion,
    /// Masters to upgrade, one at a time, in the settings' order.
    pub masters: Vec<String>,
    /// Workers to upgrade, batch by batch.
    pub batches: Vec<Vec<String>>,
    /// Some node already runs `to`: an upgrade begun by an earlier run is being finished.
    pub resuming: bool,
}

impl Upgrade {
    /// How many workers are drained and upgraded at once: a quarter of them, at least one.
    pub fn batch_size(workers: usize) -> usize {
        (workers / 4).max(1)
    }

    fn versions_from(&self) -> String {
        self.from.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Upgrade {
    /// `1.36.3 → 1.37.2: masters one at a time (master-1), then workers in batches of 1 (worker-1; worker-2)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {}", self.versions_from(), self.to)?;
        if self.resuming {
            f.write_str(" (resumed: some nodes run it already)")?;
        }
        f.write_str(": ")?;
        let mut parts = Vec::new();
        if !self.masters.is_empty() {
            parts.push(format!("masters one at a time ({})", self.masters.join(", ")));
        }
        if !self.batches.is_empty() {
            let size = self.batches.iter().map(Vec::len).max().unwrap_or(1);
            let batches: Vec<String> = self.batches.iter().map(|b| b.join(", ")).collect();
            parts.push(format!("workers in batches of {size}, each drained first ({})", batches.join("; ")));
        }
        f.write_str(&parts.join(", then "))
    }
}

/// Why an upgrade is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "{node} runs Kubernetes {running}, newer than {wanted}: kos does not downgrade a minor (upstream does not support it; \
         an etcd snapshot made before the upgrade restores the old one)"
    )]
    Downgrade { node: String, running: KubeVersion, wanted: KubeVersion },
    #[error("{node} runs Kubernetes {running}: {wanted} skips a minor, which upstream's version-skew policy forbids")]
    SkipsMinor { node: String, running: KubeVersion, wanted: KubeVersion },
}

impl Refused {
    /// What to do instead.
    pub fn fix(&self) -> String {
        match self {
            Refused::Downgrade { running, .. } => format!("set `cluster.kubernetes_version: \"{running}\"` again"),
            Refused::SkipsMinor { running, wanted, .. } => format!(
                "upgrade to the newest 1.{}.x first (`cluster.kubernetes_version: \"1.{}.<patch>\"`, `kos up`), then to {wanted}",
                running.minor + 1,
                running.minor + 1
            ),
        }
    }
}

/// The upgrade `to` needs on these nodes (in the settings' order), `None` when every node
/// that runs Kubernetes runs `to` already. New nodes (no version) are not part of it: they
/// are provisioned at `to` like any new node, after the masters.
pub fn upgrade(to: KubeVersion, nodes: &[Running]) -> Result<Option<Upgrade>, Refused> {
    for n in nodes {
        if let Some(newest) = n.newest()
            && (newest.major, newest.minor) > (to.major, to.minor)
        {
            return Err(Refused::Downgrade { node: n.node.clone(), running: newest, wanted: to });
        }
        if let Some(oldest) = n.oldest()
            && (oldest.major != to.major || to.minor > oldest.minor + 1)
        {
            return Err(Refused::SkipsMinor { node: n.node.clone(), running: oldest, wanted: to });
        }
    }
    let differs = |n: &&Running| n.kubelet.is_some_and(|v| v != to) || n.apiserver.is_some_and(|v| v != to);
    let todo: Vec<&Running> = nodes.iter().filter(differs).collect();
    if todo.is_empty() {
        return Ok(None);
    }
    let mut from: Vec<KubeVersion> = todo.iter().filter_map(|n| n.oldest()).collect();
    from.sort();
    from.dedup();
    let masters: Vec<String> = todo.iter().filter(|n| n.role == Role::Master).map(|n| n.node.clone()).collect();
    let workers: Vec<String> = todo.iter().filter(|n| n.role == Role::Worker).map(|n| n.node.clone()).collect();
    let size = Upgrade::batch_size(nodes.iter().filter(|n| n.role == Role::Worker).count());
    let batches = workers.chunks(size).map(<[String]>::to_vec).collect();
    let resuming = nodes.iter().any(|n| n.kubelet == Some(to));
    Ok(Some(Upgrade { from, to, masters, batches, resuming }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn v(s: &str) -> KubeVersion {
        s.parse().unwrap()
    }

    fn node(name: &str, role: Role, kubelet: Option<&str>) -> Running {
        let apiserver = if role == Role::Master { kubelet.map(v) } else { None };
        Running { node: name.into(), role, kubelet: kubelet.map(v), apiserver }
    }

    fn cluster(versions: &[Option<&str>]) -> Vec<Running> {
        versions
            .iter()
            .enumerate()
            .map(|(i, ver)| match i {
                0 => node("master-1", Role::Master, *ver),
                _ => node(&format!("worker-{i}"), Role::Worker, *ver),
            })
            .collect()
    }

    #[test]
    fn a_minor_up_goes_masters_first_then_workers_in_batches() {
        let u = upgrade(v("1.37.2"), &cluster(&[Some("1.36.3"), Some("1.36.3"), Some("1.36.3")])).unwrap().unwrap();
        assert_eq!(u.from, [v("1.36.3")]);
        assert_eq!(u.masters, ["master-1"]);
        assert_eq!(u.batches, [vec!["worker-1".to_string()], vec!["worker-2".to_string()]]);
        assert!(!u.resuming);
        assert_eq!(
            u.to_string(),
            "1.36.3 → 1.37.2: masters one at a time (master-1), then workers in batches of 1, each drained first (worker-1; worker-2)"
        );
    }

    #[test]
    fn eight_workers_go_two_at_a_time() {
        let mut nodes = cluster(&[Some("1.36.3"); 9]);
        nodes[0].kubelet = Some(v("1.37.2"));
        nodes[0].apiserver = Some(v("1.37.2"));
        let u = upgrade(v("1.37.2"), &nodes).unwrap().unwrap();
        assert!(u.masters.is_empty(), "the master is done");
        assert_eq!(u.batches.len(), 4);
        assert!(u.batches.iter().all(|b| b.len() == 2));
        assert!(u.resuming);
    }

    #[test]
    fn a_killed_upgrade_resumes_where_it_stopped_and_new_nodes_are_not_part_of_it() {
        let u = upgrade(v("1.37.2"), &cluster(&[Some("1.37.2"), Some("1.37.2"), Some("1.36.3"), None])).unwrap().unwrap();
        assert!(u.masters.is_empty());
        assert_eq!(u.batches, [vec!["worker-2".to_string()]]);
        assert!(u.resuming);
        assert!(u.to_string().contains("(resumed: some nodes run it already)"), "{u}");
        // A master whose kubelet is new but whose API server is not is not done.
        let mut nodes = cluster(&[Some("1.37.2"), Some("1.36.3")]);
        nodes[0].apiserver = Some(v("1.36.3"));
        assert_eq!(upgrade(v("1.37.2"), &nodes).unwrap().unwrap().masters, ["master-1"]);
    }

    #[test]
    fn nothing_to_do_when_every_node_runs_it_or_is_new() {
        assert_eq!(upgrade(v("1.37.2"), &cluster(&[Some("1.37.2"), None])).unwrap(), None);
        assert_eq!(upgrade(v("1.37.2"), &cluster(&[None, None])).unwrap(), None);
    }

    #[test]
    fn a_patch_goes_up_or_down_the_same_way() {
        let u = upgrade(v("1.37.1"), &cluster(&[Some("1.37.2"), Some("1.37.2")])).unwrap().unwrap();
        assert_eq!(u.masters, ["master-1"]);
        assert!(upgrade(v("1.37.3"), &cluster(&[Some("1.37.2")])).unwrap().is_some());
    }

    #[test]
    fn skipping_a_minor_or_going_down_one_is_refused_with_the_way_forward() {
        let e = upgrade(v("1.37.2"), &cluster(&[Some("1.35.4"), Some("1.35.4")])).unwrap_err();
        assert_eq!(e, Refused::SkipsMinor { node: "master-1".into(), running: v("1.35.4"), wanted: v("1.37.2") });
        assert_eq!(e.to_string(), "master-1 runs Kubernetes 1.35.4: 1.37.2 skips a minor, which upstream's version-skew policy forbids");
        assert_eq!(
            e.fix(),
            "upgrade to the newest 1.36.x first (`cluster.kubernetes_version: \"1.36.<patch>\"`, `kos up`), then to 1.37.2"
        );
        // A worker left behind by an earlier upgrade holds the next one back too.
        let e = upgrade(v("1.37.2"), &cluster(&[Some("1.36.3"), Some("1.35.4")])).unwrap_err();
        assert!(matches!(e, Refused::SkipsMinor { ref node, .. } if node == "worker-1"), "{e:?}");
        let e = upgrade(v("1.36.3"), &cluster(&[Some("1.37.2"), Some("1.37.2")])).unwrap_err();
        assert_eq!(e, Refused::Downgrade { node: "master-1".into(), running: v("1.37.2"), wanted: v("1.36.3") });
        assert_eq!(e.fix(), "set `cluster.kubernetes_version: \"1.37.2\"` again");
    }
}
