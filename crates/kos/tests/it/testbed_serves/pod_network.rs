//! Routed pod network, no overlay: every pod reaches every other by its own address and is
//! seen there with it; the tenant router's route to a node's pod range is what carries the
//! traffic (removed by hand, the node's pods are cut off; `kos up` puts it back); a tenant VM
//! sees the pod's own address. (Leaving the tenant network, masquerading to the node's
//! address is checked by `testbed_up`'s main scenario, with conntrack.)

use super::Ctx;
use crate::harness::*;
use crate::testbed_cloud::openstack_ok;
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::time::Duration;

/// The caller's address as netexec's `/clientip` reports it (`ip:port`): the IP.
fn client_ip(ctx: &Ctx, from: &str, to_ip: &str) -> Option<String> {
    ctx.curl(from, &format!("http://{to_ip}:8080/clientip")).and_then(|a| a.rsplit_once(':').map(|(ip, _)| ip.to_owned()))
}

pub(crate) fn check(ctx: &Ctx) {
    let nodes: Vec<String> = ctx.netexec.keys().cloned().collect();
    // Every pod reaches every other (itself included), across nodes through the router, and
    // the far side sees the caller's pod IP: no NAT inside the pod range.
    for from in &nodes {
        for to in &nodes {
            let seen = wait_for(
                &format!("the pod on {from} reaches the pod on {to} ({})", ctx.ip_on(to)),
                30,
                || client_ip(ctx, ctx.pod_on(from), ctx.ip_on(to)),
                || ctx.c.root_ok(from, "ip route; iptables -w -t nat -S KOS-POD-MASQ"),
            );
            assert_eq!(seen, ctx.ip_on(from), "{to} sees the pod on {from} by its own address");
        }
    }

    // The router's route to worker-3's pods, removed by hand: worker-3's pods are cut off from
    // the other nodes' pods; `kos up` puts the route back and they are reachable again.
    let w3 = &ctx.status["worker-3"];
    let route = format!("destination={},gateway={}", w3.pod_cidr, w3.fixed_ip);
    openstack_ok(&["router", "remove", "route", "demo-router", "--route", &route]);
    let from = ctx.pod_on("worker-1");
    wait_for(
        "worker-3's pods cut off without the router's route",
        30,
        || client_ip(ctx, from, ctx.ip_on("worker-3")).is_none().then_some(()),
        || "still reachable: is the route really what carries pod traffic?".to_owned(),
    );
    // `kos plan` sees the missing route; for scripts, exit 2 = changes pending.
    let plan = ctx.c.kos(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, Some(2), "plan --detailed-exitcode with a route missing:\n{}\n{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains(&format!("cloud: add route {} via {}", w3.pod_cidr, w3.fixed_ip)), "{}", plan.stdout);
    let run = ctx.c.kos_ok(&["up"]);
    // In the plan's very words.
    let restored = format!("network: add route {} via {}", w3.pod_cidr, w3.fixed_ip);
    assert!(run.stdout.contains(&restored), "kos up says `{restored}`:\n{}", run.stdout);
    let seen = wait_for(
        "worker-3's pod reachable again after kos up",
        30,
        || client_ip(ctx, from, ctx.ip_on("worker-3")),
        || openstack_ok(&["router", "show", "demo-router", "-c", "routes"]),
    );
    assert_eq!(seen, ctx.ip_on("worker-1"));

    // A tenant VM (the deployer, where this test runs) sees the pod's own address.
    let run_dir = std::env::var("TB_RUN").expect("TB_RUN is set by the test bed");
    let sandbox = std::fs::read_to_string(format!("{run_dir}/sandbox.env")).expect("the test bed's sandbox.env");
    let deployer = sandbox.lines().find_map(|l| l.strip_prefix("deployer_ip=")).expect("deployer_ip in sandbox.env").to_owned();
    let listener = TcpListener::bind("0.0.0.0:0").expect("listener on the deployer");
    let port = listener.local_addr().expect("bound").port();
    listener.set_nonblocking(true).expect("non-blocking listener");
    // Bounded: the thread gives up after 20 s, so a pod that cannot reach the VM fails the
    // check instead of hanging it.
    let accept = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            match listener.accept() {
                Ok((mut conn, peer)) => {
                    conn.set_nonblocking(false).ok();
                    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
                    let mut buf = [0u8; 1024];
                    let _ = conn.read(&mut buf);
                    let _ = conn.write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nvm\n");
                    return Some(peer.ip().to_string());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        None
    });
    let answer = ctx.curl(ctx.pod_on("worker-2"), &format!("http://{deployer}:{port}/"));
    assert_eq!(answer.as_deref(), Some("vm"), "the pod on worker-2 reaches the deployer at {deployer}:{port}");
    let peer = accept.join().expect("listener thread");
    assert_eq!(peer.as_deref(), Some(ctx.ip_on("worker-2")), "the tenant VM sees the pod's own address, not its node's");
}
