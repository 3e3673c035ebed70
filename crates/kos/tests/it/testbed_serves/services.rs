//! Services through kube-proxy: the ClusterIP of `web` (backends on worker-1 and worker-2)
//! answers a pod on worker-3 and worker-3 itself, both backends take turns, and a backend
//! reaches itself through its own Service (hairpin, the bridge's hairpin mode).

use super::Ctx;
use std::collections::BTreeSet;

/// The distinct `/hostname` answers of `n` requests to `url` from `pod`.
pub(crate) fn answers(ctx: &Ctx, pod: &str, url: &str, n: u32) -> BTreeSet<String> {
    let script = format!("for i in $(seq {n}); do curl -sf -m 2 {url}; echo; done");
    let out = ctx.exec(pod, &script).unwrap_or_default();
    out.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

pub(crate) fn check(ctx: &Ctx) {
    let ip = ctx.cluster_ip("web");
    let both: BTreeSet<String> = ["web-a", "web-b"].into_iter().map(str::to_owned).collect();

    // From a pod on a third node: both backends answer over a series of requests.
    let seen = answers(ctx, ctx.pod_on("worker-3"), &format!("http://{ip}/hostname"), 30);
    assert_eq!(seen, both, "30 requests to the ClusterIP {ip} from worker-3's pod reach both backends");

    // From the node itself (its own network namespace, through kube-proxy's rules there).
    let script = format!(
        "for i in $(seq 30); do exec 3<>/dev/tcp/{ip}/80 && printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' >&3 && tail -n 1 <&3; echo; exec 3>&-; done"
    );
    let out = ctx.c.root_ok("worker-3", &script);
    let seen: BTreeSet<String> = out.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    assert_eq!(seen, both, "30 requests to the ClusterIP from worker-3 itself reach both backends:\n{out}");

    // Hairpin: web-a through its own Service reaches both, itself included.
    let seen = answers(ctx, "web-a", &format!("http://{ip}/hostname"), 30);
    assert!(seen.contains("web-a"), "web-a reaches itself through its Service (hairpin): {seen:?}");
    assert_eq!(seen, both, "web-a through its Service");
}
