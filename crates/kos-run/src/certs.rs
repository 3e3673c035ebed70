//! `kos certs check` on the nodes: every certificate deployed on each node (the files under
//! `/etc/kubernetes/pki` and `/var/lib/kubelet/pki`, and the client certificates embedded in
//! the kubeconfigs `/etc/kubernetes/*.conf`), with its expiry, issuer and names, compared
//! with kos's PKI: the same issue (serial and issuer) as a file of the state, another issue of
//! one (a renewal not rolled out yet, or a certificate changed on the node), or one kos did not
//! make.

use crate::nodes::{self, NodeSession, Reach};
use crate::state::LocalState;
use crate::{Reporter, RunError};
use base64::Engine as _;
use kos_cloud::Cloud;
use kos_core::settings::Settings;
use kos_node::remote::Remote;
use kos_pki::{CertDetails, OffsetDateTime, Pki, Signers};
use std::time::Duration;

/// Prints each certificate file and kubeconfig of the node, each after a `=== <path>` line.
const DEPLOYED: &str = "for f in $(find /etc/kubernetes/pki /var/lib/kubelet/pki -type f -name '*.crt' 2>/dev/null | sort) \
     $(ls /etc/kubernetes/*.conf 2>/dev/null); do echo \"=== $f\"; cat \"$f\"; done";

/// What a deployed certificate is to kos's PKI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Match {
    /// The same issue as this file of the state's PKI.
    Same { file: String },
    /// Another issue of this file's certificate (same subject and issuer): kos's expires then.
    Differs { file: String, kos_expires: String },
    /// None of the state's CAs signed it, or no certificate of the state has its subject.
    NotKos,
    /// It could not be read (the reason).
    Unreadable { why: String },
}

/// One certificate on one node.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeCert {
    pub node: String,
    /// The file (`/etc/kubernetes/pki/apiserver.crt`), or the kubeconfig and its user
    /// (`/etc/kubernetes/kubelet.conf (user default-auth)`).
    pub path: String,
    pub subject: String,
    pub issuer: String,
    pub days_left: i64,
    /// `YYYY-MM-DD`.
    pub expires: String,
    pub sans: Vec<String>,
    #[serde(flatten)]
    pub matches: Match,
}

/// Every node's certificates, and the nodes that could not be asked.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NodeCertsReport {
    pub certs: Vec<NodeCert>,
    pub unreachable: Vec<String>,
}

impl NodeCertsReport {
    /// The certificates that are not kos's current issue, and the nodes not asked.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .certs
            .iter()
            .filter_map(|c| match &c.matches {
                Match::Same { .. } => None,
                Match::Differs { file, kos_expires } => Some(format!(
                    "{} {}: another issue than kos's {file} (deployed expires {}, kos's {kos_expires}): run `kos up --only kubernetes` to roll kos's out",
                    c.node, c.path, c.expires
                )),
                Match::NotKos => Some(format!("{} {}: not made by kos ({}, issuer {})", c.node, c.path, c.subject, c.issuer)),
                Match::Unreadable { why } => Some(format!("{} {}: unreadable: {why}", c.node, c.path)),
            })
            .collect();
        out.extend(self.certs.iter().filter(|c| c.days_left < 0).map(|c| format!("{} {}: expired on {}", c.node, c.path, c.expires)));
        out.extend(self.unreachable.iter().map(|u| format!("not asked: {u}")));
        out
    }

    /// The table for people.
    pub fn table(&self) -> Vec<String> {
        let mut out =
            vec![format!("{:<10} {:<58} {:>9}  {:<17}  {}", "NODE", "DEPLOYED CERTIFICATE", "DAYS LEFT", "EXPIRES (UTC)", "KOS'S PKI")];
        for c in &self.certs {
            let state = match &c.matches {
                Match::Same { file } => format!("same as {file}"),
                Match::Differs { file, .. } => format!("DIFFERS from {file}"),
                Match::NotKos => "NOT KOS'S".into(),
                Match::Unreadable { .. } => "UNREADABLE".into(),
            };
            out.push(format!("{:<10} {:<58} {:>9}  {:<17}  {state}", c.node, c.path, c.days_left, c.expires));
        }
        out
    }
}

/// The certificates of one node's answer to [`DEPLOYED`]: (path, PEM).
fn deployed(stdout: &str) -> Vec<(String, Result<String, String>)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in stdout.lines() {
        match line.strip_prefix("=== ") {
            Some(path) => files.push((path.to_string(), String::new())),
            None => {
                if let Some((_, body)) = files.last_mut() {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    let mut out = Vec::new();
    for (path, body) in files {
        if !path.ends_with(".conf") {
            out.push((path, Ok(body)));
            continue;
        }
        // A kubeconfig: the client certificates embedded in its users.
        let Ok(config) = serde_saphyr::from_str::<serde_json::Value>(&body) else {
            out.push((path, Err("not a kubeconfig".into())));
            continue;
        };
        for user in config["users"].as_array().into_iter().flatten() {
            let Some(data) = user["user"]["client-certificate-data"].as_str() else { continue };
            let name = user["name"].as_str().unwrap_or("?");
            let pem = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| e.to_string())
                .and_then(|b| String::from_utf8(b).map_err(|e| e.to_string()));
            out.push((format!("{path} (user {name})"), pem));
        }
    }
    out
}

/// What `pem` on `node` is to the state's certificates.
fn judge(
    node: &str,
    path: &str,
    pem: Result<String, String>,
    signers: &Signers,
    local: &[(String, CertDetails)],
    now: OffsetDateTime,
) -> NodeCert {
    let details = pem.and_then(|p| Pki::inspect(&p, now).map(|d| (d, signers.of(&p))).map_err(|e| e.to_string()));
    let (d, signer) = match details {
        Ok(d) => d,
        Err(why) => {
            return NodeCert {
                node: node.into(),
                path: path.into(),
                subject: String::new(),
                issuer: String::new(),
                days_left: 0,
                expires: String::new(),
                sans: Vec::new(),
                matches: Match::Unreadable { why },
            };
        }
    };
    let same = local.iter().find(|(_, l)| l.serial == d.serial && l.issuer == d.issuer);
    // Of the same certificate, the node's own file first (etcd/server-master-1 on master-1).
    let kin: Vec<&(String, CertDetails)> = local.iter().filter(|(_, l)| l.subject == d.subject && l.issuer == d.issuer).collect();
    let kin = kin.iter().find(|(f, _)| f.contains(node)).or(kin.first());
    // Only a certificate one of the state's CAs signed is kos's, whatever its names.
    let matches = match (signer, same, kin) {
        (None, _, _) => Match::NotKos,
        (Some(_), Some((file, _)), _) => Match::Same { file: file.clone() },
        (Some(_), None, Some((file, l))) => Match::Differs { file: file.clone(), kos_expires: minute(l.not_after) },
        (Some(_), None, None) => Match::NotKos,
    };
    NodeCert {
        node: node.into(),
        path: path.into(),
        subject: d.subject,
        issuer: d.issuer,
        days_left: d.days_left,
        expires: minute(d.not_after),
        sans: d.sans,
        matches,
    }
}

/// `2026-11-27T10:15Z`: an expiry to the minute (a short-lived certificate's day says little).
fn minute(t: OffsetDateTime) -> String {
    format!("{}T{:02}:{:02}Z", t.date(), t.hour(), t.minute())
}

/// Read every node's certificates and compare them with the state's PKI.
pub async fn node_certs<C: Cloud, R: Reach>(
    settings: &Settings,
    state: &LocalState,
    cloud: &C,
    reach: &R,
    ssh_wait: Duration,
    reporter: &dyn Reporter,
) -> Result<NodeCertsReport, RunError> {
    let now = OffsetDateTime::now_utc();
    let pki = state.pki();
    let local: Vec<(String, CertDetails)> = pki
        .check(now)
        .map_err(|e| RunError::Other(anyhow::Error::new(e)))?
        .into_iter()
        .filter_map(|s| s.details.ok().map(|d| (s.file, d)))
        .collect();
    let signers = pki.signers();
    let crate::Looked { have, plan, .. } = crate::look(cloud, settings).await?;
    let sessions = nodes::connect_all(reach, &plan, &have, ssh_wait, reporter, &mut nodes::Early::default()).await?;
    let mut report = NodeCertsReport::default();
    for s in &sessions {
        match s {
            NodeSession::Failed { node, error } => report.unreachable.push(format!("{node}: {error}")),
            NodeSession::Up(n) => match n.run(DEPLOYED, Default::default()).await {
                Ok(out) if out.success() => {
                    let found = deployed(&out.stdout_text());
                    report.certs.extend(found.into_iter().map(|(path, pem)| judge(n.node(), &path, pem, &signers, &local, now)));
                }
                Ok(out) => report.unreachable.push(format!("{}: {}", n.node(), out.stderr_text().trim())),
                Err(e) => report.unreachable.push(format!("{}: {e}", n.node())),
            },
        }
    }
    nodes::close_all(reach, sessions).await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::testing::Heard;
    use kos_node::remote::{Output, RemoteError, Stdin};

    /// Stands in for a node's files (a unit test boots no server; the end-to-end test
    /// `testbed_up` reads real nodes): it answers [`DEPLOYED`] with what it is given.
    #[derive(Debug, Clone)]
    struct Files {
        node: String,
        answer: String,
    }

    impl Remote for Files {
        fn node(&self) -> &str {
            &self.node
        }

        async fn run(&self, script: &str, _stdin: Stdin) -> Result<Output, RemoteError> {
            assert_eq!(script, DEPLOYED);
            Ok(Output { status: Some(0), stdout: self.answer.clone().into_bytes(), stderr: Vec::new() })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_deployed_certificate_is_compared_with_the_states_by_issue() {
        let dir = tempfile::tempdir().unwrap();
        let (cloud, s, state) = crate::testing::made_with_pki(dir.path()).await;
        let pki = state.pki();
        let old_apiserver = pki.cert_pem("apiserver").unwrap();
        let admin = pki.cert_pem("admin").unwrap();
        let kubelet = pki.cert_pem("nodes/worker-1/kubelet-server").unwrap();
        // A renewal not rolled out: the master still has the old issue.
        let plan = crate::plan_for(&s, &state.observed().unwrap()).unwrap();
        let only = kos_pki::RenewFilter::Only(vec!["apiserver".into()]);
        pki.renew(&plan.certificates, &only, OffsetDateTime::now_utc()).unwrap();
        // A certificate of another cluster's CA.
        let other = tempfile::tempdir().unwrap();
        let foreign = Pki::open(other.path());
        foreign.ensure(&plan.certificates, OffsetDateTime::now_utc()).unwrap();
        let foreign = foreign.cert_pem("apiserver").unwrap();
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: kos-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: c2VjcmV0\n",
            base64::engine::general_purpose::STANDARD.encode(&admin)
        );
        let master = format!(
            "=== /etc/kubernetes/pki/apiserver.crt\n{old_apiserver}=== /etc/kubernetes/pki/front.crt\n{foreign}=== /etc/kubernetes/pki/broken.crt\nnot a certificate\n=== /etc/kubernetes/admin.conf\n{kubeconfig}"
        );
        let worker = format!("=== /var/lib/kubelet/pki/kubelet.crt\n{kubelet}");
        let reach = crate::testing::StandIns(vec![
            Files { node: "master-1".into(), answer: master },
            Files { node: "worker-1".into(), answer: worker },
        ]);
        let report = node_certs(&s, &state, &cloud, &reach, Duration::from_secs(1), &Heard::default()).await.unwrap();
        let seen: Vec<(&str, &str, &Match)> = report.certs.iter().map(|c| (c.node.as_str(), c.path.as_str(), &c.matches)).collect();
        assert!(
            matches!(seen[0], ("master-1", "/etc/kubernetes/pki/apiserver.crt", Match::Differs { file, .. }) if file == "apiserver.crt"),
            "{seen:#?}"
        );
        assert_eq!(seen[1], ("master-1", "/etc/kubernetes/pki/front.crt", &Match::NotKos));
        assert!(matches!(seen[2], ("master-1", "/etc/kubernetes/pki/broken.crt", Match::Unreadable { .. })), "{seen:#?}");
        assert_eq!(seen[3], ("master-1", "/etc/kubernetes/admin.conf (user kos-admin)", &Match::Same { file: "admin.crt".into() }));
        assert_eq!(
            seen[4],
            ("worker-1", "/var/lib/kubelet/pki/kubelet.crt", &Match::Same { file: "nodes/worker-1/kubelet-server.crt".into() })
        );
        assert!(report.certs[0].sans.iter().any(|n| n.contains("kubernetes.default")), "{:?}", report.certs[0].sans);
        assert!(report.certs[4].days_left > 300 && report.certs[0].days_left > 300, "{report:#?}");
        let problems = report.problems();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems[0].contains("another issue than kos's apiserver.crt")
                && problems[0].ends_with("run `kos up --only kubernetes` to roll kos's out")
        );
        assert!(problems[1].starts_with("master-1 /etc/kubernetes/pki/front.crt: not made by kos"), "{problems:#?}");
        assert_eq!(problems[3], "not asked: worker-2: worker-2: connection refused");
        let table = report.table();
        assert!(
            table[1].contains("DIFFERS from apiserver.crt") && table[5].ends_with("same as nodes/worker-1/kubelet-server.crt"),
            "{table:#?}"
        );
    }
}
