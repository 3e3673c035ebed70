//! kos's real OpenStack client (`kos_cloud::openstack::OpenStackCloud`) against the test
//! cloud, as the project user: every method of the `Cloud` trait is called for real, on
//! resources named and tagged uniquely per run, and every test deletes what it made (also
//! when it fails half-way) and then checks that nothing with its tag is left.
//!
//! They run through the test cloud's HTTPS front (`KOS_TEST_CLOUD_TLS`: Keystone's catalog
//! region of HTTPS endpoints, trusted through the private CA in clouds.yaml's `cacert`), so
//! every method of the client is proven over TLS once; the command tests (`cloud_commands`,
//! `cloud_auth`) reach the same services over plain HTTP.

use kos_cloud::api::{LoadBalancerSpec, PortFilter, PortSpec, RuleSpec, ServerSpec};
use kos_cloud::model::{Route, Server};
use kos_cloud::openstack::OpenStackCloud;
use kos_cloud::{Cloud, CloudError};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::support;

const HOW_TO_START: &str = "testbed/cloud/with-cloud.sh cargo nextest run -p kos -E 'test(cloud_client)'";

fn cloud_is_up() -> bool {
    support::testbed("KOS_TEST_CLOUD", HOW_TO_START)
}

/// The project user's cloud through the HTTPS front, in the clouds.yaml `with-cloud.sh`
/// exports (`OS_CLIENT_CONFIG_FILE`).
fn cloud_name() -> String {
    std::env::var("KOS_TEST_CLOUD_TLS").expect("KOS_TEST_CLOUD_TLS (testbed/cloud/up.sh's env.sh sets it)")
}

async fn connect() -> OpenStackCloud {
    OpenStackCloud::connect(Some(&cloud_name())).await.unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Requests the HTTPS front forwarded so far to the service on `front_port` (its log has a
/// line per request, starting with the port it came in on).
pub fn https_front_requests(front_port: u16) -> usize {
    let log = std::path::Path::new(&std::env::var("TC_HOME").expect("TC_HOME")).join("log/tls-front.log");
    std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.starts_with(&format!("{front_port} \""))).count()
}

/// A name no other test run uses: `kos-it-<what>-<pid>-<millis>`.
fn unique(what: &str) -> String {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() % 1_000_000_000;
    format!("kos-it-{what}-{}-{millis}", std::process::id())
}

/// Deletes whatever carries `tag` (servers by the `kos-it` metadata key, ports, floating
/// IPs, security groups), then asserts nothing is left.
async fn clean_up_and_check(cloud: &OpenStackCloud, tag: &str) {
    let tags = vec![tag.to_owned()];
    for s in cloud.servers().await.unwrap().into_iter().filter(|s| s.metadata.get("kos-it").is_some_and(|v| v == tag)) {
        cloud.delete_server(&s.id).await.unwrap();
    }
    for f in cloud.floating_ips(&tags).await.unwrap() {
        cloud.delete_floating_ip(&f.id).await.unwrap();
    }
    for p in cloud.ports(&PortFilter { tags: tags.clone(), ..Default::default() }).await.unwrap() {
        cloud.delete_port(&p.id).await.unwrap();
    }
    for g in cloud.security_groups(&tags).await.unwrap() {
        cloud.delete_security_group(&g.id).await.unwrap();
    }
    assert!(!cloud.servers().await.unwrap().iter().any(|s| s.metadata.get("kos-it").is_some_and(|v| v == tag)), "servers left");
    assert!(cloud.floating_ips(&tags).await.unwrap().is_empty(), "floating IPs left");
    assert!(cloud.ports(&PortFilter { tags: tags.clone(), ..Default::default() }).await.unwrap().is_empty(), "ports left");
    assert!(cloud.security_groups(&tags).await.unwrap().is_empty(), "security groups left");
}

async fn wait_active(cloud: &OpenStackCloud, id: &str) -> Server {
    let start = Instant::now();
    loop {
        let s = cloud.server(id).await.unwrap().expect("server exists");
        match s.status.as_str() {
            "ACTIVE" => return s,
            "ERROR" => panic!("server {id} went to ERROR: {:?}", s.fault),
            _ if start.elapsed() > Duration::from_secs(180) => panic!("server {id} still {} after 180 s", s.status),
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

#[tokio::test]
async fn cloud_client_discovers_the_seeded_cloud() {
    if !cloud_is_up() {
        return;
    }
    let (compute, network) = (https_front_requests(18774), https_front_requests(19696));
    let cloud = connect().await;
    assert_eq!(cloud.name(), cloud_name());

    let services = cloud.services().await.unwrap();
    for s in ["compute", "network", "image", "load-balancer", "identity"] {
        assert!(services.contains(s), "{s} missing from {services:?}");
    }
    let ext = cloud.network_extensions().await.unwrap();
    for e in ["extraroute", "extraroute-atomic", "allowed-address-pairs", "port-security", "standard-attr-tag"] {
        assert!(ext.contains(e), "{e} missing from {ext:?}");
    }

    let image = cloud.image("tiny").await.unwrap();
    assert_eq!((image.name.as_str(), image.status.as_str()), ("tiny", "active"));
    assert_eq!(cloud.image(&image.id).await.unwrap(), image, "by ID = by name");
    assert!(matches!(cloud.image("no-such-image").await, Err(CloudError::NotFound { kind: "image", .. })));

    let flavor = cloud.flavor("m1.tiny").await.unwrap();
    assert_eq!((flavor.vcpus, flavor.ram), (1, 512));
    assert_eq!(cloud.flavor(&flavor.id).await.unwrap(), flavor);
    assert!(matches!(cloud.flavor("m9.none").await, Err(CloudError::NotFound { kind: "flavor", .. })));

    let key = cloud.keypair("demo-key").await.unwrap().expect("demo-key");
    assert!(key.public_key.starts_with("ssh-ed25519 "));
    assert_eq!(cloud.keypair("no-such-key").await.unwrap(), None);

    let net = cloud.network("demo-net").await.unwrap();
    assert!(!net.external);
    assert_eq!(cloud.network(&net.id).await.unwrap(), net);
    let subnets = cloud.subnets(&net.id).await.unwrap();
    assert_eq!(subnets.len(), 1);
    assert_eq!(subnets[0].cidr.to_string(), "10.0.0.0/24");
    assert_eq!(subnets[0].gateway_ip, Some(Ipv4Addr::new(10, 0, 0, 1)));
    let public = cloud.network("public").await.unwrap();
    assert!(public.external);

    let router = cloud.router("demo-router").await.unwrap();
    assert_eq!(router.external_network_id.as_deref(), Some(public.id.as_str()));
    assert_eq!(cloud.router(&router.id).await.unwrap().id, router.id);
    assert!(router.revision_number > 0);

    let q = cloud.quotas().await.unwrap();
    assert_eq!((q.instances.limit, q.cores.limit, q.ram.limit), (25, 50, 51200));
    assert_eq!((q.ports.limit, q.floating_ips.limit, q.security_groups.limit, q.security_group_rules.limit), (100, 25, 10, 100));
    assert!(q.ports.used >= 1, "the router's interface is a port: {q:?}");
    assert_eq!(cloud.max_routes().await.unwrap(), None);
    // Nova and Neutron were reached at the catalog's HTTPS endpoints, through the front.
    assert!(https_front_requests(18774) > compute && https_front_requests(19696) > network, "compute and network not reached over HTTPS");

    eprintln!("discovery: {} API calls", cloud.api_calls());
}

#[tokio::test]
async fn cloud_client_builds_a_node_and_removes_it_leaving_nothing() {
    if !cloud_is_up() {
        return;
    }
    let cloud = connect().await;
    let tag = unique("node");
    let outcome = build_a_node(&cloud, &tag).await;
    clean_up_and_check(&cloud, &tag).await;
    outcome.unwrap();
}

async fn build_a_node(cloud: &OpenStackCloud, tag: &str) -> Result<(), String> {
    let tags = vec![tag.to_owned(), "kos-cluster=it".to_owned()];
    let net = cloud.network("demo-net").await.unwrap();

    // Security group + rules (a second identical rule is no error).
    let calls = cloud.api_calls();
    let sg = cloud.create_security_group(tag, "kos integration test", &tags).await.unwrap();
    eprintln!("create_security_group: {} API calls", cloud.api_calls() - calls);
    assert_eq!(sg.tags.iter().collect::<std::collections::BTreeSet<_>>(), tags.iter().collect());
    let ssh = RuleSpec {
        direction: "ingress",
        protocol: Some("tcp"),
        port_min: Some(22),
        port_max: Some(22),
        remote_ip_prefix: Some("192.0.2.0/24".into()),
        remote_self: false,
    };
    let nodes =
        RuleSpec { direction: "ingress", protocol: None, port_min: None, port_max: None, remote_ip_prefix: None, remote_self: true };
    cloud.add_security_group_rule(&sg.id, &ssh).await.unwrap();
    cloud.add_security_group_rule(&sg.id, &nodes).await.unwrap();
    cloud.add_security_group_rule(&sg.id, &ssh).await.unwrap();
    let listed = cloud.security_groups(&tags).await.unwrap();
    assert_eq!(listed.len(), 1);
    let rules = &listed[0].rules;
    assert!(rules.iter().any(|r| r.port_range_min == Some(22) && r.remote_ip_prefix.as_deref() == Some("192.0.2.0/24")), "{rules:?}");
    assert!(rules.iter().any(|r| r.remote_group_id.as_deref() == Some(sg.id.as_str())), "{rules:?}");

    // Port with an address pair and the tags.
    let calls = cloud.api_calls();
    let port = cloud
        .create_port(&PortSpec {
            name: tag.to_owned(),
            network_id: net.id.clone(),
            security_group_ids: vec![sg.id.clone()],
            allowed_address_pairs: vec!["10.244.7.0/24".into()],
            tags: tags.clone(),
        })
        .await
        .unwrap();
    eprintln!("create_port: {} API calls", cloud.api_calls() - calls);
    assert_eq!(port.allowed_address_pairs[0].ip_address, "10.244.7.0/24");
    assert_eq!(port.security_groups, vec![sg.id.clone()]);
    assert_eq!(port.fixed_ips.len(), 1);
    let by_tags = cloud.ports(&PortFilter { tags: tags.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(by_tags.iter().map(|p| &p.id).collect::<Vec<_>>(), vec![&port.id], "listed by all tags");
    let one_tag_more = vec![tag.to_owned(), "not-there".to_owned()];
    assert!(cloud.ports(&PortFilter { tags: one_tag_more, ..Default::default() }).await.unwrap().is_empty(), "tags are ANDed");
    let updated = cloud.set_allowed_address_pairs(&port.id, &["10.244.7.0/24".into(), "10.244.8.0/24".into()]).await.unwrap();
    assert_eq!(updated.allowed_address_pairs.len(), 2);

    // Server on the port, with metadata, until ACTIVE.
    let image = cloud.image("tiny").await.unwrap();
    let flavor = cloud.flavor("m1.tiny").await.unwrap();
    let metadata = BTreeMap::from([("kos-it".to_owned(), tag.to_owned()), ("kos-role".to_owned(), "worker".to_owned())]);
    let calls = cloud.api_calls();
    let created = cloud
        .create_server(&ServerSpec {
            name: tag.to_owned(),
            image_id: image.id.clone(),
            flavor_id: flavor.id.clone(),
            port_id: port.id.clone(),
            key_name: Some("demo-key".into()),
            availability_zone: None,
            metadata: metadata.clone(),
            user_data: Some("#cloud-config\n{}\n".into()),
        })
        .await
        .unwrap();
    eprintln!("create_server: {} API calls", cloud.api_calls() - calls);
    let server = wait_active(cloud, &created.id).await;
    assert_eq!(server.metadata, metadata);
    assert_eq!(server.key_name.as_deref(), Some("demo-key"));
    assert_eq!(server.flavor_id.as_deref(), Some(flavor.id.as_str()));
    let fixed = port.fixed_ips[0].ip_address;
    assert!(server.addresses.iter().any(|a| a.ip == fixed && a.kind == "fixed" && a.network == "demo-net"), "{:?}", server.addresses);
    let calls = cloud.api_calls();
    let all = cloud.servers().await.unwrap();
    assert_eq!(cloud.api_calls() - calls, 1, "one call lists every server");
    assert!(all.iter().any(|s| s.id == server.id && s.metadata == metadata));
    let port_now = cloud.ports(&PortFilter { device_id: Some(server.id.clone()), ..Default::default() }).await.unwrap();
    assert_eq!(port_now.len(), 1);
    assert_eq!(port_now[0].device_owner, "compute:nova");

    // Floating IP: create (tagged), attach, detach, delete.
    let public = cloud.network("public").await.unwrap();
    let fip = cloud.create_floating_ip(&public.id, &tags).await.unwrap();
    assert!(fip.tags.contains(&tag.to_owned()) && fip.port_id.is_none());
    let attached = cloud.set_floating_ip_port(&fip.id, Some(&port.id)).await.unwrap();
    assert_eq!((attached.port_id.as_deref(), attached.fixed_ip_address), (Some(port.id.as_str()), Some(fixed)));
    assert_eq!(cloud.floating_ips(&tags).await.unwrap()[0].port_id.as_deref(), Some(port.id.as_str()));
    let detached = cloud.set_floating_ip_port(&fip.id, None).await.unwrap();
    assert_eq!(detached.port_id, None);
    cloud.delete_floating_ip(&fip.id).await.unwrap();
    cloud.delete_floating_ip(&fip.id).await.unwrap(); // already gone: fine

    // Teardown in dependency order through the client (clean_up_and_check verifies).
    let calls = cloud.api_calls();
    cloud.delete_server(&server.id).await.unwrap();
    eprintln!("delete_server (until gone): {} API calls", cloud.api_calls() - calls);
    assert_eq!(cloud.server(&server.id).await.unwrap(), None);
    cloud.delete_port(&port.id).await.unwrap();
    cloud.delete_security_group(&sg.id).await.unwrap();
    Ok(())
}

#[tokio::test]
async fn cloud_client_adds_removes_and_replaces_router_routes() {
    if !cloud_is_up() {
        return;
    }
    let cloud = connect().await;
    let router = cloud.router("demo-router").await.unwrap();
    // Pod CIDRs unique to this run, next hops on demo-subnet.
    let n = (std::process::id() % 200) as u8 + 20;
    let mine = vec![
        Route { destination: format!("10.{n}.1.0/24").parse().unwrap(), nexthop: Ipv4Addr::new(10, 0, 0, 201) },
        Route { destination: format!("10.{n}.2.0/24").parse().unwrap(), nexthop: Ipv4Addr::new(10, 0, 0, 202) },
    ];
    let outcome = routes(&cloud, &router.id, &mine).await;
    cloud.remove_routes(&router.id, &mine).await.unwrap();
    let left = cloud.router(&router.id).await.unwrap();
    assert!(mine.iter().all(|r| !left.routes.contains(r)), "routes left: {:?}", left.routes);
    outcome.unwrap();
}

async fn routes(cloud: &OpenStackCloud, router_id: &str, mine: &[Route]) -> Result<(), String> {
    let foreign = Route { destination: "192.168.77.0/24".parse().unwrap(), nexthop: Ipv4Addr::new(10, 0, 0, 250) };
    let calls = cloud.api_calls();
    let r = cloud.add_routes(router_id, &[mine[0].clone(), foreign.clone()]).await.unwrap();
    assert_eq!(cloud.api_calls() - calls, 1);
    assert!(r.routes.contains(&mine[0]) && r.routes.contains(&foreign), "{:?}", r.routes);
    let r = cloud.add_routes(router_id, &mine[..1]).await.unwrap(); // again: no change, no error
    assert_eq!(r.routes.iter().filter(|x| **x == mine[0]).count(), 1);

    // Whole-list update with the current revision: keeps the foreign route, adds mine[1].
    let current = cloud.router(router_id).await.unwrap();
    let mut wanted = current.routes.clone();
    wanted.push(mine[1].clone());
    let calls = cloud.api_calls();
    let r = cloud.replace_routes(router_id, &wanted, current.revision_number).await.unwrap();
    eprintln!("replace_routes: {} API calls", cloud.api_calls() - calls);
    assert!(r.routes.contains(&mine[1]) && r.routes.contains(&foreign) && r.routes.contains(&mine[0]), "{:?}", r.routes);
    assert!(r.revision_number > current.revision_number);

    // With the stale revision: Conflict, and nothing changes.
    let stale = cloud.replace_routes(router_id, &[], current.revision_number).await;
    assert!(matches!(stale, Err(CloudError::Conflict { kind: "router", .. })), "{stale:?}");
    assert_eq!(cloud.router(router_id).await.unwrap().routes.len(), r.routes.len());

    let r = cloud.remove_routes(router_id, std::slice::from_ref(&foreign)).await.unwrap();
    assert!(!r.routes.contains(&foreign));
    Ok(())
}

#[tokio::test]
async fn cloud_client_load_balancer_with_two_members_reaches_active_and_is_deleted() {
    if !cloud_is_up() {
        return;
    }
    let cloud = connect().await;
    let name = unique("lb");
    let net = cloud.network("demo-net").await.unwrap();
    let subnet = cloud.subnets(&net.id).await.unwrap().remove(0);
    let spec = LoadBalancerSpec {
        name: name.clone(),
        description: format!("kos-cluster=it {name}"),
        subnet_id: subnet.id.clone(),
        vip_port_id: None,
        listener_port: 80,
        member_port: 30080,
        members: vec![("w1".into(), Ipv4Addr::new(10, 0, 0, 11)), ("w2".into(), Ipv4Addr::new(10, 0, 0, 12))],
        monitor: kos_cloud::api::HealthMonitor::Tcp,
    };
    let calls = cloud.api_calls();
    let created = cloud.create_load_balancer(&spec).await;
    eprintln!("create_load_balancer (until ACTIVE): {} API calls", cloud.api_calls() - calls);
    let lb_id = match &created {
        Ok(lb) => Some(lb.id.clone()),
        Err(_) => cloud.load_balancers().await.unwrap().into_iter().find(|l| l.name == name).map(|l| l.id),
    };
    let outcome = async {
        let lb = created.map_err(|e| e.to_string())?;
        assert_eq!(lb.provisioning_status, "ACTIVE");
        assert_eq!(lb.description, spec.description);
        let listed = cloud.load_balancers().await.unwrap();
        assert!(listed.iter().any(|l| l.id == lb.id && l.description == spec.description));
        let calls = cloud.api_calls();
        cloud
            .set_load_balancer_members(
                &lb.id,
                30080,
                &[("w2".into(), Ipv4Addr::new(10, 0, 0, 12)), ("w3".into(), Ipv4Addr::new(10, 0, 0, 13))],
            )
            .await
            .map_err(|e| e.to_string())?;
        eprintln!("set_load_balancer_members: {} API calls", cloud.api_calls() - calls);
        Ok::<(), String>(())
    }
    .await;
    if let Some(id) = lb_id {
        let calls = cloud.api_calls();
        cloud.delete_load_balancer(&id).await.unwrap();
        eprintln!("delete_load_balancer (until gone): {} API calls", cloud.api_calls() - calls);
        assert!(!cloud.load_balancers().await.unwrap().iter().any(|l| l.id == id), "load balancer left");
        cloud.delete_load_balancer(&id).await.unwrap(); // already gone: fine
    }
    outcome.unwrap();
}

#[tokio::test]
async fn cloud_client_bad_password_is_an_auth_error_naming_the_cloud() {
    if !cloud_is_up() {
        return;
    }
    let name = cloud_name();
    let file = std::env::var("OS_CLIENT_CONFIG_FILE").expect("OS_CLIENT_CONFIG_FILE");
    // A good login first: with the SDK's token cache on, the bad one below would succeed.
    OpenStackCloud::connect_file(file.as_ref(), &name).await.unwrap();

    let mut clouds: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    clouds["clouds"][&name]["auth"]["password"] = "not-the-password".into();
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("clouds.yaml");
    std::fs::write(&bad, serde_json::to_string(&clouds).unwrap()).unwrap();
    let err = OpenStackCloud::connect_file(&bad, &name).await.expect_err("a wrong password must fail");
    match &err {
        CloudError::Auth { cloud, .. } => assert_eq!(cloud, &name),
        other => panic!("expected Auth, got {other:?}"),
    }
    let text = err.to_string();
    assert!(!text.contains('\n') && text.contains(&name) && !text.contains("not-the-password"), "{text}");
    eprintln!("bad password: {text}");

    let err = OpenStackCloud::connect_file(file.as_ref(), "no-such-cloud").await.expect_err("unknown cloud");
    assert!(matches!(&err, CloudError::Auth { cloud, .. } if cloud == "no-such-cloud"), "{err:?}");
    eprintln!("unknown cloud: {err}");
}
