//! The upstream judge: the Kubernetes e2e suite (`e2e.test`, built by testbed/k8s/build.sh
//! from the cluster's own version) runs its specs for these promises — networking granular
//! checks, DNS, Services, HostPort, admission webhooks — against the cluster, through
//! `testbed/k8s/conformance.sh --set ci`. It fails on any failed spec not listed, with its
//! upstream reason, in testbed/k8s/conformance-known-failures.txt.

use super::Ctx;
use crate::support;
use std::process::Command;

pub(crate) fn check(ctx: &Ctx) {
    let report = ctx.c.dir.path().join("e2e-report");
    let out = Command::new(support::repo_root().join("testbed/k8s/conformance.sh"))
        .arg("--kubeconfig")
        .arg(ctx.c.kubeconfig())
        .args(["--set", "ci", "--report"])
        .arg(&report)
        .output()
        .expect("testbed/k8s/conformance.sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().find(|l| l.starts_with("conformance (ci): ")).unwrap_or_default().to_owned();
    eprintln!("{summary}");
    assert!(!summary.is_empty(), "conformance.sh printed no summary:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let passed: u32 = summary.split_whitespace().nth(2).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(passed > 0, "no spec passed: {summary}");
    if !out.status.success() {
        // The cluster's folder goes with the test: keep the e2e log and JUnit report where a
        // post-mortem finds them.
        let kept = std::path::PathBuf::from("/var/tmp/kos-test-reports")
            .join(format!("conformance-{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())));
        let copied = std::fs::create_dir_all(&kept).is_ok()
            && Command::new("cp").arg("-r").arg(&report).arg(&kept).status().is_ok_and(|s| s.success());
        panic!(
            "a spec failed that is not a known failure (e2e log and report: {}):\n{stdout}",
            if copied { kept.display().to_string() } else { "not kept".into() }
        );
    }
}
