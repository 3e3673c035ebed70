//! Cluster DNS (CoreDNS on `dns_ip`), asked from a pod with the real `dig`: A records of
//! Services, the SRV record of a named port, a headless Service's pod addresses, NXDOMAIN for
//! a name that does not exist, and the pod's resolver pointing at `dns_ip` with the cluster's
//! search path.

use super::Ctx;
use crate::harness::*;
use std::collections::BTreeSet;

/// The default `networking.dns_ip` and `networking.domain` (the scenario sets neither).
const DNS_IP: &str = "10.96.0.10";
const DOMAIN: &str = "cluster.local";

pub(crate) fn check(ctx: &Ctx) {
    let pod = ctx.pod_on("worker-3");
    // `dig` lines; none when dig failed (CoreDNS may still be warming its caches at first).
    let dig = |args: &str| -> Vec<String> {
        ctx.exec(pod, &format!("dig +time=2 +tries=2 {args}")).unwrap_or_default().lines().map(str::to_owned).collect()
    };
    let short = |args: &str| -> BTreeSet<String> { dig(&format!("+short {args}")).into_iter().collect() };
    let one = |v: &str| BTreeSet::from([v.to_owned()]);

    // The pod's resolver: dns_ip, and the search path that makes short names work.
    let resolv = ctx.exec(pod, "cat /etc/resolv.conf").expect("resolv.conf");
    assert!(resolv.lines().any(|l| l.trim() == format!("nameserver {DNS_IP}")), "{resolv}");
    assert!(resolv.contains(&format!("search default.svc.{DOMAIN} svc.{DOMAIN} {DOMAIN}")), "{resolv}");

    let api = ctx.cluster_ip("kubernetes");
    let got = wait_for(
        "kubernetes.default resolves",
        30,
        || Some(short(&format!("@{DNS_IP} kubernetes.default.svc.{DOMAIN} A"))).filter(|s| !s.is_empty()),
        String::new,
    );
    assert_eq!(got, one(&api), "kubernetes.default.svc.{DOMAIN}");
    let web = ctx.cluster_ip("web");
    assert_eq!(short(&format!("web.default.svc.{DOMAIN} A")), one(&web), "web.default.svc.{DOMAIN} (through the pod's resolver)");
    assert_eq!(
        short(&format!("_http._tcp.web.default.svc.{DOMAIN} SRV")),
        one(&format!("0 100 80 web.default.svc.{DOMAIN}.")),
        "SRV of the named port"
    );

    let backends: BTreeSet<String> =
        ["web-a", "web-b"].iter().map(|p| ctx.c.kubectl_ok(&["get", "pod", p, "-o", "jsonpath={.status.podIP}"])).collect();
    assert_eq!(short(&format!("web-headless.default.svc.{DOMAIN} A")), backends, "a headless Service resolves to its pods");

    let status: Vec<String> = dig(&format!("@{DNS_IP} no-such-service.default.svc.{DOMAIN} A"));
    assert!(status.iter().any(|l| l.contains("status: NXDOMAIN")), "an unknown name: NXDOMAIN:\n{}", status.join("\n"));

    // A short name through the search path, used the way an application would.
    let body = ctx.curl(pod, "http://web/hostname").unwrap_or_default();
    assert!(body == "web-a" || body == "web-b", "http://web/ from a pod answered {body:?}");
}
