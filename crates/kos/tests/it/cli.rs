//! The `kos` command line as a user meets it: transcripts of `validate` on good and bad
//! files, exit codes, and `certs check` after a render.

use crate::support::{render_command, render_example, repo_root};
use assert_cmd::Command;

fn kos() -> Command {
    Command::cargo_bin("kos").expect("kos binary")
}

/// A HOME with the example's key, `~/.ssh/id_ed25519` (validate checks that it exists).
fn home_with_the_examples_key() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    std::fs::write(home.path().join(".ssh/id_ed25519"), "a key\n").unwrap();
    home
}

#[test]
fn validate_accepts_the_example() {
    let home = home_with_the_examples_key();
    let out = kos().env("HOME", home.path()).args(["validate", "-f"]).arg(repo_root().join("examples/settings.yaml")).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("valid (cluster demo, Kubernetes 1.37.2, 1 master, 2 workers)"), "{text}");
}

#[test]
fn validate_reports_every_problem_with_file_line_and_fix_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.yaml");
    std::fs::write(
        &file,
        "cluster:\n  name: demo\n  kubernetes_version: \"1.30.1\"\ncloud:\n  image: i\n  flavour: f\n  network: n\n  router: r\nnodes:\n  - {name: w1, role: worker}\n  - {name: w1, role: worker}\nnetworking:\n  pod_cidr: 10.96.0.0/16\n  dns_ip: 10.1.0.10\nruntime: {docker_tls: true}\nssh: {user: debian, private_key: k}\n",
    )
    .unwrap();
    let out = kos().current_dir(tmp.path()).args(["validate", "-f", "bad.yaml"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    insta::assert_snapshot!(stderr);
}

#[test]
fn settings_file_comes_from_kos_settings_when_no_flag() {
    let home = home_with_the_examples_key();
    kos().env("HOME", home.path()).env("KOS_SETTINGS", repo_root().join("examples/settings.yaml")).arg("validate").assert().success();
    let tmp = tempfile::tempdir().unwrap();
    let out = kos().current_dir(tmp.path()).env_remove("KOS_SETTINGS").arg("validate").assert().failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("cannot read settings file settings.yaml"), "{stderr}");
}

#[test]
fn render_without_addresses_says_how_to_get_them() {
    let tmp = tempfile::tempdir().unwrap();
    let out = kos()
        .current_dir(tmp.path())
        .args(["render", "-f"])
        .arg(repo_root().join("examples/settings.yaml"))
        .arg("--state-dir")
        .arg(tmp.path().join("state"))
        .args(["--out", "out"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("the address of node `master-1` is not known yet"), "{stderr}");
    assert!(stderr.contains("--observed FILE"), "{stderr}");
    assert!(!tmp.path().join("out").exists(), "nothing written");
}

#[test]
fn render_twice_reuses_the_pki_and_certs_check_lists_expiry() {
    let (tmp, out) = render_example();
    let key = out.join("nodes/master-1/etc/kubernetes/pki/apiserver.key");
    let first = std::fs::read(&key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    render_command(&tmp.path().join("state"), &out).assert().success();
    let root = repo_root();
    assert_eq!(std::fs::read(&key).unwrap(), first, "second render reuses the apiserver key");

    let check = kos()
        .args(["certs", "check", "--local", "-f"])
        .arg(root.join("examples/settings.yaml"))
        .arg("--state-dir")
        .arg(tmp.path().join("state"))
        .assert()
        .success();
    let text = String::from_utf8_lossy(&check.get_output().stdout).into_owned();
    let days = |file: &str| -> i64 {
        let line = text.lines().find(|l| l.split_whitespace().next() == Some(file)).unwrap_or_else(|| panic!("{file}:\n{text}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    // Certificates start 5 minutes in the past, so a fresh one shows 364 full days.
    assert!((364..=365).contains(&days("apiserver.crt")), "{text}");
    assert!((3649..=3650).contains(&days("ca.crt")), "{text}");
    assert!((364..=365).contains(&days("nodes/worker-1/kubelet-client.crt")), "{text}");

    let renew = kos()
        .args(["certs", "renew", "--only", "apiserver", "-f"])
        .arg(root.join("examples/settings.yaml"))
        .arg("--state-dir")
        .arg(tmp.path().join("state"))
        .assert()
        .success();
    let text = String::from_utf8_lossy(&renew.get_output().stdout).into_owned();
    assert!(text.contains("apiserver"), "{text}");
}

/// Regression: `certs renew` read a malformed observed.yaml as "no addresses" and would have
/// re-issued the API server's certificate without its IP SANs.
#[test]
fn certs_renew_refuses_a_malformed_observed_state_instead_of_dropping_addresses() {
    let (tmp, _out) = render_example();
    let state = tmp.path().join("state");
    let observed = state.join("demo/observed.yaml");
    std::fs::write(&observed, "nodes: [this is not a map\n").unwrap();
    let before = std::fs::read(state.join("demo/pki/apiserver.crt")).unwrap();
    let out = kos()
        .args(["certs", "renew", "--only", "apiserver", "-f"])
        .arg(repo_root().join("examples/settings.yaml"))
        .arg("--state-dir")
        .arg(&state)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("observed.yaml"), "the error names the file: {stderr}");
    assert_eq!(std::fs::read(state.join("demo/pki/apiserver.crt")).unwrap(), before, "nothing re-issued");
}

/// `kos up` checks its local inputs before it talks to any cloud: a missing SSH key or an
/// incomplete artifact folder stops it with the fix, and no server is ever created for
/// nodes it could not then reach or provision. (The cloud named here does not exist: had
/// kos got as far as the cloud, the message would be about authentication instead.)
#[test]
fn up_checks_the_key_and_the_artifacts_before_touching_the_cloud() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = "cluster: {name: demo}\n\
        cloud: {name: no-such-cloud, image: i, flavor: f, network: n, router: r}\n\
        ssh: {user: debian, private_key: id_kos}\n\
        artifacts: {source: local, dir: ./artifacts}\n\
        nodes:\n  - {name: m1, role: master}\n";
    std::fs::write(tmp.path().join("settings.yaml"), settings).unwrap();
    let up = || {
        kos().current_dir(tmp.path()).env("HOME", tmp.path()).env_remove("OS_CLOUD").args(["up", "-f", "settings.yaml"]).assert().failure()
    };

    let out = up();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("the SSH private key") && err.contains("id_kos") && err.contains("does not exist"), "{err}");

    std::fs::write(tmp.path().join("id_kos"), "a key\n").unwrap();
    std::fs::create_dir(tmp.path().join("artifacts")).unwrap();
    let out = up();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("SHA256SUMS") && err.contains("find bin cni images -type f"), "the artifact folder, with its fix: {err}");
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(!stdout.contains("instances:") && !err.contains("no-such-cloud"), "nothing reached the cloud:\n{stdout}\n{err}");
}

/// `kos validate` checks the local inputs too, every one in one run, in `up`'s words: a
/// missing key and a missing artifact folder are both named (exit 2); once both are there,
/// the file is valid. No cloud is needed.
#[test]
fn validate_names_every_missing_local_input() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = "cluster: {name: demo}\n\
        cloud: {name: no-such-cloud, image: i, flavor: f, network: n, router: r}\n\
        ssh: {user: debian, private_key: id_kos}\n\
        artifacts: {source: local, dir: ./artifacts, extra_images: [./apps]}\n\
        nodes:\n  - {name: m1, role: master}\n";
    std::fs::write(tmp.path().join("settings.yaml"), settings).unwrap();
    let validate = || kos().current_dir(tmp.path()).env("HOME", tmp.path()).args(["validate", "-f", "settings.yaml"]).assert();

    let out = validate().code(2);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stdout.contains("settings.yaml: the SSH private key") && stdout.contains("id_kos does not exist"), "{stdout}");
    assert!(stdout.contains("artifacts/SHA256SUMS") && stdout.contains("find bin cni images -type f"), "{stdout}");
    assert!(stderr.contains("2 problem(s) with the local inputs of settings.yaml"), "{stderr}");

    // The key and a complete (if tiny) artifact set; the extra image folder is still missing.
    std::fs::write(tmp.path().join("id_kos"), "a key\n").unwrap();
    let art = tmp.path().join("artifacts");
    let mut sums = String::new();
    for name in ["kubelet", "kube-proxy", "kubectl"] {
        std::fs::create_dir_all(art.join("bin")).unwrap();
        std::fs::write(art.join("bin").join(name), name).unwrap();
        let out = std::process::Command::new("sha256sum").arg(format!("bin/{name}")).current_dir(&art).output().unwrap();
        sums.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    std::fs::write(art.join("SHA256SUMS"), sums).unwrap();
    let out = validate().code(2);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("apps/SHA256SUMS") && stdout.contains("a folder of `artifacts.extra_images` needs a SHA256SUMS file"),
        "{stdout}"
    );
    assert!(!stdout.contains("private key"), "the key is there now: {stdout}");

    std::fs::write(tmp.path().join("settings.yaml"), settings.replace(", extra_images: [./apps]", "")).unwrap();
    let out = validate().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("settings.yaml: valid (cluster demo"), "{stdout}");
}

/// `kos --version` names the commit it was built from; `kos completions SHELL` prints a
/// script that the shell itself accepts.
#[test]
fn version_names_the_commit_and_completions_parse_in_bash() {
    let out = kos().arg("--version").assert().success();
    let version = String::from_utf8_lossy(&out.get_output().stdout).trim().to_owned();
    let head = std::process::Command::new("git").args(["rev-parse", "--short=7", "HEAD"]).current_dir(repo_root()).output().unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    assert!(version.starts_with(&format!("kos {} (", env!("CARGO_PKG_VERSION"))), "{version}");
    assert!(head.is_empty() || version.contains(&head), "`{version}` names the checkout's commit {head}");

    for shell in ["bash", "zsh", "fish"] {
        let out = kos().args(["completions", shell]).assert().success();
        let script = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(script.contains("destroy") && script.contains("purge"), "{shell}: every command and flag");
    }
    let out = kos().args(["completions", "bash"]).assert().success();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("kos.bash");
    std::fs::write(&file, &out.get_output().stdout).unwrap();
    let check = std::process::Command::new("bash").arg("-c").arg(format!(". {} && complete -p kos", file.display())).output().unwrap();
    assert!(check.status.success(), "bash sources it and registers the completion: {}", String::from_utf8_lossy(&check.stderr));
}

/// `kos plan --detailed-exitcode` follows terraform's convention: every error is exit 1, also
/// a settings problem (2 is kept for "changes pending", which the end-to-end tests check).
#[test]
fn plan_detailed_exitcode_makes_every_error_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("settings.yaml"), "cluster: {name: demo}\n").unwrap();
    let out = kos().current_dir(tmp.path()).args(["plan", "-f", "settings.yaml"]).assert().code(2);
    let plain = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let out = kos().current_dir(tmp.path()).args(["plan", "--detailed-exitcode", "-f", "settings.yaml"]).assert().code(1);
    let detailed = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert_eq!(plain, detailed, "the same message either way");
    assert!(detailed.contains("settings.yaml:"), "{detailed}");
}

/// YAML's own type surprises (an unquoted version read as a number, `yes` read as a string)
/// do not hide the file's other problems: all of them in one run, each with line and fix.
#[test]
fn yaml_type_surprises_and_other_problems_are_reported_together() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("settings.yaml"),
        "cluster: {name: demo, kubernetes_version: 1.30}\n\
         cloud: {image: tiny, flavor: m1.tiny, network: n, router: r, floating_ip_pool: public}\n\
         ssh: {user: debian, private_key: k}\n\
         kubelet: {eviction_hard: {disk.available: 5%, nodefs.available: lots}}\n\
         nodes:\n  - {name: m1, role: master, floating_ip: yes}\n  - {name: w1, role: wroker}\n",
    )
    .unwrap();
    let out = kos().current_dir(tmp.path()).args(["validate", "-f", "settings.yaml"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    insta::assert_snapshot!(stderr);
}

/// A folder with a settings file whose SSH key is missing (and whose cloud does not exist).
fn settings_without_its_key() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("settings.yaml"),
        "cluster: {name: demo}\ncloud: {name: no-such-cloud, image: i, flavor: f, network: n, router: r}\n\
         ssh: {user: debian, private_key: id_kos}\nnodes:\n  - {name: m1, role: master}\n",
    )
    .unwrap();
    tmp
}

/// `kos up` without its SSH key: one error naming the file and the fix, exit 1, and no
/// line about the cloud (it was never asked).
#[test]
fn up_without_its_key_is_one_error_with_the_fix() {
    let tmp = settings_without_its_key();
    let out = kos().current_dir(tmp.path()).env("HOME", tmp.path()).args(["up", "-f", "settings.yaml"]).assert().code(1);
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.get_output().stdout).into_owned(), String::from_utf8_lossy(&out.get_output().stderr).into_owned());
    assert_eq!(stdout, "", "nothing happened, nothing to report");
    let stderr = stderr.replace(&tmp.path().display().to_string(), "[DIR]");
    insta::assert_snapshot!(stderr);
}

/// With `-o json`, a run that cannot start still prints its report: empty, not ok, with the
/// error, valid against docs/up-report.schema.json (and the same exit code and stderr line).
#[test]
fn up_json_reports_even_a_run_that_could_not_start() {
    let tmp = settings_without_its_key();
    let out = kos().current_dir(tmp.path()).env("HOME", tmp.path()).args(["up", "-o", "json", "-f", "settings.yaml"]).assert().code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("docs/up-report.schema.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&report), "{report:#}");
    assert_eq!((&report["ok"], report["changes"].as_u64()), (&serde_json::json!(false), Some(0)));
    assert!(report["error"].as_str().is_some_and(|e| e.contains("the SSH private key") && e.contains("does not exist")), "{report:#}");
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("error: the SSH private key"));
}
