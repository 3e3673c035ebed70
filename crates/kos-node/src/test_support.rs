//! For tests (this crate's and the pipeline's): the real Kubernetes programs of the artifact
//! set `testbed/k8s/build.sh` builds, so that no test puts a made-up file in their place, and
//! a local shell that runs the scripts kos sends to nodes ([`LocalShell`]).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// The artifact set (`$KOS_TEST_ARTIFACTS`, else the folder `testbed/k8s/build.sh` writes for
/// the pinned Kubernetes version). `None`, with a note, when it has not been built; with `CI`
/// set that is a failure (./test.sh builds it before the tests run).
#[allow(clippy::print_stderr)] // a test that cannot run here says so in its output
pub fn artifact_set() -> Option<PathBuf> {
    let dir = std::env::var_os("KOS_TEST_ARTIFACTS").map(PathBuf::from).unwrap_or_else(|| {
        let pins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testbed/k8s/versions.env");
        let pins = std::fs::read_to_string(&pins).expect("testbed/k8s/versions.env");
        let version = pins.lines().find_map(|l| l.strip_prefix("KUBERNETES=")).expect("KUBERNETES= in versions.env");
        PathBuf::from(format!("/var/tmp/kos-k8s/artifacts-v{version}"))
    });
    if dir.join("SHA256SUMS").exists() {
        return Some(dir);
    }
    assert!(std::env::var_os("CI").is_none(), "CI is set but there is no artifact set at {}: run testbed/k8s/build.sh", dir.display());
    eprintln!("skipped: no artifact set at {} (testbed/k8s/build.sh builds it)", dir.display());
    None
}

/// Link the set's files `from` (paths inside it, e.g. `bin/kubelet`) into `dir` as `to`;
/// returns each one's SHA-256 as the set's own SHA256SUMS gives it.
pub fn link_from_set(set: &Path, dir: &Path, files: &[(&str, &str)]) -> Vec<String> {
    let sums = std::fs::read_to_string(set.join("SHA256SUMS")).unwrap();
    files
        .iter()
        .map(|(from, to)| {
            let target = dir.join(to);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            let _ = std::fs::remove_file(&target);
            std::os::unix::fs::symlink(set.join(from), &target).unwrap();
            let line = sums.lines().find(|l| l.ends_with(&format!("  {from}"))).unwrap_or_else(|| panic!("{from} in {}", set.display()));
            line.split_whitespace().next().unwrap().to_string()
        })
        .collect()
}

/// `s` as a regular expression matching it literally (an insta filter for a temporary path).
pub fn regex_escape(s: &str) -> String {
    s.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

/// Runs scripts with the local `/bin/sh` as the current user (root on CI): the same scripts
/// kos sends over SSH, without the SSH. `path_first` goes before `$PATH` (a test's own
/// programs).
#[derive(Debug, Default, Clone)]
pub struct LocalShell {
    pub path_first: Option<PathBuf>,
}

impl crate::remote::Remote for LocalShell {
    fn node(&self) -> &str {
        "local"
    }

    async fn run(&self, script: &str, stdin: crate::remote::Stdin) -> Result<crate::remote::Output, crate::remote::RemoteError> {
        use tokio::io::AsyncWriteExt;
        let failed = |e: std::io::Error| crate::remote::RemoteError::Transport { node: "local".into(), detail: e.to_string() };
        let stdin = stdin.to_vec().await.map_err(failed)?;
        let mut command = tokio::process::Command::new("/bin/sh");
        if let Some(first) = &self.path_first {
            let path = std::env::var("PATH").unwrap_or_default();
            command.env("PATH", format!("{}:{path}", first.display()));
        }
        let mut child = command
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(failed)?;
        let mut input = child.stdin.take().expect("stdin");
        let writer = tokio::spawn(async move {
            let _ = input.write_all(&stdin).await;
        });
        let out = child.wait_with_output().await.map_err(failed)?;
        let _ = writer.await;
        Ok(crate::remote::Output { status: out.status.code(), stdout: out.stdout, stderr: out.stderr })
    }
}
