//! `kos kubeconfig`: printing the admin kubeconfig, and merging it into the user's
//! (`$KUBECONFIG`, else `~/.kube/config`) so that a real kubectl sees both the user's
//! contexts and `kos-<cluster>` as the current one.

use crate::support::{render_example, repo_root, run, tool};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

/// `kos kubeconfig` for the repository's example, with the state `kos render` left in
/// `<tmp>/state`; no `KUBECONFIG` or `HOME` from the test's environment.
fn kos_kubeconfig(tmp: &Path) -> assert_cmd::Command {
    let root = repo_root();
    let mut cmd = assert_cmd::Command::cargo_bin("kos").unwrap();
    cmd.arg("kubeconfig")
        .arg("-f")
        .arg(root.join("examples/settings.yaml"))
        .arg("--observed")
        .arg(root.join("examples/observed.yaml"))
        .arg("--state-dir")
        .arg(tmp.join("state"))
        .env_remove("KUBECONFIG")
        .env("HOME", tmp.join("home"));
    cmd
}

/// Somebody's kubeconfig with a context of their own.
const THEIRS: &str = "apiVersion: v1
kind: Config
clusters:
- name: theirs
  cluster:
    server: https://192.0.2.1:6443
    insecure-skip-tls-verify: true
users:
- name: theirs
  user:
    token: their-token
contexts:
- name: theirs
  context:
    cluster: theirs
    user: theirs
    namespace: shop
current-context: theirs
";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn prints_the_rendered_admin_kubeconfig() {
    let (tmp, out) = render_example();
    let printed = kos_kubeconfig(tmp.path()).assert().success().get_output().stdout.clone();
    let rendered = std::fs::read_to_string(out.join("local/admin.kubeconfig")).unwrap();
    assert_eq!(String::from_utf8(printed).unwrap(), rendered);
    assert!(!tmp.path().join("home").exists(), "printing writes nothing");
}

#[test]
fn kubectl_sees_both_contexts_and_ours_as_current_after_merge() {
    let Some(kubectl) = tool("kubectl") else { return };
    let (tmp, _out) = render_example();
    let config = tmp.path().join("kube/config");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, THEIRS).unwrap();

    let output = kos_kubeconfig(tmp.path()).arg("--merge").env("KUBECONFIG", &config).assert().success();
    let stdout = String::from_utf8(output.get_output().stdout.clone()).unwrap();
    assert_eq!(stdout, format!("added context `kos-demo` to {} and made it the current context (was `theirs`)\n", config.display()));
    assert_eq!(mode(&config), 0o600);

    let kubectl = |args: &[&str]| {
        let (ok, stdout, stderr) = run(Command::new(&kubectl).args(args).env("KUBECONFIG", &config));
        assert!(ok, "kubectl {args:?}: {stderr}");
        stdout
    };
    let mut contexts: Vec<String> = kubectl(&["config", "get-contexts", "-o", "name"]).lines().map(String::from).collect();
    contexts.sort();
    assert_eq!(contexts, ["kos-demo", "theirs"]);
    assert_eq!(kubectl(&["config", "current-context"]), "kos-demo\n");
    let ours = kubectl(&["config", "view", "--raw", "--minify"]);
    assert!(ours.contains("server: https://203.0.113.11:6443"), "{ours}");
    assert!(ours.contains("client-key-data:"), "{ours}");
    // Theirs is untouched, down to the token and the namespace.
    let theirs = kubectl(&["config", "view", "--raw", "--minify", "--context", "theirs"]);
    assert!(theirs.contains("token: their-token") && theirs.contains("namespace: shop"), "{theirs}");
    assert!(theirs.contains("insecure-skip-tls-verify: true"), "{theirs}");

    // Again: nothing to do, and it says so.
    let again = kos_kubeconfig(tmp.path()).arg("--merge").env("KUBECONFIG", &config).assert().success();
    let stdout = String::from_utf8(again.get_output().stdout.clone()).unwrap();
    assert_eq!(stdout, format!("context `kos-demo` in {} is up to date and is the current context\n", config.display()));
}

#[test]
fn without_kubeconfig_merges_into_home_kube_config_created_private() {
    let (tmp, _out) = render_example();
    kos_kubeconfig(tmp.path()).arg("--merge").assert().success();
    let config = tmp.path().join("home/.kube/config");
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(config.parent().unwrap()), 0o700);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("current-context: kos-demo"), "{text}");
}

#[test]
fn a_malformed_kubeconfig_is_named_and_left_alone() {
    let (tmp, _out) = render_example();
    let config = tmp.path().join("config");
    let broken = "clusters:\n- name: a\n  cluster: [unclosed\n";
    std::fs::write(&config, broken).unwrap();
    let output = kos_kubeconfig(tmp.path()).arg("--merge").env("KUBECONFIG", &config).assert().code(1);
    let stderr = String::from_utf8(output.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.starts_with(&format!("error: {} is not a kubeconfig kos can read, so kos left it untouched", config.display())),
        "{stderr}"
    );
    assert!(stderr.contains("caused by: failed to parse kubeconfig YAML"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), broken);
}

#[test]
fn without_a_pki_it_says_which_command_creates_one() {
    let tmp = tempfile::tempdir().unwrap();
    let output = kos_kubeconfig(tmp.path()).assert().code(2);
    let stderr = String::from_utf8(output.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("cluster `demo` has no PKI in"), "{stderr}");
    assert!(stderr.contains("`kos up` (or `kos render`) creates it"), "{stderr}");
    assert!(!tmp.path().join("state").exists(), "the PKI is not created by `kos kubeconfig`");
}
