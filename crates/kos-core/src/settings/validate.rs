//! Checks across fields of decoded settings: names, the node list, and how the
//! address ranges fit together. Every problem points at the key it is about.

use super::document::{Location, Node, Value};
use super::*;

/// Longest cluster name: it prefixes server, port and security-group names, and
/// `<cluster>-<node>` must still be a 63-character DNS label.
pub const MAX_CLUSTER_NAME: usize = 40;

/// Nova metadata keys and values are limited to 255 characters.
const MAX_METADATA_LEN: usize = 255;

/// Metadata keys kos writes itself; users may not set them.
pub const RESERVED_METADATA: &[&str] = &["ansible_host_groups", "ansible_host_vars"];

/// Position of a dotted path (`nodes.1.name`, `networking.pod_cidr`) in the file;
/// falls back to the deepest part that exists.
pub fn locate(root: &Node, path: &str) -> Location {
    let mut node = root;
    let mut at = root.at;
    for part in path.split('.') {
        let next = match &node.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == part).map(|(k, v)| (k.at, v)),
            Value::Seq(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)).map(|v| (v.at, v)),
            Value::Scalar(..) => None,
        };
        match next {
            Some((key_at, child)) => {
                // A scalar is pointed at by its value, a section by its key.
                at = if matches!(child.value, Value::Scalar(..)) { child.at } else { key_at };
                node = child;
            }
            None => break,
        }
    }
    at
}

pub(super) fn validate(s: &Settings, root: &Node) -> Vec<Diagnostic> {
    let mut v = Validator { root, problems: Vec::new() };
    v.cluster(s);
    v.nodes(s);
    v.networking(s);
    v.runtime(s);
    v.ssh(s);
    v.problems
}

struct Validator<'a> {
    root: &'a Node,
    problems: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn at(&self, path: &str) -> Location {
        locate(self.root, path)
    }

    fn report(&mut self, path: &str, message: impl Into<String>, fix: impl Into<String>) {
        let d = Diagnostic::new(self.at(path), message).fix(fix);
        self.problems.push(d);
    }

    fn cluster(&mut self, s: &Settings) {
        let name = &s.cluster.name;
        if !is_dns_label(name) || name.len() > MAX_CLUSTER_NAME {
            self.report(
                "cluster.name",
                format!("cluster name {name:?} is not a DNS label of at most {MAX_CLUSTER_NAME} characters"),
                "use lowercase letters, digits and `-`, starting and ending with a letter or digit, e.g. `demo`",
            );
        }
        let v = s.cluster.kubernetes_version;
        if v.major != 1 || !SUPPORTED_MINORS.contains(&v.minor) {
            let list: Vec<String> = SUPPORTED_MINORS.iter().map(|m| format!("1.{m}")).collect();
            self.report(
                "cluster.kubernetes_version",
                format!("Kubernetes {v} is not supported: kos deploys {} (the newest three minors, as upstream supports)", list.join(", ")),
                format!("use e.g. \"{DEFAULT_KUBERNETES_VERSION}\""),
            );
        }
        let masters = s.masters().count();
        if masters > 1 && !s.cluster.api_endpoint.is_shared() {
            self.report(
                "cluster.api_endpoint",
                format!("{masters} masters but `api_endpoint: master`: clients would depend on the first master alone"),
                "use `api_endpoint: vip` (keepalived on the masters) or `api_endpoint: octavia`",
            );
        }
        if masters > 1 && masters.is_multiple_of(2) {
            self.report(
                "nodes",
                format!(
                    "{masters} masters: etcd needs a majority of its members, so {masters} masters survive the loss of no more masters than {} do",
                    masters - 1
                ),
                format!("use an odd number of masters: {} or {}", masters - 1, masters + 1),
            );
        }
        if s.cluster.api_floating_ip && !s.cluster.api_endpoint.is_shared() {
            self.report(
                "cluster.api_floating_ip",
                "`api_floating_ip` puts a floating IP on a VIP or load balancer, and `api_endpoint` is `master`",
                "give the master `floating_ip: true` under `nodes:` instead, or use `api_endpoint: vip` or `octavia`",
            );
        }
    }

    fn nodes(&mut self, s: &Settings) {
        if s.nodes.is_empty() {
            self.report("nodes", "`nodes` is empty", "add at least one node with `role: master`");
            return;
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, n) in s.nodes.iter().enumerate() {
            let name_path = format!("nodes.{i}.name");
            if !is_dns_label(&n.name) {
                self.report(
                    &name_path,
                    format!("node name {:?} is not a DNS label", n.name),
                    "use lowercase letters, digits and `-` (it becomes the Kubernetes node name and host name), e.g. `worker-1`",
                );
            } else if s.cluster.name.len() + 1 + n.name.len() > 63 {
                self.report(
                    &name_path,
                    format!("server name `{}-{}` would be longer than 63 characters", s.cluster.name, n.name),
                    "shorten the node name or the cluster name",
                );
            }
            if let Some(first) = seen.insert(&n.name, i) {
                let first_line = self.at(&format!("nodes.{first}.name")).line;
                self.report(
                    &name_path,
                    format!("duplicate node name `{}` (first used on line {first_line})", n.name),
                    "give every node its own name",
                );
            }
            if n.floating_ip && s.cloud.floating_ip_pool.is_none() {
                self.report(
                    &format!("nodes.{i}.floating_ip"),
                    format!("node `{}` asks for a floating IP but `cloud.floating_ip_pool` is not set", n.name),
                    "add `floating_ip_pool: <external network>` under `cloud:`",
                );
            }
            for (key, value) in &n.metadata {
                let path = format!("nodes.{i}.metadata.{key}");
                if RESERVED_METADATA.contains(&key.as_str()) || key.starts_with("kos-") || key.starts_with("kos_") {
                    self.report(
                        &path,
                        format!("metadata key `{key}` is set by kos itself"),
                        "remove it; kos writes ansible_host_groups, ansible_host_vars and its kos-* marks from the node's role and the plan",
                    );
                }
                if key.is_empty() || key.len() > MAX_METADATA_LEN || value.len() > MAX_METADATA_LEN {
                    self.report(&path, "Nova metadata keys and values must be 1 to 255 characters", "shorten it");
                }
            }
        }
        if s.masters().next().is_none() {
            self.report("nodes", "no node has `role: master`", "set `role: master` on one node (or three, for HA)");
        }
    }

    fn networking(&mut self, s: &Settings) {
        let n = &s.networking;
        let pod = n.pod_cidr;
        let svc = n.service_cidr;
        let mut ranges_ok = true;
        if n.node_prefix <= pod.prefix_len() || n.node_prefix > 26 {
            ranges_ok = false;
            let fix = if pod.prefix_len() < 24 {
                "use `node_prefix: 24`".to_string()
            } else if pod.prefix_len() < 26 {
                format!("use `node_prefix: {}` or a larger pod_cidr", pod.prefix_len() + 1)
            } else {
                "use a larger pod_cidr, e.g. 10.1.0.0/16 with node_prefix 24".to_string()
            };
            self.report(
                "networking.node_prefix",
                format!(
                    "node_prefix /{} must be longer than pod_cidr's /{} and at most /26 (a node needs room for its pods)",
                    n.node_prefix,
                    pod.prefix_len()
                ),
                fix,
            );
        }
        if ranges_ok {
            let capacity: u64 = 1u64 << (n.node_prefix - pod.prefix_len());
            if (s.nodes.len() as u64) > capacity {
                self.report(
                    "networking.pod_cidr",
                    format!("pod_cidr {pod} holds {capacity} node ranges of /{}, but there are {} nodes", n.node_prefix, s.nodes.len()),
                    "use a larger pod_cidr (shorter prefix) or a longer node_prefix",
                );
            }
        }
        if svc.prefix_len() < 12 || svc.prefix_len() > 28 {
            self.report(
                "networking.service_cidr",
                format!("service_cidr {svc} must be between /12 and /28 (the API server refuses larger ranges)"),
                "use e.g. `service_cidr: 10.96.0.0/12`",
            );
        }
        if pod.contains(&svc) || svc.contains(&pod) || pod.contains(&svc.network()) || svc.contains(&pod.network()) {
            self.report(
                "networking.service_cidr",
                format!("service_cidr {svc} overlaps pod_cidr {pod}"),
                "pick ranges that do not overlap, e.g. pod_cidr 10.1.0.0/16 and service_cidr 10.96.0.0/12",
            );
        }
        let dns = n.dns_ip;
        let first = Ipv4Addr::from(u32::from(svc.network()).saturating_add(1));
        if !svc.contains(&dns) || dns == svc.network() || dns == svc.broadcast() {
            self.report(
                "networking.dns_ip",
                format!("dns_ip {dns} is not a usable address of service_cidr {svc}"),
                format!("use an address inside {svc}, e.g. {}", Ipv4Addr::from(u32::from(svc.network()).saturating_add(10))),
            );
        } else if dns == first {
            self.report(
                "networking.dns_ip",
                format!("dns_ip {dns} is the `kubernetes` service's address (the first of {svc})"),
                format!("use another address, e.g. {}", Ipv4Addr::from(u32::from(svc.network()).saturating_add(10))),
            );
        }
        if !is_dns_name(&n.domain) {
            self.report("networking.domain", format!("domain {:?} is not a DNS name", n.domain), "use e.g. `cluster.local`");
        }
        if let Some(mtu) = n.mtu
            && !(576..=9216).contains(&mtu)
        {
            self.report("networking.mtu", format!("mtu {mtu} is outside 576..9216"), "remove it to use the node's MTU");
        }
        self.pins(s, ranges_ok);
    }

    fn pins(&mut self, s: &Settings, ranges_ok: bool) {
        let n = &s.networking;
        let mut placed: Vec<(&str, Ipv4Net)> = Vec::new();
        for (node, net) in &n.pod_cidrs {
            let path = format!("networking.pod_cidrs.{node}");
            if !s.nodes.iter().any(|x| &x.name == node) {
                let names: Vec<&str> = s.nodes.iter().map(|x| x.name.as_str()).collect();
                let fix = match decode::nearest(node, &names) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!("pin only nodes of `nodes:` ({})", names.join(", ")),
                };
                self.report(&path, format!("pod CIDR pinned for unknown node `{node}`"), fix);
                continue;
            }
            if !n.pod_cidr.contains(net) {
                self.report(
                    &path,
                    format!("pinned pod CIDR {net} of `{node}` is outside pod_cidr {}", n.pod_cidr),
                    format!("pick a /{} inside {}", n.node_prefix, n.pod_cidr),
                );
                continue;
            }
            if ranges_ok && net.prefix_len() != n.node_prefix {
                self.report(
                    &path,
                    format!("pinned pod CIDR {net} of `{node}` is not a /{} (node_prefix)", n.node_prefix),
                    format!("pin a /{} or change node_prefix", n.node_prefix),
                );
                continue;
            }
            if let Some((other, _)) = placed.iter().find(|(_, o)| o.contains(net) || net.contains(o)) {
                self.report(
                    &path,
                    format!("pinned pod CIDR {net} of `{node}` collides with the one pinned for `{other}`"),
                    "give each node its own range",
                );
                continue;
            }
            placed.push((node, *net));
        }
    }

    fn runtime(&mut self, s: &Settings) {
        if s.runtime.docker_tls && s.runtime.kind != RuntimeKind::Docker {
            self.report(
                "runtime.docker_tls",
                "`docker_tls: true` needs `kind: docker` (containerd has no docker API)",
                "set `kind: docker` under `runtime:`, or remove `docker_tls`",
            );
        }
    }

    fn ssh(&mut self, s: &Settings) {
        let user_ok = |u: &str| {
            !u.is_empty()
                && u.len() <= 32
                && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
                && !u.starts_with('-')
        };
        if !user_ok(&s.ssh.user) {
            self.report(
                "ssh.user",
                format!("{:?} is not a valid login name", s.ssh.user),
                "use the image's default user, e.g. `debian` or `ubuntu`",
            );
        }
        if let Some(b) = &s.ssh.bastion
            && !user_ok(&b.user)
        {
            self.report("ssh.bastion.user", format!("{:?} is not a valid login name", b.user), "use the bastion's login user");
        }
        if s.ssh.private_key.extension().is_some_and(|e| e == "pub") {
            self.report("ssh.private_key", "`private_key` names a public key (.pub)", "point to the private key file, without .pub");
        }
    }
}

/// Whether `s` is a DNS name made of DNS labels (`cluster.local`).
fn is_dns_name(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}
