//! Putting the cluster's admin kubeconfig where kubectl finds it.
//!
//! [`merge`] is the pure part: the user's kubeconfig text and ours in, the merged text
//! out. Our cluster, user and context all take one name (`kos-<cluster>`), so a second
//! cluster never collides with the first and a re-run replaces exactly what the last run
//! wrote; every entry of another name is carried over as it was read (kube's
//! `Kubeconfig` keeps the fields it does not model), and the current context becomes
//! ours. [`merge_into_file`] adds the file handling: which file (the first of
//! `$KUBECONFIG`, else `~/.kube/config`), a 0700 folder, an atomic 0600 write.
//!
//! The one visible difference in other entries is a default written out
//! (`provideClusterInfo: false` in exec plugins), which kubectl writes as well.
//!
//! A file that is there but does not parse is never overwritten: kos refuses and names
//! it, since writing our entry over it would silently drop whatever the user had. Like
//! kubectl's own `config` commands, a rewrite drops YAML comments; when nothing would
//! change the file is not rewritten at all.

/// kubectl's kubeconfig search list; kos merges into its first file (else `~/.kube/config`).
/// Read, never set.
pub const KUBECONFIG: &str = "KUBECONFIG";

use kube::config::{Kubeconfig, KubeconfigError, NamedAuthInfo, NamedCluster, NamedContext};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The name of a cluster's cluster, user and context entries in the user's kubeconfig.
pub fn context_name(cluster: &str) -> String {
    format!("kos-{cluster}")
}

/// What [`merge`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The merged kubeconfig, YAML.
    pub yaml: String,
    /// What the merge did to the existing file.
    pub change: Change,
    /// The current context before the merge, if there was one.
    pub previous_context: Option<String>,
}

/// What a merge did to the existing kubeconfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// None of our entries was there.
    Added,
    /// At least one entry of our name was there and was replaced (or the current
    /// context changed).
    Replaced,
    /// The file already held exactly our entries as the current context.
    Unchanged,
}

/// Why [`merge`] refused.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The existing kubeconfig does not parse.
    #[error("it does not parse as a kubeconfig")]
    Existing(#[source] KubeconfigError),
    /// The existing file is some other Kubernetes object.
    #[error("it is a `{0}`, not a kubeconfig (`kind: Config`)")]
    NotAKubeconfig(String),
    /// Our kubeconfig is not what kos renders (a bug in kos).
    #[error("the admin kubeconfig kos rendered is not usable: {0}")]
    Ours(String),
    #[error("cannot serialise the merged kubeconfig")]
    Serialise(#[source] serde_saphyr::ser::Error),
}

/// Merge `ours` (a kubeconfig with one cluster, user and context, as kos renders it)
/// into `existing` (the user's kubeconfig, `None` when there is none yet).
///
/// Our three entries are renamed to `name`; entries of that name in `existing` are
/// replaced in place, all others kept untouched; the current context becomes `name`.
pub fn merge(existing: Option<&str>, ours: &str, name: &str) -> Result<Merged, MergeError> {
    let (cluster, user, context) = our_entries(ours, name)?;
    let mut config = match existing {
        Some(text) => parse_users(text)?,
        None => Kubeconfig::default(),
    };
    let before = serde_json::to_value(&config).map_err(|e| MergeError::Ours(e.to_string()))?;

    let mut replaced = false;
    replaced |= put(&mut config.clusters, cluster, |c| &c.name);
    replaced |= put(&mut config.auth_infos, user, |u| &u.name);
    replaced |= put(&mut config.contexts, context, |c| &c.name);
    let previous_context = config.current_context.replace(name.to_string());
    config.kind.get_or_insert_with(|| "Config".into());
    config.api_version.get_or_insert_with(|| "v1".into());

    let after = serde_json::to_value(&config).map_err(|e| MergeError::Ours(e.to_string()))?;
    let change = if before == after {
        Change::Unchanged
    } else if replaced {
        Change::Replaced
    } else {
        Change::Added
    };
    let yaml = serde_saphyr::to_string(&config).map_err(MergeError::Serialise)?;
    Ok(Merged { yaml, change, previous_context })
}

/// Our one cluster, user and context, all renamed to `name`.
/// The user's kubeconfig, refused when it does not parse or is another kind of object.
fn parse_users(text: &str) -> Result<Kubeconfig, MergeError> {
    let config = Kubeconfig::from_yaml(text).map_err(MergeError::Existing)?;
    if let Some(kind) = config.kind.as_deref().filter(|k| *k != "Config") {
        return Err(MergeError::NotAKubeconfig(kind.to_string()));
    }
    Ok(config)
}

fn our_entries(ours: &str, name: &str) -> Result<(NamedCluster, NamedAuthInfo, NamedContext), MergeError> {
    let config = Kubeconfig::from_yaml(ours).map_err(|e| MergeError::Ours(e.to_string()))?;
    let (Ok([mut cluster]), Ok([mut user]), Ok([mut context])) =
        (<[_; 1]>::try_from(config.clusters), <[_; 1]>::try_from(config.auth_infos), <[_; 1]>::try_from(config.contexts))
    else {
        return Err(MergeError::Ours("it must hold exactly one cluster, one user and one context".into()));
    };
    let Some(ctx) = context.context.as_mut() else {
        return Err(MergeError::Ours(format!("context `{}` names no cluster", context.name)));
    };
    cluster.name = name.to_string();
    user.name = name.to_string();
    context.name = name.to_string();
    ctx.cluster = name.to_string();
    ctx.user = Some(name.to_string());
    Ok((cluster, user, context))
}

/// Replace the entry named like `entry` in place, or append it; whether one was there.
fn put<T>(entries: &mut Vec<T>, entry: T, name: impl Fn(&T) -> &String) -> bool {
    let wanted = name(&entry).clone();
    let Some(first) = entries.iter().position(|e| *name(e) == wanted) else {
        entries.push(entry);
        return false;
    };
    entries[first] = entry;
    // Later entries of our name were never used (kubectl takes the first): drop them.
    let mut index = 0;
    entries.retain(|e| {
        let keep = index <= first || *name(e) != wanted;
        index += 1;
        keep
    });
    true
}

/// `existing` without the cluster, user and context named `name` (what [`merge`] wrote);
/// `None` when it holds none of them. When `name` was the current context, no context is
/// current afterwards (kubectl then asks for `--context`, rather than silently using
/// another cluster). Every other entry is kept as it was read.
pub fn remove(existing: &str, name: &str) -> Result<Option<Removed>, MergeError> {
    let mut config = parse_users(existing)?;
    let before = (config.clusters.len(), config.auth_infos.len(), config.contexts.len());
    config.clusters.retain(|c| c.name != name);
    config.auth_infos.retain(|u| u.name != name);
    config.contexts.retain(|c| c.name != name);
    let was_current = config.current_context.as_deref() == Some(name);
    if was_current {
        config.current_context = None;
    }
    if before == (config.clusters.len(), config.auth_infos.len(), config.contexts.len()) && !was_current {
        return Ok(None);
    }
    let yaml = serde_saphyr::to_string(&config).map_err(MergeError::Serialise)?;
    Ok(Some(Removed { yaml, was_current }))
}

/// What [`remove`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub yaml: String,
    /// The removed context was the current one.
    pub was_current: bool,
}

/// [`remove`] on the user's kubeconfig file at `path` (the one [`merge_admin_kubeconfig`]
/// writes to): `Some(was_current)` when our entries were there and are gone. A missing file
/// or one without our entries is left untouched; an unreadable one is named, never rewritten.
pub fn remove_from_file(path: &Path, cluster: &str) -> Result<Option<bool>, KubeconfigFileError> {
    let Some(text) = read_user_file(path)? else { return Ok(None) };
    let removed =
        remove(&text, &context_name(cluster)).map_err(|source| KubeconfigFileError::Unreadable { path: path.to_path_buf(), source })?;
    let Some(removed) = removed else { return Ok(None) };
    write_private(path, removed.yaml.as_bytes()).map_err(|source| KubeconfigFileError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Some(removed.was_current))
}

/// The file kubectl reads first: the first non-empty path of `$KUBECONFIG`, else
/// `~/.kube/config`; `None` without either.
///
/// The first path, not the last: when kubectl merges the `$KUBECONFIG` list the first
/// file to set a name or `current-context` wins, so only there is our context sure to
/// be the one kubectl uses.
pub fn user_kubeconfig_path(kubeconfig_var: Option<OsString>, home: Option<PathBuf>) -> Option<PathBuf> {
    let from_var = kubeconfig_var.and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty()));
    from_var.or_else(|| home.map(|h| h.join(".kube").join("config")))
}

/// What [`merge_into_file`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeOutcome {
    /// The kubeconfig written (or left as it was when [`Change::Unchanged`]).
    pub path: PathBuf,
    /// Our context's name.
    pub context: String,
    pub change: Change,
    /// The current context before, if there was one.
    pub previous_context: Option<String>,
}

impl std::fmt::Display for MergeOutcome {
    /// One line for the user, e.g. "added context `kos-demo` to ~/.kube/config and
    /// made it the current context (was `prod`)".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (context, path) = (&self.context, self.path.display());
        match self.change {
            Change::Unchanged => {
                return write!(f, "context `{context}` in {path} is up to date and is the current context");
            }
            Change::Added => write!(f, "added context `{context}` to {path} and made it the current context")?,
            Change::Replaced => write!(f, "replaced the cluster, user and context `{context}` in {path} and made it the current context")?,
        }
        match &self.previous_context {
            Some(previous) if previous != context => write!(f, " (was `{previous}`)"),
            _ => Ok(()),
        }
    }
}

/// Why merging into a kubeconfig file failed. The file is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigFileError {
    #[error("no kubeconfig to merge into: neither {var} nor HOME is set", var = KUBECONFIG)]
    NoPath,
    #[error(
        "{path} is not a kubeconfig kos can read, so kos left it untouched: fix or move it, or set {var} to another file (`kos kubeconfig` prints the admin kubeconfig to merge by hand)",
        path = path.display(),
        var = KUBECONFIG
    )]
    Unreadable {
        path: PathBuf,
        #[source]
        source: MergeError,
    },
    #[error("cannot merge the admin kubeconfig")]
    Merge(#[source] MergeError),
    #[error("cannot {action} {path}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Merge the rendered admin kubeconfig of `cluster` into the user's kubeconfig (see
/// [`user_kubeconfig_path`]) as context `kos-<cluster>`, and make it current. For
/// `kos kubeconfig --merge` and `kos up`.
pub fn merge_admin_kubeconfig(admin_kubeconfig_yaml: &str, cluster: &str) -> Result<MergeOutcome, KubeconfigFileError> {
    merge_into_file(&admin_kubeconfig_path()?, admin_kubeconfig_yaml, &context_name(cluster))
}

/// The file kos merges the admin kubeconfig into: the first of `$KUBECONFIG`, else
/// `~/.kube/config`.
pub fn admin_kubeconfig_path() -> Result<PathBuf, KubeconfigFileError> {
    user_kubeconfig_path(std::env::var_os(KUBECONFIG), std::env::home_dir()).ok_or(KubeconfigFileError::NoPath)
}

/// The user's kubeconfig file as text; `None` when there is none.
fn read_user_file(path: &Path) -> Result<Option<String>, KubeconfigFileError> {
    let read_error = |source| KubeconfigFileError::Io { action: "read", path: path.to_path_buf(), source };
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|e| read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_error(e)),
    }
}

/// Merge `ours` into the kubeconfig at `path` (created, with a 0700 folder, when
/// missing) as `name`. The file is replaced atomically and left with mode 0600; a file
/// that does not parse is refused and left as it is.
pub fn merge_into_file(path: &Path, ours: &str, name: &str) -> Result<MergeOutcome, KubeconfigFileError> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| KubeconfigFileError::Io { action, path, source }
    };
    let existing = read_user_file(path)?;
    let merged = merge(existing.as_deref(), ours, name).map_err(|e| match e {
        e @ (MergeError::Existing(_) | MergeError::NotAKubeconfig(_)) => {
            KubeconfigFileError::Unreadable { path: path.to_path_buf(), source: e }
        }
        other => KubeconfigFileError::Merge(other),
    })?;
    let outcome = MergeOutcome {
        path: path.to_path_buf(),
        context: name.to_string(),
        change: merged.change,
        previous_context: merged.previous_context,
    };
    if merged.change != Change::Unchanged {
        write_private(path, merged.yaml.as_bytes()).map_err(io("write", path))?;
    }
    Ok(outcome)
}

/// Write `contents` to `path` with mode 0600, whole or not at all; a symlink (a kubeconfig
/// kept in a dotfiles repository) is followed, not replaced.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    kos_fs::write_atomic(path, contents, 0o600)
}

#[cfg(test)]
mod tests;
