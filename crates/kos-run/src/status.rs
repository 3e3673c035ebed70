//! `kos status`: per node the server's state, its addresses and pod range, whether its route
//! is on the router, whether it answers and its kubelet unit's state; then the API server's
//! view of the cluster (every node, the control plane, CoreDNS).

use crate::nodes::{self, NodeSession, Reach};
use crate::state::LocalState;
use crate::{Reporter, RunError};
use kos_cloud::Cloud;
use kos_cloud::model::Route;
use kos_core::settings::Settings;
use kos_kube::Connect;
use kos_kube::health::Item;
use kos_node::remote::Remote;
use serde::Serialize;
use std::net::Ipv4Addr;
use std::time::Duration;

/// How long status waits for the API server: it only looks.
const API_LOOK: Duration = Duration::from_secs(5);

/// The cluster as it is now.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub cluster: String,
    /// The cloud's name.
    pub cloud: String,
    /// Whether the cloud holds a server of the cluster (else: never made, or destroyed).
    pub exists: bool,
    /// One row per node of the settings, in their order.
    pub nodes: Vec<NodeStatus>,
    /// Why a node could not be looked at, one line each.
    pub problems: Vec<String>,
    pub api: ApiView,
    /// With several masters: the VIP and who holds it, and etcd's members.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlaneStatus>,
}

/// The API's VIP and etcd's members, as the masters show them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ControlPlaneStatus {
    /// The API's VIP (`api_endpoint: vip`).
    pub vip: Option<Ipv4Addr>,
    /// The masters on which the VIP is an address now (one, when all is well).
    pub vip_holders: Vec<String>,
    /// `etcdctl endpoint health --cluster`, asked of the first master that answered.
    pub etcd: Vec<EtcdMember>,
    /// The master etcd was asked on, or why no master could be asked.
    pub etcd_asked: String,
}

/// One etcd member as `etcdctl endpoint health` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EtcdMember {
    pub endpoint: String,
    pub health: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StatusReport {
    /// The table (or, for a cluster without servers, the line that says so).
    pub fn table(&self) -> Vec<String> {
        if !self.exists {
            // Never made, or destroyed: no addresses to probe, no API to ask.
            return vec![format!(
                "cluster {} has no server in cloud {}: it does not exist (yet); `kos up` creates it",
                self.cluster, self.cloud
            )];
        }
        let row =
            |c: [&str; 8]| format!("{:<14} {:<8} {:<15} {:<15} {:<15} {:<6} {:<6} {}", c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
        let mut out = vec![row(["NODE", "SERVER", "FIXED IP", "FLOATING IP", "POD CIDR", "ROUTE", "SSH", "KUBELET"])];
        for n in &self.nodes {
            let ip = |v: Option<Ipv4Addr>| v.map_or("-".to_string(), |a| a.to_string());
            let (fixed, floating) = (ip(n.fixed_ip), ip(n.floating_ip));
            out.push(row([&n.node, &n.server, &fixed, &floating, &n.pod_cidr, if n.route { "yes" } else { "no" }, &n.ssh, &n.kubelet]));
        }
        if let Some(cp) = &self.control_plane {
            let vip = cp.vip.map_or("-".to_string(), |v| v.to_string());
            out.push(match cp.vip_holders.as_slice() {
                [] => format!("API VIP {vip}: held by no master"),
                [one] => format!("API VIP {vip}: held by {one}"),
                many => format!("API VIP {vip}: held by {} masters at once: {}", many.len(), many.join(", ")),
            });
            let healthy = cp.etcd.iter().filter(|m| m.health).count();
            let members: Vec<String> =
                cp.etcd.iter().map(|m| format!("{} {}", m.endpoint, if m.health { "healthy" } else { "UNHEALTHY" })).collect();
            out.push(format!("etcd: {healthy}/{} healthy ({}): {}", cp.etcd.len(), cp.etcd_asked, members.join(", ")));
        }
        out
    }

    /// What the API server says, after the table.
    pub fn api_lines(&self) -> Vec<String> {
        match &self.api {
            ApiView::NotAsked => vec![],
            ApiView::NoKubeconfig { path } => vec![format!("API server: no admin kubeconfig yet ({path}); run `kos up`")],
            ApiView::Unreachable { error } => vec![format!("API server: {error}")],
            ApiView::Answered { items } => std::iter::once("API server's view:".to_string())
                .chain(items.iter().map(|i| format!("  {} {i}", if i.ready { "ok  " } else { "WAIT" })))
                .collect(),
        }
    }
}

/// One node as the cloud and the node itself show it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub node: String,
    /// Nova's status (`ACTIVE`, `SHUTOFF`, ...), or `absent`.
    pub server: String,
    pub fixed_ip: Option<Ipv4Addr>,
    pub floating_ip: Option<Ipv4Addr>,
    pub pod_cidr: String,
    /// The router routes the pod range to the node's fixed IP.
    pub route: bool,
    /// `ok`, `no` (it did not answer), `-` (not tried: no address).
    pub ssh: String,
    /// `systemctl is-active kubelet`, `?` when unknown.
    pub kubelet: String,
}

/// What the API server says, or why it says nothing.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ApiView {
    /// Not asked: the cluster has no server, so there is no API server to ask.
    NotAsked,
    /// No admin kubeconfig yet: `kos up` has not made the cluster's files.
    NoKubeconfig { path: String },
    /// It did not answer (or not as an API server).
    Unreachable { error: String },
    /// Every item kos expects of the cluster, ready or not.
    Answered { items: Vec<Item> },
}

/// The cluster as it is now.
pub async fn status<C: Cloud, R: Reach, K: Connect>(
    settings: &Settings,
    state: &LocalState,
    cloud: &C,
    reach: &R,
    kube: &K,
    ssh_wait: Duration,
    reporter: &dyn Reporter,
) -> Result<StatusReport, RunError> {
    let crate::Looked { resolved, have, plan, .. } = crate::look(cloud, settings).await?;
    let mut report = StatusReport {
        cluster: settings.cluster.name.clone(),
        cloud: cloud.name().to_string(),
        exists: !have.servers.is_empty(),
        nodes: Vec::new(),
        problems: Vec::new(),
        api: ApiView::NotAsked,
        control_plane: None,
    };
    if !report.exists {
        return Ok(report);
    }
    let sessions = nodes::connect_all(reach, &plan, &have, ssh_wait, reporter, &mut nodes::Early::default()).await?;
    for n in &plan.nodes {
        let session = sessions.iter().find(|s| s.node() == n.name);
        let (ssh, kubelet) = match session {
            Some(NodeSession::Up(x)) => {
                let out = x.run("systemctl is-active kubelet 2>/dev/null || true", Default::default()).await;
                ("ok", out.map(|o| o.stdout_text().trim().to_string()).unwrap_or_else(|e| e.to_string()))
            }
            Some(NodeSession::Failed { .. }) => ("no", "?".to_string()),
            None => ("-", "?".to_string()),
        };
        report.nodes.push(NodeStatus {
            node: n.name.clone(),
            server: have.servers.get(&n.name).map_or("absent".to_string(), |s| s.status.clone()),
            fixed_ip: n.fixed_ip,
            floating_ip: n.floating_ip,
            pod_cidr: n.pod_cidr.to_string(),
            route: n.fixed_ip.is_some_and(|ip| resolved.router.routes.contains(&Route { destination: n.pod_cidr, nexthop: ip })),
            ssh: ssh.to_string(),
            kubelet,
        });
    }
    for s in &sessions {
        if let NodeSession::Failed { node, error } = s {
            report.problems.push(format!("{node}: {error}"));
        }
    }
    if plan.masters().count() > 1 || plan.api_endpoint.is_shared() {
        report.control_plane = Some(control_plane(&plan, &sessions).await);
    }
    nodes::close_all(reach, sessions).await;
    report.api = api_view(state, kube, &plan, settings.addons.dns.is_some()).await;
    Ok(report)
}

/// Who holds the VIP (`ip -4 addr` on every master that answers) and etcd's members' health
/// (asked on the first master that answers).
async fn control_plane<N: Remote>(plan: &kos_core::plan::ClusterPlan, sessions: &[NodeSession<N>]) -> ControlPlaneStatus {
    let vip = (plan.api_endpoint == kos_core::settings::ApiEndpoint::Vip).then_some(plan.internal_api).flatten();
    let mut cp = ControlPlaneStatus { vip, etcd_asked: "no master answered".into(), ..ControlPlaneStatus::default() };
    for m in plan.masters() {
        let Some(NodeSession::Up(x)) = sessions.iter().find(|s| s.node() == m.name) else { continue };
        if let Some(vip) = vip {
            let out = x.run("ip -o -4 addr show", Default::default()).await;
            if out.is_ok_and(|o| o.stdout_text().contains(&format!(" {vip}/32 "))) {
                cp.vip_holders.push(m.name.clone());
            }
        }
        if cp.etcd.is_empty() {
            match crate::etcd::health(x).await {
                Ok(mut members) => {
                    members.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
                    cp.etcd = members;
                    cp.etcd_asked = format!("asked on {}", m.name);
                }
                Err(e) => cp.etcd_asked = e,
            }
        }
    }
    cp
}

/// The API server's view, through the admin kubeconfig `kos up` wrote.
async fn api_view<K: Connect>(state: &LocalState, kube: &K, plan: &kos_core::plan::ClusterPlan, with_dns: bool) -> ApiView {
    let admin = state.admin_kubeconfig();
    let Ok(kubeconfig) = std::fs::read_to_string(&admin) else {
        return ApiView::NoKubeconfig { path: admin.display().to_string() };
    };
    let api = match kube.connect(&kubeconfig, API_LOOK).await {
        Ok(api) => api,
        Err(e) => return ApiView::Unreachable { error: e.to_string() },
    };
    match kos_kube::health::look(&api, plan, with_dns).await {
        Ok(items) => ApiView::Answered { items },
        Err(e) => ApiView::Unreachable { error: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::Phase;
    use crate::testing::{Answer, Heard, NoAnswer, kubelets, run, settings};
    use kos_cloud::fake::FakeCloud;
    use kos_kube::loopback::{LoopbackApi, LoopbackConnect};

    async fn look<R: Reach>(dir: &std::path::Path, cloud: &FakeCloud, reach: &R, kube: &LoopbackConnect) -> StatusReport {
        let settings = settings(dir);
        let state = LocalState::for_settings(Some(&dir.join(".kos")), &settings);
        status(&settings, &state, cloud, reach, kube, Duration::from_secs(1), &Heard::default()).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn status_shows_each_node_its_route_and_answer_then_the_api_servers_view() {
        let Some(api) = LoopbackApi::start_bare().await else { return };
        let dir = tempfile::tempdir().unwrap();
        let cloud = FakeCloud::new();
        let kube = kubelets(&api).await;
        let none = look(dir.path(), &cloud, &Answer::default(), &kube).await;
        assert!(!none.exists && none.nodes.is_empty() && matches!(none.api, ApiView::NotAsked), "{none:?}");

        run(dir.path(), &[Phase::Instances], &cloud, &Answer::default(), &kube).await.1.unwrap();
        let no_routes = look(dir.path(), &cloud, &NoAnswer::default(), &kube).await;
        let names: Vec<&str> = no_routes.nodes.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(names, ["master-1", "worker-1", "worker-2"]);
        assert!(
            no_routes.nodes.iter().all(|n| n.server == "ACTIVE" && n.fixed_ip.is_some() && !n.route && n.ssh == "no"),
            "{no_routes:#?}"
        );
        assert_eq!(no_routes.problems.len(), 3, "each node that did not answer, once: {:?}", no_routes.problems);
        assert!(no_routes.nodes[0].floating_ip.is_some() && no_routes.nodes[1].floating_ip.is_none());
        assert!(matches!(no_routes.api, ApiView::NoKubeconfig { .. }), "{:?}", no_routes.api);
        assert_eq!(kube.connects(), 0, "no kubeconfig yet: the API server is not asked");

        run(dir.path(), &[Phase::Routes, Phase::Addons], &cloud, &Answer::default(), &kube).await.1.unwrap();
        // Through the admin kubeconfig, whose rights come from the binding the add-ons applied.
        let up = look(dir.path(), &cloud, &Answer::default(), &kube).await;
        assert!(up.nodes.iter().all(|n| n.route && n.ssh == "ok") && up.problems.is_empty(), "{up:#?}");
        let ApiView::Answered { items } = &up.api else { panic!("{:?}", up.api) };
        assert!(items.len() == 3 + 4 + 1 && items.iter().all(|i| i.ready), "{items:#?}");
        // What `kos status` prints, before the cluster exists and once it serves.
        let transcript = |r: &StatusReport| [r.table(), r.problems.clone(), r.api_lines()].concat().join("\n");
        insta::assert_snapshot!("status_before_up", transcript(&none));
        insta::assert_snapshot!("status_of_a_cluster_that_serves", transcript(&up));
        let json = serde_json::to_value(&up).unwrap();
        assert_eq!(json["api"]["state"], "answered");
        assert_eq!(json["nodes"][1]["pod_cidr"], up.nodes[1].pod_cidr);
    }

    #[test]
    fn the_vip_holder_and_etcds_members_follow_the_table() {
        let members: Vec<EtcdMember> = serde_json::from_str(
            r#"[{"endpoint":"https://10.0.0.12:2379","health":true,"took":"2ms"},
                {"endpoint":"https://10.0.0.13:2379","health":false,"error":"context deadline exceeded"}]"#,
        )
        .unwrap();
        let mut report = StatusReport {
            cluster: "demo".into(),
            cloud: "test".into(),
            exists: true,
            nodes: Vec::new(),
            problems: Vec::new(),
            api: ApiView::NotAsked,
            control_plane: Some(ControlPlaneStatus {
                vip: Some(Ipv4Addr::new(10, 0, 0, 100)),
                vip_holders: vec!["master-2".into()],
                etcd: members,
                etcd_asked: "asked on master-2".into(),
            }),
        };
        let table = report.table();
        assert_eq!(table[1], "API VIP 10.0.0.100: held by master-2");
        assert_eq!(table[2], "etcd: 1/2 healthy (asked on master-2): https://10.0.0.12:2379 healthy, https://10.0.0.13:2379 UNHEALTHY");
        report.control_plane.as_mut().unwrap().vip_holders.push("master-3".into());
        assert_eq!(report.table()[1], "API VIP 10.0.0.100: held by 2 masters at once: master-2, master-3");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["control_plane"]["etcd"][1]["error"], "context deadline exceeded");
    }
}
