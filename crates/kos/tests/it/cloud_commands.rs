//! `kos check`, `up --only instances,routes`, `inventory` and `destroy` against the real
//! test cloud, as the project user: the 3-node walk-through, with an independent
//! view of the cloud through the `openstack` CLI and Ansible's own `ansible-inventory`.

use crate::support::{testbed, tool};
use crate::testbed_cloud::{openstack, openstack_ok};
use assert_cmd::Command;
use std::path::{Path, PathBuf};

const HOW: &str = "testbed/cloud/with-cloud.sh cargo nextest run -p kos -E 'test(cloud_commands)'";

/// A cluster of the test cloud in its own folder (settings, `.kos/`); destroyed on drop.
/// (Shared with `cloud_auth`.)
pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) name: String,
}

impl Cluster {
    pub(crate) fn new() -> Cluster {
        Cluster { dir: tempfile::tempdir().unwrap(), name: format!("it{}", std::process::id()) }
    }

    pub(crate) fn settings(&self, nodes: &[&str]) -> PathBuf {
        let (ssh, artifacts) = crate::support::cloud_only_inputs(self.dir.path());
        let mut text = format!(
            "cluster: {{name: {}}}\ncloud: {{image: tiny, flavor: m1.tiny, network: demo-net, router: demo-router, floating_ip_pool: public, key_name: demo-key}}\n{ssh}{artifacts}nodes:\n",
            self.name
        );
        for (i, n) in nodes.iter().enumerate() {
            let (role, fip) = if i == 0 { ("master", ", floating_ip: true") } else { ("worker", "") };
            text.push_str(&format!("  - {{name: {n}, role: {role}{fip}}}\n"));
        }
        // Its own pod range: other tests route 10.1.0.0/16 through the same router.
        text.push_str("networking: {pod_cidr: 10.77.0.0/16}\n");
        let path = self.dir.path().join("settings.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    pub(crate) fn kos(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::cargo_bin("kos").unwrap().current_dir(self.dir.path()).args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    pub(crate) fn kos_ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.kos(args);
        assert!(ok, "kos {args:?} failed:\n{stdout}\n{stderr}");
        stdout
    }

    /// `kos up -o json ARGS`, which must succeed: its report (docs/up-report.md).
    pub(crate) fn up_json(&self, args: &[&str]) -> serde_json::Value {
        report(&self.kos_ok(&[&["up", "-o", "json"], args].concat()))
    }

    /// The cluster's servers by name, as the `openstack` CLI sees them.
    pub(crate) fn servers(&self) -> Vec<String> {
        let json = openstack_ok(&["server", "list", "-f", "json", "-c", "Name"]);
        let list: serde_json::Value = serde_json::from_str(&json).unwrap();
        let prefix = format!("{}-", self.name);
        let mut names: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["Name"].as_str())
            .filter(|n| n.starts_with(&prefix))
            .map(String::from)
            .collect();
        names.sort();
        names
    }

    /// The router's routes in this cluster's pod range (10.77.0.0/16).
    pub(crate) fn routes(&self) -> Vec<(String, String)> {
        let json = openstack_ok(&["router", "show", "demo-router", "-f", "json", "-c", "routes"]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let mut routes: Vec<(String, String)> = v["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["destination"].as_str().unwrap().to_string(), r["nexthop"].as_str().unwrap().to_string()))
            .filter(|(d, _)| d.starts_with("10.77."))
            .collect();
        routes.sort();
        routes
    }
}

impl Drop for Cluster {
    /// Never leave the cluster behind, whatever failed.
    fn drop(&mut self) {
        let file = self.dir.path().join("settings.yaml");
        if file.exists() {
            let _ =
                Command::cargo_bin("kos").map(|mut c| c.current_dir(self.dir.path()).args(["destroy", "--yes", "-f"]).arg(&file).output());
        }
    }
}

pub(crate) fn file(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A `kos up -o json` report, ok.
fn report(stdout: &str) -> serde_json::Value {
    let r: serde_json::Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not a report ({e}):\n{stdout}"));
    assert_eq!(r["ok"], true, "{r:#}");
    r
}

/// How many of the report's cloud changes begin with `prefix` (`create server of `).
fn made(report: &serde_json::Value, prefix: &str) -> usize {
    report["cloud"].as_array().map_or(0, |c| c.iter().filter(|c| c["change"].as_str().is_some_and(|t| t.starts_with(prefix))).count())
}

#[test]
fn check_up_inventory_grow_shrink_and_destroy_on_the_test_cloud() {
    if !testbed("KOS_TEST_CLOUD", HOW) {
        return;
    }
    let c = Cluster::new();
    let three = c.settings(&["master-1", "worker-1", "worker-2"]);

    let out = c.kos_ok(&["check", "-f", file(&three)]);
    assert!(out.contains("0 failed"), "{out}");
    assert!(out.contains("OK   Neutron extraroute-atomic"), "{out}");

    let out = c.up_json(&["--only", "instances,routes", "-f", file(&three)]);
    assert_eq!((made(&out, "create server of "), made(&out, "add route ")), (3, 3), "{out:#}");
    assert_eq!(c.servers(), [format!("{}-master-1", c.name), format!("{}-worker-1", c.name), format!("{}-worker-2", c.name)]);
    let routes = c.routes();
    let ours: Vec<_> = routes.iter().collect();
    assert_eq!(ours.len(), 3, "{routes:?}");
    let tagged = openstack_ok(&["port", "list", "--tags", &format!("kos-cluster={}", c.name), "-f", "value", "-c", "ID"]);
    assert_eq!(tagged.lines().count(), 3, "3 marked ports: {tagged}");
    let meta = openstack_ok(&["server", "show", &format!("{}-master-1", c.name), "-f", "json", "-c", "properties"]);
    assert!(meta.contains("k8s_master") && meta.contains(&format!("\"kos-cluster\": \"{}\"", c.name)), "{meta}");

    let again = c.up_json(&["--only", "instances,routes", "-f", file(&three)]);
    assert_eq!(again["changes"], 0, "second run must change nothing:\n{again:#}");

    // The seed's dynamic inventory, read by Ansible itself through a one-line wrapper.
    if let Some(ansible_inventory) = tool("ansible-inventory") {
        let wrapper = c.dir.path().join("inventory.sh");
        let kos = assert_cmd::cargo::cargo_bin("kos");
        std::fs::write(&wrapper, format!("#!/bin/sh\nexec {} inventory \"$@\"\n", kos.display())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new(ansible_inventory)
            .args(["-i"])
            .arg(&wrapper)
            .arg("--graph")
            .env("KOS_SETTINGS", &three)
            .env("ANSIBLE_LOCAL_TEMP", c.dir.path())
            .env("ANSIBLE_HOME", c.dir.path())
            .output()
            .unwrap();
        let graph = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{graph}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(graph.contains("@k8s_master:") && graph.contains("|--master-1"), "{graph}");
        assert!(graph.contains("@k8s_worker:") && graph.contains("|--worker-2"), "{graph}");
    }
    let host = c.kos_ok(&["inventory", "--host", "master-1", "-f", file(&three)]);
    assert!(host.contains("\"ansible_user\": \"debian\"") && host.contains("\"kos_pod_cidr\": \"10.77.0.0/24\""), "{host}");
    assert!(host.contains("\"ansible_host\": \"203.0.113."), "floating IP first: {host}");

    // A fourth node: one server and one route more, the others untouched.
    let four = c.settings(&["master-1", "worker-1", "worker-2", "worker-3"]);
    let out = c.up_json(&["--only", "instances,routes", "-f", file(&four)]);
    assert_eq!(made(&out, "create server of "), 1, "{out:#}");
    let grown = c.routes();
    for r in &ours {
        assert!(grown.contains(r), "route {r:?} changed when a node was added");
    }
    assert!(grown.iter().any(|(d, _)| d == "10.77.3.0/24"), "{grown:?}");

    // Removing it again removes its route, server and port.
    let three = c.settings(&["master-1", "worker-1", "worker-2"]);
    let out = c.kos_ok(&["up", "--only", "instances,routes", "-f", file(&three)]);
    let removed =
        out.lines().find(|l| l.starts_with("instances: remove worker-3 (no longer in the settings")).unwrap_or_else(|| panic!("{out}"));
    assert!(removed.ends_with(": deleted 1 route(s), server, port"), "{out}");
    assert_eq!(c.servers().len(), 3);
    assert!(!c.routes().iter().any(|(d, _)| d == "10.77.3.0/24"));

    // The seed's load-balancer step: an Octavia LB with the workers on the nodePort.
    let out = c.kos_ok(&["expose", "web", "--node-port", "30080", "-f", file(&three)]);
    assert!(out.contains(&format!("created load balancer {}-web", c.name)) && out.contains("2 worker(s)"), "{out}");
    let lb = openstack_ok(&["loadbalancer", "show", &format!("{}-web", c.name), "-f", "value", "-c", "provisioning_status"]);
    assert_eq!(lb, "ACTIVE");
    let members = openstack_ok(&["loadbalancer", "member", "list", &format!("{}-web-pool", c.name), "-f", "value", "-c", "protocol_port"]);
    assert_eq!(members.lines().filter(|l| l.trim() == "30080").count(), 2, "{members}");
    let out = c.kos_ok(&["expose", "web", "--node-port", "30080", "-f", file(&three)]);
    assert!(out.contains("has its 2 worker(s) as members"), "idempotent: {out}");

    // Foreign resources in the same project survive `destroy`.
    let tag = format!("{}f", c.name);
    openstack_ok(&["security", "group", "create", &format!("{tag}-sg")]);
    let port = openstack_ok(&["port", "create", "--network", "demo-net", "-f", "json", "-c", "fixed_ips", &format!("{tag}-port")]);
    let port: serde_json::Value = serde_json::from_str(&port).expect("port JSON");
    // The foreign route's next hop is the foreign port's own address: an address Neutron
    // gave no node of ours. (A fixed 10.0.0.250 was one: Neutron hands addresses out at
    // random, and a worker that got .250 made the "foreign" route the cluster's own.)
    let foreign_hop = port["fixed_ips"][0]["ip_address"].as_str().expect("the foreign port's address").to_owned();
    openstack_ok(&["server", "create", "--flavor", "m1.tiny", "--image", "tiny", "--network", "demo-net", "--wait", &format!("{tag}-vm")]);
    // In our pod range, but not via one of our nodes: not ours.
    let foreign_route = format!("destination=10.77.250.0/24,gateway={foreign_hop}");
    openstack_ok(&["router", "add", "route", "demo-router", "--route", &foreign_route]);

    let out = c.kos_ok(&["destroy", "--yes", "-f", file(&three)]);
    assert!(out.contains("nothing of cluster"), "{out}");
    assert!(c.servers().is_empty());
    assert!(!openstack(&["loadbalancer", "show", &format!("{}-web", c.name)]).status.success(), "the load balancer is gone");
    assert!(openstack_ok(&["port", "list", "--tags", &format!("kos-cluster={}", c.name), "-f", "value"]).is_empty());
    assert!(openstack_ok(&["floating", "ip", "list", "--tags", &format!("kos-cluster={}", c.name), "-f", "value"]).is_empty());
    let routes = c.routes();
    assert_eq!(routes, [("10.77.250.0/24".to_string(), foreign_hop.clone())], "only the foreign route is left");
    assert!(openstack(&["security", "group", "show", &format!("{tag}-sg")]).status.success(), "foreign security group kept");
    assert!(openstack(&["port", "show", &format!("{tag}-port")]).status.success(), "foreign port kept");
    assert!(openstack(&["server", "show", &format!("{tag}-vm")]).status.success(), "foreign server kept");

    openstack_ok(&["router", "remove", "route", "demo-router", "--route", &foreign_route]);
    openstack_ok(&["server", "delete", "--wait", &format!("{tag}-vm")]);
    openstack_ok(&["port", "delete", &format!("{tag}-port")]);
    openstack_ok(&["security", "group", "delete", &format!("{tag}-sg")]);
}

#[test]
fn invalid_credentials_are_one_line_naming_the_cloud() {
    if !testbed("KOS_TEST_CLOUD", HOW) {
        return;
    }
    let c = Cluster::new();
    let settings = c.settings(&["master-1"]);
    let good = std::env::var("OS_CLIENT_CONFIG_FILE").unwrap();
    let bad = c.dir.path().join("clouds.yaml");
    let text = std::fs::read_to_string(good).unwrap().replace("password: \"secret\"", "password: \"wrong\"");
    assert!(text.contains("password: \"wrong\""), "the test must really break the password:\n{text}");
    std::fs::write(&bad, text).unwrap();
    let out = Command::cargo_bin("kos")
        .unwrap()
        .current_dir(c.dir.path())
        .env("OS_CLIENT_CONFIG_FILE", &bad)
        .args(["check", "-f"])
        .arg(&settings)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let cloud = std::env::var("OS_CLOUD").unwrap();
    assert!(stderr.contains(&format!("cannot authenticate to cloud `{cloud}`")), "{stderr}");
    std::fs::remove_file(c.dir.path().join("settings.yaml")).unwrap(); // nothing to destroy
}

#[test]
fn a_plan_over_the_instance_quota_fails_preflight_and_creates_nothing() {
    if !testbed("KOS_TEST_CLOUD", HOW) {
        return;
    }
    let c = Cluster::new();
    // The test cloud's project allows 25 instances.
    let names: Vec<String> = (1..=26).map(|i| format!("n{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let settings = c.settings(&refs);
    let (ok, stdout, stderr) = c.kos(&["check", "-f", file(&settings)]);
    assert!(!ok, "check must fail:\n{stdout}");
    assert!(stdout.contains("FAIL quota instances: need 26 more"), "{stdout}");
    assert!(stdout.contains("→ ask for a higher quota"), "{stdout}");
    assert!(stderr.contains("preflight check(s) failed; nothing was created"), "{stderr}");
    assert!(c.servers().is_empty(), "check created nothing");
    std::fs::remove_file(c.dir.path().join("settings.yaml")).unwrap(); // nothing to destroy
}

/// Every resource of the project the `openstack` CLI lists: servers, ports, security groups,
/// floating IPs, the router's routes (names and IDs, sorted).
fn project_resources() -> Vec<String> {
    let mut all = Vec::new();
    for (kind, args) in [
        ("server", &["server", "list", "-f", "value", "-c", "ID"][..]),
        ("port", &["port", "list", "-f", "value", "-c", "ID"][..]),
        ("security group", &["security", "group", "list", "-f", "value", "-c", "ID"][..]),
        ("floating ip", &["floating", "ip", "list", "-f", "value", "-c", "ID"][..]),
        ("route", &["router", "show", "demo-router", "-f", "json", "-c", "routes"][..]),
    ] {
        all.extend(openstack_ok(args).lines().map(|l| format!("{kind} {}", l.trim())));
    }
    all.sort();
    all
}

/// `kos up` with a local input wrong (the SSH key missing; the artifact folder without its
/// checksums) stops before its first API call that changes anything: the project's servers,
/// ports, security groups, floating IPs and routes are exactly what they were.
#[test]
fn up_with_a_bad_local_input_leaves_the_cloud_untouched() {
    if !testbed("KOS_TEST_CLOUD", HOW) {
        return;
    }
    let c = Cluster::new();
    let settings = c.settings(&["m1", "w1", "w2"]);
    let before = project_resources();
    std::fs::remove_file(c.dir.path().join("k")).unwrap();
    let (ok, stdout, stderr) = c.kos(&["up", "-f", file(&settings)]);
    assert!(!ok && stderr.contains("the SSH private key") && stderr.contains("does not exist"), "{stdout}\n{stderr}");
    assert_eq!(project_resources(), before, "a missing key changed the cloud:\n{stdout}");
    std::fs::write(c.dir.path().join("k"), "a key\n").unwrap();
    std::fs::remove_file(c.dir.path().join("artifacts/SHA256SUMS")).unwrap();
    let (ok, stdout, stderr) = c.kos(&["up", "-f", file(&settings)]);
    assert!(!ok && stderr.contains("SHA256SUMS"), "{stdout}\n{stderr}");
    assert_eq!(project_resources(), before, "an incomplete artifact folder changed the cloud:\n{stdout}");
    assert!(c.servers().is_empty());
    std::fs::remove_file(c.dir.path().join("settings.yaml")).unwrap(); // nothing to destroy
}

/// The fault-injecting proxy of the test bed in front of every API kos uses; killed on drop.
pub struct FaultProxy {
    child: std::process::Child,
    state: PathBuf,
    pub clouds_yaml: PathBuf,
}

impl FaultProxy {
    /// Start `testbed/cloud/faultproxy.py` (every `every`-th request per service faulted:
    /// 503, 429 with Retry-After, 502) and write a clouds.yaml whose cloud `testbed-faulty`
    /// reaches Keystone, Nova, Neutron, Glance and Octavia only through it.
    fn start(dir: &Path, every: u32) -> FaultProxy {
        Self::start_with(dir, &["--every", &every.to_string()])
    }

    /// [`FaultProxy::start`] with the proxy's options `options` (e.g. `--expire-tokens-after`).
    pub fn start_with(dir: &Path, options: &[&str]) -> FaultProxy {
        let services = [
            ("identity", 5000, "/v3"),
            ("compute", 8774, "/v2.1"),
            ("network", 9696, "/v2.0"),
            ("image", 9292, "/v2"),
            ("load_balancer", 9876, "/v2"),
        ];
        let ports: Vec<(u16, u16)> = services.iter().map(|(_, up, _)| (crate::support::free_port(), *up)).collect();
        let state = dir.join("faultproxy.json");
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(crate::support::repo_root().join("testbed/cloud/faultproxy.py"))
            .arg("--state")
            .arg(&state)
            .args(options)
            .args(ports.iter().map(|(l, u)| format!("{l}={u}")))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::from(std::fs::File::create(dir.join("faultproxy.log")).unwrap()));
        let child = cmd.spawn().expect("python3 runs the fault proxy");
        for (listen, _) in &ports {
            let start = std::time::Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", *listen)).is_err() {
                assert!(start.elapsed().as_secs() < 10, "fault proxy did not listen on {listen}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        // The project user's cloud, with every endpoint pointed at the proxy.
        let good = std::fs::read_to_string(std::env::var("OS_CLIENT_CONFIG_FILE").unwrap()).unwrap();
        let all: serde_json::Value = serde_saphyr::from_str(&good).unwrap();
        let user = std::env::var("OS_CLOUD").unwrap();
        let mut cloud = all["clouds"][&user].clone();
        let base = |i: usize| format!("http://127.0.0.1:{}{}", ports[i].0, services[i].2);
        cloud["auth"]["auth_url"] = serde_json::json!(base(0));
        // Keystone through auth_url (kos makes no identity call but the login); the
        // others through endpoint overrides, which replace the catalog's URLs.
        for (i, (name, _, _)) in services.iter().enumerate().skip(1) {
            cloud[format!("{name}_endpoint_override")] = serde_json::json!(base(i));
        }
        let clouds_yaml = dir.join("clouds-faulty.yaml");
        // JSON is YAML.
        std::fs::write(&clouds_yaml, serde_json::json!({"clouds": {"testbed-faulty": cloud}}).to_string()).unwrap();
        FaultProxy { child, state, clouds_yaml }
    }

    fn faults(&self) -> u64 {
        self.count("faults")
    }

    /// One of the proxy's counters (`faults`, `forwarded`, `expired`). The proxy writes its
    /// state file whole (renamed into place) and counts a request before answering it, so
    /// the counts are complete once kos has exited; a file that cannot be read is a failure,
    /// never zero (read as zero, a file caught half-written once failed the expiring-token
    /// test under load).
    pub fn count(&self, what: &str) -> u64 {
        let text = std::fs::read_to_string(&self.state).unwrap_or_else(|e| panic!("{}: {e}", self.state.display()));
        let state: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text:?}", self.state.display()));
        state[what].as_u64().unwrap_or_else(|| panic!("{}: no counter `{what}` in {text}", self.state.display()))
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn up_and_destroy_converge_through_an_api_failing_every_third_request() {
    if !testbed("KOS_TEST_CLOUD", HOW) {
        return;
    }
    let c = Cluster::new();
    let proxy = FaultProxy::start(c.dir.path(), 3);
    let settings = c.settings(&["master-1", "worker-1"]);
    let kos = |args: &[&str]| {
        let out = Command::cargo_bin("kos")
            .unwrap()
            .current_dir(c.dir.path())
            .env("OS_CLIENT_CONFIG_FILE", &proxy.clouds_yaml)
            .env("OS_CLOUD", "testbed-faulty")
            .args(args)
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        assert!(out.status.success(), "kos {args:?} through the fault proxy failed:\n{stdout}\n{stderr}");
        stdout
    };
    let out = report(&kos(&["up", "-o", "json", "--only", "instances,routes", "-f", file(&settings)]));
    assert_eq!((made(&out, "create server of "), made(&out, "add route ")), (2, 2), "{out:#}");
    let again = report(&kos(&["up", "-o", "json", "--only", "instances,routes", "-f", file(&settings)]));
    assert_eq!(again["changes"], 0, "{again:#}");
    assert_eq!(c.servers().len(), 2, "exactly the planned servers, no duplicates from retries");
    let out = kos(&["destroy", "--yes", "-f", file(&settings)]);
    assert!(out.contains("nothing of cluster"), "{out}");
    assert!(c.servers().is_empty());
    let faults = proxy.faults();
    assert!(faults >= 10, "the proxy injected only {faults} faults");
    eprintln!("converged through {faults} injected faults (503, 429, 502)");
}

/// The project's instance quota, set by the test cloud's admin; put back to the seed's 25 on drop.
struct InstanceQuota;

impl InstanceQuota {
    fn set(n: usize) -> InstanceQuota {
        Self::apply(n);
        InstanceQuota
    }

    fn apply(n: usize) {
        let admin = std::env::var("KOS_TEST_CLOUD_ADMIN").expect("KOS_TEST_CLOUD_ADMIN is set by testbed/cloud/env.sh");
        let out = std::process::Command::new("openstack")
            .args(["--os-cloud", &admin, "quota", "set", "--instances", &n.to_string(), "demo"])
            .output()
            .unwrap();
        assert!(out.status.success(), "quota set: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for InstanceQuota {
    fn drop(&mut self) {
        InstanceQuota::apply(25);
    }
}

/// The quota runs out in the middle of `kos up` (someone else took it after the preflight;
/// here: `--only instances` skips the preflight): a clear error, and every resource made
/// before it carries the cluster's mark, so a re-run finishes and `destroy` finds it all.
#[test]
fn quota_exhausted_mid_run_leaves_nothing_unmarked_and_a_rerun_converges() {
    if !testbed("KOS_TEST_CLOUD", HOW) {
        return;
    }
    let c = Cluster::new();
    let settings = c.settings(&["m1", "w1", "w2"]);
    let in_use: Vec<serde_json::Value> = serde_json::from_str(&openstack_ok(&["server", "list", "-f", "json", "-c", "ID"])).unwrap();
    let quota = InstanceQuota::set(in_use.len() + 2);
    let (ok, stdout, stderr) = c.kos(&["up", "--only", "instances", "-f", file(&settings)]);
    assert!(!ok, "the third server is over the quota:\n{stdout}\n{stderr}");
    assert!(stderr.to_lowercase().contains("quota"), "the error names the quota: {stderr}");
    // What was made is the cluster's: its servers carry the mark, its ports the mark (tag or
    // description), nothing of it is unmarked.
    let servers = c.servers();
    assert!(servers.len() <= 2, "{servers:?}");
    let ports: Vec<serde_json::Value> =
        serde_json::from_str(&openstack_ok(&["port", "list", "--long", "-f", "json", "-c", "Name", "-c", "Tags", "-c", "Description"]))
            .unwrap();
    let mark = format!("kos-cluster={}", c.name);
    for p in ports.iter().filter(|p| p["Name"].as_str().is_some_and(|n| n.starts_with(&format!("{}-", c.name)))) {
        let tagged = p["Tags"].as_array().is_some_and(|t| t.iter().any(|t| t.as_str() == Some(mark.as_str())));
        let described = p["Description"].as_str().is_some_and(|d| d.contains(&mark));
        assert!(tagged || described, "an unmarked port was left: {p}");
    }
    drop(quota);
    let out = c.kos_ok(&["up", "--only", "instances,routes", "-f", file(&settings)]);
    assert_eq!(c.servers().len(), 3, "{out}");
    let again = c.up_json(&["--only", "instances,routes", "-f", file(&settings)]);
    assert_eq!(again["changes"], 0, "{again:#}");
    c.kos_ok(&["destroy", "--yes", "-f", file(&settings)]);
    assert!(c.servers().is_empty());
    assert!(c.routes().is_empty());
}
