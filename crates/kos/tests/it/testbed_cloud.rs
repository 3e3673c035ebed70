//! The OpenStack test cloud (`testbed/cloud/`): its smoke test passes as the project user, and
//! the cloud is set up the way kos's tests rely on (Neutron extensions, the router's route
//! limit, the project's quotas, a project user without admin rights).
//!
//! Until kos has its own OpenStack client these checks go through the `openstack` CLI and the
//! smoke script; all of them use the project user's cloud (`KOS_TEST_CLOUD_USER`) only.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::support;

const HOW_TO_START: &str = "testbed/cloud/with-cloud.sh cargo nextest run -p kos --test it testbed_cloud";
/// Neutron's `max_routes` in the test cloud (`TC_MAX_ROUTES` in `testbed/cloud/lib.sh`).
const MAX_ROUTES: usize = 30;

fn cloud_is_up() -> bool {
    support::testbed("KOS_TEST_CLOUD", HOW_TO_START)
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `openstack ARGS` as the project user, against the clouds.yaml `with-cloud.sh` exported.
/// (Shared with the other test-bed modules: `crate::testbed_cloud::{openstack, openstack_ok}`.)
pub(crate) fn openstack(args: &[&str]) -> Output {
    openstack_command(args).output().unwrap_or_else(|e| panic!("`openstack` did not run (testbed/cloud/install.sh installs it): {e}"))
}

/// `openstack ARGS` as the project user, not started yet (to run several at once).
pub(crate) fn openstack_command(args: &[&str]) -> Command {
    let cloud = std::env::var("KOS_TEST_CLOUD_USER")
        .unwrap_or_else(|_| panic!("KOS_TEST_CLOUD_USER is not set: testbed/cloud/with-cloud.sh sets it (. $TC_HOME/env.sh)"));
    let mut command = Command::new("openstack");
    command.arg("--os-cloud").arg(cloud).args(args);
    command
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The stdout of `openstack ARGS`, which must succeed, trimmed.
pub(crate) fn openstack_ok(args: &[&str]) -> String {
    let out = openstack(args);
    assert!(out.status.success(), "openstack {args:?} failed: {}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

#[test]
fn smoke_test_passes_as_the_project_user_and_leaves_nothing_behind() {
    if !cloud_is_up() {
        return;
    }
    let out = Command::new(repo_root().join("testbed/cloud/smoke.sh")).output().expect("testbed/cloud/smoke.sh runs");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "smoke.sh failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    for step in [
        "port with allowed address pair",
        "2 servers ACTIVE with metadata",
        "add_extraroutes: 2 routes",
        "remove_extraroutes: routes gone",
        "floating IP",
        "listener TCP 6443, pool, 2 members, health monitor",
        "nothing left behind",
        "SMOKE OK",
    ] {
        assert!(stdout.contains(step), "smoke.sh output lacks {step:?}:\n{stdout}");
    }
}

#[test]
fn neutron_offers_the_extensions_kos_needs() {
    if !cloud_is_up() {
        return;
    }
    let aliases = openstack_ok(&["extension", "list", "--network", "-c", "Alias", "-f", "value"]);
    let aliases: Vec<&str> = aliases.lines().collect();
    for needed in ["router", "external-net", "extraroute", "extraroute-atomic", "allowed-address-pairs", "port-security", "security-group"]
    {
        assert!(aliases.contains(&needed), "Neutron lacks extension {needed}: {aliases:?}");
    }
}

#[test]
fn router_route_limit_is_the_configured_one() {
    if !cloud_is_up() {
        return;
    }
    // One more route than allowed, in one atomic add_extraroutes: refused as a whole, so the
    // shared router is left as it was whatever other tests do with it at the same time.
    // 198.18.0.0/15 is the benchmarking range; the nexthop is on the seeded demo-subnet.
    let routes: Vec<String> = (0..=MAX_ROUTES).map(|i| format!("destination=198.18.{i}.0/24,gateway=10.0.0.250")).collect();
    let mut args = vec!["router", "add", "route", "demo-router"];
    for route in &routes {
        args.extend(["--route", route.as_str()]);
    }
    let out = openstack(&args);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{} routes were accepted; max_routes is not {MAX_ROUTES}", routes.len());
    assert!(stderr.contains(&format!("exceeds the maximum {MAX_ROUTES}")), "unexpected refusal: {stderr}");
    let now = openstack_ok(&["router", "show", "demo-router", "-c", "routes", "-f", "value"]);
    assert!(!now.contains("198.18."), "a refused add left routes behind: {now}");
}

#[test]
fn project_quota_allows_25_instances() {
    if !cloud_is_up() {
        return;
    }
    let instances = openstack_ok(&["quota", "show", "-c", "instances", "-f", "value"]);
    assert_eq!(instances.trim(), "25", "instances quota of the project");
}

#[test]
fn project_user_has_no_admin_rights() {
    if !cloud_is_up() {
        return;
    }
    let out = openstack(&["hypervisor", "list"]);
    assert!(!out.status.success(), "the project user may list hypervisors: it is an admin");
    assert!(text(&out.stderr).contains("HTTP 403"), "unexpected error: {}", text(&out.stderr));
}
