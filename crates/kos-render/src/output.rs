//! Rendered files as values, and writing them out as a tree for review
//! (`DIR/nodes/<node>/<absolute path>`, `DIR/local/<path>`).

use crate::RenderError;
use std::path::{Path, PathBuf};

/// Where a file goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A node's filesystem (the path is absolute there).
    Node(String),
    /// The operator's machine (the path is relative to the local output folder).
    Local,
}

/// One file with its destination and mode.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub target: Target,
    /// Absolute for nodes (`/etc/kubernetes/manifests/etcd.yaml`); relative for local.
    pub path: String,
    /// Unix mode; private keys and files embedding them are 0600.
    pub mode: u32,
    pub contents: String,
}

impl RenderedFile {
    pub fn node(node: &str, path: &str, mode: u32, contents: String) -> Self {
        RenderedFile { target: Target::Node(node.to_string()), path: path.to_string(), mode, contents }
    }

    pub fn local(path: &str, mode: u32, contents: String) -> Self {
        RenderedFile { target: Target::Local, path: path.to_string(), mode, contents }
    }

    /// Where the file lands below an output folder.
    pub fn tree_path(&self, out: &Path) -> PathBuf {
        match &self.target {
            Target::Node(n) => out.join("nodes").join(n).join(self.path.trim_start_matches('/')),
            Target::Local => out.join("local").join(&self.path),
        }
    }
}

impl std::fmt::Debug for RenderedFile {
    /// Never prints contents: they may hold private keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedFile")
            .field("target", &self.target)
            .field("path", &self.path)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("bytes", &self.contents.len())
            .finish()
    }
}

/// Write files below `out` with their modes (folders 0700 where they hold private files,
/// else 0755), replacing each file atomically.
pub fn write_tree(out: &Path, files: &[RenderedFile]) -> Result<(), RenderError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    for file in files {
        let path = file.tree_path(out);
        let dir = path.parent().unwrap_or(out);
        std::fs::create_dir_all(dir).map_err(|source| RenderError::Write { path: dir.to_path_buf(), source })?;
        let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("file")));
        let write = || -> std::io::Result<()> {
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(file.mode).open(&tmp)?;
            f.write_all(file.contents.as_bytes())?;
            f.sync_all()?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(file.mode))?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|source| RenderError::Write { path: path.clone(), source })?;
    }
    Ok(())
}
