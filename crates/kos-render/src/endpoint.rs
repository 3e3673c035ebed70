//! The API endpoint's pieces on the nodes, when the API has an address of its own
//! (`cluster.api_endpoint: vip` or `octavia`):
//!
//! - with `vip`, on every master, keepalived (a static pod) holds the VIP where the local
//!   API server is ready, speaking VRRP unicast to the other masters (with `octavia` the
//!   load balancer holds its VIP: nothing on the masters);
//! - on every worker, a balancer (haproxy, a static pod) on `127.0.0.1:LOCAL_API_PORT`
//!   through which the kubelet and kube-proxy reach every API server, so a VIP failover or
//!   a master's loss does not cut the node off. Masters' kubelets use their own API server
//!   on loopback (see `node::api_server_url`).
//!
//! Both images come from the artifact set ([`KEEPALIVED_IMAGE`], [`HAPROXY_IMAGE`]). A
//! change of a configuration changes its pod's `kos.io/config-sha256` annotation, so the
//! kubelet restarts the pod with it.

use crate::control_plane::{address, host_network_pod, locked_down, manifest_file, requests_of};
use crate::{Inputs, NodePhase, RenderError, RenderedFile, template};
use k8s_openapi::api::core::v1::{Container, EmptyDirVolumeSource, HostPathVolumeSource, Pod, Probe, TCPSocketAction, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kos_core::plan::{LOCAL_API_PORT, NodePlan, vrrp_router_id};
use kos_core::settings::{ApiEndpoint, Role};
use std::collections::BTreeMap;

/// keepalived from Debian 12 (`testbed/k8s/build.sh` packs it into the artifact set).
pub const KEEPALIVED_IMAGE: &str = "localhost/kos/keepalived:2.2.7";
/// haproxy from Debian 12 (`testbed/k8s/build.sh` packs it into the artifact set).
pub const HAPROXY_IMAGE: &str = "localhost/kos/haproxy:2.6.12";

const KEEPALIVED_CONF: &str = include_str!("../templates/endpoint/keepalived.conf.j2");
const HAPROXY_CFG: &str = include_str!("../templates/endpoint/haproxy.cfg.j2");
/// Where the configurations live on a node.
pub const KEEPALIVED_CONF_PATH: &str = "/etc/kubernetes/kos-api-vip/keepalived.conf";
pub const HAPROXY_CFG_PATH: &str = "/etc/kubernetes/kos-api-balancer/haproxy.cfg";

/// The images the endpoint needs on the nodes (none with `api_endpoint: master`).
pub fn images(endpoint: ApiEndpoint) -> Vec<String> {
    match endpoint {
        ApiEndpoint::Master => Vec::new(),
        ApiEndpoint::Vip => vec![KEEPALIVED_IMAGE.to_string(), HAPROXY_IMAGE.to_string()],
        ApiEndpoint::Octavia => vec![HAPROXY_IMAGE.to_string()],
    }
}

/// The endpoint's files on one node: nothing with `api_endpoint: master`.
pub fn render(inputs: &Inputs<'_>, node: &NodePlan) -> Result<Vec<RenderedFile>, RenderError> {
    let plan = inputs.plan;
    let mut files = Vec::new();
    let mut put = |path: &str, mode: u32, contents: String| {
        files.push(RenderedFile::node(&node.name, NodePhase::Kubernetes, None, path, mode, contents))
    };
    match (plan.api_endpoint, node.role) {
        (ApiEndpoint::Master, _) => {}
        (ApiEndpoint::Vip, Role::Master) => {
            let conf = keepalived_conf(inputs, node)?;
            let pod = keepalived_pod(&conf);
            put(KEEPALIVED_CONF_PATH, 0o600, conf);
            files.push(manifest_file(node, "kos-api-vip", &pod)?);
        }
        (ApiEndpoint::Octavia, Role::Master) => {}
        (_, Role::Worker) => {
            let cfg = haproxy_cfg(inputs, node)?;
            let pod = haproxy_pod(&cfg);
            // 0644: haproxy runs as nobody and reads it; it names the masters, nothing secret.
            put(HAPROXY_CFG_PATH, 0o644, cfg);
            files.push(manifest_file(node, "kos-api-balancer", &pod)?);
        }
    }
    Ok(files)
}

/// keepalived's configuration on one master.
pub fn keepalived_conf(inputs: &Inputs<'_>, node: &NodePlan) -> Result<String, RenderError> {
    let plan = inputs.plan;
    let vip = plan.internal_api.ok_or_else(|| RenderError::AddressUnknown { what: "the API's VIP".into() })?;
    let masters: Vec<&NodePlan> = plan.masters().collect();
    let index = masters.iter().position(|m| m.name == node.name).unwrap_or(0);
    let mut peers = Vec::new();
    for m in masters.iter().filter(|m| m.name != node.name) {
        peers.push(address(m)?.to_string());
    }
    // The probe's interface of the default route; `kos render` without a probe assumes eth0.
    let interface = inputs.env.facts(&node.name).interface.unwrap_or_else(|| "eth0".into());
    let ctx = minijinja::context! {
        node => &node.name,
        node_ip => address(node)?.to_string(),
        vip => vip.to_string(),
        api_port => plan.api_port,
        interface,
        router_id => vrrp_router_id(&plan.cluster),
        // Distinct priorities make the first election predictable (the first master).
        priority => 150 - index.min(100),
        peers,
    };
    template("keepalived.conf", KEEPALIVED_CONF, ctx)
}

/// haproxy's configuration on one worker.
pub fn haproxy_cfg(inputs: &Inputs<'_>, node: &NodePlan) -> Result<String, RenderError> {
    let plan = inputs.plan;
    let mut masters = Vec::new();
    for m in plan.masters() {
        masters.push(minijinja::context! { name => &m.name, ip => address(m)?.to_string() });
    }
    let ctx = minijinja::context! { node => &node.name, port => LOCAL_API_PORT, api_port => plan.api_port, masters };
    template("haproxy.cfg", HAPROXY_CFG, ctx)
}

struct Spec<'a> {
    name: &'a str,
    image: &'a str,
    command: Vec<String>,
    config: (&'a str, &'a str),
    config_text: &'a str,
    capabilities: &'a [&'a str],
    user: Option<i64>,
    liveness: Option<Probe>,
}

fn keepalived_pod(conf: &str) -> Pod {
    let command =
        ["/usr/sbin/keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp", "-f", "/etc/keepalived/keepalived.conf"];
    static_pod(Spec {
        name: "kos-api-vip",
        image: KEEPALIVED_IMAGE,
        command: command.iter().map(|s| s.to_string()).collect(),
        config: (KEEPALIVED_CONF_PATH, "/etc/keepalived/keepalived.conf"),
        config_text: conf,
        // VRRP is its own IP protocol (raw sockets); the VIP is added and removed by netlink.
        // SETGID: keepalived clears the supplementary groups of each health check it starts
        // (setgroups, even as root); without the capability that fails, and keepalived then
        // ends the check with status 0 without running it ("Couldn't setgroups" every
        // second): every check passed, and the VIP stayed on a master whose API server was
        // down (seen on the test bed: 33 s without an API through the VIP in an upgrade).
        capabilities: &["NET_ADMIN", "NET_RAW", "NET_BROADCAST", "SETGID"],
        user: None,
        liveness: None,
    })
}

fn haproxy_pod(cfg: &str) -> Pod {
    let command = ["/usr/local/sbin/haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"];
    let liveness = Probe {
        tcp_socket: Some(TCPSocketAction { host: Some("127.0.0.1".into()), port: IntOrString::Int(i32::from(LOCAL_API_PORT)) }),
        initial_delay_seconds: Some(5),
        period_seconds: Some(10),
        failure_threshold: Some(3),
        ..Probe::default()
    };
    static_pod(Spec {
        name: "kos-api-balancer",
        image: HAPROXY_IMAGE,
        command: command.iter().map(|s| s.to_string()).collect(),
        config: (HAPROXY_CFG_PATH, "/usr/local/etc/haproxy/haproxy.cfg"),
        config_text: cfg,
        capabilities: &[],
        user: Some(65534),
        liveness: Some(liveness),
    })
}

/// A host-network static pod with one configuration file, read-only root, `/run` its own,
/// and only the capabilities it names.
fn static_pod(spec: Spec<'_>) -> Pod {
    let annotations = BTreeMap::from([("kos.io/config-sha256".to_string(), crate::sha256_hex(spec.config_text.as_bytes()))]);
    let mounts = vec![
        VolumeMount { name: "config".into(), mount_path: spec.config.1.into(), read_only: Some(true), ..VolumeMount::default() },
        VolumeMount { name: "run".into(), mount_path: "/run".into(), ..VolumeMount::default() },
    ];
    let volumes = vec![
        Volume {
            name: "config".into(),
            host_path: Some(HostPathVolumeSource { path: spec.config.0.into(), type_: Some("File".into()) }),
            ..Volume::default()
        },
        Volume { name: "run".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() },
    ];
    let container = Container {
        name: spec.name.into(),
        image: Some(spec.image.into()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(spec.command),
        volume_mounts: Some(mounts),
        liveness_probe: spec.liveness,
        resources: Some(requests_of(("10m", "16Mi"))),
        security_context: Some(locked_down(spec.capabilities, spec.user)),
        ..Container::default()
    };
    host_network_pod(spec.name, "node", Some(annotations), container, volumes)
}

#[cfg(test)]
mod tests;
