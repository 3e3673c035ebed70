//! Settings: the one file a user writes, parsed and validated without any I/O beyond
//! reading it.
//!
//! Two phases, as in ripgrep's low/high args: `document` parses YAML into a located
//! tree; `decode` turns the tree into the typed [`Settings`] below, and `validate`
//! checks what only makes sense across fields (overlapping CIDRs, a master present,
//! ...). Both phases collect every problem with its `FILE:LINE:COL` and a fix, so a
//! user fixes a file in one round.

mod decode;
mod diagnostic;
pub mod document;
mod validate;

pub use diagnostic::{Diagnostic, Diagnostics};

use ipnet::Ipv4Net;
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The Kubernetes minor versions kos deploys: the newest three, as upstream supports.
pub const SUPPORTED_MINORS: [u32; 3] = [35, 36, 37];

/// The version used when the settings do not name one (newest supported patch we test).
pub const DEFAULT_KUBERNETES_VERSION: KubeVersion = KubeVersion { major: 1, minor: 37, patch: 2 };

/// A validated settings file.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The file it came from (relative paths inside are relative to its folder).
    pub source: PathBuf,
    pub cluster: ClusterSettings,
    pub cloud: CloudSettings,
    pub nodes: Vec<NodeSettings>,
    pub networking: Networking,
    pub ssh: SshSettings,
    pub runtime: Runtime,
    pub artifacts: Artifacts,
    pub addons: Addons,
    pub proxy: Option<Proxy>,
    pub kubelet: KubeletSettings,
}

impl Settings {
    /// Read and validate a settings file.
    pub fn load(path: &Path) -> Result<Settings, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
        Settings::parse(path, &text).map_err(LoadError::Invalid)
    }

    /// Parse and validate settings text; `path` names the file in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Settings, Diagnostics> {
        let root = document::parse(text).map_err(|e| {
            Diagnostics::new(
                path,
                vec![Diagnostic::new(e.at, e.message).fix("correct the YAML syntax at this position (indentation, quotes, a missing `:`)")],
            )
        })?;
        let (settings, mut problems) = decode::decode(path, &root);
        let Some(settings) = settings else { return Err(Diagnostics::new(path, problems)) };
        // Cross-field checks run even after unknown or missing keys, so one round shows
        // every problem; a name left empty by a missing key is reported once, as missing.
        let decoded = problems.clone();
        problems.extend(validate::validate(&settings, &root).into_iter().filter(|p| !decoded.iter().any(|d| d.at == p.at)));
        if problems.is_empty() { Ok(settings) } else { Err(Diagnostics::new(path, problems)) }
    }

    /// The folder relative paths in the file are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.source.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
    }

    /// Masters in file order.
    pub fn masters(&self) -> impl Iterator<Item = &NodeSettings> {
        self.nodes.iter().filter(|n| n.role == Role::Master)
    }

    /// Workers in file order.
    pub fn workers(&self) -> impl Iterator<Item = &NodeSettings> {
        self.nodes.iter().filter(|n| n.role == Role::Worker)
    }
}

/// Reading the settings failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read settings file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// `cluster:`
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    /// DNS label; prefixes and tags every cloud resource.
    pub name: String,
    pub kubernetes_version: KubeVersion,
    /// The API server's port (default 6443).
    pub api_port: u16,
    /// How clients reach the API servers (default: the master with one master, a VIP
    /// with more).
    pub api_endpoint: ApiEndpoint,
    /// A floating IP on the endpoint (a VIP or a load balancer), for operators outside
    /// the tenant network.
    pub api_floating_ip: bool,
}

/// `cluster.api_endpoint`: where the API is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiEndpoint {
    /// The (only) master's own address.
    Master,
    /// A virtual IP reserved by a Neutron port and held by keepalived (VRRP, unicast) on a
    /// master whose API server is ready: no Octavia needed.
    Vip,
    /// An Octavia load balancer with the masters as members.
    Octavia,
}

impl ApiEndpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiEndpoint::Master => "master",
            ApiEndpoint::Vip => "vip",
            ApiEndpoint::Octavia => "octavia",
        }
    }

    /// Whether the endpoint is an address of its own (every node then reaches the API
    /// servers through a balancer on itself).
    pub fn is_shared(self) -> bool {
        self != ApiEndpoint::Master
    }
}

/// A Kubernetes release, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl std::str::FromStr for KubeVersion {
    type Err = ();
    /// `1.37.2` or `v1.37.2`.
    fn from_str(s: &str) -> Result<Self, ()> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let mut parts = s.split('.');
        let mut next = || -> Result<u32, ()> {
            let p = parts.next().ok_or(())?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || (p.len() > 1 && p.starts_with('0')) {
                return Err(());
            }
            p.parse().map_err(|_| ())
        };
        let v = KubeVersion { major: next()?, minor: next()?, patch: next()? };
        if parts.next().is_some() { Err(()) } else { Ok(v) }
    }
}

/// `cloud:`
#[derive(Debug, Clone, PartialEq)]
pub struct CloudSettings {
    /// clouds.yaml entry; `None` means `OS_CLOUD` or `OS_*` variables.
    pub name: Option<String>,
    pub image: String,
    pub flavor: String,
    pub key_name: Option<String>,
    pub network: String,
    pub router: String,
    pub floating_ip_pool: Option<String>,
    /// Extra security groups put on every node, besides the cluster's own.
    pub security_groups: Vec<String>,
    pub availability_zone: Option<String>,
    /// Create and manage the cluster security group (default true).
    pub manage_security_group: bool,
}

/// A node's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Master,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Worker => "worker",
        }
    }

    /// The seed system's Ansible group for this role.
    pub fn ansible_group(self) -> &'static str {
        match self {
            Role::Master => "k8s_master",
            Role::Worker => "k8s_worker",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `nodes:`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSettings {
    /// DNS label; the Kubernetes node name. The server is called `<cluster>-<name>`.
    pub name: String,
    pub role: Role,
    /// Overrides `cloud.flavor`.
    pub flavor: Option<String>,
    /// Give the node a floating IP from `cloud.floating_ip_pool`.
    pub floating_ip: bool,
    /// Free key/values put on the instance, besides kos's own tags.
    pub metadata: BTreeMap<String, String>,
}

/// `networking:`
#[derive(Debug, Clone, PartialEq)]
pub struct Networking {
    /// All pods (the seed's `cluster_cidr`).
    pub pod_cidr: Ipv4Net,
    /// Prefix length of each node's share of `pod_cidr`.
    pub node_prefix: u8,
    pub service_cidr: Ipv4Net,
    pub dns_ip: Ipv4Addr,
    pub domain: String,
    /// Pinned pod CIDRs by node name (the seed's `node_pod_cidr`).
    pub pod_cidrs: BTreeMap<String, Ipv4Net>,
    /// MTU of the pod bridge and pod interfaces; default: the node's own.
    pub mtu: Option<u16>,
}

/// `ssh:`
#[derive(Debug, Clone, PartialEq)]
pub struct SshSettings {
    pub user: String,
    /// Private key file, relative to the settings file's folder unless absolute or `~/`.
    pub private_key: PathBuf,
    pub port: u16,
    pub bastion: Option<Bastion>,
}

/// `ssh.bastion:` a jump host for nodes without floating IPs.
#[derive(Debug, Clone, PartialEq)]
pub struct Bastion {
    pub host: String,
    pub user: String,
    pub port: u16,
}

/// Which container runtime the kubelet talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    Containerd,
    /// containerd for the kubelet (CRI) plus Docker Engine on the same containerd, for
    /// users who want the docker CLI and API on nodes. (The kubelet has no dockershim
    /// since 1.24; kos does not put cri-dockerd between them.)
    Docker,
}

/// `kubelet:` the few kubelet settings an operator tunes to the node's disks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeletSettings {
    /// Hard eviction thresholds the user set, by signal (`nodefs.available` → `10%`); the
    /// kubelet's defaults hold for the others.
    pub eviction_hard: BTreeMap<String, String>,
    /// Image garbage collection starts above this disk use, and frees down to the low one.
    pub image_gc_high_percent: Option<u8>,
    pub image_gc_low_percent: Option<u8>,
}

/// The kubelet's own hard eviction thresholds (`evictionHard`'s defaults on Linux).
pub const KUBELET_EVICTION_DEFAULTS: [(&str, &str); 5] = [
    ("memory.available", "100Mi"),
    ("nodefs.available", "10%"),
    ("nodefs.inodesFree", "5%"),
    ("imagefs.available", "15%"),
    ("imagefs.inodesFree", "5%"),
];

/// Every eviction signal the kubelet knows.
pub const KUBELET_EVICTION_SIGNALS: [&str; 8] = [
    "memory.available",
    "nodefs.available",
    "nodefs.inodesFree",
    "imagefs.available",
    "imagefs.inodesFree",
    "containerfs.available",
    "containerfs.inodesFree",
    "pid.available",
];

/// `runtime:`
#[derive(Debug, Clone, PartialEq)]
pub struct Runtime {
    pub kind: RuntimeKind,
    /// Docker's remote API on TCP 2376 with mutual TLS, and a `<node>.env` per node.
    pub docker_tls: bool,
}

/// `artifacts:` where kubelet, kube-proxy and kubectl come from.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifacts {
    pub source: ArtifactSource,
    /// Registry of the control-plane and add-on images.
    pub image_repository: String,
    /// Folders of further image archives (the user's own workloads), each with a
    /// `SHA256SUMS` listing its `*.tar` OCI archives: imported on every node, whatever the
    /// source of the binaries. Written as in the settings (resolved like `dir`).
    pub extra_images: Vec<PathBuf>,
}

/// The source of the Kubernetes binaries.
#[derive(Debug, Clone, PartialEq)]
pub enum ArtifactSource {
    /// `https://dl.k8s.io/release/v<version>/bin/linux/<arch>/<binary>` with the
    /// published `.sha256` next to each.
    Upstream,
    /// The same layout under another base URL; checksums from `<binary>.sha256`.
    Mirror { url: String },
    /// A local folder with the binaries and a `SHA256SUMS` file, uploaded by kos
    /// (air-gapped clouds).
    Local { dir: PathBuf },
}

/// `addons:`
#[derive(Debug, Clone, PartialEq)]
pub struct Addons {
    pub dns: Option<DnsAddon>,
}

/// Cluster DNS add-on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsAddon {
    CoreDns,
}

/// `proxy:` for nodes behind an HTTP proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct Proxy {
    pub http: Option<String>,
    pub https: Option<String>,
    pub no_proxy: Vec<String>,
}

/// Whether `s` is a DNS-1123 label: lowercase letters, digits and `-`, starting
/// with a letter or digit and ending with one, at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests;
