//! What kos tells the operator about the PKI: what `ensure`/`renew` did to each file
//! ([`Report`]) and what `kos certs check` lists ([`CertStatus`]).

use std::fmt;

use kos_core::plan::certificates::CaId;
use time::OffsetDateTime;

use crate::error::PkiError;

/// One thing the PKI directory holds: a CA, the service-account key pair or a leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A certificate authority (`<stem>.crt` + `<stem>.key`).
    Ca(CaId),
    /// The service-account key pair (`sa.key` + `sa.pub`).
    ServiceAccount,
    /// A leaf certificate by file stem (`<stem>.crt` + `<stem>.key`).
    Leaf(String),
}

impl Item {
    /// The item's files, relative to the PKI directory.
    pub fn files(&self) -> [String; 2] {
        match self {
            Item::Ca(ca) => pair(ca.file_stem()),
            Item::ServiceAccount => ["sa.key".to_owned(), "sa.pub".to_owned()],
            Item::Leaf(stem) => pair(stem),
        }
    }
}

fn pair(stem: &str) -> [String; 2] {
    [format!("{stem}.crt"), format!("{stem}.key")]
}

/// What happened to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It did not exist and was created.
    Created,
    /// It existed, matched the plan and was left untouched.
    Reused,
    /// It was replaced by a new key and certificate, for these reasons.
    Reissued(Vec<ReissueReason>),
}

/// Why a leaf certificate was re-issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReissueReason {
    /// `renew` asked for it.
    Renewed,
    /// The certificate was there but its key was not.
    KeyMissing,
    /// The key was there but the certificate was not.
    CertMissing,
    /// `sa.key` was there but `sa.pub` was not; it was derived from `sa.key` again.
    PublicKeyMissing,
    /// The key does not belong to the certificate.
    KeyMismatch,
    /// The certificate or key could not be parsed.
    Unparseable,
    /// The certificate's issuer is not the planned CA (or not the CA on disk).
    WrongIssuer,
    /// The subject (CN / O) differs from the plan.
    Subject,
    /// DNS or IP SANs differ from the plan.
    SubjectAltNames {
        /// Planned names the certificate lacks.
        added: Vec<String>,
        /// Names in the certificate the plan no longer has.
        removed: Vec<String>,
    },
    /// Key usage or extended key usage differs from the plan.
    Usages,
    /// The certificate is a CA certificate, which a leaf must not be.
    IsCa,
    /// Expires within the renewal window (or is not valid yet).
    Expiring {
        /// Whole days until `not_after` (negative once expired).
        days_left: i64,
    },
}

impl fmt::Display for ReissueReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReissueReason::Renewed => f.write_str("renewal requested"),
            ReissueReason::KeyMissing => f.write_str("key missing"),
            ReissueReason::CertMissing => f.write_str("certificate missing"),
            ReissueReason::PublicKeyMissing => f.write_str("public key missing, derived from the private key"),
            ReissueReason::KeyMismatch => f.write_str("key does not match certificate"),
            ReissueReason::Unparseable => f.write_str("could not be parsed"),
            ReissueReason::WrongIssuer => f.write_str("not signed by the planned CA"),
            ReissueReason::Subject => f.write_str("subject changed"),
            ReissueReason::SubjectAltNames { added, removed } => {
                f.write_str("SANs changed")?;
                if !added.is_empty() {
                    write!(f, ", added {}", added.join(" "))?;
                }
                if !removed.is_empty() {
                    write!(f, ", removed {}", removed.join(" "))?;
                }
                Ok(())
            }
            ReissueReason::Usages => f.write_str("key usages changed"),
            ReissueReason::IsCa => f.write_str("is a CA certificate"),
            ReissueReason::Expiring { days_left } if *days_left < 0 => f.write_str("expired"),
            ReissueReason::Expiring { days_left } => write!(f, "expires in {days_left} days"),
        }
    }
}

/// One line of a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What the line is about.
    pub item: Item,
    /// What happened to it.
    pub outcome: Outcome,
}

/// What `ensure` or `renew` did, item by item, in plan order (CAs, the service-account
/// key pair, then leaves).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// One entry per item.
    pub entries: Vec<Entry>,
}

impl Report {
    pub(crate) fn push(&mut self, item: Item, outcome: Outcome) {
        self.entries.push(Entry { item, outcome });
    }

    /// The leaves re-issued because they were expiring (or expired), by file stem: what a
    /// run renewed by itself.
    pub fn renewed_as_expiring(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter_map(|e| match (&e.item, &e.outcome) {
                (Item::Leaf(stem), Outcome::Reissued(reasons)) if reasons.iter().any(|r| matches!(r, ReissueReason::Expiring { .. })) => {
                    Some(stem.as_str())
                }
                _ => None,
            })
            .collect()
    }

    /// The outcome for an item, if the report mentions it.
    pub fn outcome(&self, item: &Item) -> Option<&Outcome> {
        self.entries.iter().find(|e| &e.item == item).map(|e| &e.outcome)
    }

    /// Whether nothing was created or re-issued.
    pub fn all_reused(&self) -> bool {
        self.entries.iter().all(|e| e.outcome == Outcome::Reused)
    }
}

impl fmt::Display for Report {
    /// One line per item: `created  ca.crt ca.key`, `reissued apiserver.crt apiserver.key (SANs changed, added 10.0.0.9)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for Entry { item, outcome } in &self.entries {
            let [a, b] = item.files();
            match outcome {
                Outcome::Created => writeln!(f, "created  {a} {b}")?,
                Outcome::Reused => writeln!(f, "reused   {a} {b}")?,
                Outcome::Reissued(reasons) => {
                    let reasons: Vec<String> = reasons.iter().map(ToString::to_string).collect();
                    writeln!(f, "reissued {a} {b} ({})", reasons.join("; "))?;
                }
            }
        }
        Ok(())
    }
}

/// One certificate found in the PKI directory, for `kos certs check`.
#[derive(Debug)]
pub struct CertStatus {
    /// The certificate file, relative to the PKI directory.
    pub file: String,
    /// Its details, or why they could not be read.
    pub details: Result<CertDetails, PkiError>,
}

/// What `kos certs check` shows about a readable certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertDetails {
    /// Subject, e.g. `O=system:nodes, CN=system:node:worker-1`.
    pub subject: String,
    /// Issuer, e.g. `CN=kubernetes`.
    pub issuer: String,
    /// Whether it is a CA certificate.
    pub is_ca: bool,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Whole days from the time of the check to `not_after` (negative once expired).
    pub days_left: i64,
    /// The serial number, `aa:bb:…`: what tells two issues of one certificate apart.
    pub serial: String,
    /// Subject alternative names, as x509-parser writes them (`DNSName(kubernetes)`, `IPAddress(…)`).
    pub sans: Vec<String>,
}
