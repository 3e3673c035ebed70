//! etcd's membership, carried out on the masters: a master joins as a learner and is
//! promoted once it caught up, one at a time in the order the plan gave them
//! ([`kos_core::plan::membership`]); a removed master's member is removed before its server
//! goes, never below a healthy majority.
//!
//! Every command is `etcdctl` inside a master's running etcd container, against its own
//! member, with the health-check client certificate (etcd runs without its own user
//! authentication; any certificate of the etcd CA may change membership).

use kos_core::plan::{ClusterPlan, NodePlan};
use kos_node::remote::Remote;
use kos_node::wanted::{NodeWants, PhaseWants, Unit, WantedFile, WantedUnit};
use kos_render::NodePhase;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// A shell script that runs `etcdctl <args>` in the node's running etcd container.
pub fn etcdctl(args: &str) -> String {
    etcdctl_within(5, args)
}

/// [`etcdctl`] with a command timeout of `secs` (a snapshot takes longer than a question).
pub fn etcdctl_within(secs: u64, args: &str) -> String {
    in_etcd(&format!(
        "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=$p/ca.crt --cert=$p/healthcheck-client.crt --key=$p/healthcheck-client.key \
         --command-timeout={secs}s {args}"
    ))
}

pub use kos_node::probe::CRICTL;

/// A shell script that runs `command` in the node's running etcd container (`$p`: the etcd
/// certificates' folder).
pub fn in_etcd(command: &str) -> String {
    format!(
        "{CRICTL}id=$($c ps -q --name '^etcd$' --state running 2>/dev/null | head -n 1); \
         [ -n \"$id\" ] || {{ echo 'no running etcd container' >&2; exit 3; }}; p=/etc/kubernetes/pki/etcd; \
         $c exec \"$id\" {command}"
    )
}

/// The control-plane pods of a master that do not yet run a container started after their
/// manifest was last written (the kubelet has not started them again since a change):
/// `kube-apiserver not started again yet`, `etcd not running`. Empty when all are fresh.
pub async fn stale_static_pods<N: Remote>(node: &N) -> Result<Vec<String>, String> {
    let script = format!(
        "{CRICTL}\
         for m in {pods}; do\n\
           f=/etc/kubernetes/manifests/$m.yaml; [ -f \"$f\" ] || continue\n\
           at=$(started \"$m\") || {{ echo \"$m not running\"; continue; }}\n\
           [ \"${{at:-0}}\" -ge \"$(stat -c %Y \"$f\")\" ] || echo \"$m not started again yet\"\n\
         done\n",
        pods = kos_kube::health::CONTROL_PLANE.join(" ")
    );
    let out = node.run(&script, Default::default()).await.map_err(|e| e.to_string())?;
    match out.success() {
        true => Ok(out.stdout_text().lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()),
        false => Err(format!("{}: cannot look at its static pods: {}", node.node(), why(&out.stderr_text()))),
    }
}

/// One member as `etcdctl member list -w json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Member {
    #[serde(rename = "ID")]
    pub id: u64,
    /// Empty until the member has started and published itself.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

impl Member {
    /// The ID as etcdctl takes it (hex).
    pub fn hex(&self) -> String {
        format!("{:x}", self.id)
    }
}

#[derive(Deserialize)]
struct MemberList {
    #[serde(default)]
    members: Vec<Member>,
}

/// Parse `etcdctl member list -w json`.
pub fn parse_members(json: &str) -> Result<Vec<Member>, String> {
    serde_json::from_str::<MemberList>(json.trim()).map(|l| l.members).map_err(|e| format!("unreadable member list ({e}): {}", json.trim()))
}

/// The peer URL kos gives a master's member.
pub fn peer_url(node: &NodePlan) -> Option<String> {
    node.fixed_ip.map(|ip| format!("https://{ip}:2380"))
}

async fn run<N: Remote>(node: &N, args: &str) -> Result<String, String> {
    let out = node.run(&etcdctl(args), Default::default()).await.map_err(|e| e.to_string())?;
    match out.success() {
        true => Ok(out.stdout_text()),
        // etcdctl's last line says why (`Error: ...`); the lines before are its client's log.
        false => Err(format!("{}: etcdctl {args}: {}", node.node(), why(&out.stderr_text()))),
    }
}

/// Why an etcd tool failed: its last `Error:` line (the lines before are its client's log),
/// else its last line.
pub fn why(stderr: &str) -> String {
    let lines = || stderr.lines().rev().map(str::trim).filter(|l| !l.is_empty());
    lines().find(|l| l.starts_with("Error:")).or_else(|| lines().next()).unwrap_or("no message").to_string()
}

/// The members, as the node's etcd sees them.
pub async fn members<N: Remote>(node: &N) -> Result<Vec<Member>, String> {
    parse_members(&run(node, "member list -w json").await?)
}

/// Each member's health by client URL (`endpoint health --cluster`); a member that does not
/// answer is unhealthy. The command's own exit status says only whether all are healthy.
pub async fn health<N: Remote>(node: &N) -> Result<Vec<crate::status::EtcdMember>, String> {
    let out = node.run(&etcdctl("endpoint health --cluster -w json"), Default::default()).await.map_err(|e| e.to_string())?;
    serde_json::from_str(out.stdout_text().trim()).map_err(|_| format!("{}: etcd's health: {}", node.node(), out.stderr_text().trim()))
}

/// How long a joining member gets to start and catch up before kos gives up on it.
pub const JOIN_WAIT: Duration = Duration::from_secs(240);

/// Ask until `what` succeeds or `wait` is over; the last error when it never did.
async fn until<T, F, Fut>(wait: Duration, mut what: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match what().await {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() >= wait => return Err(format!("{e} (gave up after {} s)", wait.as_secs())),
            Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

/// Make sure `joiner` is a member, asking `asked` (a master before it in the joining
/// order): added as a learner when it is not one yet. Returns the member and what was done.
pub async fn add<N: Remote>(asked: &N, joiner: &NodePlan) -> Result<(Member, Vec<String>), String> {
    let name = joiner.name.as_str();
    let url = peer_url(joiner).ok_or_else(|| format!("{name} has no address yet"))?;
    let mut done = Vec::new();
    let list = until(JOIN_WAIT, || members(asked)).await?;
    // A member of this name with another address is a server kos made before (replaced since):
    // it never answers again and counts against the quorum.
    for stale in list.iter().filter(|m| m.name == name && !m.peer_urls.contains(&url)) {
        run(asked, &format!("member remove {}", stale.hex())).await?;
        done.push(format!("etcd: {name}'s old member {} ({}) removed", stale.hex(), stale.peer_urls.join(",")));
    }
    if let Some(m) = list.iter().find(|m| m.peer_urls.contains(&url)) {
        return Ok((m.clone(), done));
    }
    // Refused for a few seconds after the last change (etcd wants its leader connected to a
    // quorum for a while before it reconfigures): asked again until it accepts.
    let add = format!("member add {name} --learner --peer-urls={url}");
    // (An add whose answer was lost shows in the list: done.)
    until(JOIN_WAIT, || async {
        match run(asked, &add).await {
            Ok(_) => Ok(()),
            Err(e) => match members(asked).await {
                Ok(list) if list.iter().any(|m| m.peer_urls.contains(&url)) => Ok(()),
                _ => Err(e),
            },
        }
    })
    .await?;
    done.push(format!("etcd: {name} added as a learner"));
    let me = members(asked).await?.into_iter().find(|m| m.peer_urls.contains(&url));
    Ok((me.ok_or_else(|| format!("{name} was added but etcd does not list it"))?, done))
}

/// Promote a learner once it has caught up (etcd refuses until then); nothing for a voter.
pub async fn promote<N: Remote>(asked: &N, name: &str, member: &Member) -> Result<Option<String>, String> {
    if !member.is_learner {
        return Ok(None);
    }
    let t = Instant::now();
    let promote = format!("member promote {}", member.hex());
    until(JOIN_WAIT, || run(asked, &promote)).await?;
    Ok(Some(format!("etcd: {name} promoted to a voting member ({:.0} s)", t.elapsed().as_secs_f64())))
}

/// Remove the members of `removed` (names), one at a time, unhealthy ones first (then by
/// name), asking
/// `asked`; refused before a removal that would leave fewer healthy members than a majority
/// of those left.
pub async fn remove<N: Remote>(asked: &N, removed: &[&str]) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    let healthy =
        |h: &[crate::status::EtcdMember], m: &Member| m.client_urls.iter().any(|u| h.iter().any(|e| &e.endpoint == u && e.health));
    loop {
        let list = members(asked).await?;
        let h = health(asked).await?;
        let mut going: Vec<&Member> = list.iter().filter(|m| removed.contains(&m.name.as_str())).collect();
        going.sort_by_key(|m| (healthy(&h, m), m.name.clone()));
        let Some(next) = going.first() else { return Ok(done) };
        let left: Vec<&Member> = list.iter().filter(|m| m.id != next.id && !m.is_learner).collect();
        let up = left.iter().filter(|m| healthy(&h, m)).count();
        if up * 2 <= left.len() {
            // By name: etcd lists its members by ID, which is random.
            let mut down: Vec<&str> = left.iter().filter(|m| !healthy(&h, m)).map(|m| m.name.as_str()).collect();
            down.sort_unstable();
            let it = if down.len() == 1 { "it" } else { "them" };
            return Err(format!(
                "removing {}'s etcd member would leave {up} healthy of {} (down: {}), no majority: bring {} back first, or remove {it} in this run too",
                next.name,
                left.len(),
                down.join(", "),
                down.join(", ")
            ));
        }
        run(asked, &format!("member remove {}", next.hex())).await?;
        done.push(format!("etcd: {}'s member removed ({} left)", next.name, left.len()));
    }
}

/// Where a master's etcd manifest is.
pub fn manifest_path() -> String {
    format!("{}/etcd.yaml", kos_render::control_plane::MANIFESTS)
}

/// `systemctl restart kubelet` on the node.
pub async fn restart_kubelet<N: Remote>(node: &N) -> Result<(), String> {
    let out = node.run("systemctl restart kubelet", Default::default()).await.map_err(|e| e.to_string())?;
    match out.success() {
        true => Ok(()),
        false => Err(format!("{}: systemctl restart kubelet: {}", node.node(), out.stderr_text().trim())),
    }
}

/// A joining master's wants split in three: what is written with every other node (all but
/// the static pods), its etcd manifest (after it was added), the other static pods (after
/// it was promoted: the API server needs its etcd).
pub fn split_joiner(wants: &NodeWants) -> (NodeWants, NodeWants, NodeWants) {
    let manifests = format!("{}/", kos_render::control_plane::MANIFESTS);
    let etcd = manifest_path();
    let mut first = wants.clone();
    let (mut etcd_files, mut rest) = (Vec::new(), Vec::new());
    for (phase, w) in &mut first.phases {
        if *phase != NodePhase::Kubernetes {
            continue;
        }
        let (deferred, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut w.files).into_iter().partition(|f| f.path.starts_with(&manifests));
        w.files = kept;
        for f in deferred {
            if f.path == etcd { etcd_files.push(f) } else { rest.push(f) }
        }
    }
    // The kubelet restarts when they are written: a kubelet that started with no static pod
    // and no API server to reach may leave a pod added later waiting for its volumes for
    // minutes (kubernetes/kubernetes#103658); one that starts with the manifest in place
    // runs it at once, as on the first master.
    let kubelet = Unit::Kubelet.name();
    let only = |files: Vec<WantedFile>| {
        let restart_on = files.iter().map(|f| f.path.clone()).collect();
        let units = vec![WantedUnit { name: kubelet, restart_on, restart_on_new: Vec::new() }];
        NodeWants { node: wants.node.clone(), phases: vec![(NodePhase::Kubernetes, PhaseWants { files, units, ..PhaseWants::default() })] }
    };
    (first, only(etcd_files), only(rest))
}

/// The masters that join etcd in this run's order after the first: each with the master
/// asked for it (the one before it).
pub fn joining_order(plan: &ClusterPlan) -> Vec<&NodePlan> {
    let mut masters: Vec<&NodePlan> = plan.masters().filter(|m| m.etcd.is_some()).collect();
    masters.sort_by_key(|m| m.etcd.as_ref().map(|e| e.order));
    masters
}

#[cfg(test)]
mod tests {
    use super::*;
    use kos_kube::loopback::LoopbackEtcd;

    #[test]
    fn the_member_list_reads_learners_and_unstarted_members() {
        let json = r#"{"header":{"cluster_id":1,"member_id":2,"raft_term":3},"members":[{"ID":12345678901234567890,"name":"master-1","peerURLs":["https://10.0.0.11:2380"],"clientURLs":["https://10.0.0.11:2379"]},{"ID":17,"peerURLs":["https://10.0.0.12:2380"],"isLearner":true}]}"#;
        let m = parse_members(json).unwrap();
        assert_eq!(m[0].name, "master-1");
        assert_eq!(m[0].hex(), "ab54a98ceb1f0ad2");
        assert!(!m[0].is_learner && m[1].is_learner && m[1].name.is_empty() && m[1].client_urls.is_empty());
        assert!(parse_members("Error: context deadline exceeded").unwrap_err().contains("unreadable member list"));
    }

    /// A master's shell whose etcd container is a real etcd cluster on loopback
    /// ([`LoopbackEtcd`]): kos's scripts run here as they are, but for the folder of the
    /// certificates and the member they ask (a master asks its own, at 127.0.0.1:2379), and
    /// with a `crictl` that stands in for the container runtime (a unit test runs no
    /// containerd): `ps` names the one etcd container, `exec` runs its command here.
    struct MasterOnLoopback {
        /// The member asked (named as its master).
        name: String,
        shell: kos_node::test_support::LocalShell,
        pki: String,
        endpoint: String,
        _bin: tempfile::TempDir,
    }

    const CRICTL_STAND_IN: &str = "#!/bin/sh\n\
        while [ \"${1#--}\" != \"$1\" ]; do shift 2; done\n\
        case \"$1\" in\n\
          ps) echo etcd-on-loopback ;;\n\
          exec) shift 2; exec \"$@\" ;;\n\
          *) echo \"crictl stand-in: no $1 here\" >&2; exit 1 ;;\n\
        esac\n";

    impl MasterOnLoopback {
        fn asking(etcd: &LoopbackEtcd, member: &str) -> MasterOnLoopback {
            use std::os::unix::fs::PermissionsExt as _;
            let bin = tempfile::tempdir().unwrap();
            let crictl = bin.path().join("crictl");
            std::fs::write(&crictl, CRICTL_STAND_IN).unwrap();
            std::fs::set_permissions(&crictl, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::os::unix::fs::symlink(etcd.tools().join("etcdctl"), bin.path().join("etcdctl")).unwrap();
            MasterOnLoopback {
                name: member.to_string(),
                shell: kos_node::test_support::LocalShell { path_first: Some(bin.path().to_path_buf()) },
                pki: etcd.pki().display().to_string(),
                endpoint: etcd.client_url(member).to_string(),
                _bin: bin,
            }
        }
    }

    impl Remote for MasterOnLoopback {
        fn node(&self) -> &str {
            &self.name
        }

        async fn run(
            &self,
            script: &str,
            stdin: kos_node::remote::Stdin,
        ) -> Result<kos_node::remote::Output, kos_node::remote::RemoteError> {
            let here = script.replace("/etc/kubernetes/pki/etcd", &self.pki).replace("https://127.0.0.1:2379", &self.endpoint);
            self.shell.run(&here, stdin).await
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn members_are_removed_one_at_a_time_the_unhealthy_first_and_never_below_a_majority() {
        let Some(mut etcd) = LoopbackEtcd::start(&["m1", "m2", "m3", "m4", "m5"]) else { return };
        let m1 = MasterOnLoopback::asking(&etcd, "m1");
        etcd.stop("m4");
        etcd.stop("m5");
        // 5 → 3 with two of the three kept down: the first removal would leave 2 healthy of
        // 4, no majority. Refused before anything is removed, naming who is down.
        let err = remove(&m1, &["m2", "m3"]).await.unwrap_err();
        assert!(err.contains("would leave 2 healthy of 4 (down: m4, m5), no majority: bring m4, m5 back first, or remove them"), "{err}");
        assert_eq!(etcd.names("m1"), ["m1", "m2", "m3", "m4", "m5"]);
        // One down and one healthy going: the one down goes first (its name comes later),
        // then the other, each leaving a healthy majority.
        let done = remove(&m1, &["m2", "m5"]).await.unwrap();
        assert_eq!(done, ["etcd: m5's member removed (4 left)", "etcd: m2's member removed (3 left)"]);
        assert_eq!(etcd.names("m1"), ["m1", "m3", "m4"]);
        // Removed already (a run stopped after it): nothing to do.
        assert!(remove(&m1, &["m2", "m5"]).await.unwrap().is_empty());
    }

    #[test]
    fn a_joining_masters_static_pods_wait_for_its_member() {
        let file = |p: &str| WantedFile::from_bytes(p, 0o600, p.as_bytes().to_vec());
        let kube = PhaseWants {
            files: vec![
                file("/etc/kubernetes/kubelet.conf"),
                file("/etc/kubernetes/manifests/etcd.yaml"),
                file("/etc/kubernetes/manifests/kube-apiserver.yaml"),
            ],
            ..PhaseWants::default()
        };
        let runtime = PhaseWants { files: vec![file("/etc/containerd/config.toml")], ..PhaseWants::default() };
        let wants = NodeWants { node: "m2".into(), phases: vec![(NodePhase::Runtime, runtime), (NodePhase::Kubernetes, kube)] };
        let (now, etcd, rest) = split_joiner(&wants);
        let paths = |w: &NodeWants| w.all_paths().into_iter().map(String::from).collect::<Vec<_>>();
        assert_eq!(paths(&now), ["/etc/containerd/config.toml", "/etc/kubernetes/kubelet.conf"]);
        assert_eq!(paths(&etcd), ["/etc/kubernetes/manifests/etcd.yaml"]);
        assert_eq!(paths(&rest), ["/etc/kubernetes/manifests/kube-apiserver.yaml"]);
        let kubelet = &etcd.phase(NodePhase::Kubernetes).unwrap().units;
        assert!(
            kubelet.len() == 1 && kubelet[0].name == "kubelet" && kubelet[0].restarts_on("/etc/kubernetes/manifests/etcd.yaml"),
            "{kubelet:?}"
        );
    }

    #[test]
    fn the_script_runs_etcdctl_in_the_running_etcd_container() {
        let s = etcdctl("member list -w json");
        assert!(s.contains("--name '^etcd$' --state running") && s.contains("--command-timeout=5s member list -w json"), "{s}");
    }
}
