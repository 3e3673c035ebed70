//! `kos restore ARCHIVE`: the cluster's objects back from a `kos backup` archive.
//!
//! Every master is restored from the one snapshot, as etcd's disaster recovery asks: the
//! snapshot is carried to each master (SHA-256 compared there) and unpacked beside etcd's
//! data by `etcdutl snapshot restore` in the running etcd container (its integrity hash is
//! checked; each master gets its own member name and peer URL, the cluster's token and every
//! master in the initial cluster; the revision is bumped and marked compacted, so the
//! kubelets and controllers that watched the old data list again instead of trusting their
//! caches). Only when every master has its restored copy is anything stopped: the control
//! plane's static pods are held out of the kubelet's folder on every master, their containers
//! waited for, etcd's data swapped for the restored one (the old one is kept under
//! `/var/lib/kos-etcd-before-restore/<UTC time>/`), and the static pods put back. kos then
//! waits for the API server and for every node, the control plane and CoreDNS to be Ready:
//! the workers are not rebuilt, their kubelets find the restored API server.
//!
//! The archive's PKI must be the cluster's: a state folder with another CA is refused (its
//! nodes trust that CA). A state folder with no PKI gets the archive's, so a lost operator's
//! machine is recovered by `kos restore` (the PKI), `kos up` (the servers), `kos restore`.

use crate::backup::{Manifest, SNAPSHOT, read_archive, sha256_hex};
use crate::nodes::{self, NodeSession, Reach};
use crate::state::LocalState;
use crate::{Reporter, RunError};
use kos_cloud::Cloud;
use kos_core::plan::{ClusterPlan, NodePlan};
use kos_core::settings::Settings;
use kos_kube::Connect;
use kos_kube::health::Item;
use kos_node::remote::{Remote, Stdin};
use kos_render::control_plane::{ETCD_DATA, MANIFESTS};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the snapshot is carried to on each master (etcd's data folder is mounted at the
/// same path in its container).
const UPLOADED: &str = "/var/lib/etcd/kos-restore.db";
/// Where `etcdutl snapshot restore` unpacks it.
const RESTORED: &str = "/var/lib/etcd/kos-restore";
/// Where the control plane's manifests wait while etcd's data is swapped.
const HELD: &str = "/etc/kubernetes/kos-restore-held";
/// Where etcd's data from before the restore is kept.
const BEFORE: &str = "/var/lib/kos-etcd-before-restore";
/// How long the control plane's containers may take to stop.
const STOP_WAIT_SECS: u64 = 120;
/// The revision bump: more than any cluster writes between a backup and its restore.
const BUMP_REVISION: u64 = 1_000_000_000;

/// The CA-level files of the PKI: an archive whose copies differ is of another cluster.
const ROOTS: [&str; 9] =
    ["ca.crt", "ca.key", "etcd/ca.crt", "etcd/ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub", "encryption.key"];

/// What `kos restore` was asked for.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub archive: PathBuf,
    pub ssh_wait: Duration,
    /// How long to wait for the API server once the control plane is back.
    pub api_wait: Duration,
    /// How long to wait, then, for every node, the control plane and CoreDNS.
    pub ready_wait: Duration,
}

/// What the state folder's PKI is to the archive's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PkiOutcome {
    /// The state's CAs are the archive's.
    Same,
    /// The state had none: the archive's files were written (how many).
    Written(usize),
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    pub archive: PathBuf,
    pub manifest: Manifest,
    pub pki: PkiOutcome,
    /// Each master restored, with where its etcd data from before was kept.
    pub masters: Vec<(String, String)>,
    /// What the cluster showed when kos judged it ready.
    pub ready: Vec<Item>,
    pub seconds: f64,
}

impl RestoreReport {
    /// Lines for people.
    pub fn lines(&self) -> Vec<String> {
        let m = &self.manifest;
        let mut out = vec![format!(
            "restored cluster {} from {} (snapshot of {} on {}: revision {}, {} keys)",
            m.cluster,
            self.archive.display(),
            m.created,
            m.taken_on,
            m.etcd.revision,
            m.etcd.total_keys
        )];
        out.extend(self.masters.iter().map(|(m, kept)| format!("  {m}: etcd restored; its data from before is kept in {kept}")));
        let nodes = self.ready.iter().filter(|i| i.node.is_some()).count();
        out.push(format!("ready: {nodes} node(s) Ready, the control plane Ready ({:.1} s)", self.seconds));
        out
    }
}

/// The archive's entries checked against its manifest: every file listed there, in its
/// order, with its size and SHA-256, and nothing else.
pub fn verify(manifest: &Manifest, entries: &[(String, Vec<u8>)]) -> Result<(), String> {
    if manifest.format != crate::backup::FORMAT {
        return Err(format!("its format is {}, this kos reads {}", manifest.format, crate::backup::FORMAT));
    }
    if manifest.files.len() != entries.len() {
        return Err(format!("its manifest lists {} files, it holds {}", manifest.files.len(), entries.len()));
    }
    for (listed, (name, bytes)) in manifest.files.iter().zip(entries) {
        if listed.path != *name || listed.bytes != bytes.len() as u64 || listed.sha256 != sha256_hex(bytes) {
            return Err(format!("{name} is not as its manifest lists it ({} bytes, sha256 {})", listed.bytes, listed.sha256));
        }
    }
    Ok(())
}

/// The archive's PKI against the state's: refused when a CA-level file differs; written
/// when the state has none.
fn take_pki(state: &LocalState, entries: &[(String, Vec<u8>)], cluster: &str) -> Result<PkiOutcome, RunError> {
    let dir = state.dir.join("pki");
    let pki: Vec<(&str, &[u8])> = entries.iter().filter_map(|(n, b)| n.strip_prefix("state/pki/").map(|rel| (rel, b.as_slice()))).collect();
    if !pki.iter().any(|(rel, _)| *rel == "ca.crt") {
        return Err(RunError::Invalid("the archive holds no cluster CA (state/pki/ca.crt): it cannot restore a cluster".into()));
    }
    if dir.join("ca.crt").exists() {
        let differ: Vec<&str> = ROOTS
            .iter()
            .filter(|root| {
                pki.iter()
                    .find(|(rel, _)| rel == *root)
                    .is_some_and(|(_, bytes)| std::fs::read(dir.join(root)).ok().as_deref() != Some(*bytes))
            })
            .copied()
            .collect();
        if !differ.is_empty() {
            return Err(RunError::Invalid(format!(
                "the archive's {} differ from {}'s: it is a backup of another making of cluster {cluster}, whose nodes trust other CAs; \
                 restore it with a state folder that holds no PKI (--state-dir), or use a backup of this cluster",
                differ.join(", "),
                dir.display()
            )));
        }
        return Ok(PkiOutcome::Same);
    }
    for (rel, bytes) in &pki {
        let private = rel.ends_with(".key");
        let path = dir.join(rel);
        kos_fs::write_atomic(&path, bytes, if private { 0o600 } else { 0o644 })
            .map_err(|e| RunError::Other(anyhow::anyhow!("cannot write {}: {e}", path.display())))?;
    }
    Ok(PkiOutcome::Written(pki.len()))
}

/// Carries the snapshot to the master and prints its SHA-256 there.
fn upload_script() -> String {
    format!("set -e; umask 077; cat > {UPLOADED}.part; mv {UPLOADED}.part {UPLOADED}; sha256sum {UPLOADED}")
}

/// `etcdutl snapshot restore` of the carried snapshot, for `master`, in its etcd container.
fn unpack_script(plan: &ClusterPlan, master: &NodePlan) -> Result<String, String> {
    let mut initial = Vec::new();
    for m in plan.masters() {
        initial.push(format!("{}={}", m.name, crate::etcd::peer_url(m).ok_or_else(|| format!("{} has no address yet", m.name))?));
    }
    let own = crate::etcd::peer_url(master).ok_or_else(|| format!("{} has no address yet", master.name))?;
    let restore = crate::etcd::in_etcd(&format!(
        "etcdutl snapshot restore {UPLOADED} --data-dir={RESTORED} --name={} --initial-cluster={} --initial-cluster-token={} \
         --initial-advertise-peer-urls={own} --bump-revision={BUMP_REVISION} --mark-compacted",
        master.name,
        initial.join(","),
        plan.cluster
    ));
    Ok(format!("set -e; rm -rf {RESTORED}; {restore} >&2; test -d {RESTORED}/member"))
}

/// The control plane's static pods held out of the kubelet's folder, their containers waited for.
fn stop_script() -> String {
    format!(
        "set -e; mkdir -p {HELD}; for f in {MANIFESTS}/*.yaml; do [ -e \"$f\" ] && mv \"$f\" {HELD}/; done\n\
         {CRICTL}\
         for i in $(seq 1 {STOP_WAIT_SECS}); do \
           [ -z \"$($c ps -q --state running --name '^({pods})$')\" ] && exit 0; sleep 1; \
         done; echo 'the control plane did not stop within {STOP_WAIT_SECS} s' >&2; exit 1",
        CRICTL = crate::etcd::CRICTL,
        pods = kos_kube::health::CONTROL_PLANE.join("|")
    )
}

/// etcd's data swapped for the restored one; prints where the old one is kept.
fn swap_script() -> String {
    format!(
        "set -e; test -d {RESTORED}/member; b={BEFORE}/$(date -u +%Y%m%dT%H%M%SZ); mkdir -p \"$b\"; chmod 700 {BEFORE}; \
         if [ -d {ETCD_DATA}/member ]; then mv {ETCD_DATA}/member \"$b\"/; fi; mv {RESTORED}/member {ETCD_DATA}/member; \
         rmdir {RESTORED}; rm -f {UPLOADED}; echo \"$b\""
    )
}

/// The static pods put back, the kubelet restarted to start them now.
fn start_script() -> String {
    format!(
        "set -e; if [ -d {HELD} ]; then for f in {HELD}/*.yaml; do [ -e \"$f\" ] && mv \"$f\" {MANIFESTS}/; done; rmdir {HELD}; fi; systemctl restart kubelet"
    )
}

/// What is left of a restore that stopped before anything was swapped.
fn clean_script() -> String {
    format!("rm -rf {RESTORED} {UPLOADED} {UPLOADED}.part")
}

async fn run_on<N: Remote>(node: &N, what: &str, script: &str, stdin: Stdin) -> Result<String, String> {
    let out = node.run(script, stdin).await.map_err(|e| format!("{}: {what}: {e}", node.node()))?;
    if out.success() {
        Ok(out.stdout_text())
    } else {
        Err(format!("{}: {what} failed: {}", node.node(), crate::etcd::why(&out.stderr_text())))
    }
}

/// Restore the cluster from an archive of `kos backup`.
pub async fn restore<C: Cloud, R: Reach, K: Connect>(
    settings: &Settings,
    state: &LocalState,
    systems: (&C, &R, &K),
    options: &RestoreOptions,
    reporter: &dyn Reporter,
) -> Result<RestoreReport, RunError> {
    let started = Instant::now();
    let (cloud, reach, kube) = systems;
    let archive = &options.archive;
    let cluster = &settings.cluster.name;
    let (manifest, entries) =
        read_archive(archive).map_err(|e| RunError::Invalid(format!("{}: not a readable kos backup: {e}", archive.display())))?;
    verify(&manifest, &entries).map_err(|e| RunError::Invalid(format!("{}: {e}; nothing was changed", archive.display())))?;
    if manifest.cluster != *cluster {
        return Err(RunError::Invalid(format!(
            "{} is a backup of cluster {}, and the settings are of cluster {cluster}; nothing was changed",
            archive.display(),
            manifest.cluster
        )));
    }
    // One copy in memory, shared by every master's transfer.
    let snapshot = std::sync::Arc::new(entries.iter().find(|(n, _)| n == SNAPSHOT).map(|(_, b)| b.clone()).unwrap_or_default());
    let pki = take_pki(state, &entries, cluster)?;
    if let PkiOutcome::Written(n) = pki {
        reporter.line(&format!("restore: the archive's PKI ({n} files) written to {}", state.dir.join("pki").display()));
    }

    let crate::Looked { have, observed, plan, .. } = crate::look(cloud, settings).await?;
    let missing: Vec<&str> = plan.masters().filter(|m| !have.servers.contains_key(&m.name)).map(|m| m.name.as_str()).collect();
    if !missing.is_empty() {
        return Err(RunError::Invalid(format!(
            "{} of cluster {cluster} {} no server: every master is restored at once, so run `kos up` first (it makes them), then `kos restore` again",
            missing.join(", "),
            if missing.len() == 1 { "has" } else { "have" }
        )));
    }
    let is_master = |node: &str| plan.masters().any(|m| m.name == node);
    let sessions = nodes::connect_some(reach, &plan, &have, is_master, options.ssh_wait, reporter, &mut nodes::Early::default()).await?;
    let result = restore_on(&plan, &sessions, &snapshot, reporter).await;
    nodes::close_all(reach, sessions).await;
    let kept = result?;

    // The API server, then the whole cluster.
    let kubeconfig = crate::files::super_admin_kubeconfig(settings, state, &observed, &plan)?;
    reporter.wait_started("restore: waiting for the API server to answer /readyz", options.api_wait);
    let api = kube.connect(&kubeconfig, options.api_wait).await;
    reporter.wait_finished();
    let api = api?;
    let ready = crate::wait_ready(&api, settings, &plan, options.ready_wait, reporter, "restore").await?;
    Ok(RestoreReport { archive: archive.clone(), manifest, pki, masters: kept, ready, seconds: started.elapsed().as_secs_f64() })
}

/// The restore on the masters' sessions: every master's copy unpacked before any is stopped.
async fn restore_on<N: Remote>(
    plan: &ClusterPlan,
    sessions: &[NodeSession<N>],
    snapshot: &std::sync::Arc<Vec<u8>>,
    reporter: &dyn Reporter,
) -> Result<Vec<(String, String)>, RunError> {
    let mut masters = Vec::new();
    let mut down = Vec::new();
    for s in sessions {
        match s {
            NodeSession::Up(n) => masters.push(n),
            NodeSession::Failed { node, error } => down.push(format!("{node}: {error}")),
        }
    }
    if !down.is_empty() {
        return Err(RunError::Etcd(format!("every master is restored at once, and {}; nothing was changed", down.join("; "))));
    }
    let want = sha256_hex(snapshot);
    let unpacked = async {
        for node in &masters {
            let name = node.node();
            reporter.line(&format!("restore: {name}: the snapshot carried and unpacked by etcdutl"));
            let mut stdin = Stdin::default();
            stdin.push_bytes(snapshot.clone());
            let there = run_on(*node, "carrying the snapshot", &upload_script(), stdin).await?;
            if there.split_whitespace().next().is_none_or(|sha| sha != want) {
                return Err(format!("{name}: the snapshot changed on its way (sha256 {want} here; there: {})", there.trim()));
            }
            let master = plan.node(name).ok_or_else(|| format!("{name} is not in the plan"))?;
            run_on(*node, "etcdutl snapshot restore", &unpack_script(plan, master)?, Stdin::default()).await?;
        }
        Ok(())
    };
    if let Err(e) = unpacked.await {
        for node in &masters {
            let _ = node.run(&clean_script(), Stdin::default()).await;
        }
        return Err(RunError::Etcd(format!("{e}; nothing was changed")));
    }
    // From here the control plane is down until every master has its restored data back.
    let again = "run `kos up` (it puts the control plane back), then `kos restore` again";
    for node in &masters {
        reporter.line(&format!("restore: {}: the control plane stopped", node.node()));
        run_on(*node, "stopping the control plane", &stop_script(), Stdin::default())
            .await
            .map_err(|e| RunError::Etcd(format!("{e}; {again}")))?;
    }
    let mut kept = Vec::new();
    for node in &masters {
        let before = run_on(*node, "swapping etcd's data", &swap_script(), Stdin::default())
            .await
            .map_err(|e| RunError::Etcd(format!("{e}; {again}")))?;
        kept.push((node.node().to_string(), before.trim().to_string()));
    }
    for node in &masters {
        reporter.line(&format!("restore: {}: the control plane started on the restored data", node.node()));
        run_on(*node, "starting the control plane", &start_script(), Stdin::default())
            .await
            .map_err(|e| RunError::Etcd(format!("{e}; {again}")))?;
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::backup::{Entry, FORMAT, SnapshotFacts};
    use crate::testing::{Heard, NoApiServer, settings};
    use kos_cloud::fake::FakeCloud;
    use kos_kube::loopback::LoopbackApi;
    use kos_node::remote::{Output, RemoteError};
    use std::sync::{Arc, Mutex};

    const DB: &[u8] = b"a bbolt file with etcd's hash at its end, as far as this test knows";

    /// Stands in for a master's shell, crictl and etcdutl (a unit test boots no server; the
    /// end-to-end test `testbed_up` restores a real etcd): it records each step, in order,
    /// and fails the one it is told to.
    #[derive(Debug, Clone)]
    struct MasterStandIn {
        node: String,
        log: Arc<Mutex<Vec<String>>>,
        fails: Option<&'static str>,
    }

    fn step(script: &str) -> &'static str {
        match script {
            s if s.contains("cat > /var/lib/etcd/kos-restore.db.part") => "carry",
            s if s.contains("etcdutl snapshot restore") => "unpack",
            s if s.contains("kos-restore-held; for f in /etc/kubernetes/manifests") => "stop",
            s if s.contains("mv /var/lib/etcd/kos-restore/member /var/lib/etcd/member") => "swap",
            s if s.contains("systemctl restart kubelet") => "start",
            s if s.starts_with("rm -rf /var/lib/etcd/kos-restore ") => "clean",
            other => panic!("an unexpected script: {other}"),
        }
    }

    impl Remote for MasterStandIn {
        fn node(&self) -> &str {
            &self.node
        }

        async fn run(&self, script: &str, stdin: Stdin) -> Result<Output, RemoteError> {
            let step = step(script);
            self.log.lock().unwrap().push(format!("{} {step}", self.node));
            if self.fails == Some(step) {
                return Ok(Output { status: Some(1), stdout: Vec::new(), stderr: b"Error: the stand-in fails here\n".to_vec() });
            }
            let stdout = match step {
                "carry" => format!("{}  {UPLOADED}\n", sha256_hex(&stdin.to_vec().await.unwrap())),
                "unpack" => {
                    assert!(script.contains("--initial-cluster=master-1=https://"), "{script}");
                    assert!(script.contains("--initial-cluster-token=demo --initial-advertise-peer-urls=https://"), "{script}");
                    assert!(script.contains(&format!("--name={} ", self.node)), "{script}");
                    assert!(script.contains("--bump-revision=1000000000 --mark-compacted"), "{script}");
                    String::new()
                }
                "swap" => format!("{BEFORE}/20261127T030000Z\n"),
                _ => String::new(),
            };
            Ok(Output { status: Some(0), stdout: stdout.into_bytes(), stderr: Vec::new() })
        }
    }

    type Masters = crate::testing::StandIns<MasterStandIn>;

    fn masters(fails: Option<&'static str>) -> (Masters, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        (crate::testing::StandIns(vec![MasterStandIn { node: "master-1".into(), log: log.clone(), fails }]), log)
    }

    /// An archive of cluster `cluster` whose PKI is these files.
    fn archive_of(path: &std::path::Path, cluster: &str, pki: &[(&str, &[u8])]) {
        let mut contents = vec![(SNAPSHOT.to_string(), DB.to_vec())];
        contents.extend(pki.iter().map(|(rel, b)| (format!("state/pki/{rel}"), b.to_vec())));
        let manifest = Manifest {
            format: FORMAT,
            cluster: cluster.into(),
            kubernetes_version: "v1.37.2".into(),
            kos_version: "test".into(),
            created: "2026-11-27T03:00:00Z".into(),
            taken_on: "master-1".into(),
            etcd: SnapshotFacts { revision: 1204, hash: 77, total_keys: 977, total_size: DB.len() as u64, sha256: sha256_hex(DB) },
            files: contents.iter().map(|(p, b)| Entry { path: p.clone(), bytes: b.len() as u64, sha256: sha256_hex(b) }).collect(),
        };
        std::fs::write(path, crate::backup::archive(&manifest, &contents, 0).unwrap()).unwrap();
    }

    fn options(archive: &std::path::Path) -> RestoreOptions {
        let wait = Duration::from_secs(1);
        RestoreOptions { archive: archive.to_path_buf(), ssh_wait: wait, api_wait: wait, ready_wait: Duration::from_secs(10) }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn every_master_gets_its_copy_before_any_is_stopped_then_the_cluster_is_waited_for() {
        let Some(api) = LoopbackApi::start_bare().await else { return };
        let dir = tempfile::tempdir().unwrap();
        let (cloud, kube, s, state) = crate::testing::served(dir.path(), &api).await;
        let pki = |rel: &str| std::fs::read(state.dir.join("pki").join(rel)).unwrap();
        let (ca, ca_key, sa) = (pki("ca.crt"), pki("ca.key"), pki("sa.key"));
        let archive = dir.path().join("backup.tar.gz");
        archive_of(&archive, "demo", &[("ca.crt", &ca), ("ca.key", &ca_key), ("sa.key", &sa)]);
        let heard = Heard::default();

        // etcdutl fails on the master: the restored copy is cleaned up, nothing stopped.
        let (failing, log) = masters(Some("unpack"));
        let e = restore(&s, &state, (&cloud, &failing, &kube), &options(&archive), &heard).await.unwrap_err().to_string();
        assert_eq!(e, "master-1: etcdutl snapshot restore failed: Error: the stand-in fails here; nothing was changed");
        assert_eq!(*log.lock().unwrap(), ["master-1 carry", "master-1 unpack", "master-1 clean"]);
        let asked = kube.connects();

        let (ok, log) = masters(None);
        let report = restore(&s, &state, (&cloud, &ok, &kube), &options(&archive), &heard).await.unwrap();
        assert_eq!(*log.lock().unwrap(), ["master-1 carry", "master-1 unpack", "master-1 stop", "master-1 swap", "master-1 start"]);
        assert_eq!(kube.connects(), asked + 1, "the API server is asked once the control plane is back");
        assert_eq!(report.pki, PkiOutcome::Same);
        assert_eq!(report.masters, [("master-1".to_string(), format!("{BEFORE}/20261127T030000Z"))]);
        assert!(report.ready.iter().all(|i| i.ready) && report.ready.len() == 3 + 4 + 1, "{:#?}", report.ready);
        let lines = report.lines();
        assert!(
            lines[0].starts_with("restored cluster demo from ")
                && lines[0].ends_with("(snapshot of 2026-11-27T03:00:00Z on master-1: revision 1204, 977 keys)"),
            "{lines:#?}"
        );
        assert!(lines[2].starts_with("ready: 3 node(s) Ready"), "{lines:#?}");

        // Stopped half-way: the message says how to get the control plane back.
        let (stops, _) = masters(Some("stop"));
        let e = restore(&s, &state, (&cloud, &stops, &kube), &options(&archive), &heard).await.unwrap_err().to_string();
        assert!(e.ends_with("run `kos up` (it puts the control plane back), then `kos restore` again"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_archive_of_another_cluster_or_ca_or_a_tampered_one_is_refused_and_a_lost_pki_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = FakeCloud::new();
        let kube = NoApiServer::default();
        let s = settings(dir.path());
        let state = LocalState::for_settings(Some(&dir.path().join(".kos")), &s);
        let heard = Heard::default();
        let (reach, log) = masters(None);
        let archive = dir.path().join("backup.tar.gz");

        archive_of(&archive, "other", &[("ca.crt", b"CA")]);
        let e = restore(&s, &state, (&cloud, &reach, &kube), &options(&archive), &heard).await.unwrap_err();
        assert!(e.is_invalid() && e.to_string().contains("is a backup of cluster other, and the settings are of cluster demo"), "{e}");

        // A byte changed in the archive: its manifest says so.
        archive_of(&archive, "demo", &[("ca.crt", b"CA"), ("ca.key", b"KEY")]);
        let (mut manifest, mut entries) = read_archive(&archive).unwrap();
        entries[1].1 = b"CB".to_vec();
        std::fs::write(&archive, crate::backup::archive(&manifest, &entries, 0).unwrap()).unwrap();
        let e = restore(&s, &state, (&cloud, &reach, &kube), &options(&archive), &heard).await.unwrap_err().to_string();
        assert!(e.contains("state/pki/ca.crt is not as its manifest lists it"), "{e}");
        manifest.format = 9;
        std::fs::write(&archive, crate::backup::archive(&manifest, &entries, 0).unwrap()).unwrap();
        let e = restore(&s, &state, (&cloud, &reach, &kube), &options(&archive), &heard).await.unwrap_err().to_string();
        assert!(e.contains("its format is 9, this kos reads 1"), "{e}");

        // No PKI here and no server: the archive's PKI is written (keys 0600), and the
        // message says to make the servers first.
        archive_of(&archive, "demo", &[("ca.crt", b"CA"), ("ca.key", b"KEY")]);
        let e = restore(&s, &state, (&cloud, &reach, &kube), &options(&archive), &heard).await.unwrap_err().to_string();
        assert!(e.starts_with("master-1 of cluster demo has no server: every master is restored at once, so run `kos up` first"), "{e}");
        use std::os::unix::fs::PermissionsExt as _;
        let key = state.dir.join("pki/ca.key");
        assert_eq!((std::fs::read(&key).unwrap(), std::fs::metadata(&key).unwrap().permissions().mode() & 0o777), (b"KEY".to_vec(), 0o600));
        assert!(heard.0.lock().unwrap().iter().any(|l| l.starts_with("restore: the archive's PKI (2 files) written to ")));

        // A state with another CA: refused, naming the files.
        std::fs::write(state.dir.join("pki/ca.crt"), b"ANOTHER CA").unwrap();
        let e = restore(&s, &state, (&cloud, &reach, &kube), &options(&archive), &heard).await.unwrap_err().to_string();
        assert!(e.starts_with("the archive's ca.crt differ from "), "{e}");
        assert!(log.lock().unwrap().is_empty(), "no master was asked anything");
        assert_eq!(kube.connects(), 0, "nor the API server");
    }
}
