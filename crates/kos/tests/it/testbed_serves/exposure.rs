//! The seed's own exposure path: the Service's nodePort answers on a worker's fixed IP from
//! the tenant network and on worker-1's floating IP from outside (the test bed's `-ext`
//! namespace, beyond the router's NAT); `kos expose` creates the load balancer whose members
//! are exactly the workers on that nodePort.
//!
//! The test cloud's Octavia is API-only (no amphora data plane can run here): the load
//! balancer is checked through its API — listener, pool, members, health monitor — not by
//! sending traffic through it.

use super::{Ctx, WORKERS, get_hostname};
use crate::harness::*;
use crate::testbed_cloud::{openstack, openstack_ok};
use std::collections::BTreeSet;
use std::process::Command;

pub(crate) fn check(ctx: &Ctx) {
    let node_port: u16 = ctx.c.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.ports[0].nodePort}"]).parse().expect("a nodePort");
    let backends = ["web-a", "web-b"];

    // Every worker's fixed IP answers on the nodePort, from the tenant network — also
    // worker-3, which runs no backend (kube-proxy forwards across nodes).
    for w in WORKERS {
        let ip = &ctx.status[w].fixed_ip;
        let body = wait_for(&format!("{w} {ip}:{node_port} answers"), 30, || get_hostname(ip, node_port, 3), String::new);
        assert!(backends.contains(&body.as_str()), "{w}'s nodePort answered {body:?}");
    }

    // worker-1's floating IP, from outside.
    let fip = ctx.status["worker-1"].floating_ip.clone();
    assert!(fip.starts_with("203.0.113."), "worker-1 has a floating IP: {fip}");
    let ext = format!("{}-ext", std::env::var("TB_PREFIX").expect("TB_PREFIX"));
    let body = wait_for(
        &format!("{fip}:{node_port} answers from {ext}"),
        30,
        || {
            let out = Command::new("ip")
                .args(["netns", "exec", &ext, "curl", "-sf", "-m", "3", &format!("http://{fip}:{node_port}/hostname")])
                .output()
                .ok()?;
            let body = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            (out.status.success() && !body.is_empty()).then_some(body)
        },
        String::new,
    );
    assert!(backends.contains(&body.as_str()), "the floating IP's nodePort answered {body:?}");

    // The load balancer: the workers (never the master) as members on the nodePort.
    let np = node_port.to_string();
    let run = ctx.c.kos_ok(&["expose", "web", "--node-port", &np, "--port", "80"]);
    let lb = format!("{}-web", ctx.c.name);
    assert!(run.stdout.contains(&format!("created load balancer {lb}")) && run.stdout.contains("3 worker(s)"), "{}", run.stdout);
    let show = |args: &[&str]| -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-f", "json"]);
        serde_json::from_str(&openstack_ok(&all)).expect("openstack JSON")
    };
    let balancer = show(&["loadbalancer", "show", &lb]);
    assert_eq!(balancer["provisioning_status"], "ACTIVE", "{balancer:#}");
    assert!(balancer["description"].as_str().unwrap_or_default().contains(&format!("kos-cluster={}", ctx.c.name)), "marked: {balancer:#}");
    let listeners = show(&["loadbalancer", "listener", "list", "--loadbalancer", &lb]);
    let listener = listeners.as_array().and_then(|l| l.first()).cloned().unwrap_or_default();
    assert_eq!((listener["protocol"].as_str(), listener["protocol_port"].as_i64()), (Some("TCP"), Some(80)), "{listeners:#}");
    let pool = format!("{lb}-pool");
    let members = show(&["loadbalancer", "member", "list", &pool]);
    let got: BTreeSet<(String, i64)> = members
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| (m["address"].as_str().unwrap_or_default().to_owned(), m["protocol_port"].as_i64().unwrap_or_default()))
        .collect();
    let want: BTreeSet<(String, i64)> = WORKERS.iter().map(|w| (ctx.status[*w].fixed_ip.clone(), i64::from(node_port))).collect();
    assert_eq!(got, want, "the members are exactly the workers on the nodePort");
    let pool_json = show(&["loadbalancer", "pool", "show", &pool]);
    let monitor = pool_json["healthmonitor_id"].as_str().unwrap_or_default().to_owned();
    assert!(!monitor.is_empty(), "the pool has a health monitor: {pool_json:#}");
    let monitor = show(&["loadbalancer", "healthmonitor", "show", &monitor]);
    assert_eq!(monitor["type"], "TCP", "{monitor:#}");

    // Idempotent, then removed.
    let again = ctx.c.kos_ok(&["expose", "web", "--node-port", &np, "--port", "80"]);
    assert!(again.stdout.contains("has its 3 worker(s) as members"), "{}", again.stdout);
    ctx.c.kos_ok(&["expose", "web", "--node-port", &np, "--delete"]);
    assert!(!openstack(&["loadbalancer", "show", &lb]).status.success(), "kos expose --delete removed {lb}");
}
