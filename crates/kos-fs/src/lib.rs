//! The one way kos writes a file on the operator's machine (certificates and keys,
//! kubeconfigs, the ssh_config, the observed state, rendered trees).
//!
//! A file is written to a temporary file beside it, created with mode 0600 (so a key is
//! never readable by others, not even for an instant), given its final mode, synced, and
//! renamed over the old one; the folder is synced so the rename survives a crash. A reader
//! sees the old file or the new one, never half of one, and a run cut short leaves no
//! partial file behind.

#![forbid(unsafe_code)]

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Mode of the folders [`write_atomic`] creates: they may hold private files.
pub const DIR_MODE: u32 = 0o700;

/// Replace `path` with `contents` and `mode`, atomically. A missing parent folder is made
/// (mode [`DIR_MODE`]); a symlink at `path` (a kubeconfig kept in a dotfiles repository) is
/// followed, its target replaced, the link kept.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(&dir)?;
    // tempfile creates it 0600 and removes it if anything below fails.
    let mut tmp = tempfile::Builder::new().prefix(".kos-").suffix(".tmp").tempfile_in(&dir)?;
    // 0600 until written: the mode asked for may be wider, never narrower than needed.
    tmp.write_all(contents)?;
    tmp.as_file().set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    fs::File::open(&dir).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_whole_files_with_their_mode_and_private_new_folders() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("pki/etcd/ca.key");
        write_atomic(&key, b"secret\n", 0o600).unwrap();
        assert_eq!((fs::read_to_string(&key).unwrap().as_str(), mode(&key)), ("secret\n", 0o600));
        assert_eq!(mode(&dir.path().join("pki/etcd")), DIR_MODE);
        // Replacing keeps nothing of the old file but its name; a wider mode is applied.
        write_atomic(&key, b"public\n", 0o644).unwrap();
        assert_eq!((fs::read_to_string(&key).unwrap().as_str(), mode(&key)), ("public\n", 0o644));
        // No temporary file is left beside it.
        let names: Vec<_> = fs::read_dir(dir.path().join("pki/etcd")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["ca.key"]);
    }

    #[test]
    fn a_symlink_is_followed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles/kubeconfig");
        write_atomic(&real, b"old", 0o600).unwrap();
        let link = dir.path().join("config");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, b"new", 0o600).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("observed.yaml");
        write_atomic(&file, b"kept", 0o600).unwrap();
        // A file where a folder must be (root ignores folder modes, so this is the failure
        // a test can make): the error is returned and the existing file is untouched.
        let err = write_atomic(&file.join("under-a-file"), b"x", 0o600).unwrap_err();
        assert!(matches!(err.kind(), std::io::ErrorKind::NotADirectory | std::io::ErrorKind::AlreadyExists), "{err:?}");
        assert_eq!(fs::read_to_string(&file).unwrap(), "kept");
    }
}
