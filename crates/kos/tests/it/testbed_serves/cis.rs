//! The hardening judge auditors already use: kube-bench, the CIS Kubernetes Benchmark as a
//! program (built by testbed/k8s/build.sh at the pin of testbed/k8s/kube-bench/go.mod, with its
//! benchmark definitions and kos's file locations, testbed/k8s/kube-bench/kos.yaml), runs on
//! master-1 (the master, etcd, control-plane, node and policy sections) and on worker-1 (the node
//! section). Every FAIL must be listed, with the reason kos keeps its choice, in
//! `.kube-bench.yaml` (beside checkov's `.checkov.yaml`); an unlisted FAIL fails the test, and so
//! does a listed one that no longer fails (the list says what is true, not what once was).

use super::Ctx;
use crate::harness::{artifact_set, text};
use crate::support;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// The benchmark kube-bench judges kos by (its newest CIS Kubernetes benchmark; kube-bench's
/// version map ends at Kubernetes 1.32, so it is named, not detected).
const BENCHMARK: &str = "cis-1.11";
/// Where the test puts kube-bench on a node.
const ON_NODE: &str = "/opt/kos-test/kube-bench";

/// The nodes judged, with kube-bench's targets for each.
const JUDGED: [(&str, &str, &str); 2] = [("master-1", "master", "master,etcd,controlplane,node,policies"), ("worker-1", "worker", "node")];

/// One check's result: (check id, its text, kube-bench's status).
type Row = (String, String, String);

pub(crate) fn check(ctx: &Ctx) {
    let kube_bench = artifact_set().parent().expect("the artifact set's parent").join("kube-bench");
    assert!(
        kube_bench.join("kube-bench").exists() && kube_bench.join("cfg").join(BENCHMARK).exists(),
        "no kube-bench with the {BENCHMARK} benchmark at {}: run testbed/k8s/build.sh (test.sh does)",
        kube_bench.display()
    );
    let accepted = accepted();
    let mut unexplained = Vec::new();
    let mut stale = Vec::new();
    for (node, role, targets) in JUDGED {
        install(ctx, node, &kube_bench);
        let json = ctx.c.root_ok(
            node,
            &format!("{ON_NODE}/kube-bench run --config-dir {ON_NODE}/cfg --benchmark {BENCHMARK} --targets {targets} --json --noremediations 2>/dev/null"),
        );
        let rows = results(&json);
        let count = |status: &str| rows.iter().filter(|r| r.2 == status).count();
        eprintln!(
            "kube-bench {BENCHMARK} on {node} ({targets}): {} PASS, {} FAIL, {} WARN, {} INFO",
            count("PASS"),
            count("FAIL"),
            count("WARN"),
            count("INFO")
        );
        assert!(count("PASS") > 0, "kube-bench on {node} passed no check: {json}");
        let failed: BTreeSet<&str> = rows.iter().filter(|r| r.2 == "FAIL").map(|r| r.0.as_str()).collect();
        for (id, desc, status) in &rows {
            if status == "FAIL" {
                let listed = accepted.get(id.as_str()).is_some_and(|roles| roles.contains(role));
                eprintln!("  FAIL {id} {desc}{}", if listed { " (kept: .kube-bench.yaml)" } else { "" });
                if !listed {
                    unexplained.push(format!("{node}: {id} {desc}"));
                }
            }
        }
        for (id, roles) in &accepted {
            if roles.contains(role) && !failed.contains(id.as_str()) && rows.iter().any(|r| &r.0 == id) {
                stale.push(format!("{node}: {id} is listed in .kube-bench.yaml but did not fail"));
            }
        }
    }
    assert!(
        unexplained.is_empty() && stale.is_empty(),
        "kube-bench: {} FAIL(s) neither fixed in kos's defaults nor listed with a reason in .kube-bench.yaml:\n{}\n{}",
        unexplained.len(),
        unexplained.join("\n"),
        stale.join("\n")
    );
}

/// `.kube-bench.yaml`'s accepted FAILs: check id → the roles (`master`, `worker`) it is kept on.
fn accepted() -> BTreeMap<String, BTreeSet<String>> {
    let path = support::repo_root().join(".kube-bench.yaml");
    let text = std::fs::read_to_string(&path).expect(".kube-bench.yaml");
    let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for entry in doc["accepted"].as_array().into_iter().flatten() {
        let id = entry["id"].as_str().unwrap_or_else(|| panic!("{}: an entry without an id: {entry}", path.display()));
        assert!(
            entry["reason"].as_str().is_some_and(|r| r.len() > 20),
            "{}: {id} needs a reason (why kos keeps its choice)",
            path.display()
        );
        let roles: BTreeSet<String> = entry["on"].as_array().into_iter().flatten().filter_map(|r| r.as_str()).map(str::to_owned).collect();
        assert!(!roles.is_empty(), "{}: {id} needs `on: [master]`, `[worker]` or both", path.display());
        out.insert(id.to_owned(), roles);
    }
    out
}

/// Copies kube-bench and its definitions to `node` (as root, under [`ON_NODE`]).
fn install(ctx: &Ctx, node: &str, kube_bench: &std::path::Path) {
    let archive = ctx.c.dir.path().join("kube-bench.tgz");
    if !archive.exists() {
        let tar = Command::new("tar").arg("-C").arg(kube_bench).arg("-czf").arg(&archive).args(["kube-bench", "cfg"]).status();
        assert!(tar.is_ok_and(|s| s.success()), "tar of {}", kube_bench.display());
    }
    let out = Command::new("ssh")
        .arg("-F")
        .arg(ctx.c.ssh_config())
        .arg(format!("{}-{node}", ctx.c.name))
        .arg(format!("sudo -n sh -c 'rm -rf {ON_NODE} && mkdir -p {ON_NODE} && tar -C {ON_NODE} -xzf -'"))
        .stdin(std::fs::File::open(&archive).expect("the kube-bench archive"))
        .output()
        .expect("ssh runs");
    assert!(out.status.success(), "kube-bench copied to {node}: {}", text(&out.stderr));
}

/// Every check of kube-bench's `--json` report, with its status.
fn results(json: &str) -> Vec<Row> {
    let report: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("kube-bench --json: {e}\n{json}"));
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    report["Controls"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["tests"].as_array().into_iter().flatten())
        .flat_map(|g| g["results"].as_array().into_iter().flatten())
        .map(|r| (s(&r["test_number"]), s(&r["test_desc"]), s(&r["status"])))
        .collect()
}

/// `.kube-bench.yaml` reads as the promise reads it: ids with a reason and the roles they are
/// kept on (a broken list would otherwise only show on the test bed).
#[test]
fn the_kept_kube_bench_fails_each_name_a_reason_and_their_nodes() {
    let kept = accepted();
    assert!(kept.contains_key("4.2.10"), "{kept:?}");
    for (id, roles) in &kept {
        assert!(roles.iter().all(|r| r == "master" || r == "worker"), "{id}: on {roles:?}: master or worker");
    }
}
