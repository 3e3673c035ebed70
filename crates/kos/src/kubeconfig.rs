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

use crate::env_vars;
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
    let (Ok([mut cluster]), Ok([mut user]), Ok([mut context])) = (
        <[_; 1]>::try_from(config.clusters),
        <[_; 1]>::try_from(config.auth_infos),
        <[_; 1]>::try_from(config.contexts),
    ) else {
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

/// [`remove`] on the user's kubeconfig file (the one [`merge_admin_kubeconfig`] writes to):
/// `Some(path, was_current)` when our entries were there and are gone. A missing file or
/// one without our entries is left untouched; an unreadable one is named, never rewritten.
pub fn remove_admin_context(cluster: &str) -> Result<Option<(PathBuf, bool)>, KubeconfigFileError> {
    let Ok(path) = admin_kubeconfig_path() else { return Ok(None) };
    let Some(text) = read_user_file(&path)? else { return Ok(None) };
    let removed = remove(&text, &context_name(cluster))
        .map_err(|source| KubeconfigFileError::Unreadable { path: path.clone(), source })?;
    let Some(removed) = removed else { return Ok(None) };
    write_private(&path, removed.yaml.as_bytes()).map_err(|source| KubeconfigFileError::Io { action: "write", path: path.clone(), source })?;
    Ok(Some((path, removed.was_current)))
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
            Change::Replaced => write!(
                f,
                "replaced the cluster, user and context `{context}` in {path} and made it the current context"
            )?,
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
    #[error("no kubeconfig to merge into: neither {var} nor HOME is set", var = env_vars::KUBECONFIG)]
    NoPath,
    #[error(
        "{path} is not a kubeconfig kos can read, so kos left it untouched: fix or move it, or set {var} to another file (`kos kubeconfig` prints the admin kubeconfig to merge by hand)",
        path = path.display(),
        var = env_vars::KUBECONFIG
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
fn admin_kubeconfig_path() -> Result<PathBuf, KubeconfigFileError> {
    user_kubeconfig_path(std::env::var_os(env_vars::KUBECONFIG), std::env::home_dir()).ok_or(KubeconfigFileError::NoPath)
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

/// Write `contents` to `path` with mode 0600 through a temporary file and a rename, so
/// a reader sees the old or the new file, never half of one. A symlink (a kubeconfig
/// kept in a dotfiles repository) is followed, not replaced.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};

    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    let file_name = target.file_name().and_then(|n| n.to_str()).unwrap_or("config");
    let tmp = dir.join(format!(".{file_name}.kos-{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(contents)?;
        // The umask may have taken more than asked for; 0600 exactly.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// A kubeconfig as kos renders it (see kos-render's `admin.kubeconfig` snapshot).
    fn ours(server: &str) -> String {
        format!(
            "clusters:
- name: kos-demo
  cluster:
    server: {server}
    certificate-authority-data: Q0EgUEVN
users:
- name: kos-demo-admin
  user:
    client-certificate-data: Q0VSVCBQRU0=
    client-key-data: S0VZIFBFTQ==
contexts:
- name: kos-demo
  context:
    cluster: kos-demo
    user: kos-demo-admin
current-context: kos-demo
kind: Config
apiVersion: v1
"
        )
    }

    /// Somebody else's kubeconfig, with the fields kube does not model (exec plugins,
    /// extensions, a namespace, relative file paths, preferences) that must survive.
    const OTHER: &str = "apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: prod
  cluster:
    server: https://prod.example.com:6443
    certificate-authority: certs/prod-ca.crt
    tls-server-name: api.prod.internal
    extensions:
    - name: client.authentication.k8s.io/exec
      extension:
        audience: prod
- name: kos-demo
  cluster:
    server: https://198.51.100.7:6443
    certificate-authority-data: T0xEIENB
users:
- name: prod-sso
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: kubelogin
      args: [get-token, --server-id, abc]
      interactiveMode: IfAvailable
- name: kos-demo
  user:
    token: old-token
contexts:
- name: prod
  context:
    cluster: prod
    user: prod-sso
    namespace: shop
- name: kos-demo
  context:
    cluster: kos-demo
    user: kos-demo
current-context: prod
";

    fn yaml(text: &str) -> serde_json::Value {
        serde_saphyr::from_str(text).unwrap()
    }

    /// The entry named `name` of a list (`clusters`, `users`, `contexts`).
    fn entry(doc: &serde_json::Value, list: &str, name: &str) -> serde_json::Value {
        doc[list].as_array().unwrap().iter().find(|e| e["name"] == name).cloned().unwrap_or_default()
    }

    fn names(doc: &serde_json::Value, list: &str) -> Vec<String> {
        doc[list].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn into_nothing_gives_ours_with_one_name_for_cluster_user_and_context() {
        let merged = merge(None, &ours("https://203.0.113.11:6443"), "kos-demo").unwrap();
        assert_eq!(merged.change, Change::Added);
        assert_eq!(merged.previous_context, None);
        let doc = yaml(&merged.yaml);
        assert_eq!(names(&doc, "clusters"), ["kos-demo"]);
        assert_eq!(names(&doc, "users"), ["kos-demo"]);
        assert_eq!(entry(&doc, "contexts", "kos-demo")["context"]["user"], "kos-demo");
        assert_eq!(doc["current-context"], "kos-demo");
        insta::with_settings!({ filters => vec![(r"(-data): \S+", "$1: [BASE64]")] }, {
            insta::assert_snapshot!("merged_into_nothing", merged.yaml);
        });
    }

    #[test]
    fn keeps_every_other_entry_as_it_was_and_replaces_the_old_kos_entries() {
        let merged = merge(Some(OTHER), &ours("https://203.0.113.11:6443"), "kos-demo").unwrap();
        assert_eq!(merged.change, Change::Replaced);
        assert_eq!(merged.previous_context.as_deref(), Some("prod"));
        let (before, after) = (yaml(OTHER), yaml(&merged.yaml));
        // Same entries, same order: the old kos entries replaced in place.
        for list in ["clusters", "users", "contexts"] {
            assert_eq!(names(&after, list), names(&before, list), "{list}");
        }
        // Everything of another name is semantically what was read.
        assert_eq!(entry(&after, "clusters", "prod"), entry(&before, "clusters", "prod"));
        let mut their_user = entry(&before, "users", "prod-sso");
        // The one default written out, as kubectl writes it too (client-go's field has no
        // `omitempty`).
        their_user["user"]["exec"]["provideClusterInfo"] = false.into();
        assert_eq!(entry(&after, "users", "prod-sso"), their_user);
        assert_eq!(entry(&after, "contexts", "prod"), entry(&before, "contexts", "prod"));
        assert_eq!(after["preferences"], before["preferences"]);
        // Ours is the new one, with nothing left of the old (the token).
        let cluster = entry(&after, "clusters", "kos-demo");
        assert_eq!(cluster["cluster"]["server"], "https://203.0.113.11:6443");
        let user = entry(&after, "users", "kos-demo");
        assert!(user["user"].get("token").is_none(), "{user}");
        assert_eq!(user["user"]["client-key-data"], "S0VZIFBFTQ==");
        assert_eq!(after["current-context"], "kos-demo");
        insta::with_settings!({ filters => vec![(r"(-data): \S+", "$1: [BASE64]")] }, {
            insta::assert_snapshot!("merged_into_other", merged.yaml);
        });
    }

    #[test]
    fn merging_the_same_again_changes_nothing() {
        let ours = ours("https://203.0.113.11:6443");
        let first = merge(Some(OTHER), &ours, "kos-demo").unwrap();
        let again = merge(Some(&first.yaml), &ours, "kos-demo").unwrap();
        assert_eq!(again.change, Change::Unchanged);
        assert_eq!(again.yaml, first.yaml);
        // A new server address is a change, and says it replaced ours.
        let moved = merge(Some(&first.yaml), &self::ours("https://203.0.113.99:6443"), "kos-demo").unwrap();
        assert_eq!(moved.change, Change::Replaced);
    }

    #[test]
    fn duplicates_of_our_name_collapse_into_the_first_place() {
        let doubled = OTHER.replace(
            "current-context: prod\n",
            "- name: kos-demo\n  context:\n    cluster: x\n    user: y\ncurrent-context: prod\n",
        );
        assert_eq!(names(&yaml(&doubled), "contexts"), ["prod", "kos-demo", "kos-demo"]);
        let merged = merge(Some(&doubled), &ours("https://203.0.113.11:6443"), "kos-demo").unwrap();
        let doc = yaml(&merged.yaml);
        assert_eq!(names(&doc, "contexts"), ["prod", "kos-demo"]);
        assert_eq!(entry(&doc, "contexts", "kos-demo")["context"]["cluster"], "kos-demo");
    }

    #[test]
    fn a_second_cluster_sits_beside_the_first() {
        let first = merge(None, &ours("https://203.0.113.11:6443"), "kos-demo").unwrap();
        let second = merge(Some(&first.yaml), &ours("https://203.0.113.22:6443"), "kos-other").unwrap();
        assert_eq!(second.change, Change::Added);
        assert_eq!(second.previous_context.as_deref(), Some("kos-demo"));
        let doc = yaml(&second.yaml);
        assert_eq!(names(&doc, "contexts"), ["kos-demo", "kos-other"]);
        assert_eq!(names(&doc, "users"), ["kos-demo", "kos-other"]);
        assert_eq!(entry(&doc, "clusters", "kos-demo")["cluster"]["server"], "https://203.0.113.11:6443");
        assert_eq!(entry(&doc, "contexts", "kos-other")["context"]["cluster"], "kos-other");
    }

    #[test]
    fn refuses_a_file_that_does_not_parse_or_is_not_a_kubeconfig() {
        let ours = ours("https://203.0.113.11:6443");
        for broken in ["clusters: [\n  - name: x\n", "clusters: 5\n", "users:\n- user: {}\n"] {
            let err = merge(Some(broken), &ours, "kos-demo").unwrap_err();
            assert!(matches!(err, MergeError::Existing(_)), "{broken:?}: {err:?}");
        }
        let err = merge(Some("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"), &ours, "kos-demo").unwrap_err();
        assert_eq!(err.to_string(), "it is a `Pod`, not a kubeconfig (`kind: Config`)");
        // An empty file is an empty kubeconfig.
        assert_eq!(merge(Some(""), &ours, "kos-demo").unwrap().change, Change::Added);
    }

    #[test]
    fn the_target_is_the_first_kubeconfig_path_else_the_home_default() {
        let home = Some(PathBuf::from("/home/u"));
        assert_eq!(user_kubeconfig_path(None, home.clone()), Some(PathBuf::from("/home/u/.kube/config")));
        assert_eq!(user_kubeconfig_path(Some("".into()), home.clone()), Some(PathBuf::from("/home/u/.kube/config")));
        assert_eq!(user_kubeconfig_path(Some("::/a/one:/a/two".into()), home), Some(PathBuf::from("/a/one")));
        assert_eq!(user_kubeconfig_path(None, None), None);
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_the_folder_0700_and_the_file_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("home/.kube/config");
        let outcome = merge_into_file(&path, &ours("https://203.0.113.11:6443"), "kos-demo").unwrap();
        assert_eq!(outcome.change, Change::Added);
        assert_eq!(outcome.path, path);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&tmp.path().join("home")), 0o700);
        assert_eq!(
            outcome.to_string(),
            format!("added context `kos-demo` to {} and made it the current context", path.display())
        );
        // Nothing left behind but the file.
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["config"]);
    }

    #[test]
    fn an_existing_file_keeps_its_entries_and_becomes_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config");
        std::fs::write(&path, OTHER).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let outcome = merge_into_file(&path, &ours("https://203.0.113.11:6443"), "kos-demo").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(outcome.to_string().ends_with("made it the current context (was `prod`)"), "{outcome}");
        let doc = yaml(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(entry(&doc, "contexts", "prod"), entry(&yaml(OTHER), "contexts", "prod"));
        // Run again: nothing to do, the file is not touched.
        let written = std::fs::read(&path).unwrap();
        let again = merge_into_file(&path, &ours("https://203.0.113.11:6443"), "kos-demo").unwrap();
        assert_eq!(again.change, Change::Unchanged);
        assert_eq!(std::fs::read(&path).unwrap(), written);
    }

    #[test]
    fn a_malformed_file_is_refused_by_name_and_left_byte_for_byte() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config");
        let broken = "apiVersion: v1\nclusters:\n- name: a\n  cluster: [unclosed\n";
        std::fs::write(&path, broken).unwrap();
        let err = merge_into_file(&path, &ours("https://203.0.113.11:6443"), "kos-demo").unwrap_err();
        let message = err.to_string();
        assert!(
            message
                .starts_with(&format!("{} is not a kubeconfig kos can read, so kos left it untouched", path.display())),
            "{message}"
        );
        assert!(message.contains("KUBECONFIG"), "{message}");
        // The cause (with the YAML position) is in the chain.
        let cause = std::error::Error::source(&err).unwrap();
        assert!(std::error::Error::source(cause).unwrap().to_string().contains("parse"), "{cause:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["config"]);
    }

    #[test]
    fn a_symlinked_kubeconfig_is_followed_not_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("dotfiles/kubeconfig");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, OTHER).unwrap();
        let link = tmp.path().join("config");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        merge_into_file(&link, &ours("https://203.0.113.11:6443"), "kos-demo").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(std::fs::read_to_string(&real).unwrap().contains("current-context: kos-demo"));
    }

    /// `kos destroy`: our three entries leave, every other one stays as it was; a current
    /// context of ours leaves no current context; a file without ours is not rewritten.
    #[test]
    fn remove_takes_out_exactly_our_entries() {
        let removed = remove(OTHER, "kos-demo").unwrap().expect("our entries were there");
        assert!(!removed.was_current);
        let after = yaml(&removed.yaml);
        let before = yaml(OTHER);
        for list in ["clusters", "users", "contexts"] {
            assert!(entry(&after, list, "kos-demo").is_null(), "{list}: {after:#}");
        }
        assert_eq!(entry(&after, "clusters", "prod"), entry(&before, "clusters", "prod"));
        // The one difference the module names: the exec plugin's default written out.
        let mut sso = entry(&before, "users", "prod-sso");
        sso["user"]["exec"]["provideClusterInfo"] = false.into();
        assert_eq!(entry(&after, "users", "prod-sso"), sso);
        assert_eq!(entry(&after, "contexts", "prod"), entry(&before, "contexts", "prod"));
        assert_eq!(after["current-context"], "prod");
        assert_eq!(remove(&removed.yaml, "kos-demo").unwrap(), None, "nothing of ours left: nothing to do");

        let merged = merge(Some(OTHER), &ours("https://203.0.113.9:6443"), "kos-demo").unwrap();
        let removed = remove(&merged.yaml, "kos-demo").unwrap().unwrap();
        assert!(removed.was_current);
        let after = yaml(&removed.yaml);
        assert!(after.get("current-context").is_none_or(serde_json::Value::is_null), "no current context: {after:#}");
        assert!(matches!(remove("kind: Pod\napiVersion: v1\n", "kos-demo"), Err(MergeError::NotAKubeconfig(_))));
    }
}
