//! Scale and roll: a Deployment scaled 2 → 6 spreads over the workers and rolls out a new
//! image (busybox's httpd → agnhost), every new pod serving; a pod's `hostPort` answers on
//! its node's address (the CNI portmap plugin).

use super::{Ctx, WORKERS};
use crate::harness::*;
use std::collections::BTreeSet;

fn deployment(image: &str, replicas: u32, serve: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: roll}}\nspec:\n  replicas: {replicas}\n  \
         selector: {{matchLabels: {{app: roll}}}}\n  template:\n    metadata: {{labels: {{app: roll}}}}\n    spec:\n      \
         containers:\n      - name: web\n        image: {image}\n        {serve}\n        \
         readinessProbe: {{httpGet: {{path: /hostname, port: 8080}}, periodSeconds: 2}}\n"
    )
}

/// The Deployment's pods: (name, node, image, pod IP), of those Running and not terminating.
fn pods(ctx: &Ctx) -> Vec<(String, String, String, String)> {
    let list = ctx.c.kubectl_json(&["get", "pods", "-l", "app=roll"]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running")
        .map(|p| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            (s(&p["metadata"]["name"]), s(&p["spec"]["nodeName"]), s(&p["spec"]["containers"][0]["image"]), s(&p["status"]["podIP"]))
        })
        .collect()
}

pub(crate) fn check(ctx: &Ctx) {
    let busybox = BUSYBOX;
    let httpd = "command: [sh, -c, 'mkdir -p /www && hostname > /www/hostname && exec httpd -f -p 8080 -h /www']";
    ctx.apply("roll", &deployment(busybox, 2, httpd));
    ctx.c.kubectl_ok(&["rollout", "status", "deployment/roll", "--timeout=120s"]);
    ctx.c.kubectl_ok(&["scale", "deployment/roll", "--replicas=6"]);
    ctx.c.kubectl_ok(&["rollout", "status", "deployment/roll", "--timeout=120s"]);
    let six = pods(ctx);
    assert_eq!(six.len(), 6, "{six:?}");
    let nodes: BTreeSet<&str> = six.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(nodes, WORKERS.into_iter().collect(), "6 replicas spread over the 3 workers (the master is tainted): {six:?}");

    // A new image: every pod replaced, each serving its name.
    ctx.apply("roll", &deployment(&ctx.agnhost, 6, "args: [netexec, --http-port=8080]"));
    ctx.c.kubectl_ok(&["rollout", "status", "deployment/roll", "--timeout=180s"]);
    let rolled = wait_for(
        "only the new pods left",
        60,
        || {
            let p = pods(ctx);
            (p.len() == 6 && p.iter().all(|p| p.2 == ctx.agnhost)).then_some(p)
        },
        || ctx.c.kubectl(&["get", "pods", "-l", "app=roll", "-o", "wide"]).1,
    );
    for (name, node, _, ip) in &rolled {
        assert!(!six.iter().any(|old| &old.0 == name), "{name} is a new pod");
        let body = ctx.curl(ctx.pod_on("worker-3"), &format!("http://{ip}:8080/hostname"));
        assert_eq!(body.as_deref(), Some(name.as_str()), "{name} on {node} serves");
    }
    ctx.c.kubectl_ok(&["delete", "deployment", "roll"]);

    // hostPort: the node's own address, port 18080, reaches the pod.
    let agnhost = &ctx.agnhost;
    ctx.apply(
        "hostport",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: hostport}}\nspec:\n  nodeName: worker-2\n  \
             containers:\n  - name: web\n    image: {agnhost}\n    args: [netexec, --http-port=8080]\n    \
             ports: [{{containerPort: 8080, hostPort: 18080, protocol: TCP}}]\n"
        ),
    );
    pod_ip(&ctx.c, "hostport");
    let node_ip = ctx.status["worker-2"].fixed_ip.clone();
    let from_other = wait_for(
        "worker-2's hostPort 18080 answers a pod on worker-3",
        30,
        || ctx.curl(ctx.pod_on("worker-3"), &format!("http://{node_ip}:18080/hostname")),
        || ctx.c.root_ok("worker-2", "iptables -w -t nat -S | grep -i hostport"),
    );
    assert_eq!(from_other, "hostport");
    ctx.c.kubectl_ok(&["delete", "pod", "hostport", "--wait=false"]);
}
