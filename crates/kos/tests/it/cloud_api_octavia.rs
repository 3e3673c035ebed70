//! `cluster.api_endpoint: octavia` against the real test cloud: `kos up --only
//! check,instances,routes` of three masters and a worker makes the API's VIP port, the load
//! balancer on it and a floating IP on it, and the Octavia and Neutron APIs (through the
//! `openstack` CLI, as the project user) show what kos asked for; a second run changes
//! nothing; `kos destroy` leaves nothing.
//!
//! The test cloud's Octavia runs noop drivers (no amphora: no data plane can run here), so
//! only what its API shows is asserted — the load balancer ACTIVE with kos's mark on kos's
//! VIP port, the TCP listener, the pool of the masters, the HTTPS health monitor, the
//! floating IP on the VIP's port — never traffic through it. The test cloud's network driver
//! is the noop one reading the ports Neutron knows (testbed/cloud/octavia_driver/), so the
//! load balancer's VIP is the port's address, as on a real cloud.

use crate::cloud_commands::{Cluster, file};
use crate::support::testbed;
use crate::testbed_cloud::{openstack, openstack_ok};
use serde_json::Value;
use std::path::{Path, PathBuf};

const HOW: &str = "testbed/cloud/with-cloud.sh cargo nextest run -p kos -E 'test(cloud_api_octavia)'";

const MASTERS: [&str; 3] = ["master-1", "master-2", "master-3"];

/// Three masters and a worker behind Octavia (`api_floating_ip` as given).
fn settings(c: &Cluster, floating_ip: bool) -> PathBuf {
    let (ssh, artifacts) = crate::support::cloud_only_inputs(c.dir.path());
    let text = format!(
        "cluster: {{name: {}, api_endpoint: octavia, api_floating_ip: {floating_ip}}}\ncloud: {{image: tiny, flavor: m1.tiny, network: demo-net, router: demo-router, floating_ip_pool: public, key_name: demo-key}}\n{ssh}{artifacts}nodes:\n  - {{name: master-1, role: master}}\n  - {{name: master-2, role: master}}\n  - {{name: master-3, role: master}}\n  - {{name: worker-1, role: worker}}\nnetworking: {{pod_cidr: 10.78.0.0/16}}\n",
        c.name
    );
    let path = c.dir.path().join("settings.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn json(args: &[&str]) -> Value {
    let out = openstack_ok(&[args, &["-f", "json"]].concat());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("openstack {args:?}: not JSON ({e}): {out}"))
}

/// `kos up -o json --only check,instances,routes`: its report, and a line of its figures.
fn up(c: &Cluster, settings: &Path) -> (Value, String) {
    let start = std::time::Instant::now();
    let report = c.up_json(&["--only", "check,instances,routes", "-f", file(settings)]);
    let figures = format!("{:.1} s, {} API calls, {} change(s)", start.elapsed().as_secs_f64(), report["api_calls"], report["changes"]);
    (report, figures)
}

#[test]
fn cloud_api_octavia_fronts_the_masters_and_destroy_removes_it() {
    if !testbed("KOS_TEST_CLOUD", HOW) {
        return;
    }
    let c = Cluster::new();
    let path = settings(&c, true);
    let out = c.kos_ok(&["check", "-f", file(&path)]);
    assert!(out.contains("0 failed"), "{out}");

    let (first, figures) = up(&c, &path);
    eprintln!("first kos up: {figures}");
    let changes: Vec<&str> = first["cloud"].as_array().unwrap().iter().filter_map(|x| x["change"].as_str()).collect();
    // The VIP's port and the load balancer on it before the nodes (the certificates name the
    // address), its members once the masters have addresses.
    let at = |prefix: &str| changes.iter().position(|x| x.starts_with(prefix));
    let (vip_made, lb_made, first_port) = (at("create the API's VIP port"), at("create the API's load balancer"), at("create port of "));
    let (members_set, last_server) =
        (at("set the API load balancer's members: master-1 "), changes.iter().rposition(|x| x.starts_with("create server of ")));
    assert!(vip_made.is_some() && vip_made < lb_made && lb_made < first_port, "{changes:#?}");
    assert!(members_set > last_server && last_server.is_some(), "{changes:#?}");

    // The load balancer, with kos's mark, its VIP on kos's port.
    let name = format!("{}-api", c.name);
    let lb = json(&["loadbalancer", "show", &name]);
    assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb:#}");
    assert_eq!(lb["description"], format!("kos-cluster={} kos-api-lb", c.name));
    let lb_id = lb["id"].as_str().unwrap();
    let vip_port = json(&["port", "show", &format!("{}-api-vip", c.name)]);
    assert_eq!(lb["vip_port_id"], vip_port["id"], "the load balancer's VIP is kos's port: {lb:#}\n{vip_port:#}");
    let tags: Vec<&str> = vip_port["tags"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(tags.contains(&format!("kos-cluster={}", c.name).as_str()) && tags.contains(&"kos-api-vip"), "{tags:?}");
    let vip = vip_port["fixed_ips"][0]["ip_address"].as_str().unwrap().to_string();
    assert_eq!(lb["vip_address"], vip.as_str(), "the load balancer's VIP is the port's address: {lb:#}");
    // A TCP listener on 6443.
    let listeners = json(&["loadbalancer", "listener", "list", "--loadbalancer", lb_id]);
    let listener = json(&["loadbalancer", "listener", "show", listeners[0]["id"].as_str().unwrap()]);
    assert_eq!(listeners.as_array().unwrap().len(), 1, "{listeners:#}");
    assert_eq!((&listener["protocol"], &listener["protocol_port"]), (&Value::from("TCP"), &Value::from(6443)), "{listener:#}");
    // A pool of the three masters' fixed IPs on 6443.
    let pools = json(&["loadbalancer", "pool", "list", "--loadbalancer", lb_id]);
    assert_eq!(pools.as_array().unwrap().len(), 1, "{pools:#}");
    let pool = json(&["loadbalancer", "pool", "show", pools[0]["id"].as_str().unwrap()]);
    let members = json(&["loadbalancer", "member", "list", pool["id"].as_str().unwrap()]);
    let mut have: Vec<(String, String, u64)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().into(), m["address"].as_str().unwrap().into(), m["protocol_port"].as_u64().unwrap()))
        .collect();
    have.sort();
    let want: Vec<(String, String, u64)> = MASTERS
        .iter()
        .map(|m| {
            let port = json(&["port", "show", &format!("{}-{m}", c.name), "-c", "fixed_ips"]);
            (m.to_string(), port["fixed_ips"][0]["ip_address"].as_str().unwrap().to_string(), 6443)
        })
        .collect();
    assert_eq!(have, want, "the pool's members are the masters on 6443");
    // An HTTPS health monitor: GET /readyz, 200.
    let monitor = json(&["loadbalancer", "healthmonitor", "show", pool["healthmonitor_id"].as_str().unwrap()]);
    for (key, value) in [("type", "HTTPS"), ("http_method", "GET"), ("url_path", "/readyz"), ("expected_codes", "200")] {
        assert_eq!(monitor[key], value, "{monitor:#}");
    }
    // The floating IP, marked as the cluster's, on the VIP's port, NATed to its address.
    let tag = format!("kos-cluster={}", c.name);
    let fips = json(&["floating", "ip", "list", "--tags", &tag, "--long"]);
    let fips = fips.as_array().unwrap();
    assert_eq!(fips.len(), 1, "one floating IP: the API's {fips:#?}");
    assert_eq!((&fips[0]["Port"], &fips[0]["Fixed IP Address"]), (&vip_port["id"], &Value::from(vip.as_str())), "{fips:#?}");
    let floating = fips[0]["Floating IP Address"].as_str().unwrap();
    // The masters' ports do not carry the VIP (Octavia holds it).
    for m in MASTERS {
        let port = json(&["port", "show", &format!("{}-{m}", c.name), "-c", "allowed_address_pairs"]);
        assert!(!port["allowed_address_pairs"].to_string().contains(&format!("\"{vip}\"")), "{m}: {port}");
    }
    // What kos renders from it: the operator's kubeconfig goes to the floating IP, the API
    // server's certificate names the VIP's port's address and the floating IP.
    let out = c.dir.path().join("rendered");
    c.kos_ok(&["render", "-f", file(&path), "-o", file(&out)]);
    let admin = std::fs::read_to_string(out.join("local/admin.kubeconfig")).unwrap();
    assert!(admin.contains(&format!("server: https://{floating}:6443")), "{admin}");
    let crt = out.join("nodes/master-1/etc/kubernetes/pki/apiserver.crt");
    let sans = std::process::Command::new("openssl").args(["x509", "-noout", "-ext", "subjectAltName", "-in"]).arg(&crt).output().unwrap();
    let sans = String::from_utf8_lossy(&sans.stdout);
    assert!(sans.contains(&format!("IP Address:{vip}")) && sans.contains(&format!("IP Address:{floating}")), "{sans}");

    let (again, figures) = up(&c, &path);
    eprintln!("second kos up: {figures}");
    assert_eq!(again["changes"], 0, "a second run changes nothing:\n{again:#}");

    let out = c.kos_ok(&["destroy", "--yes", "-f", file(&path)]);
    assert!(out.contains(&format!("load balancer {name}")), "{out}");
    assert!(!openstack(&["loadbalancer", "show", &name]).status.success(), "the load balancer is gone");
    assert!(openstack_ok(&["floating", "ip", "list", "--tags", &tag, "-f", "value"]).is_empty());
    assert!(openstack_ok(&["port", "list", "--tags", &tag, "-f", "value"]).is_empty(), "kos's VIP port is gone too");
    assert!(c.servers().is_empty());
    std::fs::remove_file(&path).unwrap(); // nothing left to destroy
}
