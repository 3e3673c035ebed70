//! Everything that can go wrong while reading or writing the PKI directory.
//!
//! Every message names the file involved and says what the operator can do about it.
//! No variant ever carries key material: keys are read into `SecretString`s and only
//! their paths reach an error.

use std::path::PathBuf;

/// A boxed parse error from `x509-parser` or `rcgen`, kept as the `source` of a
/// [`PkiError::Unparseable`] so the chain shows the parser's own words.
pub type ParseError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error of the PKI directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A file or directory could not be read, written or listed.
    #[error("could not {action} {}: check that the path exists and its permissions let you read and write it", path.display())]
    Io {
        /// What kos was doing (`read`, `write`, `create directory`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A file that must exist (a CA, or a leaf asked for by name) does not.
    #[error("{} does not exist: run `kos render` (which creates the PKI) first", path.display())]
    Missing {
        /// The missing file.
        path: PathBuf,
    },

    /// A file exists but is not the PEM it should be.
    #[error("{} is not a valid {what}: {fix}", path.display())]
    Unparseable {
        /// The file.
        path: PathBuf,
        /// What it should hold (`certificate`, `private key`, ...).
        what: &'static str,
        /// What to do.
        fix: &'static str,
        /// The parser's error.
        #[source]
        source: ParseError,
    },

    /// One half of a CA (or of the service-account key pair) is on disk, the other is not.
    #[error(
        "{} exists but {} does not: {what} needs both files. Restore {} from a backup; \
         only if no cluster uses {what} yet, delete {} and run again to create a new one",
        present.display(), missing.display(), missing.display(), present.display()
    )]
    Incomplete {
        /// `the cluster CA`, `the service-account key pair`, ...
        what: String,
        /// The file that exists.
        present: PathBuf,
        /// The file that does not.
        missing: PathBuf,
    },

    /// A CA key (or `sa.key`) does not belong to its certificate (or `sa.pub`).
    #[error(
        "{} does not match {}: restore the matching pair from a backup. kos never replaces \
         {what} by itself, because every certificate or token it signed would stop working",
        key.display(), public.display()
    )]
    KeyMismatch {
        /// `the cluster CA`, ...
        what: String,
        /// The private key file.
        key: PathBuf,
        /// The certificate or public key file it should match.
        public: PathBuf,
    },

    /// A CA certificate on disk is not a CA (no `CA:TRUE` basic constraint).
    #[error(
        "{} is not a CA certificate (no CA:TRUE basic constraint): restore the CA from a backup",
        path.display()
    )]
    NotACa {
        /// The certificate file.
        path: PathBuf,
    },

    /// A planned file stem is not a safe relative path, or collides with another file.
    #[error("certificate file stem {stem:?} {problem}: fix the certificate plan")]
    BadStem {
        /// The stem from the plan.
        stem: String,
        /// What is wrong with it.
        problem: &'static str,
    },

    /// A planned certificate cannot be expressed.
    #[error("certificate {stem:?} {problem}: change its spec in the certificate plan")]
    UnsupportedSpec {
        /// The stem from the plan.
        stem: String,
        /// What is not supported.
        problem: &'static str,
    },

    /// `renew` was asked to renew a CA.
    #[error(
        "{stem:?} is a CA: renewing a CA is a CA rotation (new CA, re-issue every leaf, \
         distribute both while trusting old and new), a separate and explicit operation that \
         kos does not support yet. Renew leaf certificates by name, or all leaves with no name"
    )]
    CaRenewalUnsupported {
        /// The CA's stem (`ca`, `etcd/ca`, `front-proxy-ca`).
        stem: String,
    },

    /// `renew` was asked for a certificate the plan does not contain.
    #[error("{stem:?} is not a planned certificate: use one of the names `kos certs check` lists")]
    UnknownCert {
        /// The requested stem.
        stem: String,
    },

    /// rcgen could not generate a key or sign a certificate.
    #[error("could not generate {what}: this is a bug in kos, please report it")]
    Generate {
        /// The key or certificate being generated.
        what: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
}
