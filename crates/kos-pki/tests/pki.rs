//! kos-pki against independent judges: the `openssl` CLI verifies every chain and
//! x509-parser reads back every field the plan asked for.

// clippy's allow-unwrap-in-tests covers `#[test]` functions only, not the helpers of an
// integration-test crate; a panic is how these helpers report a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use kos_core::plan::certificates::{CaId, CertSpec, CertificatePlan, Usage};
use kos_pki::{Item, Outcome, Pki, PkiError, ReissueReason, RenewFilter};
use secrecy::ExposeSecret;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;

const MASTER_IP: &str = "10.0.0.11";
const FLOATING_IP: &str = "203.0.113.7";

fn spec(stem: &str, issuer: CaId, cn: &str, o: &[&str], dns: &[&str], ips: &[&str], usages: &[Usage]) -> CertSpec {
    CertSpec {
        file_stem: stem.to_owned(),
        issuer,
        common_name: cn.to_owned(),
        organizations: o.iter().map(|s| (*s).to_owned()).collect(),
        dns_names: dns.iter().map(|s| (*s).to_owned()).collect(),
        ip_addresses: ips.iter().map(|s| s.parse().unwrap()).collect(),
        usages: usages.to_vec(),
    }
}

/// A cluster with one master (`master_ip`) and one worker, covering every CA and both usages.
fn plan(master_ip: &str) -> CertificatePlan {
    use CaId::*;
    use Usage::*;
    CertificatePlan {
        leaves: vec![
            spec(
                "apiserver",
                Cluster,
                "kube-apiserver",
                &[],
                &["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "master-1"],
                &[master_ip, FLOATING_IP, "10.96.0.1", "127.0.0.1"],
                &[Server],
            ),
            spec("apiserver-kubelet-client", Cluster, "kube-apiserver-kubelet-client", &["system:masters"], &[], &[], &[Client]),
            spec("apiserver-etcd-client", Etcd, "kube-apiserver-etcd-client", &[], &[], &[], &[Client]),
            spec(
                "etcd/server-master-1",
                Etcd,
                "master-1",
                &[],
                &["master-1", "localhost"],
                &[master_ip, "127.0.0.1", "::1"],
                &[Server, Client],
            ),
            spec("etcd/peer-master-1", Etcd, "master-1", &[], &["master-1"], &[master_ip], &[Server, Client]),
            spec("etcd/healthcheck-client", Etcd, "kube-etcd-healthcheck-client", &[], &[], &[], &[Client]),
            spec("front-proxy-client", FrontProxy, "front-proxy-client", &[], &[], &[], &[Client]),
            spec("nodes/worker-1/kubelet-client", Cluster, "system:node:worker-1", &["system:nodes"], &[], &[], &[Client]),
            spec("nodes/worker-1/kubelet", Cluster, "worker-1", &[], &["worker-1"], &["10.0.0.21"], &[Server]),
            spec("admin", Cluster, "kubernetes-admin", &["system:masters"], &[], &[], &[Client]),
        ],
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn new_pki() -> (tempfile::TempDir, Pki) {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::open(tmp.path().join("pki"));
    (tmp, pki)
}

fn read(pki: &Pki, file: &str) -> Vec<u8> {
    fs::read(pki.dir().join(file)).unwrap()
}

/// Every file below the PKI directory with its bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                files.push((name, fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// `openssl verify` of a leaf against its CA, for the purposes its usages allow.
fn openssl_verify(pki: &Pki, spec: &CertSpec) {
    let ca = pki.dir().join(format!("{}.crt", spec.issuer.file_stem()));
    let leaf = pki.dir().join(format!("{}.crt", spec.file_stem));
    for usage in &spec.usages {
        let purpose = match usage {
            Usage::Server => "sslserver",
            Usage::Client => "sslclient",
        };
        openssl([
            "verify".as_ref(),
            "-x509_strict".as_ref(),
            "-purpose".as_ref(),
            purpose.as_ref(),
            "-CAfile".as_ref(),
            ca.as_os_str(),
            leaf.as_os_str(),
        ]);
    }
}

/// Runs the openssl CLI; fails the test with openssl's output unless it succeeds.
fn openssl<'a>(args: impl IntoIterator<Item = &'a OsStr>) -> String {
    let args: Vec<&OsStr> = args.into_iter().collect();
    let out = Command::new("openssl").args(&args).output().expect("the openssl CLI is installed");
    assert!(out.status.success(), "openssl {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn openssl_text(file: &Path, args: &[&str]) -> String {
    let head = ["x509".as_ref(), "-in".as_ref(), file.as_os_str()];
    openssl(head.into_iter().chain(args.iter().map(|a| a.as_ref())))
}

/// Asserts every field of a leaf that the spec controls, read back with x509-parser.
fn assert_leaf_matches(pki: &Pki, spec: &CertSpec) {
    let pem = pki.cert_pem(&spec.file_stem).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let stem = &spec.file_stem;

    let cn: Vec<_> = cert.subject().iter_common_name().map(|a| a.as_str().unwrap()).collect();
    let o: Vec<_> = cert.subject().iter_organization().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(cn, [spec.common_name.as_str()], "{stem} CN");
    assert_eq!(o, spec.organizations, "{stem} O");
    assert_eq!(cert.issuer().to_string(), format!("CN={}", spec.issuer.common_name()), "{stem} issuer");

    let mut dns = BTreeSet::new();
    let mut ips = BTreeSet::new();
    if let Some(san) = cert.subject_alternative_name().unwrap() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => assert!(dns.insert((*d).to_owned())),
                GeneralName::IPAddress(b) => {
                    let ip: IpAddr = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).unwrap().into(),
                        _ => <[u8; 16]>::try_from(*b).unwrap().into(),
                    };
                    assert!(ips.insert(ip));
                }
                other => panic!("{stem}: unexpected SAN {other}"),
            }
        }
    }
    assert_eq!(dns, spec.dns_names.iter().cloned().collect(), "{stem} DNS SANs");
    assert_eq!(ips, spec.ip_addresses.iter().copied().collect(), "{stem} IP SANs");

    let ku = cert.key_usage().unwrap().expect("key usage").value;
    assert!(ku.digital_signature() && ku.key_encipherment(), "{stem} key usage");
    assert!(!ku.key_cert_sign() && !ku.crl_sign(), "{stem} must not sign");
    let eku = cert.extended_key_usage().unwrap().expect("extended key usage").value;
    assert_eq!(eku.server_auth, spec.usages.contains(&Usage::Server), "{stem} serverAuth");
    assert_eq!(eku.client_auth, spec.usages.contains(&Usage::Client), "{stem} clientAuth");
    assert!(!cert.is_ca(), "{stem} is not a CA");
    assert_eq!(cert.public_key().algorithm.algorithm, x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY, "{stem} ECDSA");

    // The authority key identifier points at the CA's subject key identifier.
    let ca_pem = pki.ca_cert_pem(spec.issuer).unwrap();
    let (_, ca_pem) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()).unwrap();
    let ca = ca_pem.parse_x509().unwrap();
    let ski = ca
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .expect("CA has a subject key identifier");
    let aki = cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(k) => k.key_identifier.as_ref().map(|k| k.0.to_vec()),
            _ => None,
        })
        .expect("leaf has an authority key identifier");
    assert_eq!(aki, ski, "{stem} authority key id");
}

fn assert_everything_verifies(pki: &Pki, plan: &CertificatePlan) {
    for spec in &plan.leaves {
        openssl_verify(pki, spec);
        assert_leaf_matches(pki, spec);
    }
}

#[test]
fn ensure_creates_every_ca_key_pair_and_leaf_and_openssl_verifies_each_leaf() {
    let (_tmp, pki) = new_pki();
    let plan = plan(MASTER_IP);
    let report = pki.ensure(&plan, now()).unwrap();

    assert!(report.entries.iter().all(|e| e.outcome == Outcome::Created), "{report}");
    assert_eq!(report.entries.len(), 3 + 1 + plan.leaves.len());
    assert_everything_verifies(&pki, &plan);

    // openssl's own reading of the API server cert.
    let text =
        openssl_text(&pki.dir().join("apiserver.crt"), &["-noout", "-ext", "subjectAltName,extendedKeyUsage,keyUsage,basicConstraints"]);
    for expected in [
        "DNS:kubernetes.default.svc.cluster.local",
        "IP Address:10.96.0.1",
        "IP Address:203.0.113.7",
        "IP Address:10.0.0.11",
        "IP Address:127.0.0.1",
        "TLS Web Server Authentication",
        "Digital Signature, Key Encipherment",
        "CA:FALSE",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
    let subject = openssl_text(&pki.dir().join("nodes/worker-1/kubelet-client.crt"), &["-noout", "-subject"]);
    assert_eq!(subject.trim(), "subject=O = system:nodes, CN = system:node:worker-1");
}

#[test]
fn cas_are_self_signed_ten_year_ca_true_with_cert_sign_and_crl_sign() {
    let (_tmp, pki) = new_pki();
    pki.ensure(&plan(MASTER_IP), now()).unwrap();
    for ca in CaId::ALL {
        let file = pki.dir().join(format!("{}.crt", ca.file_stem()));
        let text = openssl_text(&file, &["-noout", "-subject", "-issuer", "-ext", "basicConstraints,keyUsage"]);
        assert!(text.contains(&format!("subject=CN = {}", ca.common_name())), "{text}");
        assert!(text.contains(&format!("issuer=CN = {}", ca.common_name())), "{text}");
        assert!(text.contains("CA:TRUE"), "{text}");
        assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
        // Self-signed: verifies against itself.
        openssl(["verify".as_ref(), "-x509_strict".as_ref(), "-CAfile".as_ref(), file.as_os_str(), file.as_os_str()]);
    }
}

#[test]
fn service_account_pub_is_the_public_half_of_sa_key() {
    let (_tmp, pki) = new_pki();
    pki.ensure(&plan(MASTER_IP), now()).unwrap();
    let key = pki.sa_key_pem().unwrap();
    assert!(key.expose_secret().starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    let public = pki.sa_pub_pem().unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "SubjectPublicKeyInfo");
    let sa_key = pki.dir().join("sa.key");
    let derived = openssl(["pkey".as_ref(), "-pubout".as_ref(), "-in".as_ref(), sa_key.as_os_str()]);
    assert_eq!(derived, public);
}

#[test]
fn keys_are_0600_certs_0644_dirs_0700() {
    let (_tmp, pki) = new_pki();
    pki.ensure(&plan(MASTER_IP), now()).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for (file, _) in snapshot(pki.dir()) {
        let path = pki.dir().join(&file);
        let expected = if file.ends_with(".key") { 0o600 } else { 0o644 };
        assert_eq!(mode(&path), expected, "{file}");
    }
    for dir in ["", "etcd", "nodes", "nodes/worker-1"] {
        assert_eq!(mode(&pki.dir().join(dir)), 0o700, "{dir:?}");
    }
}

#[test]
fn second_ensure_reuses_every_file_byte_for_byte() {
    let (_tmp, pki) = new_pki();
    let plan = plan(MASTER_IP);
    pki.ensure(&plan, now()).unwrap();
    let before = snapshot(pki.dir());
    let report = pki.ensure(&plan, now() + Duration::minutes(1)).unwrap();
    assert!(report.all_reused(), "{report}");
    assert_eq!(snapshot(pki.dir()), before);
}

#[test]
fn new_master_ip_reissues_only_the_leaves_naming_it() {
    let (_tmp, pki) = new_pki();
    pki.ensure(&plan(MASTER_IP), now()).unwrap();
    let before = snapshot(pki.dir());

    let moved = plan("10.0.0.12");
    let report = pki.ensure(&moved, now()).unwrap();
    let changed = ["apiserver", "etcd/server-master-1", "etcd/peer-master-1"];
    for entry in &report.entries {
        match &entry.item {
            Item::Leaf(stem) if changed.contains(&stem.as_str()) => assert_eq!(
                entry.outcome,
                Outcome::Reissued(vec![ReissueReason::SubjectAltNames {
                    added: vec!["10.0.0.12".to_owned()],
                    removed: vec![MASTER_IP.to_owned()],
                }]),
                "{stem}"
            ),
            item => assert_eq!(entry.outcome, Outcome::Reused, "{item:?}"),
        }
    }
    let after = snapshot(pki.dir());
    for ((file, old), (_, new)) in before.iter().zip(&after) {
        let stem = file.trim_end_matches(".crt").trim_end_matches(".key");
        assert_eq!(old != new, changed.contains(&stem), "{file}");
    }
    assert_everything_verifies(&pki, &moved);
    assert!(
        report.to_string().contains("reissued apiserver.crt apiserver.key (SANs changed, added 10.0.0.12, removed 10.0.0.11)"),
        "{report}"
    );
}

#[test]
fn leaf_from_another_pki_is_reissued_because_our_ca_did_not_sign_it() {
    let (_tmp, pki) = new_pki();
    let (_other_tmp, other) = new_pki();
    let plan = plan(MASTER_IP);
    pki.ensure(&plan, now()).unwrap();
    other.ensure(&plan, now()).unwrap();
    // Same issuer name (CN=kubernetes), different CA key.
    for file in ["admin.crt", "admin.key"] {
        fs::copy(other.dir().join(file), pki.dir().join(file)).unwrap();
    }
    let report = pki.ensure(&plan, now()).unwrap();
    assert_eq!(report.outcome(&Item::Leaf("admin".into())), Some(&Outcome::Reissued(vec![ReissueReason::WrongIssuer])));
    openssl_verify(&pki, plan.get("admin").unwrap());
}

#[test]
fn leaf_within_30_days_of_expiry_is_reissued_and_cas_kept() {
    let (_tmp, pki) = new_pki();
    let plan = plan(MASTER_IP);
    let t0 = now();
    pki.ensure(&plan, t0).unwrap();
    let ca_before = read(&pki, "ca.crt");

    assert!(pki.ensure(&plan, t0 + Duration::days(334)).unwrap().all_reused());
    let report = pki.ensure(&plan, t0 + Duration::days(340)).unwrap();
    for entry in &report.entries {
        match &entry.item {
            Item::Leaf(_) => {
                assert!(matches!(&entry.outcome, Outcome::Reissued(r) if r == &[ReissueReason::Expiring { days_left: 25 }]), "{entry:?}")
            }
            _ => assert_eq!(entry.outcome, Outcome::Reused),
        }
    }
    let leaves = plan.leaves.iter().map(|l| l.file_stem.as_str()).collect::<Vec<_>>();
    assert_eq!(report.renewed_as_expiring(), leaves, "what the run renewed by itself, by stem");
    assert!(pki.renew(&plan, &kos_pki::RenewFilter::All, t0).unwrap().renewed_as_expiring().is_empty(), "asked for: not expiring");
    assert_eq!(read(&pki, "ca.crt"), ca_before);
}

#[test]
fn check_lists_one_year_leaves_and_ten_year_cas() {
    let (_tmp, pki) = new_pki();
    let plan = plan(MASTER_IP);
    let t0 = now();
    pki.ensure(&plan, t0).unwrap();
    let statuses = pki.check(t0).unwrap();
    assert_eq!(statuses.len(), 3 + plan.leaves.len(), "every .crt, no sa.pub");
    for status in &statuses {
        let details = status.details.as_ref().unwrap();
        let is_ca = ["ca.crt", "etcd/ca.crt", "front-proxy-ca.crt"].contains(&status.file.as_str());
        assert_eq!(details.is_ca, is_ca, "{}", status.file);
        let (days, lifetime) = if is_ca { (3650, 3650) } else { (365, 365) };
        assert_eq!(details.days_left, days, "{}", status.file);
        assert_eq!(details.not_after - details.not_before, Duration::days(lifetime) + Duration::minutes(5));
        assert!(details.not_before < t0 && t0 - details.not_before <= Duration::minutes(5) + Duration::seconds(1));
    }
    let kubelet = statuses.iter().find(|s| s.file == "nodes/worker-1/kubelet-client.crt").unwrap();
    let details = kubelet.details.as_ref().unwrap();
    assert_eq!(details.subject, "O=system:nodes, CN=system:node:worker-1");
    assert_eq!(details.issuer, "CN=kubernetes");
}

#[test]
fn check_of_a_missing_directory_is_empty() {
    let (_tmp, pki) = new_pki();
    assert!(pki.check(now()).unwrap().is_empty());
}

#[test]
fn ca_with_a_mismatched_key_is_an_error_naming_the_file_and_nothing_changes() {
    let (_tmp, pki) = new_pki();
    let plan = plan(MASTER_IP);
    pki.ensure(&plan, now()).unwrap();
    fs::copy(pki.dir().join("front-proxy-ca.key"), pki.dir().join("etcd/ca.key")).unwrap();
    let before = snapshot(pki.dir());

    let err = pki.ensure(&plan, now()).unwrap_err();
    assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&pki.dir().join("etcd/ca.key").display().to_string()), "{message}");
    assert!(message.contains("restore"), "{message}");
    assert_eq!(snapshot(pki.dir()), before);
}

#[test]
fn ca_missing_its_key_is_an_error_not_a_new_ca() {
    let (_tmp, pki) = new_pki();
    let plan = plan(MASTER_IP);
    pki.ensure(&plan, now()).unwrap();
    fs::remove_file(pki.dir().join("ca.key")).unwrap();
    let err = pki.ensure(&plan, now()).unwrap_err();
    assert!(matches!(err, PkiError::Incomplete { .. }), "{err:?}");
    assert!(err.to_string().contains(&pki.dir().join("ca.key").display().to_string()), "{err}");
    assert!(!pki.dir().join("ca.key").exists());
}

#[test]
fn unparseable_ca_is_an_error_naming_the_file() {
    let (_tmp, pki) = new_pki();
    let plan = plan(MASTER_IP);
    pki.ensure(&plan, now()).unwrap();
    fs::write(pki.dir().join("front-proxy-ca.crt"), "not a certificate").unwrap();
    let err = pki.ensure(&plan, now()).unwrap_err();
    assert!(matches!(err, PkiError::Unparseable { .. }), "{err:?}");
    assert!(err.to_string().contains("front-proxy-ca.crt"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn sa_pub_is_restored_from_sa_key_but_sa_key_is_never_replaced() {
    let (_tmp, pki) = new_pki();
    let plan = plan(MASTER_IP);
    pki.ensure(&plan, now()).unwrap();
    let public = read(&pki, "sa.pub");
    fs::remove_file(pki.dir().join("sa.pub")).unwrap();
    let report = pki.ensure(&plan, now()).unwrap();
    assert_eq!(report.outcome(&Item::ServiceAccount), Some(&Outcome::Reissued(vec![ReissueReason::PublicKeyMissing])));
    assert_eq!(read(&pki, "sa.pub"), public);

    fs::remove_file(pki.dir().join("sa.key")).unwrap();
    let err = pki.ensure(&plan, now()).unwrap_err();
    assert!(err.to_string().contains("sa.key"), "{err}");
}

#[test]
fn renew_reissues_chosen_leaves_keeps_cas_and_refuses_to_renew_a_ca() {
    let (_tmp, pki) = new_pki();
    let plan = plan(MASTER_IP);
    pki.ensure(&plan, now()).unwrap();
    let before = snapshot(pki.dir());

    let report = pki.renew(&plan, &RenewFilter::Only(vec!["admin".into()]), now()).unwrap();
    assert_eq!(report.entries.len(), 1);
    assert_eq!(report.outcome(&Item::Leaf("admin".into())), Some(&Outcome::Reissued(vec![ReissueReason::Renewed])));
    for ((file, old), (_, new)) in before.iter().zip(&snapshot(pki.dir())) {
        assert_eq!(old != new, file.starts_with("admin."), "{file}");
    }
    openssl_verify(&pki, plan.get("admin").unwrap());

    let report = pki.renew(&plan, &RenewFilter::All, now()).unwrap();
    assert_eq!(report.entries.len(), plan.leaves.len());
    for ca in CaId::ALL {
        let file = format!("{}.crt", ca.file_stem());
        assert_eq!(read(&pki, &file), before.iter().find(|(f, _)| f == &file).unwrap().1);
    }
    assert_everything_verifies(&pki, &plan);

    let err = pki.renew(&plan, &RenewFilter::Only(vec!["etcd/ca".into()]), now()).unwrap_err();
    assert!(matches!(err, PkiError::CaRenewalUnsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("CA rotation"), "{err}");
    let err = pki.renew(&plan, &RenewFilter::Only(vec!["nope".into()]), now()).unwrap_err();
    assert!(matches!(err, PkiError::UnknownCert { .. }), "{err:?}");
}

#[test]
fn renew_without_a_pki_says_to_create_it_first() {
    let (_tmp, pki) = new_pki();
    let err = pki.renew(&plan(MASTER_IP), &RenewFilter::All, now()).unwrap_err();
    assert!(matches!(err, PkiError::Missing { .. }), "{err:?}");
}

#[test]
fn private_keys_never_show_in_debug_output() {
    let (_tmp, pki) = new_pki();
    pki.ensure(&plan(MASTER_IP), now()).unwrap();
    let keys = [pki.key_pem("admin").unwrap(), pki.ca_key_pem(CaId::Cluster).unwrap(), pki.sa_key_pem().unwrap()];
    for key in &keys {
        let body = key.expose_secret().lines().nth(1).unwrap().to_owned();
        let debug = format!("{key:?} {pki:?}");
        assert!(!debug.contains(&body) && !debug.contains("PRIVATE KEY"), "{debug}");
    }
}

#[test]
fn plan_stems_cannot_escape_the_directory_or_overwrite_a_ca() {
    let (_tmp, pki) = new_pki();
    for stem in ["../evil", "/etc/evil", "ca", "etcd/ca", "sa", "", "a/../../b"] {
        let mut plan = plan(MASTER_IP);
        plan.leaves[0].file_stem = stem.to_owned();
        let err = pki.ensure(&plan, now()).unwrap_err();
        assert!(matches!(err, PkiError::BadStem { .. }), "{stem:?}: {err:?}");
    }
    let mut twice = plan(MASTER_IP);
    twice.leaves.push(twice.leaves[0].clone());
    assert!(matches!(pki.ensure(&twice, now()), Err(PkiError::BadStem { .. })));
    assert!(!pki.dir().exists(), "nothing written for a bad plan");
}

#[test]
fn missing_files_are_reported_by_path() {
    let (_tmp, pki) = new_pki();
    let err = pki.cert_pem("apiserver").unwrap_err();
    assert!(err.to_string().contains("apiserver.crt does not exist"), "{err}");
}
