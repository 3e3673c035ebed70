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
    assert!(out.status.success(), "a spec failed that is not a known failure:\n{stdout}");
}
