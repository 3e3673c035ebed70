//! The cluster's certificate authorities and the service-account key pair: created
//! once, then only ever reloaded.
//!
//! These are the roots everything else hangs on: replacing a CA invalidates every
//! certificate it signed, replacing `sa.key` every service-account token. So anything
//! unexpected on disk here (half a pair, a key that does not match, a file that does not
//! parse) is an error for the operator to resolve, never a reason to generate anew.

use kos_core::plan::certificates::CaId;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;

use crate::error::PkiError;
use crate::report::{Outcome, ReissueReason};
use crate::store::{Store, Visibility};

/// How long a new CA is valid (kubeadm's 10 years).
const CA_VALIDITY: Duration = Duration::days(3650);

/// How far before "now" new certificates start, so a node whose clock is slightly
/// behind the operator's does not reject them as not yet valid (kubeadm does the same).
pub(crate) const BACKDATE: Duration = Duration::minutes(5);

const CA_KEY_FIX: &str = "restore the CA's key from a backup; kos never replaces a CA by itself";
const CA_CERT_FIX: &str = "restore the CA certificate from a backup; kos never replaces a CA by itself";
const SA_FIX: &str = "restore sa.key and sa.pub from a backup; kos never replaces them by itself \
                      because every service-account token signed with sa.key would stop working";

/// A CA loaded from (or just written to) disk, ready to sign leaves.
pub(crate) struct Authority {
    pub(crate) id: CaId,
    /// rcgen's signer: the CA's subject, key identifier and key.
    pub(crate) issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, to check what existing leaves claim about their issuer.
    pub(crate) cert_der: Vec<u8>,
    /// Leaves never outlive their CA.
    pub(crate) not_after: OffsetDateTime,
}

impl std::fmt::Debug for Authority {
    /// Only says which CA; rcgen's `Issuer` already hides its key, but there is
    /// nothing else worth printing.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").field("id", &self.id).finish_non_exhaustive()
    }
}

fn describe(ca: CaId) -> String {
    match ca {
        CaId::Cluster => "the cluster CA".to_owned(),
        CaId::Etcd => "the etcd CA".to_owned(),
        CaId::FrontProxy => "the front-proxy CA".to_owned(),
    }
}

/// Loads the CA, or creates it if neither of its files exists.
pub(crate) fn load_or_create(store: &Store, ca: CaId, now: OffsetDateTime) -> Result<(Authority, Outcome), PkiError> {
    match load_existing(store, ca)? {
        Some(authority) => Ok((authority, Outcome::Reused)),
        None => Ok((create(store, ca, now)?, Outcome::Created)),
    }
}

/// Loads the CA; its absence is an error (for operations that must not create one).
pub(crate) fn load(store: &Store, ca: CaId) -> Result<Authority, PkiError> {
    load_existing(store, ca)?.ok_or_else(|| PkiError::Missing { path: store.path(&format!("{}.crt", ca.file_stem())) })
}

fn load_existing(store: &Store, ca: CaId) -> Result<Option<Authority>, PkiError> {
    let cert_file = format!("{}.crt", ca.file_stem());
    let key_file = format!("{}.key", ca.file_stem());
    let (cert_pem, key_pem) = match (store.read_public(&cert_file)?, store.read_secret(&key_file)?) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (cert, _) => {
            let (present, missing) = if cert.is_some() { (cert_file, key_file) } else { (key_file, cert_file) };
            return Err(PkiError::Incomplete { what: describe(ca), present: store.path(&present), missing: store.path(&missing) });
        }
    };
    let cert_der =
        crate::x509::pem_to_der(&cert_pem).map_err(|source| unparseable(store, &cert_file, "PEM certificate", CA_CERT_FIX, source))?;
    let key = parse_key(store, &key_file, &key_pem, CA_KEY_FIX)?;
    let x509 = crate::x509::parse(&cert_der).map_err(|source| unparseable(store, &cert_file, "PEM certificate", CA_CERT_FIX, source))?;
    if !x509.is_ca() {
        return Err(PkiError::NotACa { path: store.path(&cert_file) });
    }
    if x509.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(PkiError::KeyMismatch { what: describe(ca), key: store.path(&key_file), public: store.path(&cert_file) });
    }
    let not_after = x509.validity().not_after.to_datetime();
    let issuer = Issuer::from_ca_cert_der(&cert_der.clone().into(), key)
        .map_err(|source| unparseable(store, &cert_file, "CA certificate kos can sign with", CA_CERT_FIX, Box::new(source)))?;
    Ok(Some(Authority { id: ca, issuer, cert_der, not_after }))
}

fn create(store: &Store, ca: CaId, now: OffsetDateTime) -> Result<Authority, PkiError> {
    let generate = |source| PkiError::Generate { what: describe(ca), source };
    let key = KeyPair::generate().map_err(generate)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, ca.common_name());
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // kubeadm's CA key usages; keyCertSign and cRLSign are what make it a CA.
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let not_after = params.not_after;
    let key_pem = SecretString::from(key.serialize_pem());
    let certified = CertifiedIssuer::self_signed(params, key).map_err(generate)?;
    let cert_pem = certified.pem();
    let cert_der = certified.der().to_vec();

    // Key first: a crash between the two writes leaves a key without a certificate,
    // which the next run reports instead of silently making a second CA.
    let stem = ca.file_stem();
    store.write(&format!("{stem}.key"), key_pem.expose_secret().as_bytes(), Visibility::Secret)?;
    store.write(&format!("{stem}.crt"), cert_pem.as_bytes(), Visibility::Public)?;

    // Reload what was written, so a fresh CA signs exactly like a reloaded one
    // (same issuer name encoding, same authority key identifier).
    let key = parse_key(store, &format!("{stem}.key"), &key_pem, CA_KEY_FIX)?;
    let issuer = Issuer::from_ca_cert_der(&cert_der.clone().into(), key).map_err(generate)?;
    Ok(Authority { id: ca, issuer, cert_der, not_after })
}

/// Makes sure `sa.key` and `sa.pub` exist and belong together; creates both if neither
/// exists and `sa.pub` alone if only the key exists (it is derived from the key).
pub(crate) fn ensure_service_account(store: &Store) -> Result<Outcome, PkiError> {
    const KEY: &str = "sa.key";
    const PUB: &str = "sa.pub";
    let what = || "the service-account key pair".to_owned();
    match (store.read_secret(KEY)?, store.read_public(PUB)?) {
        (None, None) => {
            let key = KeyPair::generate().map_err(|source| PkiError::Generate { what: what(), source })?;
            store.write(KEY, key.serialize_pem().as_bytes(), Visibility::Secret)?;
            store.write(PUB, key.public_key_pem().as_bytes(), Visibility::Public)?;
            Ok(Outcome::Created)
        }
        (Some(key_pem), None) => {
            let key = parse_key(store, KEY, &key_pem, SA_FIX)?;
            store.write(PUB, key.public_key_pem().as_bytes(), Visibility::Public)?;
            Ok(Outcome::Reissued(vec![ReissueReason::PublicKeyMissing]))
        }
        (None, Some(_)) => Err(PkiError::Incomplete { what: what(), present: store.path(PUB), missing: store.path(KEY) }),
        (Some(key_pem), Some(pub_pem)) => {
            let key = parse_key(store, KEY, &key_pem, SA_FIX)?;
            let public = crate::x509::pem_to_der(&pub_pem).map_err(|source| unparseable(store, PUB, "PEM public key", SA_FIX, source))?;
            if public != key.subject_public_key_info() {
                return Err(PkiError::KeyMismatch { what: what(), key: store.path(KEY), public: store.path(PUB) });
            }
            Ok(Outcome::Reused)
        }
    }
}

/// Parses a PEM private key, naming the file (never its content) on failure.
pub(crate) fn parse_key(store: &Store, file: &str, pem: &SecretString, fix: &'static str) -> Result<KeyPair, PkiError> {
    KeyPair::from_pem(pem.expose_secret()).map_err(|source| unparseable(store, file, "PEM private key", fix, Box::new(source)))
}

fn unparseable(store: &Store, file: &str, what: &'static str, fix: &'static str, source: crate::error::ParseError) -> PkiError {
    PkiError::Unparseable { path: store.path(file), what, fix, source }
}

impl Authority {
    /// The CA certificate, parsed (it was parsed successfully when loaded).
    pub(crate) fn certificate(&self) -> Option<X509Certificate<'_>> {
        crate::x509::parse(&self.cert_der).ok()
    }
}
