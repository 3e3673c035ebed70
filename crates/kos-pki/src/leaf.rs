//! Leaf certificates: issuing one from its [`CertSpec`], and judging whether the one
//! on disk still matches the spec (and so may be reused) or must be re-issued.
//!
//! Every leaf gets a fresh ECDSA P-256 key when it is (re-)issued: kos always ships a
//! certificate together with its key, so rotating the key costs nothing and keeps
//! serial numbers (derived by rcgen from the public key) unique.

use std::collections::BTreeSet;
use std::net::IpAddr;

use kos_core::plan::certificates::{CertSpec, Usage};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::authority::{Authority, BACKDATE};
use crate::error::PkiError;
use crate::report::ReissueReason;

/// How long a new leaf is valid (kubeadm's one year), capped at its CA's end.
const LEAF_VALIDITY: Duration = Duration::days(365);

/// A leaf this close to expiry is re-issued by `ensure` (a third of a shorter validity).
const RENEW_BEFORE: Duration = Duration::days(30);

/// A test-only setting: leaves issued valid this many seconds, not a year (the test bed's
/// short-lived certificate test, which watches them renewed and rolled out before they
/// expire). Never for a real cluster.
pub const TEST_VALIDITY_VAR: &str = "KOS_TEST_LEAF_VALIDITY_SECS";

/// How long a leaf issued now is valid, and how close to its end `ensure` renews it.
fn validity() -> (Duration, Duration) {
    static TEST: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
    let test = *TEST.get_or_init(|| std::env::var(TEST_VALIDITY_VAR).ok().and_then(|v| v.parse().ok()).filter(|s| *s > 0));
    validity_of(test)
}

/// [`validity`] for a test validity of `secs` seconds, or none.
fn validity_of(secs: Option<i64>) -> (Duration, Duration) {
    match secs {
        Some(secs) => (Duration::seconds(secs), Duration::seconds(secs / 3).min(RENEW_BEFORE)),
        None => (LEAF_VALIDITY, RENEW_BEFORE),
    }
}

/// A freshly issued leaf, ready to be written.
pub(crate) struct Issued {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: SecretString,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

/// Rejects specs kos cannot turn into a certificate, before anything is written.
pub(crate) fn check_spec(spec: &CertSpec) -> Result<(), PkiError> {
    let unsupported = |problem| Err(PkiError::UnsupportedSpec { stem: spec.file_stem.clone(), problem });
    if spec.common_name.is_empty() {
        return unsupported("has an empty common name");
    }
    // rcgen 0.14's DistinguishedName holds one value per attribute type.
    if spec.organizations.len() > 1 {
        return unsupported("has more than one organization (O), which kos cannot encode yet");
    }
    if spec.usages.is_empty() {
        return unsupported("has no usage (server or client)");
    }
    if spec.dns_names.iter().any(|name| name.is_empty() || !name.is_ascii()) {
        return unsupported("has an empty or non-ASCII DNS name (use the punycode form)");
    }
    Ok(())
}

/// Issues `spec` with a new key, signed by `ca`.
pub(crate) fn issue(spec: &CertSpec, ca: &Authority, now: OffsetDateTime) -> Result<Issued, PkiError> {
    let generate = |source| PkiError::Generate { what: format!("{}.crt", spec.file_stem), source };
    let key = KeyPair::generate().map_err(generate)?;
    let mut params = CertificateParams::default();
    params.not_before = now - BACKDATE;
    params.not_after = (now + validity().0).min(ca.not_after);
    params.distinguished_name = DistinguishedName::new();
    // O before CN, the order Go's crypto/x509 (and so kubeadm) writes them in.
    for organization in &spec.organizations {
        params.distinguished_name.push(DnType::OrganizationName, organization.as_str());
    }
    params.distinguished_name.push(DnType::CommonName, spec.common_name.as_str());
    for name in &spec.dns_names {
        params.subject_alt_names.push(SanType::DnsName(name.as_str().try_into().map_err(generate)?));
    }
    params.subject_alt_names.extend(spec.ip_addresses.iter().copied().map(SanType::IpAddress));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = usage_set(&spec.usages)
        .into_iter()
        .map(|usage| match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        })
        .collect();
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &ca.issuer).map_err(generate)?;
    Ok(Issued { cert_pem: cert.pem(), key_pem: SecretString::from(key.serialize_pem()) })
}

fn usage_set(usages: &[Usage]) -> BTreeSet<Usage> {
    usages.iter().copied().collect()
}

/// Why the leaf on disk cannot be reused for `spec`; empty if it can.
/// `cert_pem` and `key_pem` are the files' contents (both present).
pub(crate) fn differences(
    spec: &CertSpec,
    ca: &Authority,
    cert_pem: &str,
    key_pem: &SecretString,
    now: OffsetDateTime,
) -> Vec<ReissueReason> {
    let Ok(der) = crate::x509::pem_to_der(cert_pem) else {
        return vec![ReissueReason::Unparseable];
    };
    let (Ok(cert), Ok(key)) = (crate::x509::parse(&der), KeyPair::from_pem(key_pem.expose_secret())) else {
        return vec![ReissueReason::Unparseable];
    };
    let mut reasons = Vec::new();
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        reasons.push(ReissueReason::KeyMismatch);
    }
    if !signed_by(&cert, ca) {
        reasons.push(ReissueReason::WrongIssuer);
    }
    if !subject_matches(&cert, spec) {
        reasons.push(ReissueReason::Subject);
    }
    match names_in(&cert) {
        Some(names) => {
            let planned = planned_names(spec);
            let added: Vec<String> = planned.difference(&names).cloned().collect();
            let removed: Vec<String> = names.difference(&planned).cloned().collect();
            if !added.is_empty() || !removed.is_empty() {
                reasons.push(ReissueReason::SubjectAltNames { added, removed });
            }
        }
        None => reasons.push(ReissueReason::Unparseable),
    }
    if !usages_match(&cert, spec) {
        reasons.push(ReissueReason::Usages);
    }
    if cert.is_ca() {
        reasons.push(ReissueReason::IsCa);
    }
    let validity = cert.validity();
    let not_after = validity.not_after.to_datetime();
    if validity.not_before.to_datetime() > now || not_after - now < self::validity().1 {
        reasons.push(ReissueReason::Expiring { days_left: crate::x509::days_left(not_after, now) });
    }
    reasons
}

/// Whether `cert` names `ca` as its issuer and carries a valid signature from its key.
fn signed_by(cert: &X509Certificate<'_>, ca: &Authority) -> bool {
    let Some(ca_cert) = ca.certificate() else {
        return false;
    };
    cert.issuer().as_raw() == ca_cert.subject().as_raw() && cert.verify_signature(Some(ca_cert.public_key())).is_ok()
}

fn subject_matches(cert: &X509Certificate<'_>, spec: &CertSpec) -> bool {
    let values = |iter: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        iter.map(|attr| attr.as_str().map(str::to_owned)).collect::<Result<BTreeSet<_>, _>>()
    };
    let subject = cert.subject();
    let common_names = values(&mut subject.iter_common_name());
    let organizations = values(&mut subject.iter_organization());
    common_names.is_ok_and(|cn| cn == BTreeSet::from([spec.common_name.clone()]))
        && organizations.is_ok_and(|o| o == spec.organizations.iter().cloned().collect())
}

/// The certificate's DNS and IP SANs as strings (`None` if the extension is malformed).
fn names_in(cert: &X509Certificate<'_>) -> Option<BTreeSet<String>> {
    let Some(extension) = cert.subject_alternative_name().ok()? else {
        return Some(BTreeSet::new());
    };
    extension
        .value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => ip_from_bytes(bytes).map(|ip| ip.to_string()),
            other => Some(other.to_string()),
        })
        .collect()
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn planned_names(spec: &CertSpec) -> BTreeSet<String> {
    spec.dns_names.iter().cloned().chain(spec.ip_addresses.iter().map(IpAddr::to_string)).collect()
}

/// Key usage exactly digitalSignature + keyEncipherment, EKU exactly the planned set.
fn usages_match(cert: &X509Certificate<'_>, spec: &CertSpec) -> bool {
    let (Ok(Some(key_usage)), Ok(Some(extended))) = (cert.key_usage(), cert.extended_key_usage()) else {
        return false;
    };
    let key_usage = key_usage.value;
    let extended = extended.value;
    let planned = usage_set(&spec.usages);
    let only_expected_key_usage = key_usage.digital_signature()
        && key_usage.key_encipherment()
        && !(key_usage.non_repudiation()
            || key_usage.data_encipherment()
            || key_usage.key_agreement()
            || key_usage.key_cert_sign()
            || key_usage.crl_sign()
            || key_usage.encipher_only()
            || key_usage.decipher_only());
    let only_planned_eku = extended.server_auth == planned.contains(&Usage::Server)
        && extended.client_auth == planned.contains(&Usage::Client)
        && !(extended.any || extended.code_signing || extended.email_protection || extended.time_stamping || extended.ocsp_signing)
        && extended.other.is_empty();
    only_expected_key_usage && only_planned_eku
}

#[cfg(test)]
mod validity_tests {
    #[test]
    fn a_test_validity_is_renewed_in_its_last_third_and_a_year_in_its_last_30_days() {
        assert_eq!(super::validity_of(Some(240)), (time::Duration::seconds(240), time::Duration::seconds(80)));
        assert_eq!(super::validity_of(None), (time::Duration::days(365), time::Duration::days(30)));
        assert_eq!(super::validity_of(Some(3 * 365 * 86400)).1, time::Duration::days(30), "never earlier than 30 days");
    }
}
