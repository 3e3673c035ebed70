//! Merging into and removing from the user's kubeconfig file.
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
    let doubled =
        OTHER.replace("current-context: prod\n", "- name: kos-demo\n  context:\n    cluster: x\n    user: y\ncurrent-context: prod\n");
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
    assert_eq!(outcome.to_string(), format!("added context `kos-demo` to {} and made it the current context", path.display()));
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
    assert!(message.starts_with(&format!("{} is not a kubeconfig kos can read, so kos left it untouched", path.display())), "{message}");
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
