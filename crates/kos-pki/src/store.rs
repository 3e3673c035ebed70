//! The PKI directory on disk: paths, permissions and atomic writes.
//!
//! Everything that touches the filesystem goes through here, so the rules hold for
//! every file: directories 0700, private keys 0600, certificates and public keys 0644,
//! and each file replaced atomically through `kos_fs::write_atomic`, so a crash never
//! leaves half a key behind.

use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use secrecy::SecretString;

use crate::error::PkiError;

/// Who may read a file kos writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visibility {
    /// A private key: 0600.
    Secret,
    /// A certificate or public key: 0644.
    Public,
}

impl Visibility {
    fn mode(self) -> u32 {
        match self {
            Visibility::Secret => 0o600,
            Visibility::Public => 0o644,
        }
    }
}

/// The PKI root directory.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    root: PathBuf,
}

impl Store {
    pub(crate) fn new(root: PathBuf) -> Self {
        Store { root }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a file below the root, given relative to it.
    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Reads a public file (certificate, public key); `None` if it does not exist.
    pub(crate) fn read_public(&self, relative: &str) -> Result<Option<String>, PkiError> {
        let path = self.path(relative);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(source) => Err(PkiError::Io { action: "read", path, source }),
        }
    }

    /// Reads a private key; `None` if it does not exist.
    pub(crate) fn read_secret(&self, relative: &str) -> Result<Option<SecretString>, PkiError> {
        Ok(self.read_public(relative)?.map(SecretString::from))
    }

    /// Replaces `relative` atomically with `contents`, creating parent directories (0700).
    pub(crate) fn write(&self, relative: &str, contents: &[u8], visibility: Visibility) -> Result<(), PkiError> {
        let path = self.path(relative);
        kos_fs::write_atomic(&path, contents, visibility.mode()).map_err(|source| PkiError::Io { action: "write", path, source })
    }

    /// Every `*.crt` file below the root, relative to it, sorted. Empty if the root
    /// does not exist.
    pub(crate) fn certificate_files(&self) -> Result<Vec<String>, PkiError> {
        let mut found = Vec::new();
        let mut pending = vec![self.root.clone()];
        while let Some(dir) = pending.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound && dir == self.root => continue,
                Err(source) => {
                    return Err(PkiError::Io { action: "list", path: dir, source });
                }
            };
            for entry in entries {
                let entry = entry.map_err(|source| PkiError::Io { action: "list", path: dir.clone(), source })?;
                let path = entry.path();
                let kind = entry.file_type().map_err(|source| PkiError::Io { action: "inspect", path: path.clone(), source })?;
                if kind.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|ext| ext == "crt")
                    && let Ok(relative) = path.strip_prefix(&self.root)
                {
                    found.push(relative.to_string_lossy().into_owned());
                }
            }
        }
        found.sort();
        Ok(found)
    }
}

/// Checks that a planned file stem is a plain relative path (no `..`, not absolute,
/// not empty), so a plan can never make kos write outside the PKI directory.
pub(crate) fn check_stem(stem: &str) -> Result<(), PkiError> {
    let bad = |problem| Err(PkiError::BadStem { stem: stem.to_owned(), problem });
    if stem.is_empty() {
        return bad("is empty");
    }
    if stem.ends_with('/') {
        return bad("ends with '/'");
    }
    if !Path::new(stem).components().all(|c| matches!(c, Component::Normal(_))) {
        return bad("is not a plain relative path (no '/', '.' or '..' at the start, no '..' inside)");
    }
    Ok(())
}
