//! Reading certificates back: PEM to DER, DER to a parsed certificate, and the summary
//! `kos certs check` prints. Thin wrappers over `x509-parser` that turn its nom errors
//! into plain boxed errors.

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;

use crate::error::ParseError;
use crate::report::CertDetails;

/// The DER content of the first PEM block in `text`.
pub(crate) fn pem_to_der(text: &str) -> Result<Vec<u8>, ParseError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes())?;
    Ok(pem.contents)
}

/// A parsed certificate (borrowing `der`), refusing trailing bytes.
pub(crate) fn parse(der: &[u8]) -> Result<X509Certificate<'_>, ParseError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)?;
    if !rest.is_empty() {
        return Err("trailing bytes after the certificate".into());
    }
    Ok(cert)
}

/// Whole days from `now` to `not_after`, rounded down (negative once expired).
pub(crate) fn days_left(not_after: OffsetDateTime, now: OffsetDateTime) -> i64 {
    let seconds = (not_after - now).whole_seconds();
    seconds.div_euclid(86_400)
}

/// The summary of one certificate for `kos certs check`.
pub(crate) fn details(cert: &X509Certificate<'_>, now: OffsetDateTime) -> CertDetails {
    let not_after = cert.validity().not_after.to_datetime();
    CertDetails {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        is_ca: cert.is_ca(),
        not_before: cert.validity().not_before.to_datetime(),
        not_after,
        days_left: days_left(not_after, now),
        serial: cert.raw_serial_as_string(),
        sans: cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| ext.value.general_names.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default(),
    }
}
