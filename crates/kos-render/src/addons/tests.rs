use super::*;
use crate::fixture::{render_example, snapshot_settings};

fn documents(text: &str) -> Vec<serde_json::Value> {
    text.split("\n---\n").map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{e}\n{d}"))).collect()
}

fn find<'a>(docs: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn snapshots() {
    let r = render_example(|s| s);
    snapshot_settings().bind(|| {
        insta::assert_snapshot!("coredns", r.local_file(COREDNS_FILE).contents);
        insta::assert_snapshot!("cluster_admins", r.local_file(CLUSTER_ADMINS_FILE).contents);
    });
}

#[test]
fn dns_service_has_the_planned_address() {
    let r = render_example(|s| s);
    let docs = documents(&r.local_file(COREDNS_FILE).contents);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Service"]);
    let service = find(&docs, "Service");
    assert_eq!(service["metadata"]["name"], "kube-dns");
    assert_eq!(service["metadata"]["namespace"], "kube-system");
    assert_eq!(service["spec"]["clusterIP"], r.plan.dns_ip.to_string());
    let ports: Vec<(i64, &str)> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_i64().unwrap(), p["protocol"].as_str().unwrap()))
        .collect();
    assert_eq!(ports, [(53, "UDP"), (53, "TCP"), (9153, "TCP")]);
    let corefile = find(&docs, "ConfigMap")["data"]["Corefile"].as_str().unwrap().to_string();
    assert!(corefile.contains("kubernetes cluster.local in-addr.arpa ip6.arpa {"));
    assert!(corefile.contains("forward . /etc/resolv.conf"));
}

#[test]
fn coredns_runs_hardened() {
    let r = render_example(|s| s);
    let docs = documents(&r.local_file(COREDNS_FILE).contents);
    let deployment = find(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["image"], format!("registry.k8s.io/coredns/coredns:{COREDNS_VERSION}"));
    assert!(!c["image"].as_str().unwrap().ends_with(":latest"));
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(c["resources"][kind][resource].is_string(), "{kind}.{resource}");
        }
    }
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], 8080);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], 8181);
    // The API token comes from the explicit projected volume.
    let mounts = c["volumeMounts"].as_array().unwrap();
    assert!(mounts.iter().any(|m| m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"));
    assert!(pod["tolerations"].as_array().unwrap().iter().any(|t| t["key"] == "node-role.kubernetes.io/control-plane"));
}

#[test]
fn no_dns_addon_when_disabled() {
    let r = render_example(|s| s.replace("dns: coredns ", "dns: none "));
    let paths = r.paths(&crate::Target::Local);
    assert!(!paths.contains(&COREDNS_FILE.to_string()), "{paths:?}");
    assert!(paths.contains(&CLUSTER_ADMINS_FILE.to_string()));
}

#[test]
fn cluster_admins_binds_the_admin_group() {
    let r = render_example(|s| s);
    let docs = documents(&r.local_file(CLUSTER_ADMINS_FILE).contents);
    assert_eq!(docs.len(), 1);
    let b = &docs[0];
    assert_eq!(b["kind"], "ClusterRoleBinding");
    assert_eq!(b["metadata"]["name"], "kos:cluster-admins");
    assert_eq!(b["roleRef"]["name"], "cluster-admin");
    assert_eq!(b["subjects"][0]["kind"], "Group");
    assert_eq!(b["subjects"][0]["name"], CLUSTER_ADMINS_GROUP);
}
