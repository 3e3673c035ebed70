//! Files every node gets: kubelet and kube-proxy (config, kubeconfig, unit), the
//! container runtime's config, the CNI config of the routed pod network, the pod bridge
//! and masquerade script with its boot unit, sysctls and kernel modules.
//!
//! Masters get the same set (plus the control plane from `control_plane`); workers get
//! nothing more secret than their own keys: the cluster CA's certificate, never its key.
//!
//! Configs with a schema (KubeletConfiguration, KubeProxyConfiguration, the CNI
//! conflist, docker's daemon.json) are small typed serde structs here, because no
//! published Rust types exist for them; units, the script and containerd's TOML come
//! from the templates in `templates/node/`.

use crate::kubeconfig::client_kubeconfig;
use crate::{Inputs, Material, NodePhase, RenderError, RenderedFile, Unit, template};
use ipnet::Ipv4Net;
use kos_core::plan::{CaId, NodePlan};
use kos_core::settings::{Role, RuntimeKind};
use serde::Serialize;
use std::net::Ipv4Addr;

const KUBELET_UNIT: &str = include_str!("../templates/node/kubelet.service.j2");
const KUBE_PROXY_UNIT: &str = include_str!("../templates/node/kube-proxy.service.j2");
const POD_NETWORK_UNIT: &str = include_str!("../templates/node/kos-pod-network.service.j2");
const POD_NETWORK_SCRIPT: &str = include_str!("../templates/node/pod-network.sh.j2");
const CONTAINERD_CONFIG: &str = include_str!("../templates/node/containerd.toml.j2");
const CONTAINERD_V3_CONFIG: &str = include_str!("../templates/node/containerd-v3.toml.j2");
const CONTAINERD_UNIT: &str = include_str!("../templates/node/containerd.service.j2");
const PROXY_DROP_IN: &str = include_str!("../templates/node/proxy.conf.j2");
const DOCKER_DROP_IN: &str = include_str!("../templates/node/docker-kos.conf.j2");

/// The pause image tag the sandbox uses (kubeadm 1.37's `PauseVersion`).
pub const PAUSE_TAG: &str = "3.10.2";
/// Upper bound of pods per node: the kubelet's default, which upstream tests at scale.
const MAX_PODS: u32 = 110;

/// Paths on the node, shared with tests and with the files that name each other.
pub mod paths {
    pub const CA_CERT: &str = "/etc/kubernetes/pki/ca.crt";
    pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
    pub const KUBELET_KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
    pub const KUBELET_SERVING_CERT: &str = "/var/lib/kubelet/pki/kubelet.crt";
    pub const KUBELET_SERVING_KEY: &str = "/var/lib/kubelet/pki/kubelet.key";
    pub const KUBELET_CLIENT_CERT: &str = "/var/lib/kubelet/pki/kubelet-client.crt";
    pub const KUBELET_CLIENT_KEY: &str = "/var/lib/kubelet/pki/kubelet-client.key";
    pub const KUBELET_UNIT: &str = "/etc/systemd/system/kubelet.service";
    pub const KUBE_PROXY_CONFIG: &str = "/var/lib/kube-proxy/config.yaml";
    pub const KUBE_PROXY_KUBECONFIG: &str = "/etc/kubernetes/kube-proxy.conf";
    pub const KUBE_PROXY_UNIT: &str = "/etc/systemd/system/kube-proxy.service";
    pub const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
    /// Only when containerd comes from the artifact set.
    pub const CONTAINERD_UNIT: &str = "/etc/systemd/system/containerd.service";
    pub const CONTAINERD_PROXY: &str = "/etc/systemd/system/containerd.service.d/http-proxy.conf";
    pub const CNI_CONFLIST: &str = "/etc/cni/net.d/10-kos.conflist";
    pub const POD_NETWORK_SCRIPT: &str = "/usr/local/lib/kos/pod-network.sh";
    pub const POD_NETWORK_UNIT: &str = "/etc/systemd/system/kos-pod-network.service";
    pub const SYSCTL: &str = "/etc/sysctl.d/90-kos.conf";
    pub const MODULES: &str = "/etc/modules-load.d/kos.conf";
    pub const DOCKER_DAEMON: &str = "/etc/docker/daemon.json";
    pub const DOCKER_DROP_IN: &str = "/etc/systemd/system/docker.service.d/10-kos.conf";
    pub const DOCKER_PROXY: &str = "/etc/systemd/system/docker.service.d/http-proxy.conf";
    pub const DOCKER_TLS_CA: &str = "/etc/docker/tls/ca.pem";
    pub const DOCKER_TLS_CERT: &str = "/etc/docker/tls/server.crt";
    pub const DOCKER_TLS_KEY: &str = "/etc/docker/tls/server.key";
    pub const STATIC_PODS: &str = "/etc/kubernetes/manifests";
    pub const CONTAINERD_SOCKET: &str = "unix:///run/containerd/containerd.sock";
}

const PRIVATE: u32 = 0o600;
const PUBLIC: u32 = 0o644;
const EXECUTABLE: u32 = 0o755;

/// All files of one node (masters get control-plane files from `control_plane` too). Long
/// because it lists them, each with its path, mode and source, in the order of the node's
/// filesystem.
pub fn render_node(inputs: &Inputs<'_>, node: &NodePlan, material: &dyn Material) -> Result<Vec<RenderedFile>, RenderError> {
    let node_ip = crate::control_plane::address(node)?;
    let ranges = PodRanges::of(node.pod_cidr, inputs.settings.runtime.kind);
    let ca = material.ca_cert(CaId::Cluster)?;
    let proxy_env = proxy_environment(inputs);
    let runtime = inputs.settings.runtime.kind;
    let mut out = NodeFiles { node: &node.name, runtime, phase: NodePhase::Kubernetes, restarts: None, files: Vec::new() };

    // kubelet (the cluster CA is its client CA)
    out.unit(Unit::Kubelet);
    out.add(paths::CA_CERT, PUBLIC, ca.clone());
    let kubelet_stem = format!("nodes/{}", node.name);
    out.add(paths::KUBELET_SERVING_CERT, PUBLIC, material.cert(&format!("{kubelet_stem}/kubelet-server"))?);
    out.add(paths::KUBELET_SERVING_KEY, PRIVATE, material.key(&format!("{kubelet_stem}/kubelet-server"))?);
    let client_cert = material.cert(&format!("{kubelet_stem}/kubelet-client"))?;
    let client_key = material.key(&format!("{kubelet_stem}/kubelet-client"))?;
    out.add(paths::KUBELET_CLIENT_CERT, PUBLIC, client_cert.clone());
    out.add(paths::KUBELET_CLIENT_KEY, PRIVATE, client_key.clone());
    let server = api_server_url(inputs, node)?;
    let user = format!("system:node:{}", node.name);
    out.add(paths::KUBELET_KUBECONFIG, PRIVATE, client_kubeconfig(inputs, &ca, &server, &user, &client_cert, &client_key)?);
    // The kubelet's and kube-proxy's configuration and units are root's alone (CIS 4.1.1,
    // 4.1.9; kube-bench checks them): only root's kubelet and systemd read them.
    out.add(paths::KUBELET_CONFIG, PRIVATE, crate::to_yaml("KubeletConfiguration", &kubelet_configuration(inputs, node, &ranges))?);
    let etcd_data = (node.role == Role::Master).then_some(crate::control_plane::ETCD_DATA);
    let unit_ctx = minijinja::context! { node => &node.name, node_ip => node_ip.to_string(), environment => &proxy_env, etcd_data };
    out.add(paths::KUBELET_UNIT, PRIVATE, template("kubelet.service", KUBELET_UNIT, unit_ctx)?);

    // kube-proxy
    out.unit(Unit::KubeProxy);
    let proxy_cert = material.cert("kube-proxy")?;
    let proxy_key = material.key("kube-proxy")?;
    out.add(paths::KUBE_PROXY_KUBECONFIG, PRIVATE, client_kubeconfig(inputs, &ca, &server, "system:kube-proxy", &proxy_cert, &proxy_key)?);
    out.add(paths::KUBE_PROXY_CONFIG, PRIVATE, crate::to_yaml("KubeProxyConfiguration", &kube_proxy_configuration(inputs, node))?);
    out.add(paths::KUBE_PROXY_UNIT, PRIVATE, template("kube-proxy.service", KUBE_PROXY_UNIT, minijinja::context! { node => &node.name })?);

    // Container runtime. With `docker`, the kubelet still talks CRI to containerd and
    // dockerd runs beside it on the same containerd.
    let sandbox_image = pause_image(inputs);
    out.unit(Unit::Containerd);
    if inputs.env.runtime_from_artifacts {
        // containerd 2.x from the artifact set: its own config format, its own unit.
        let restrict_oom = inputs.env.facts(&node.name).oom_score_restricted;
        let ctx = minijinja::context! { node => &node.name, sandbox_image, cni_bin_dir => CNI_BIN_DIR, restrict_oom };
        out.add(paths::CONTAINERD_CONFIG, PUBLIC, template("containerd.toml", CONTAINERD_V3_CONFIG, ctx)?);
        out.add(
            paths::CONTAINERD_UNIT,
            PUBLIC,
            template("containerd.service", CONTAINERD_UNIT, minijinja::context! { node => &node.name })?,
        );
    } else {
        out.add(
            paths::CONTAINERD_CONFIG,
            PUBLIC,
            template(
                "containerd.toml",
                CONTAINERD_CONFIG,
                minijinja::context! { node => &node.name, sandbox_image, restrict_oom => inputs.env.facts(&node.name).oom_score_restricted },
            )?,
        );
    }
    let docker = runtime == RuntimeKind::Docker;
    if let Some(env) = &proxy_env {
        let drop_in = template("http-proxy.conf", PROXY_DROP_IN, minijinja::context! { environment => env })?;
        out.add(paths::CONTAINERD_PROXY, PUBLIC, drop_in.clone());
        if docker {
            out.unit(Unit::Docker);
            out.add(paths::DOCKER_PROXY, PUBLIC, drop_in);
        }
    }
    if docker {
        out.unit(Unit::Docker);
        let tls = inputs.settings.runtime.docker_tls;
        out.add(paths::DOCKER_DAEMON, PUBLIC, docker_daemon_json(inputs, node_ip, &ranges, tls)?);
        if tls {
            let stem = format!("nodes/{}/docker-server", node.name);
            out.add(paths::DOCKER_TLS_CA, PUBLIC, ca.clone());
            out.add(paths::DOCKER_TLS_CERT, PUBLIC, material.cert(&stem)?);
            out.add(paths::DOCKER_TLS_KEY, PRIVATE, material.key(&stem)?);
            out.add(paths::DOCKER_DROP_IN, PUBLIC, template("docker 10-kos.conf", DOCKER_DROP_IN, minijinja::context! {})?);
        }
    }

    // Pod network: the CNI config (read by the kubelet at each pod's start), then the
    // bridge and masquerade unit.
    out.plain(NodePhase::Network);
    out.add(paths::CNI_CONFLIST, PUBLIC, cni_conflist(inputs, node, &ranges)?);
    out.unit(Unit::PodNetwork);
    let script_ctx = minijinja::context! {
        node => &node.name,
        node_pod_cidr => node.pod_cidr.to_string(),
        gateway => node.pod_gateway.to_string(),
        prefix_len => node.pod_cidr.prefix_len(),
        mtu => inputs.settings.networking.mtu,
        pod_cidr => inputs.plan.pod_cidr.to_string(),
        tenant_cidr => inputs.tenant_cidr.map(|c| c.to_string()),
        docker,
    };
    out.add(paths::POD_NETWORK_SCRIPT, EXECUTABLE, template("pod-network.sh", POD_NETWORK_SCRIPT, script_ctx)?);
    out.add(
        paths::POD_NETWORK_UNIT,
        PUBLIC,
        template("kos-pod-network.service", POD_NETWORK_UNIT, minijinja::context! { node => &node.name })?,
    );
    // The OS, prepared with the runtime; applied by the phase itself, no unit restarts.
    out.plain(NodePhase::Runtime);
    out.add(paths::SYSCTL, PUBLIC, SYSCTLS.to_string());
    out.add(
        paths::MODULES,
        PUBLIC,
        "# Rendered by kos: overlayfs for container images, br_netfilter so iptables sees bridged pod traffic.\noverlay\nbr_netfilter\n"
            .to_string(),
    );
    Ok(out.files)
}

/// Where CNI plugins from the artifact set live on a node.
pub const CNI_BIN_DIR: &str = "/opt/cni/bin";

/// The sandbox image containerd pins.
pub fn pause_image(inputs: &Inputs<'_>) -> String {
    format!("{}/pause:{PAUSE_TAG}", inputs.settings.artifacts.image_repository)
}

/// Collects one node's files, each in the phase and with the unit of the section it is
/// added in.
struct NodeFiles<'a> {
    node: &'a str,
    runtime: RuntimeKind,
    phase: NodePhase,
    restarts: Option<Unit>,
    files: Vec<RenderedFile>,
}

impl NodeFiles<'_> {
    /// The files added next belong to `unit` (a change restarts it) and to its phase.
    fn unit(&mut self, unit: Unit) {
        (self.phase, self.restarts) = (unit.phase(self.runtime), Some(unit));
    }

    /// The files added next belong to `phase` and restart no unit.
    fn plain(&mut self, phase: NodePhase) {
        (self.phase, self.restarts) = (phase, None);
    }

    fn add(&mut self, path: &str, mode: u32, contents: String) {
        self.files.push(RenderedFile::node(self.node, self.phase, self.restarts, path, mode, contents));
    }
}

/// Where this node's kubelet and kube-proxy reach the API server.
///
/// Masters use their own API server on loopback (the apiserver cert carries
/// 127.0.0.1), as kubeadm's `ControlPlaneKubeletLocalMode` does: a master's kubelet then
/// does not depend on the load balancer or another master, and keeps running its static
/// pods while the VIP is down. Workers use their own balancer on loopback when the API has
/// an endpoint of its own (see [`crate::endpoint`]), else the master's address.
fn api_server_url(inputs: &Inputs<'_>, node: &NodePlan) -> Result<String, RenderError> {
    match node.role {
        Role::Master => Ok(crate::kubeconfig::loopback_server_url(inputs)),
        Role::Worker => match inputs.plan.node_api() {
            Some((host, port)) => Ok(format!("https://{host}:{port}")),
            None => Err(RenderError::AddressUnknown { what: "the API server".into() }),
        },
    }
}

/// How a node's pod CIDR is shared out. With docker, CNI (pods) takes the lower half
/// and docker's own containers the upper half of the same bridge, so both get routable
/// pod-range addresses (as in the seed system) without their allocators colliding.
#[derive(Debug, Clone, Copy)]
struct PodRanges {
    /// First and last address host-local hands out; `None`: the whole subnet.
    cni: Option<(Ipv4Addr, Ipv4Addr)>,
    /// docker's `fixed-cidr`.
    docker: Option<Ipv4Net>,
    /// How many pod addresses CNI can hand out.
    cni_addresses: u32,
}

impl PodRanges {
    fn of(cidr: Ipv4Net, runtime: RuntimeKind) -> PodRanges {
        let network = u32::from(cidr.network());
        let size = 1u32.checked_shl(32 - u32::from(cidr.prefix_len())).unwrap_or(0);
        match runtime {
            // Everything but the network address, the gateway and broadcast.
            RuntimeKind::Containerd => PodRanges { cni: None, docker: None, cni_addresses: size.saturating_sub(3) },
            RuntimeKind::Docker => {
                let half = size / 2;
                let start = Ipv4Addr::from(network.saturating_add(2));
                let end = Ipv4Addr::from(network.saturating_add(half.saturating_sub(1)));
                let upper = Ipv4Net::new(Ipv4Addr::from(network.saturating_add(half)), cidr.prefix_len().saturating_add(1)).ok();
                PodRanges { cni: Some((start, end)), docker: upper, cni_addresses: half.saturating_sub(2) }
            }
        }
    }

    /// The kubelet's pod limit: what CNI can address, at most the kubelet's default.
    fn max_pods(&self) -> u32 {
        self.cni_addresses.min(MAX_PODS)
    }
}

/// `net.ipv4.ip_forward` and the bridge hooks the routed pod network needs, plus the
/// kernel settings the kubelet checks with `protectKernelDefaults: true` (it refuses to
/// start when they differ, instead of silently changing them).
const SYSCTLS: &str = "\
# Rendered by kos; kos overwrites local changes.
# The node routes its pods' traffic (no overlay).
net.ipv4.ip_forward = 1
# kube-proxy's iptables rules must see traffic between pods on the same bridge.
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
# The values the kubelet requires with protectKernelDefaults (CIS 4.2.6).
vm.overcommit_memory = 1
vm.panic_on_oom = 0
kernel.panic = 10
kernel.panic_on_oops = 1
kernel.keys.root_maxkeys = 1000000
kernel.keys.root_maxbytes = 25000000
";

/// `kubelet.config.k8s.io/v1beta1` KubeletConfiguration: the fields kos sets.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeletConfiguration {
    api_version: &'static str,
    kind: &'static str,
    authentication: KubeletAuthentication,
    authorization: KubeletAuthorization,
    #[serde(rename = "clusterDNS")]
    cluster_dns: Vec<Ipv4Addr>,
    cluster_domain: String,
    tls_cert_file: &'static str,
    tls_private_key_file: &'static str,
    tls_min_version: &'static str,
    tls_cipher_suites: Vec<&'static str>,
    cgroup_driver: &'static str,
    container_runtime_endpoint: &'static str,
    read_only_port: u16,
    protect_kernel_defaults: bool,
    #[serde(rename = "makeIPTablesUtilChains")]
    make_iptables_util_chains: bool,
    rotate_certificates: bool,
    #[serde(rename = "serverTLSBootstrap")]
    server_tls_bootstrap: bool,
    static_pod_path: &'static str,
    fail_swap_on: bool,
    max_pods: u32,
    #[serde(rename = "eventRecordQPS")]
    event_record_qps: u32,
    event_burst: u32,
    streaming_connection_idle_timeout: &'static str,
    shutdown_grace_period: &'static str,
    shutdown_grace_period_critical_pods: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    register_with_taints: Vec<Taint>,
    /// `false` only on a node that runs cgroup v1 (the kubelet refuses v1 by default since 1.35).
    #[serde(rename = "failCgroupV1", skip_serializing_if = "Option::is_none")]
    fail_cgroup_v1: Option<bool>,
    /// Only when the settings change a threshold, then every signal: a partial map would
    /// drop the kubelet's defaults for the signals it leaves out.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    eviction_hard: std::collections::BTreeMap<String, String>,
    #[serde(rename = "imageGCHighThresholdPercent", skip_serializing_if = "Option::is_none")]
    image_gc_high_threshold_percent: Option<u8>,
    #[serde(rename = "imageGCLowThresholdPercent", skip_serializing_if = "Option::is_none")]
    image_gc_low_threshold_percent: Option<u8>,
}

#[derive(Debug, Serialize)]
struct KubeletAuthentication {
    anonymous: Enabled,
    webhook: KubeletWebhookAuthentication,
    x509: X509,
}

#[derive(Debug, Serialize)]
struct Enabled {
    enabled: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeletWebhookAuthentication {
    enabled: bool,
    #[serde(rename = "cacheTTL")]
    cache_ttl: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct X509 {
    #[serde(rename = "clientCAFile")]
    client_ca_file: &'static str,
}

#[derive(Debug, Serialize)]
struct KubeletAuthorization {
    mode: &'static str,
}

#[derive(Debug, Serialize)]
struct Taint {
    key: &'static str,
    effect: &'static str,
}

fn kubelet_configuration(inputs: &Inputs<'_>, node: &NodePlan, ranges: &PodRanges) -> KubeletConfiguration {
    let plan = inputs.plan;
    KubeletConfiguration {
        api_version: "kubelet.config.k8s.io/v1beta1",
        kind: "KubeletConfiguration",
        authentication: KubeletAuthentication {
            anonymous: Enabled { enabled: false },
            webhook: KubeletWebhookAuthentication { enabled: true, cache_ttl: "2m0s" },
            x509: X509 { client_ca_file: paths::CA_CERT },
        },
        authorization: KubeletAuthorization { mode: "Webhook" },
        cluster_dns: vec![plan.dns_ip],
        cluster_domain: plan.domain.clone(),
        tls_cert_file: paths::KUBELET_SERVING_CERT,
        tls_private_key_file: paths::KUBELET_SERVING_KEY,
        tls_min_version: "VersionTLS12",
        tls_cipher_suites: crate::control_plane::TLS_CIPHER_SUITES.split(',').collect(),
        cgroup_driver: "systemd",
        container_runtime_endpoint: paths::CONTAINERD_SOCKET,
        read_only_port: 0,
        // 90-kos.conf sets the kernel values the kubelet checks; with `true` a node
        // whose sysctls drifted fails loudly instead of being changed behind our back.
        protect_kernel_defaults: true,
        make_iptables_util_chains: true,
        // kos issues and renews node certificates itself (`kos certs`); no CSR flow,
        // so no controller needs to auto-approve kubelet serving CSRs.
        rotate_certificates: false,
        server_tls_bootstrap: false,
        static_pod_path: paths::STATIC_PODS,
        fail_swap_on: true,
        max_pods: ranges.max_pods(),
        event_record_qps: 50,
        event_burst: 100,
        // CIS 4.2.5: idle exec/attach/port-forward streams are closed.
        streaming_connection_idle_timeout: "5m0s",
        // Graceful node shutdown: pods stop cleanly on `systemctl reboot`.
        shutdown_grace_period: "30s",
        shutdown_grace_period_critical_pods: "10s",
        // Masters carry kubeadm's control-plane taint: workloads stay on workers unless
        // they tolerate it (CoreDNS does). A kubelet may set taints at registration.
        register_with_taints: match node.role {
            Role::Master => vec![Taint { key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" }],
            Role::Worker => Vec::new(),
        },
        fail_cgroup_v1: inputs.env.facts(&node.name).cgroup_v1.then_some(false),
        eviction_hard: eviction_hard(&inputs.settings.kubelet),
        image_gc_high_threshold_percent: inputs.settings.kubelet.image_gc_high_percent,
        image_gc_low_threshold_percent: inputs.settings.kubelet.image_gc_low_percent,
    }
}

/// The kubelet's default thresholds with the settings' over them; empty when the settings
/// change none (the kubelet then keeps its own).
fn eviction_hard(kubelet: &kos_core::settings::KubeletSettings) -> std::collections::BTreeMap<String, String> {
    if kubelet.eviction_hard.is_empty() {
        return std::collections::BTreeMap::new();
    }
    let mut all: std::collections::BTreeMap<String, String> =
        kos_core::settings::KUBELET_EVICTION_DEFAULTS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    all.extend(kubelet.eviction_hard.clone());
    all
}

/// `kubeproxy.config.k8s.io/v1alpha1` KubeProxyConfiguration: the fields kos sets.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeProxyConfiguration {
    api_version: &'static str,
    kind: &'static str,
    bind_address: &'static str,
    client_connection: ClientConnection,
    #[serde(rename = "clusterCIDR")]
    cluster_cidr: String,
    hostname_override: String,
    mode: &'static str,
    metrics_bind_address: &'static str,
    healthz_bind_address: &'static str,
    node_port_addresses: Vec<&'static str>,
    /// Only where `nf_conntrack_max` cannot be set: 0 tells kube-proxy to leave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    conntrack: Option<Conntrack>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Conntrack {
    max_per_core: u32,
    min: u32,
}

#[derive(Debug, Serialize)]
struct ClientConnection {
    kubeconfig: &'static str,
}

fn kube_proxy_configuration(inputs: &Inputs<'_>, node: &NodePlan) -> KubeProxyConfiguration {
    KubeProxyConfiguration {
        api_version: "kubeproxy.config.k8s.io/v1alpha1",
        kind: "KubeProxyConfiguration",
        bind_address: "0.0.0.0",
        client_connection: ClientConnection { kubeconfig: paths::KUBE_PROXY_KUBECONFIG },
        cluster_cidr: inputs.plan.pod_cidr.to_string(),
        hostname_override: node.name.clone(),
        mode: "iptables",
        metrics_bind_address: "127.0.0.1:10249",
        // kube-proxy's default; load balancers probe it.
        healthz_bind_address: "0.0.0.0:10256",
        // NodePorts on the node's own addresses only, not on loopback (which would need
        // route_localnet) nor on cbr0's pod gateway.
        node_port_addresses: vec!["primary"],
        conntrack: inputs.env.facts(&node.name).conntrack_max_fixed.then_some(Conntrack { max_per_core: 0, min: 0 }),
    }
}

/// A CNI network configuration list (CNI spec 1.0.0).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CniConfList {
    cni_version: &'static str,
    name: &'static str,
    plugins: Vec<CniPlugin>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum CniPlugin {
    Bridge(BridgePlugin),
    Portmap(PortmapPlugin),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BridgePlugin {
    #[serde(rename = "type")]
    kind: &'static str,
    bridge: &'static str,
    is_gateway: bool,
    ip_masq: bool,
    hairpin_mode: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u16>,
    ipam: HostLocalIpam,
}

#[derive(Debug, Serialize)]
struct HostLocalIpam {
    #[serde(rename = "type")]
    kind: &'static str,
    ranges: Vec<Vec<IpamRange>>,
    routes: Vec<IpamRoute>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct IpamRange {
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    #[serde(skip_serializing_if = "Option::is_none")]
    range_start: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    range_end: Option<Ipv4Addr>,
}

#[derive(Debug, Serialize)]
struct IpamRoute {
    dst: &'static str,
}

#[derive(Debug, Serialize)]
struct PortmapPlugin {
    #[serde(rename = "type")]
    kind: &'static str,
    capabilities: PortMappings,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PortMappings {
    port_mappings: bool,
}

fn cni_conflist(inputs: &Inputs<'_>, node: &NodePlan, ranges: &PodRanges) -> Result<String, RenderError> {
    let conf = CniConfList {
        cni_version: "1.0.0",
        name: "kos",
        plugins: vec![
            CniPlugin::Bridge(BridgePlugin {
                kind: "bridge",
                bridge: "cbr0",
                is_gateway: true,
                // Masquerading is kos's own rule (pod-network.sh): pod↔pod and pod↔VM
                // traffic keeps its source address; the plugin's rule would NAT all of it.
                ip_masq: false,
                // A pod reaching itself through its service IP.
                hairpin_mode: true,
                mtu: inputs.settings.networking.mtu,
                ipam: HostLocalIpam {
                    kind: "host-local",
                    ranges: vec![vec![IpamRange {
                        subnet: node.pod_cidr,
                        gateway: node.pod_gateway,
                        range_start: ranges.cni.map(|(start, _)| start),
                        range_end: ranges.cni.map(|(_, end)| end),
                    }]],
                    routes: vec![IpamRoute { dst: "0.0.0.0/0" }],
                },
            }),
            CniPlugin::Portmap(PortmapPlugin { kind: "portmap", capabilities: PortMappings { port_mappings: true } }),
        ],
    };
    json("CNI conflist", &conf)
}

/// `/etc/docker/daemon.json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
struct DockerDaemon {
    bridge: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fixed_cidr: Option<Ipv4Net>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u16>,
    exec_opts: Vec<&'static str>,
    iptables: bool,
    ip_masq: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hosts: Vec<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    tls: Option<DockerTls>,
}

#[derive(Debug, Serialize)]
struct DockerTls {
    tls: bool,
    tlsverify: bool,
    tlscacert: &'static str,
    tlscert: &'static str,
    tlskey: &'static str,
}

fn docker_daemon_json(inputs: &Inputs<'_>, node_ip: Ipv4Addr, ranges: &PodRanges, tls: bool) -> Result<String, RenderError> {
    let daemon = DockerDaemon {
        // Docker's containers join the pod bridge, in the upper half of its range.
        bridge: "cbr0",
        fixed_cidr: ranges.docker,
        mtu: inputs.settings.networking.mtu,
        exec_opts: vec!["native.cgroupdriver=systemd"],
        // No `containerd` here: the packaged units (Debian's and Docker's) pass
        // `--containerd=/run/containerd/containerd.sock`, and dockerd refuses a setting
        // given both as a flag and in this file.
        // docker keeps its port-publishing and isolation rules, but never NATs the pod
        // range: pod-network.sh masquerades only what leaves the pod network.
        iptables: true,
        ip_masq: false,
        // Only with TLS does docker listen on TCP; without it, only the local socket
        // (docker's default, from the packaged unit's `-H fd://`).
        hosts: if tls { vec!["unix:///run/docker.sock".into(), format!("tcp://{node_ip}:2376")] } else { Vec::new() },
        tls: tls.then_some(DockerTls {
            tls: true,
            tlsverify: true,
            tlscacert: paths::DOCKER_TLS_CA,
            tlscert: paths::DOCKER_TLS_CERT,
            tlskey: paths::DOCKER_TLS_KEY,
        }),
    };
    json("docker daemon.json", &daemon)
}

fn json<T: Serialize>(what: &str, value: &T) -> Result<String, RenderError> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| RenderError::Serialise { what: what.to_string(), source: Box::new(e) })
}

/// `Environment=` values for units behind an HTTP proxy, or `None` without one.
///
/// NO_PROXY keeps cluster-internal traffic off the proxy: loopback, the pod and service
/// ranges, the tenant subnet, every node, the API endpoint and cluster DNS names.
pub fn proxy_environment(inputs: &Inputs<'_>) -> Option<Vec<String>> {
    let proxy = inputs.settings.proxy.as_ref()?;
    let plan = inputs.plan;
    let mut no_proxy: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), plan.pod_cidr.to_string(), plan.service_cidr.to_string()];
    no_proxy.extend(inputs.tenant_cidr.map(|c| c.to_string()));
    no_proxy.push(".svc".into());
    no_proxy.push(format!(".{}", plan.domain));
    no_proxy.extend(plan.nodes.iter().filter_map(|n| n.fixed_ip).map(|ip| ip.to_string()));
    no_proxy.extend(plan.internal_api.map(|ip| ip.to_string()));
    no_proxy.extend(proxy.no_proxy.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    no_proxy.retain(|e| seen.insert(e.clone()));

    let mut env = Vec::new();
    env.extend(proxy.http.as_ref().map(|p| format!("HTTP_PROXY={p}")));
    env.extend(proxy.https.as_ref().map(|p| format!("HTTPS_PROXY={p}")));
    env.push(format!("NO_PROXY={}", no_proxy.join(",")));
    Some(env)
}

#[cfg(test)]
mod tests;
