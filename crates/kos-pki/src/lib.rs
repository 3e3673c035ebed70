//! The cluster's PKI on the operator's machine: kubeadm's layout of CAs, the
//! service-account key pair and every leaf certificate the plan asks for.
//!
//! [`Pki::ensure`] materialises a [`CertificatePlan`] into a directory (for example
//! `.kos/<cluster>/pki/`) and is safe to run again and again: whatever still matches
//! the plan is reused byte for byte, leaves that changed (a new master IP in the API
//! server's SANs) or near expiry are re-issued, and a CA is never replaced. The
//! renderer then reads the PEMs back through [`Pki::cert_pem`] and friends; private
//! keys only ever leave as [`SecretString`]s.
//!
//! Layout below the directory (dirs 0700, keys 0600, certificates 0644):
//!
//! ```text
//! ca.crt ca.key                      cluster CA
//! etcd/ca.crt etcd/ca.key            etcd CA
//! front-proxy-ca.crt .key            front-proxy CA
//! sa.key sa.pub                      service-account key pair (PKCS#8 / SPKI PEM)
//! <file_stem>.crt <file_stem>.key    each planned leaf, e.g. etcd/server-master-1
//! ```

mod authority;
mod error;
mod leaf;
mod report;
mod store;
mod x509;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kos_core::plan::certificates::{CaId, CertSpec, CertificatePlan};
use secrecy::ExposeSecret;
pub use secrecy::SecretString;
pub use time::OffsetDateTime;

use crate::authority::Authority;
pub use crate::error::{ParseError, PkiError};
pub use crate::leaf::TEST_VALIDITY_VAR;
pub use crate::report::{CertDetails, CertStatus, Entry, Item, Outcome, ReissueReason, Report};
use crate::store::{Store, Visibility};

/// Which leaf certificates [`Pki::renew`] re-issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewFilter {
    /// Every leaf of the plan.
    All,
    /// Only these file stems (e.g. `apiserver`, `etcd/server-master-1`).
    Only(Vec<String>),
}

/// A PKI directory.
#[derive(Debug, Clone)]
pub struct Pki {
    store: Store,
}

impl Pki {
    /// The PKI in `dir`. Touches nothing: the directory is created by [`Pki::ensure`].
    pub fn open(dir: impl Into<PathBuf>) -> Pki {
        Pki { store: Store::new(dir.into()) }
    }

    /// The PKI directory.
    pub fn dir(&self) -> &Path {
        self.store.root()
    }

    /// Creates what is missing and re-issues leaves that no longer match `plan`;
    /// reuses everything else. `now` is the issue time of anything new.
    ///
    /// A leaf is reused only if its key matches, it is signed by the CA on disk, and
    /// its subject, SANs and usages are the planned ones, and it has more than 30 days
    /// left. CAs and `sa.key` are never replaced: anything unexpected there is an error.
    pub fn ensure(&self, plan: &CertificatePlan, now: OffsetDateTime) -> Result<Report, PkiError> {
        let now = whole_seconds(now);
        check_plan(plan)?;
        let mut report = Report::default();
        let mut authorities = BTreeMap::new();
        for ca in CaId::ALL {
            let (authority, outcome) = authority::load_or_create(&self.store, ca, now)?;
            report.push(Item::Ca(ca), outcome);
            authorities.insert(ca, authority);
        }
        report.push(Item::ServiceAccount, authority::ensure_service_account(&self.store)?);
        for spec in &plan.leaves {
            let ca = authority_for(&authorities, spec)?;
            let outcome = self.ensure_leaf(spec, ca, now)?;
            report.push(Item::Leaf(spec.file_stem.clone()), outcome);
        }
        Ok(report)
    }

    fn ensure_leaf(&self, spec: &CertSpec, ca: &Authority, now: OffsetDateTime) -> Result<Outcome, PkiError> {
        let (cert_file, key_file) = leaf_files(&spec.file_stem);
        let reasons = match (self.store.read_public(&cert_file)?, self.store.read_secret(&key_file)?) {
            (None, None) => {
                self.write_leaf(spec, ca, now)?;
                return Ok(Outcome::Created);
            }
            (Some(_), None) => vec![ReissueReason::KeyMissing],
            (None, Some(_)) => vec![ReissueReason::CertMissing],
            (Some(cert), Some(key)) => leaf::differences(spec, ca, &cert, &key, now),
        };
        if reasons.is_empty() {
            return Ok(Outcome::Reused);
        }
        self.write_leaf(spec, ca, now)?;
        Ok(Outcome::Reissued(reasons))
    }

    fn write_leaf(&self, spec: &CertSpec, ca: &Authority, now: OffsetDateTime) -> Result<(), PkiError> {
        let issued = leaf::issue(spec, ca, now)?;
        let (cert_file, key_file) = leaf_files(&spec.file_stem);
        // Key first: after a crash in between, the old certificate no longer matches
        // the new key and the next run re-issues it.
        self.store.write(&key_file, issued.key_pem.expose_secret().as_bytes(), Visibility::Secret)?;
        self.store.write(&cert_file, issued.cert_pem.as_bytes(), Visibility::Public)
    }

    /// Re-issues leaf certificates (new key, new dates) with the existing CAs, whether
    /// or not they were due. Asking for a CA is an error: CA rotation is a separate
    /// operation kos does not support yet.
    pub fn renew(&self, plan: &CertificatePlan, filter: &RenewFilter, now: OffsetDateTime) -> Result<Report, PkiError> {
        let now = whole_seconds(now);
        check_plan(plan)?;
        let selected: Vec<&CertSpec> = match filter {
            RenewFilter::All => plan.leaves.iter().collect(),
            RenewFilter::Only(stems) => stems
                .iter()
                .map(|stem| {
                    if CaId::ALL.iter().any(|ca| ca.file_stem() == stem) || stem == "sa" {
                        return Err(PkiError::CaRenewalUnsupported { stem: stem.clone() });
                    }
                    plan.get(stem).ok_or_else(|| PkiError::UnknownCert { stem: stem.clone() })
                })
                .collect::<Result<_, _>>()?,
        };
        let mut authorities = BTreeMap::new();
        for spec in &selected {
            if let std::collections::btree_map::Entry::Vacant(slot) = authorities.entry(spec.issuer) {
                slot.insert(authority::load(&self.store, spec.issuer)?);
            }
        }
        let mut report = Report::default();
        for spec in selected {
            self.write_leaf(spec, authority_for(&authorities, spec)?, now)?;
            report.push(Item::Leaf(spec.file_stem.clone()), Outcome::Reissued(vec![ReissueReason::Renewed]));
        }
        Ok(report)
    }

    /// Every certificate in the directory (CAs and leaves, sorted by path) with its
    /// subject, issuer and validity, for `kos certs check`. `now` sets `days_left`.
    pub fn check(&self, now: OffsetDateTime) -> Result<Vec<CertStatus>, PkiError> {
        let now = whole_seconds(now);
        Ok(self
            .store
            .certificate_files()?
            .into_iter()
            .map(|file| {
                let details = self.cert_file_pem(&file).and_then(|pem| {
                    let unparseable = |source| PkiError::Unparseable {
                        path: self.store.path(&file),
                        what: "PEM certificate",
                        fix: "restore it from a backup, or for a leaf delete it and run `kos render` to re-issue it",
                        source,
                    };
                    let der = x509::pem_to_der(&pem).map_err(unparseable)?;
                    let cert = x509::parse(&der).map_err(unparseable)?;
                    Ok(x509::details(&cert, now))
                });
                CertStatus { file, details }
            })
            .collect())
    }

    /// What `kos certs check` shows of a PEM certificate read elsewhere (a node's copy).
    pub fn inspect(pem: &str, now: OffsetDateTime) -> Result<CertDetails, ParseError> {
        let der = x509::pem_to_der(pem)?;
        let cert = x509::parse(&der)?;
        Ok(x509::details(&cert, whole_seconds(now)))
    }

    /// This PKI's CA certificates, read once, to tell which of them signed a certificate
    /// read elsewhere ([`Signers::of`]).
    pub fn signers(&self) -> Signers {
        let files = self.store.certificate_files().unwrap_or_default();
        let cas = files
            .into_iter()
            .filter_map(|file| {
                let der = x509::pem_to_der(&self.cert_file_pem(&file).ok()?).ok()?;
                x509::parse(&der).ok()?.is_ca().then_some((file, der))
            })
            .collect();
        Signers { cas }
    }

    /// The PEM certificate of a leaf, by file stem (`apiserver`, `etcd/peer-master-1`).
    pub fn cert_pem(&self, stem: &str) -> Result<String, PkiError> {
        store::check_stem(stem)?;
        self.cert_file_pem(&leaf_files(stem).0)
    }

    /// The PEM private key (PKCS#8) of a leaf, by file stem.
    pub fn key_pem(&self, stem: &str) -> Result<SecretString, PkiError> {
        store::check_stem(stem)?;
        self.key_file_pem(&leaf_files(stem).1)
    }

    /// The PEM certificate of a CA.
    pub fn ca_cert_pem(&self, ca: CaId) -> Result<String, PkiError> {
        self.cert_file_pem(&leaf_files(ca.file_stem()).0)
    }

    /// The PEM private key of a CA (for masters only: the controller-manager signs with
    /// the cluster CA).
    pub fn ca_key_pem(&self, ca: CaId) -> Result<SecretString, PkiError> {
        self.key_file_pem(&leaf_files(ca.file_stem()).1)
    }

    /// `encryption.key`: 32 random bytes (base64) with which the API server encrypts
    /// Secrets at rest. Created on first use and never replaced: losing it makes every
    /// stored Secret unreadable.
    pub fn encryption_key(&self) -> Result<SecretString, PkiError> {
        const FILE: &str = "encryption.key";
        if let Some(key) = self.store.read_secret(FILE)? {
            return Ok(key);
        }
        use base64::Engine as _;
        use std::io::Read as _;
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).map_err(|source| PkiError::Io {
            action: "read",
            path: "/dev/urandom".into(),
            source,
        })?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.store.write(FILE, encoded.as_bytes(), store::Visibility::Secret)?;
        self.key_file_pem(FILE)
    }

    /// `sa.key`: the PKCS#8 PEM key the API server signs service-account tokens with.
    pub fn sa_key_pem(&self) -> Result<SecretString, PkiError> {
        self.key_file_pem("sa.key")
    }

    /// `sa.pub`: the SubjectPublicKeyInfo PEM that verifies service-account tokens.
    pub fn sa_pub_pem(&self) -> Result<String, PkiError> {
        self.cert_file_pem("sa.pub")
    }

    fn cert_file_pem(&self, file: &str) -> Result<String, PkiError> {
        self.store.read_public(file)?.ok_or_else(|| PkiError::Missing { path: self.store.path(file) })
    }

    fn key_file_pem(&self, file: &str) -> Result<SecretString, PkiError> {
        self.store.read_secret(file)?.ok_or_else(|| PkiError::Missing { path: self.store.path(file) })
    }
}

/// The CA certificates of a PKI (file, DER), from [`Pki::signers`].
#[derive(Debug, Clone)]
pub struct Signers {
    cas: Vec<(String, Vec<u8>)>,
}

impl Signers {
    /// The file of the CA whose key signed `pem` (`ca.crt`, `etcd/ca.crt`), if any: what
    /// tells a certificate of this cluster from one of another with the same names.
    pub fn of(&self, pem: &str) -> Option<String> {
        let der = x509::pem_to_der(pem).ok()?;
        let cert = x509::parse(&der).ok()?;
        self.cas.iter().find_map(|(file, ca_der)| {
            let ca = x509::parse(ca_der).ok()?;
            cert.verify_signature(Some(ca.public_key())).is_ok().then(|| file.clone())
        })
    }
}

/// Certificates carry whole seconds; dropping the rest keeps "now" and what was
/// written comparable.
fn whole_seconds(now: OffsetDateTime) -> OffsetDateTime {
    now.replace_nanosecond(0).unwrap_or(now)
}

fn leaf_files(stem: &str) -> (String, String) {
    (format!("{stem}.crt"), format!("{stem}.key"))
}

fn authority_for<'a>(authorities: &'a BTreeMap<CaId, Authority>, spec: &CertSpec) -> Result<&'a Authority, PkiError> {
    // Every CA is loaded before leaves are handled; a miss would be a bug here.
    authorities.get(&spec.issuer).ok_or_else(|| PkiError::Missing { path: PathBuf::from(format!("{}.crt", spec.issuer.file_stem())) })
}

/// Refuses a plan that would write outside the directory, over a CA or `sa.key`, or
/// twice to the same file, or that asks for something kos cannot encode.
fn check_plan(plan: &CertificatePlan) -> Result<(), PkiError> {
    let mut seen = BTreeSet::new();
    for spec in &plan.leaves {
        let stem = &spec.file_stem;
        store::check_stem(stem)?;
        if CaId::ALL.iter().any(|ca| ca.file_stem() == stem) || stem == "sa" {
            return Err(PkiError::BadStem { stem: stem.clone(), problem: "would overwrite a CA or the service-account key" });
        }
        if !seen.insert(stem.as_str()) {
            return Err(PkiError::BadStem { stem: stem.clone(), problem: "is planned twice" });
        }
        leaf::check_spec(spec)?;
    }
    Ok(())
}
