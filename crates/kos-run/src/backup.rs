//! `kos backup`: an archive on the operator's machine that holds what a cluster cannot be
//! made again without: an etcd snapshot (every Kubernetes object), the cluster's PKI (its
//! CAs and service-account keys) and kos's state and settings.
//!
//! The snapshot is taken on the first master whose etcd takes one (`etcdctl snapshot save`
//! in its etcd container, into etcd's data folder), checked there by `etcdutl snapshot
//! status` (which reads the whole file and computes its hash), and carried back by SSH; its
//! SHA-256 is compared on both ends. The archive (`.tar.gz`) is written whole or not at all,
//! mode 0600, with a manifest `kos-backup.json` first that lists every other file with its
//! size and SHA-256. The snapshot travels in memory: fine for the few hundred MiB a
//! cluster's etcd holds (etcd's own quota defaults to 2 GiB).

use crate::nodes::{self, NodeSession, Reach};
use crate::state::LocalState;
use crate::{Reporter, RunError};
use kos_cloud::Cloud;
use kos_core::settings::Settings;
use kos_node::remote::Remote;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The archive's layout version (`kos-backup.json`'s `format`).
pub const FORMAT: u32 = 1;
/// The manifest, the archive's first entry.
pub const MANIFEST: &str = "kos-backup.json";
/// The etcd snapshot in the archive.
pub const SNAPSHOT: &str = "etcd/snapshot.db";
/// Where the master writes the snapshot before it is carried back (etcd's data folder: on
/// the master's disk, mounted at the same path in the etcd container).
const ON_MASTER: &str = "/var/lib/etcd/kos-backup.db";
/// How long `etcdctl snapshot save` may take.
const SNAPSHOT_WAIT_SECS: u64 = 600;

/// What `kos backup` was asked for.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The archive to write; default `<state>/backups/<cluster>-<UTC time>.tar.gz`.
    pub out: Option<PathBuf>,
    pub ssh_wait: Duration,
    /// kos's version, recorded in the manifest.
    pub kos_version: String,
}

/// What an archive holds, as its manifest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub cluster: String,
    pub kubernetes_version: String,
    pub kos_version: String,
    /// UTC, RFC 3339.
    pub created: String,
    /// The master whose etcd made the snapshot.
    pub taken_on: String,
    pub etcd: SnapshotFacts,
    /// Every other entry of the archive, in its order.
    pub files: Vec<Entry>,
}

/// The snapshot as `etcdutl snapshot status` read it on the master, and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFacts {
    pub revision: i64,
    /// etcd's own hash of the snapshot's contents.
    pub hash: u64,
    pub total_keys: u64,
    pub total_size: u64,
    pub sha256: String,
}

/// One file of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The archive written, and what it holds.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub archive: PathBuf,
    pub archive_bytes: u64,
    pub manifest: Manifest,
}

impl BackupReport {
    /// Lines for people: the archive, the snapshot, then every entry with its size.
    pub fn lines(&self) -> Vec<String> {
        let m = &self.manifest;
        let mut out = vec![
            format!("wrote {} ({} bytes, mode 0600)", self.archive.display(), self.archive_bytes),
            format!(
                "etcd snapshot from {}: revision {}, {} keys, {} bytes, etcd hash {}, sha256 {}",
                m.taken_on, m.etcd.revision, m.etcd.total_keys, m.etcd.total_size, m.etcd.hash, m.etcd.sha256
            ),
        ];
        out.extend(m.files.iter().map(|f| format!("  {:>10}  {}", f.bytes, f.path)));
        out
    }
}

/// `etcdutl snapshot status -w json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    hash: u64,
    revision: i64,
    total_key: u64,
    total_size: u64,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The script that takes the snapshot and prints its status (a JSON line) and its SHA-256.
fn take_script() -> String {
    let save = crate::etcd::etcdctl_within(SNAPSHOT_WAIT_SECS, &format!("snapshot save {ON_MASTER}"));
    let status = crate::etcd::in_etcd(&format!("etcdutl snapshot status {ON_MASTER} -w json"));
    format!("set -e; rm -f {ON_MASTER} {ON_MASTER}.part; {save} >&2; {status}; sha256sum {ON_MASTER}")
}

/// The script that prints the snapshot and removes it from the master, whatever happened.
fn fetch_script() -> String {
    format!("cat {ON_MASTER}; s=$?; rm -f {ON_MASTER}; exit $s")
}

/// A node's answer to [`take_script`]: etcd's facts and the file's SHA-256 there.
fn parse_taken(stdout: &str) -> Result<(Status, String), String> {
    let json =
        stdout.lines().find(|l| l.trim_start().starts_with('{')).ok_or_else(|| format!("no snapshot status in: {}", stdout.trim()))?;
    let status: Status = serde_json::from_str(json.trim()).map_err(|e| format!("unreadable snapshot status ({e}): {json}"))?;
    let sha = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("no SHA-256 of the snapshot in: {}", stdout.trim()))?;
    Ok((status, sha.to_string()))
}

/// Take a snapshot on `node` and bring it here, checked.
async fn snapshot<N: Remote>(node: &N) -> Result<(Vec<u8>, SnapshotFacts), String> {
    let why = |out: &kos_node::remote::Output| crate::etcd::why(&out.stderr_text());
    let taken = node.run(&take_script(), Default::default()).await.map_err(|e| e.to_string())?;
    if !taken.success() {
        return Err(format!("{}: the snapshot failed: {}", node.node(), why(&taken)));
    }
    let (status, sha_there) = parse_taken(&taken.stdout_text()).map_err(|e| format!("{}: {e}", node.node()))?;
    let fetched = node.run(&fetch_script(), Default::default()).await.map_err(|e| e.to_string())?;
    if !fetched.success() {
        return Err(format!("{}: the snapshot could not be read: {}", node.node(), why(&fetched)));
    }
    let sha_here = sha256_hex(&fetched.stdout);
    if sha_here != sha_there {
        return Err(format!(
            "{}: the snapshot changed on its way ({} bytes, sha256 {sha_here} here, {sha_there} on the master)",
            node.node(),
            fetched.stdout.len()
        ));
    }
    let facts = SnapshotFacts {
        revision: status.revision,
        hash: status.hash,
        total_keys: status.total_key,
        total_size: status.total_size,
        sha256: sha_here,
    };
    Ok((fetched.stdout, facts))
}

/// Every file under `dir`, sorted, with its path relative to `dir` ('/'-separated).
fn files_under(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let path = e.path();
            if e.file_type()?.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.push((rel.to_string_lossy().replace('\\', "/"), path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The archive's bytes: the manifest, then each entry, every one mode 0600.
pub(crate) fn archive(manifest: &Manifest, contents: &[(String, Vec<u8>)], mtime: u64) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let json = serde_json::to_vec_pretty(manifest).map_err(std::io::Error::other)?;
    for (path, bytes) in std::iter::once((MANIFEST, json.as_slice())).chain(contents.iter().map(|(p, b)| (p.as_str(), b.as_slice()))) {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, bytes)?;
    }
    tar.into_inner()?.finish()
}

/// An archive's entries but the manifest: (path, contents), in its order.
pub type Contents = Vec<(String, Vec<u8>)>;

/// Read an archive's manifest and entries (for `kos restore`, and to check one).
pub fn read_archive(path: &Path) -> std::io::Result<(Manifest, Contents)> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut manifest = None;
    let mut entries = Vec::new();
    for e in tar.entries()? {
        let mut e = e?;
        let name = e.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes)?;
        if name == MANIFEST {
            manifest = Some(serde_json::from_slice::<Manifest>(&bytes).map_err(std::io::Error::other)?);
        } else {
            entries.push((name, bytes));
        }
    }
    let manifest = manifest.ok_or_else(|| std::io::Error::other(format!("{} has no {MANIFEST}: not a kos backup", path.display())))?;
    Ok((manifest, entries))
}

/// `2026-11-27T01:02:03Z` and `20261127T010203Z` (for a file name) of a UNIX time.
fn utc(secs: u64) -> (String, String) {
    let t = time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (y, mo, d, h, mi, s) = (t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second());
    (format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"), format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z"))
}

/// Back the cluster up into one archive.
pub async fn backup<C: Cloud, R: Reach>(
    settings: &Settings,
    state: &LocalState,
    cloud: &C,
    reach: &R,
    options: &BackupOptions,
    reporter: &dyn Reporter,
) -> Result<BackupReport, RunError> {
    let crate::Looked { have, plan, .. } = crate::look(cloud, settings).await?;
    let cluster = &settings.cluster.name;
    if !plan.masters().any(|m| have.servers.contains_key(&m.name)) {
        return Err(RunError::Invalid(format!(
            "cluster {cluster} has no master server in cloud {}: there is no etcd to back up",
            cloud.name()
        )));
    }
    // The PKI is looked for before any master is asked: a snapshot without it is no backup.
    pki_files(state)?;
    // Only the masters are asked.
    let is_master = |node: &str| plan.masters().any(|m| m.name == node);
    let sessions = nodes::connect_some(reach, &plan, &have, is_master, options.ssh_wait, reporter, &mut nodes::Early::default()).await?;
    let failed = sessions
        .iter()
        .filter_map(|s| match s {
            NodeSession::Failed { node, error } => Some(format!("{node}: {error}")),
            NodeSession::Up(_) => None,
        })
        .collect();
    let masters: Vec<&R::Node> = sessions
        .iter()
        .filter_map(|s| match s {
            NodeSession::Up(n) => Some(n),
            NodeSession::Failed { .. } => None,
        })
        .collect();
    let what = Archived {
        kubernetes_version: settings.cluster.kubernetes_version.to_string(),
        kos_version: options.kos_version.clone(),
        out: options.out.clone(),
        name: None,
    };
    let report = write_archive(settings, state, &masters, failed, what, reporter).await;
    nodes::close_all(reach, sessions).await;
    report
}

/// The files of `<state>/pki`, refused when there are none: a snapshot without the
/// cluster's CAs is no backup.
fn pki_files(state: &LocalState) -> Result<Vec<(String, PathBuf)>, RunError> {
    let pki = state.dir.join("pki");
    let pki_files = match pki.exists() {
        true => files_under(&pki).map_err(|e| RunError::Other(anyhow::anyhow!("read {}: {e}", pki.display())))?,
        false => Vec::new(),
    };
    if pki_files.is_empty() {
        return Err(RunError::Invalid(format!(
            "{} holds no PKI: a backup without the cluster's CAs could not restore it; run kos backup where kos up ran (or with its --state-dir)",
            pki.display()
        )));
    }
    Ok(pki_files)
}

/// What an archive records beside the snapshot, and where it goes.
#[derive(Debug)]
pub(crate) struct Archived {
    /// The Kubernetes the cluster runs.
    pub kubernetes_version: String,
    pub kos_version: String,
    /// The archive's path; `None`: `<state>/backups/<cluster>-<name or time>.tar.gz`.
    pub out: Option<PathBuf>,
    pub name: Option<String>,
}

/// A snapshot from the first of `masters` that gives one (`failed`: the masters that could
/// not be asked, for the error), written into an archive with the settings and kos's state.
pub(crate) async fn write_archive<N: Remote>(
    settings: &Settings,
    state: &LocalState,
    masters: &[&N],
    failed: Vec<String>,
    what: Archived,
    reporter: &dyn Reporter,
) -> Result<BackupReport, RunError> {
    let cluster = &settings.cluster.name;
    let pki_files = pki_files(state)?;
    let mut tried = failed;
    let mut taken = None;
    for node in masters {
        reporter.line(&format!("etcd snapshot on {}", node.node()));
        match snapshot(*node).await {
            Ok(t) => {
                taken = Some((node.node().to_string(), t));
                break;
            }
            Err(e) => tried.push(e),
        }
    }
    let Some((taken_on, (snapshot_bytes, facts))) = taken else {
        return Err(RunError::Etcd(format!("no master gave an etcd snapshot: {}", tried.join("; "))));
    };

    let read = |path: &Path| std::fs::read(path).map_err(|e| RunError::Other(anyhow::anyhow!("read {}: {e}", path.display())));
    let mut contents: Vec<(String, Vec<u8>)> =
        vec![(SNAPSHOT.to_string(), snapshot_bytes), ("settings.yaml".into(), read(&settings.source)?)];
    if state.observed_file().exists() {
        contents.push(("state/observed.yaml".into(), read(&state.observed_file())?));
    }
    for (rel, path) in pki_files {
        contents.push((format!("state/pki/{rel}"), read(&path)?));
    }

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (created, stamp) = utc(now);
    let manifest = Manifest {
        format: FORMAT,
        cluster: cluster.clone(),
        kubernetes_version: what.kubernetes_version,
        kos_version: what.kos_version,
        created,
        taken_on,
        etcd: facts,
        files: contents.iter().map(|(p, b)| Entry { path: p.clone(), bytes: b.len() as u64, sha256: sha256_hex(b) }).collect(),
    };
    let bytes = archive(&manifest, &contents, now).map_err(|e| RunError::Other(anyhow::anyhow!("build the archive: {e}")))?;
    let name = what.name.unwrap_or(stamp);
    let out = what.out.unwrap_or_else(|| state.dir.join("backups").join(format!("{cluster}-{name}.tar.gz")));
    kos_fs::write_atomic(&out, &bytes, 0o600).map_err(|e| RunError::Other(anyhow::anyhow!("write {}: {e}", out.display())))?;
    Ok(BackupReport { archive: out, archive_bytes: bytes.len() as u64, manifest })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::Phase;
    use crate::testing::{Answer, Heard, NoApiServer, run, settings};
    use kos_cloud::fake::FakeCloud;
    use kos_node::remote::{Output, RemoteError, Stdin};
    use kos_node::ssh::SshTarget;

    /// Stands in for a master's shell and etcd (a unit test boots no server; the end-to-end
    /// test `testbed_up` backs up a real etcd): it answers the two scripts `backup` runs.
    #[derive(Debug, Clone)]
    struct EtcdStandIn {
        node: String,
        /// `Some(why)`: etcdctl fails with this error.
        fails: Option<String>,
        /// The bytes sent differ from the file's (a transfer gone wrong).
        garbles: bool,
    }

    const DB: &[u8] = b"a bbolt file, as far as this test knows";

    impl Remote for EtcdStandIn {
        fn node(&self) -> &str {
            &self.node
        }

        async fn run(&self, script: &str, _stdin: Stdin) -> Result<Output, RemoteError> {
            let ok = |stdout: Vec<u8>| Ok(Output { status: Some(0), stdout, stderr: Vec::new() });
            if script.contains("snapshot save") {
                return match &self.fails {
                    Some(why) => Ok(Output {
                        status: Some(1),
                        stdout: Vec::new(),
                        stderr: format!("{{\"level\":\"warn\"}}\nError: {why}\n").into_bytes(),
                    }),
                    None => ok(format!(
                        "{{\"hash\":77,\"revision\":1204,\"totalKey\":977,\"totalSize\":{}}}\n{}  {ON_MASTER}\n",
                        DB.len(),
                        sha256_hex(DB)
                    )
                    .into_bytes()),
                };
            }
            assert_eq!(script, fetch_script());
            ok(if self.garbles { DB[1..].to_vec() } else { DB.to_vec() })
        }
    }

    /// The masters' stand-ins, and what kos asked of the reach: the nodes the ssh_config was
    /// written for, and the nodes it connected to.
    #[derive(Debug, Default)]
    struct Masters(Vec<EtcdStandIn>, std::sync::Mutex<(Vec<String>, Vec<String>)>);

    impl Reach for Masters {
        type Node = EtcdStandIn;

        fn prepare(&self, targets: &[SshTarget]) -> Result<String, RunError> {
            self.1.lock().unwrap().0 = targets.iter().map(|t| t.node.clone()).collect();
            Ok(String::new())
        }

        async fn connect(&self, target: &SshTarget, _wait: Duration) -> Result<EtcdStandIn, String> {
            self.1.lock().unwrap().1.push(target.node.clone());
            self.0.iter().find(|m| m.node == target.node).cloned().ok_or_else(|| format!("{}: not a master", target.node))
        }

        async fn close(&self, _node: EtcdStandIn) {}
    }

    fn master(node: &str, fails: Option<&str>, garbles: bool) -> EtcdStandIn {
        EtcdStandIn { node: node.into(), fails: fails.map(str::to_string), garbles }
    }

    #[tokio::test]
    async fn backup_takes_the_snapshot_checks_it_and_writes_a_private_archive_of_it_and_the_pki() {
        let dir = tempfile::tempdir().unwrap();
        let cloud = FakeCloud::new();
        // A backup asks etcd on a master, never the API server.
        let kube = NoApiServer::default();
        let s = settings(dir.path());
        let state = LocalState::for_settings(Some(&dir.path().join(".kos")), &s);
        let options = BackupOptions { out: None, ssh_wait: Duration::from_secs(1), kos_version: "test".into() };
        let heard = Heard::default();
        let ok = Masters(vec![master("master-1", None, false)], Default::default());

        // No server yet: nothing to back up, said as bad input.
        let none = backup(&s, &state, &cloud, &ok, &options, &heard).await.unwrap_err();
        assert!(none.is_invalid() && none.to_string().contains("has no master server"), "{none}");

        run(dir.path(), &[Phase::Instances], &cloud, &Answer::default(), &kube).await.1.unwrap();
        // No PKI here: refused, nothing written.
        let no_pki = backup(&s, &state, &cloud, &ok, &options, &heard).await.unwrap_err();
        assert!(no_pki.to_string().contains("holds no PKI"), "{no_pki}");
        assert!(!state.dir.join("backups").exists());

        kos_fs::write_atomic(&state.dir.join("pki/ca.key"), b"THE CA KEY", 0o600).unwrap();
        kos_fs::write_atomic(&state.dir.join("pki/etcd/ca.key"), b"THE ETCD CA KEY", 0o600).unwrap();
        // etcdctl's error, and a garbled transfer, are each said with the master's name.
        let failing = Masters(vec![master("master-1", Some("context deadline exceeded"), false)], Default::default());
        let e = backup(&s, &state, &cloud, &failing, &options, &heard).await.unwrap_err().to_string();
        assert_eq!(e, "no master gave an etcd snapshot: master-1: the snapshot failed: Error: context deadline exceeded");
        let garbled = Masters(vec![master("master-1", None, true)], Default::default());
        let e = backup(&s, &state, &cloud, &garbled, &options, &heard).await.unwrap_err().to_string();
        assert!(e.contains("master-1: the snapshot changed on its way (38 bytes, sha256 "), "{e}");

        let report = backup(&s, &state, &cloud, &ok, &options, &heard).await.unwrap();
        // Only the master is asked, but the ssh_config written (the operator's too) names
        // every node: a backup once left the workers out of it.
        let (prepared, connected) = ok.1.lock().unwrap().clone();
        assert_eq!((prepared, connected), (vec!["master-1".into(), "worker-1".into(), "worker-2".into()], vec!["master-1".into()]));
        assert!(report.archive.starts_with(state.dir.join("backups")) && report.archive.to_string_lossy().ends_with("Z.tar.gz"));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&report.archive).unwrap().permissions().mode() & 0o777, 0o600);
        let (manifest, entries) = read_archive(&report.archive).unwrap();
        assert_eq!(manifest, report.manifest);
        assert_eq!((manifest.cluster.as_str(), manifest.taken_on.as_str(), manifest.etcd.revision), ("demo", "master-1", 1204));
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [SNAPSHOT, "settings.yaml", "state/observed.yaml", "state/pki/ca.key", "state/pki/etcd/ca.key"]);
        assert_eq!(entries[0].1, DB);
        assert_eq!(entries[3].1, b"THE CA KEY");
        for ((name, bytes), listed) in entries.iter().zip(&manifest.files) {
            assert_eq!((name, bytes.len() as u64, sha256_hex(bytes)), (&listed.path, listed.bytes, listed.sha256.clone()));
        }
        let lines = report.lines();
        assert!(
            lines[1].starts_with("etcd snapshot from master-1: revision 1204, 977 keys, 39 bytes, etcd hash 77, sha256 "),
            "{lines:#?}"
        );
        assert_eq!(lines.len(), 2 + 5);
        assert_eq!(kube.connects(), 0);
    }

    #[test]
    fn the_masters_answer_gives_etcds_facts_and_the_files_hash() {
        let sha = "a".repeat(64);
        let out = format!(
            "{{\"hash\":3841436395,\"revision\":1204,\"totalKey\":977,\"totalSize\":2359296,\"version\":\"3.6.0\"}}\n{sha}  {ON_MASTER}\n"
        );
        let (status, got) = parse_taken(&out).unwrap();
        assert_eq!((status.hash, status.revision, status.total_key, status.total_size), (3841436395, 1204, 977, 2359296));
        assert_eq!(got, sha);
        assert!(parse_taken("Snapshot saved\n").unwrap_err().starts_with("no snapshot status in"));
        assert!(parse_taken("{\"hash\":1,\"revision\":1,\"totalKey\":1,\"totalSize\":1}\n").unwrap_err().starts_with("no SHA-256"));
    }

    #[test]
    fn the_scripts_save_check_and_always_remove_the_snapshot_on_the_master() {
        let take = take_script();
        assert!(take.starts_with("set -e; rm -f /var/lib/etcd/kos-backup.db"), "{take}");
        assert!(take.contains("--command-timeout=600s snapshot save /var/lib/etcd/kos-backup.db"), "{take}");
        assert!(take.contains("etcdutl snapshot status /var/lib/etcd/kos-backup.db -w json"), "{take}");
        assert!(take.ends_with("sha256sum /var/lib/etcd/kos-backup.db"), "{take}");
        assert_eq!(fetch_script(), "cat /var/lib/etcd/kos-backup.db; s=$?; rm -f /var/lib/etcd/kos-backup.db; exit $s");
    }

    #[test]
    fn an_archive_reads_back_as_written_every_entry_0600() {
        let dir = tempfile::tempdir().unwrap();
        let contents = vec![(SNAPSHOT.to_string(), vec![7u8; 5000]), ("state/pki/ca.key".to_string(), b"KEY".to_vec())];
        let manifest = Manifest {
            format: FORMAT,
            cluster: "demo".into(),
            kubernetes_version: "1.37.2".into(),
            kos_version: "test".into(),
            created: utc(1_795_000_000).0,
            taken_on: "master-1".into(),
            etcd: SnapshotFacts { revision: 5, hash: 9, total_keys: 3, total_size: 5000, sha256: sha256_hex(&[7u8; 5000]) },
            files: contents.iter().map(|(p, b)| Entry { path: p.clone(), bytes: b.len() as u64, sha256: sha256_hex(b) }).collect(),
        };
        let path = dir.path().join("b.tar.gz");
        std::fs::write(&path, archive(&manifest, &contents, 1_795_000_000).unwrap()).unwrap();
        let (read, entries) = read_archive(&path).unwrap();
        assert_eq!(read, manifest);
        assert_eq!(entries, contents);
        let file = std::fs::File::open(&path).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let modes: Vec<u32> = tar.entries().unwrap().map(|e| e.unwrap().header().mode().unwrap()).collect();
        assert_eq!(modes, [0o600, 0o600, 0o600]);
        assert_eq!(utc(1_795_000_000), ("2026-11-18T11:06:40Z".to_string(), "20261118T110640Z".to_string()));
    }
}
