//! The test nodes and the test hypervisor (`testbed/nodes/`, `testbed/hypervisor/`): every Nova
//! server of the test cloud becomes a real Linux node (systemd, sshd, its own network namespace),
//! and Neutron's router routes, allowed-address-pairs and floating IPs shape the traffic between
//! them, as on a real cloud.
//!
//! The test runs inside the deployer network namespace (`testbed/with-testbed.sh`): OpenStack on
//! 127.0.0.1, the nodes on their Neutron addresses. Until kos has its own OpenStack client, the
//! cloud is driven through the `openstack` CLI as the project user.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support;

const HOW_TO_START: &str = "testbed/with-testbed.sh cargo nextest run -p kos --test it testbed_nodes";
/// Pod CIDRs of nodes A and B: a /16 of this test alone (other tests route theirs through the same
/// router at the same time).
const POD_A: &str = "10.88.1.0/24";
const POD_B: &str = "10.88.2.0/24";

fn nodes_are_up() -> bool {
    support::testbed("KOS_TEST_NODES", HOW_TO_START)
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is set by {HOW_TO_START}"))
}

/// Runs `openstack ARGS` as the project user.
fn openstack(args: &[&str]) -> Output {
    Command::new("openstack")
        .arg("--os-cloud")
        .arg(env("KOS_TEST_CLOUD_USER"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("the `openstack` CLI (testbed/cloud/install.sh) does not run: {e}"))
}

/// `openstack WORDS... ARGS...` (WORDS split at spaces), which must succeed: its trimmed stdout.
fn os(words: &str, args: &[&str]) -> String {
    let mut all: Vec<&str> = words.split_whitespace().collect();
    all.extend_from_slice(args);
    let out = openstack(&all);
    let err = text(&out.stderr);
    assert!(out.status.success(), "openstack {all:?} failed: {err}");
    text(&out.stdout).trim().to_owned()
}

/// Seconds a Neutron change (route, address pair, floating IP) may take to reach the test bed's
/// data plane. That is the hypervisor's poll loop, as a real cloud's L2 and L3 agents program
/// theirs asynchronously; a round mirrors every server, port and route, and took 10–13 s with
/// three test beds on the machine's 2 cores (its log, 2026-11-26), so a change made just after a
/// round began is seen about two rounds later. 20 s was too short for that (the "router neighbour
/// table stays empty" flake: pod A's packets still dropped by anti-spoofing, so the router never
/// asked for B). On a timeout the explanation ends with the hypervisor's log: when it applied what.
const MIRRORED: u64 = 60;

/// Polls `check` every 0.2 s until it returns `Some`, for at most `secs` seconds.
fn wait_for<T>(what: &str, secs: u64, check: impl FnMut() -> Option<T>) -> T {
    wait_or_explain(what, secs, check, String::new)
}

/// [`wait_for`], and on a timeout the panic message carries `explain()`'s view of the state.
fn wait_or_explain<T>(what: &str, secs: u64, mut check: impl FnMut() -> Option<T>, explain: impl FnOnce() -> String) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {secs} s waiting for: {what}\n{}", explain());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The first IPv4 address in `s` (the CLI prints a server's networks as a dict).
fn first_ipv4(s: &str) -> Option<String> {
    s.split(|c: char| !(c.is_ascii_digit() || c == '.')).find(|w| w.parse::<std::net::Ipv4Addr>().is_ok()).map(str::to_owned)
}

/// What the hypervisor built: `$TB_RUN/sandbox.env` (network, subnet, router, cidr, gateway ...).
fn sandbox() -> BTreeMap<String, String> {
    let path = Path::new(&env("TB_RUN")).join("sandbox.env");
    let body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    body.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// `ssh USER@HOST CMD` with the test's key, from the deployer namespace (or from the namespace
/// `netns`, e.g. the external network's client).
struct Ssh {
    key: PathBuf,
}

impl Ssh {
    fn command(&self, netns: Option<&str>, user_host: &str, cmd: &str) -> Output {
        let mut c = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "ssh"]);
                c
            }
            None => Command::new("ssh"),
        };
        c.arg("-i")
            .arg(&self.key)
            .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3"])
            .arg(user_host)
            .arg(cmd)
            .output()
            .unwrap_or_else(|e| panic!("ssh does not run: {e}"))
    }

    /// The stdout of a command that must succeed.
    fn ok(&self, user_host: &str, cmd: &str) -> String {
        let out = self.command(None, user_host, cmd);
        assert!(out.status.success(), "ssh {user_host} {cmd:?} failed: {}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    }

    /// `Some(stdout)` once the command succeeds.
    fn try_ok(&self, netns: Option<&str>, user_host: &str, cmd: &str) -> Option<String> {
        let out = self.command(netns, user_host, cmd);
        out.status.success().then(|| text(&out.stdout).trim().to_owned())
    }
}

/// A node as the test sees it: the Nova server and its Neutron address.
#[derive(Debug, Clone)]
struct Node {
    /// The node's name in the test bed: the first 8 hex digits of the server's ID.
    id8: String,
    name: String,
    ip: String,
}

impl Node {
    fn root(&self) -> String {
        format!("root@{}", self.ip)
    }
}

/// Everything the test creates in the cloud; removed again on drop, also after a failure.
struct Resources {
    prefix: String,
    routes: Vec<String>,
    floating_ip: Option<String>,
}

impl Drop for Resources {
    fn drop(&mut self) {
        let servers: Vec<String> = (1..=3).map(|i| format!("{}-{i}", self.prefix)).collect();
        let mut args = vec!["server", "delete"];
        args.extend(servers.iter().map(String::as_str));
        let _ = openstack(&args);
        if let Some(fip) = &self.floating_ip {
            let _ = openstack(&["floating", "ip", "delete", fip]);
        }
        for route in &self.routes {
            let _ = openstack(&["router", "remove", "route", &sandbox()["router"], "--route", route]);
        }
        let _ = openstack(&["keypair", "delete", &self.prefix]);
    }
}

/// A bridge `cbr0` with the pod CIDR's first address, a "pod" network namespace on it with the
/// second address, ip_forward on: what kos's pod network step does, done by hand over SSH.
fn make_pod(ssh: &Ssh, node: &Node, pod_cidr: &str) -> String {
    let base = pod_cidr.trim_end_matches(".0/24");
    let (gw, pod) = (format!("{base}.1"), format!("{base}.2"));
    ssh.ok(
        &node.root(),
        &format!(
            "set -e; ip link add cbr0 type bridge; ip addr add {gw}/24 dev cbr0; ip link set cbr0 up
             sysctl -qw net.ipv4.ip_forward=1
             ip netns add pod; ip link add vpod type veth peer name eth0 netns pod
             ip link set vpod master cbr0 up; ip -n pod link set lo up
             ip -n pod addr add {pod}/24 dev eth0; ip -n pod link set eth0 up
             ip -n pod route add default via {gw}
             # an echo server in the pod: answers with the source address it sees
             ip netns exec pod setsid socat TCP-LISTEN:7777,fork,reuseaddr \
               SYSTEM:'echo $SOCAT_PEERADDR' </dev/null >/dev/null 2>&1 &"
        ),
    );
    pod
}

/// What pod B's echo server saw as the source of a connection from pod A, or `None` if pod A
/// cannot reach pod B.
fn pod_to_pod(ssh: &Ssh, a: &Node, pod_b: &str) -> Option<String> {
    ssh.try_ok(None, &a.root(), &format!("ip netns exec pod socat -T2 - TCP:{pod_b}:7777,connect-timeout=2"))
        .filter(|seen| !seen.is_empty())
}

/// The data plane between nodes A and B as it is: the router namespace's routes and anti-spoofing
/// rules, and both nodes' addresses and routes (for a failing pod-network check).
fn data_plane(ssh: &Ssh, a: &Node, b: &Node) -> String {
    let router = format!("{}-router", env("TB_PREFIX"));
    let mut report = String::new();
    for cmd in [&["ip", "route"][..], &["ebtables", "-L"][..], &["ip", "neigh"][..]] {
        let out = Command::new("ip").args(["netns", "exec", &router]).args(cmd).output();
        let out = out.map_or_else(|e| e.to_string(), |o| text(&o.stdout) + &text(&o.stderr));
        report += &format!("--- {router}: {}\n{out}", cmd.join(" "));
    }
    let show = "ip -4 -o addr; ip route; ip netns exec pod ip -4 -o addr; ss -ltnp";
    for n in [a, b] {
        let out = ssh.command(None, &n.root(), show);
        report += &format!("--- {} ({}):\n{}{}", n.name, n.ip, text(&out.stdout), text(&out.stderr));
    }
    // When the hypervisor mirrored the address pairs (anti-spoofing) and the routes, if it has.
    let log = std::fs::read_to_string(Path::new(&env("TB_RUN")).join("hypervisor.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(30).collect();
    report += &format!("--- hypervisor.log, last {} lines (now {}):\n", tail.len(), clock());
    tail.iter().rev().for_each(|l| report += &format!("{l}\n"));
    report
}

/// The wall clock as the hypervisor's log writes it (local time, HH:MM:SS).
fn clock() -> String {
    Command::new("date").arg("+%H:%M:%S").output().map(|o| text(&o.stdout).trim().to_owned()).unwrap_or_default()
}

/// `testbed/nodes/sandbox.sh leaks ID...`: what is left of these nodes (netns, cgroups, mounts,
/// processes, disk); it succeeds when nothing is.
fn leaks(nodes: &[Node]) -> Output {
    Command::new(repo_root().join("testbed/nodes/sandbox.sh"))
        .arg("leaks")
        .args(nodes.iter().map(|n| &n.id8))
        .output()
        .unwrap_or_else(|e| panic!("testbed/nodes/sandbox.sh does not run: {e}"))
}

#[test]
fn servers_become_nodes_with_routed_pods_and_floating_ips() {
    if !nodes_are_up() {
        return;
    }
    let bed = sandbox();
    let (net, router) = (bed["network"].as_str(), bed["router"].as_str());
    let prefix = format!("tbn{}", std::process::id());
    let mut res = Resources { prefix: prefix.clone(), routes: Vec::new(), floating_ip: None };
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("id_ed25519");
    let keygen = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", &prefix, "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs");
    assert!(keygen.success());
    let pubkey = key.with_extension("pub").to_string_lossy().into_owned();
    os("keypair create --public-key", &[&pubkey, &prefix]);
    let ssh = Ssh { key };

    // 3 servers with the keypair -> 3 nodes answer SSH at their Neutron addresses
    let t0 = Instant::now();
    let create = "server create --flavor m1.tiny --image tiny --min 3 --max 3 --network";
    os(create, &[net, "--key-name", &prefix, &prefix]);
    let mut nodes: Vec<Node> = wait_for("3 servers ACTIVE with an address", 60, || {
        let list = os("server list -f value -c ID -c Name -c Status -c Networks --name", &[&format!("^{prefix}-")]);
        let nodes: Vec<Node> = list
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let (id, name, status) = (words.next()?, words.next()?, words.next()?);
                let node = Node {
                    id8: id.replace('-', "")[..8].to_owned(),
                    name: name.to_owned(),
                    ip: first_ipv4(&words.collect::<Vec<_>>().join(" "))?,
                };
                (status == "ACTIVE").then_some(node)
            })
            .collect();
        (nodes.len() == 3).then_some(nodes)
    });
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    for node in &nodes {
        let host = wait_for(&format!("ssh debian@{} ({})", node.ip, node.name), 60, || {
            ssh.try_ok(None, &format!("debian@{}", node.ip), "hostname")
        });
        assert_eq!(host, node.name, "the node's hostname is the server's name");
    }
    eprintln!("3 servers created and answering SSH in {:.1} s", t0.elapsed().as_secs_f64());
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    assert_eq!(ssh.ok(&format!("debian@{}", a.ip), "sudo -n id -u"), "0", "debian: passwordless sudo");
    for node in &nodes {
        let state = ssh.ok(&node.root(), "systemctl is-system-running --wait");
        assert_eq!(state, "running", "systemd on {} finished booting", node.name);
    }
    // The node's console is drained as it is written: 2048 lines (~110 KiB) written to
    // /dev/console (a busy boot and shutdown write tens of KiB; an undrained pty blocked its
    // writers, PID 1 among them, after ~18 KiB) all reach the node's console.log on the host.
    let mark = format!("console-drained-{}", std::process::id());
    let wrote = ssh.ok(
        &a.root(),
        &format!(
            "timeout 30 sh -c 'i=0; while [ $i -lt 2048 ]; do echo \"line $i of the console check: padding padding padding\"; \
             i=$((i+1)); done > /dev/console; echo {mark} > /dev/console' && echo written"
        ),
    );
    assert_eq!(wrote, "written", "2048 lines written to node A's console within 30 s");
    let console = std::path::Path::new(&env("TB_RUN")).join("nodes").join(&a.id8).join("console.log");
    wait_for("the console's last line in console.log", 10, || {
        std::fs::read_to_string(&console).ok().filter(|log| log.contains(&mark)).map(|_| ())
    });
    let addr = ssh.ok(&a.root(), "ip -4 -o addr show eth0 | awk '{print $4}'");
    assert_eq!(addr, format!("{}/24", a.ip), "eth0 has the Neutron port's address");

    // the hypervisor is restart-safe: a new one adopts the running nodes
    let hv = Command::new(repo_root().join("testbed/hypervisor/hv.sh")).arg("restart").output();
    let hv = hv.expect("testbed/hypervisor/hv.sh runs");
    assert!(hv.status.success(), "hv.sh restart: {}", text(&hv.stderr));
    assert_eq!(ssh.ok(&b.root(), "hostname"), b.name, "node B survives a hypervisor restart");

    // routed pods: without routes and allowed-address-pairs pod A cannot reach pod B
    make_pod(&ssh, a, POD_A);
    let pod_b = make_pod(&ssh, b, POD_B);
    assert_eq!(pod_to_pod(&ssh, a, &pod_b), None, "pod A reached pod B with no router routes");
    let (port_a, port_b) = (os("port list -f value -c ID --server", &[&a.name]), os("port list -f value -c ID --server", &[&b.name]));
    os("port set --allowed-address", &[&format!("ip-address={POD_A}"), &port_a]);
    os("port set --allowed-address", &[&format!("ip-address={POD_B}"), &port_b]);
    let route_a = format!("destination={POD_A},gateway={}", a.ip);
    let route_b = format!("destination={POD_B},gateway={}", b.ip);
    res.routes = vec![route_a.clone(), route_b.clone()];
    os("router add route", &[router, "--route", &route_a, "--route", &route_b]);
    let seen =
        wait_or_explain("pod A reaches pod B through the router", MIRRORED, || pod_to_pod(&ssh, a, &pod_b), || data_plane(&ssh, a, b));
    assert_eq!(seen, "10.88.1.2", "pod B sees pod A's own address as the source (no NAT)");

    // a route removed in Neutron -> traffic stops; back -> flows again
    let stopped = || pod_to_pod(&ssh, a, &pod_b).is_none().then_some(());
    os("router remove route", &[router, "--route", &route_b]);
    wait_for("pod traffic stops without the route to pod B", MIRRORED, stopped);
    os("router add route", &[router, "--route", &route_b]);
    wait_or_explain("pod traffic flows again with the route", MIRRORED, || pod_to_pod(&ssh, a, &pod_b), || data_plane(&ssh, a, b));

    // anti-spoofing: without pod A's allowed address pair its packets are dropped at its port
    os("port set --no-allowed-address", &[&port_a]);
    wait_for("pod traffic stops without the allowed address pair", MIRRORED, stopped);
    assert_eq!(ssh.ok(&a.root(), "hostname"), a.name, "node A's own address still passes its port");

    // a floating IP: SSH by it, from the tenant network (hairpin) and from the external network
    let fip = os("floating ip create public -f value -c floating_ip_address", &[]);
    res.floating_ip = Some(fip.clone());
    os("server add floating ip", &[&c.name, &fip]);
    let by_fip = format!("debian@{fip}");
    let host = wait_for("ssh by the floating IP", MIRRORED, || ssh.try_ok(None, &by_fip, "hostname"));
    assert_eq!(host, c.name, "the floating IP leads to server C");
    let ext_ns = format!("{}-ext", env("TB_PREFIX"));
    let client = ssh.try_ok(Some(&ext_ns), &by_fip, "echo $SSH_CONNECTION");
    let client = client.expect("ssh by the floating IP from the external network");
    assert!(client.starts_with("203.0.113."), "node C sees the external client's address: {client}");

    // a Nova reboot reboots the node (/run is a fresh tmpfs per boot)
    ssh.ok(&c.root(), "touch /run/before-reboot");
    os("server reboot", &[&c.name]);
    wait_or_explain(
        "node C rebooted",
        60,
        || ssh.try_ok(None, &c.root(), "test ! -e /run/before-reboot && systemctl is-system-running --wait"),
        || support::node_console(&c.name),
    );

    // servers deleted -> nodes gone, nothing left behind
    os("server delete", &[&a.name, &b.name, &c.name]);
    wait_for("all nodes removed and no leaks", 60, || leaks(&nodes).status.success().then_some(()));
    assert!(ssh.try_ok(None, &a.root(), "true").is_none(), "node A answers after its server was deleted");
    drop(res);
}
