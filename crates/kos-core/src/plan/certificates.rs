//! The certificates a cluster needs, as values.
//!
//! The plan decides *which* certificates exist, who signs them and what they say
//! (subject, SANs, usages); `kos-pki` turns these specs into keys and certificates
//! on disk and reuses what is already there. Keeping the list here, pure, lets unit
//! tests inspect every SAN without generating a single key.

use std::net::{IpAddr, Ipv4Addr};

/// One of the cluster's certificate authorities (kubeadm's layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CaId {
    /// `ca.crt`: signs the API server, kubelets, component and admin client certs
    /// (and, as in the seed system, docker's TLS certs).
    Cluster,
    /// `etcd/ca.crt`: signs etcd server, peer and client certs only.
    Etcd,
    /// `front-proxy-ca.crt`: signs the aggregation layer's client cert only.
    FrontProxy,
}

impl CaId {
    /// Every CA, in a stable order.
    pub const ALL: [CaId; 3] = [CaId::Cluster, CaId::Etcd, CaId::FrontProxy];

    /// Path of the CA's files below the PKI directory, without extension
    /// (`.crt` / `.key` are appended).
    pub fn file_stem(self) -> &'static str {
        match self {
            CaId::Cluster => "ca",
            CaId::Etcd => "etcd/ca",
            CaId::FrontProxy => "front-proxy-ca",
        }
    }

    /// The CA certificate's common name.
    pub fn common_name(self) -> &'static str {
        match self {
            CaId::Cluster => "kubernetes",
            CaId::Etcd => "etcd-ca",
            CaId::FrontProxy => "front-proxy-ca",
        }
    }
}

/// Extended key usage of a leaf certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Usage {
    /// TLS server (`serverAuth`).
    Server,
    /// TLS client (`clientAuth`).
    Client,
}

/// A leaf certificate: who signs it and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// Path below the PKI directory without extension, e.g. `apiserver`,
    /// `etcd/server-master-1`, `nodes/worker-1/kubelet-client`. Files are
    /// `<stem>.crt` and `<stem>.key`.
    pub file_stem: String,
    /// The signing CA.
    pub issuer: CaId,
    /// Subject CN (Kubernetes reads it as the user name).
    pub common_name: String,
    /// Subject O entries (Kubernetes reads them as groups).
    pub organizations: Vec<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// Extended key usages (key usage is always digitalSignature + keyEncipherment).
    pub usages: Vec<Usage>,
}

/// Every certificate the cluster needs, plus the service-account key pair
/// (`sa.key` / `sa.pub`, which has no certificate).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertificatePlan {
    /// Leaf certificates, in a stable order.
    pub leaves: Vec<CertSpec>,
}

impl CertificatePlan {
    /// The spec with this file stem, if planned.
    pub fn get(&self, file_stem: &str) -> Option<&CertSpec> {
        self.leaves.iter().find(|c| c.file_stem == file_stem)
    }
}

/// The group bound to `cluster-admin` by a ClusterRoleBinding kos applies; the daily
/// `admin` certificate carries it, so it can be unbound without rotating the CA.
pub const CLUSTER_ADMINS_GROUP: &str = "kos:cluster-admins";

/// The certificate list of a cluster (kubeadm's set plus the seed's docker TLS pair). Long
/// because it is the list itself, one entry after another, kept in one place to be reviewed
/// against kubeadm's.
pub(super) fn plan_certificates(plan: &super::ClusterPlan, api_ips: &[Ipv4Addr], docker_tls: bool) -> CertificatePlan {
    use super::ips;
    let mut leaves = Vec::new();
    let client = |stem: &str, issuer: CaId, cn: &str, orgs: &[&str]| CertSpec {
        file_stem: stem.to_string(),
        issuer,
        common_name: cn.to_string(),
        organizations: orgs.iter().map(|o| o.to_string()).collect(),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        usages: vec![Usage::Client],
    };
    let loopback = [IpAddr::V4(Ipv4Addr::LOCALHOST)];

    // The API server answers on every master address, the VIP and its floating IP, the
    // `kubernetes` service IP and loopback (static pods and kubectl on a master).
    let mut api_dns: Vec<String> = ["kubernetes", "kubernetes.default", "kubernetes.default.svc"].iter().map(|s| s.to_string()).collect();
    api_dns.push(format!("kubernetes.default.svc.{}", plan.domain));
    api_dns.push("localhost".to_string());
    api_dns.extend(plan.masters().map(|m| m.name.clone()));
    let mut api_ip = vec![IpAddr::V4(plan.kubernetes_service_ip), loopback[0]];
    api_ip.extend(ips(plan.masters().flat_map(|m| [m.fixed_ip, m.floating_ip]).flatten()));
    api_ip.extend(ips(api_ips.iter().copied()));
    dedup(&mut api_ip);
    leaves.push(CertSpec {
        file_stem: "apiserver".into(),
        issuer: CaId::Cluster,
        common_name: "kube-apiserver".into(),
        organizations: Vec::new(),
        dns_names: api_dns,
        ip_addresses: api_ip,
        usages: vec![Usage::Server],
    });
    // The API server's identity towards kubelets (logs, exec): only masters hold it.
    leaves.push(client("apiserver-kubelet-client", CaId::Cluster, "kube-apiserver-kubelet-client", &["system:masters"]));
    leaves.push(client("apiserver-etcd-client", CaId::Etcd, "kube-apiserver-etcd-client", &[]));
    leaves.push(client("front-proxy-client", CaId::FrontProxy, "front-proxy-client", &[]));
    leaves.push(client("controller-manager", CaId::Cluster, "system:kube-controller-manager", &[]));
    leaves.push(client("scheduler", CaId::Cluster, "system:kube-scheduler", &[]));
    leaves.push(client("kube-proxy", CaId::Cluster, "system:kube-proxy", &[]));
    leaves.push(client("admin", CaId::Cluster, "kubernetes-admin", &[CLUSTER_ADMINS_GROUP]));
    // Break-glass identity that bypasses RBAC; stays on the operator's machine and is
    // used to create the binding that gives `admin` its rights.
    leaves.push(client("super-admin", CaId::Cluster, "kubernetes-super-admin", &["system:masters"]));

    for m in plan.masters() {
        let mut dns = vec![m.name.clone(), "localhost".to_string()];
        dns.dedup();
        let mut addrs = ips(m.fixed_ip);
        addrs.push(loopback[0]);
        addrs.push(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST));
        for kind in ["server", "peer"] {
            leaves.push(CertSpec {
                file_stem: format!("etcd/{kind}-{}", m.name),
                issuer: CaId::Etcd,
                common_name: m.name.clone(),
                organizations: Vec::new(),
                dns_names: dns.clone(),
                ip_addresses: addrs.clone(),
                usages: vec![Usage::Server, Usage::Client],
            });
        }
        leaves.push(client(&format!("etcd/healthcheck-client-{}", m.name), CaId::Etcd, "kube-etcd-healthcheck-client", &[]));
    }

    for n in &plan.nodes {
        leaves.push(client(
            &format!("nodes/{}/kubelet-client", n.name),
            CaId::Cluster,
            &format!("system:node:{}", n.name),
            &["system:nodes"],
        ));
        let mut addrs = ips([n.fixed_ip, n.floating_ip].into_iter().flatten());
        dedup(&mut addrs);
        leaves.push(CertSpec {
            file_stem: format!("nodes/{}/kubelet-server", n.name),
            issuer: CaId::Cluster,
            common_name: format!("system:node:{}", n.name),
            organizations: vec!["system:nodes".into()],
            dns_names: vec![n.name.clone()],
            ip_addresses: addrs.clone(),
            usages: vec![Usage::Server],
        });
        if docker_tls {
            let mut docker_addrs = addrs;
            docker_addrs.push(loopback[0]);
            leaves.push(CertSpec {
                file_stem: format!("nodes/{}/docker-server", n.name),
                issuer: CaId::Cluster,
                common_name: n.name.clone(),
                organizations: Vec::new(),
                dns_names: vec![n.name.clone(), "localhost".into()],
                ip_addresses: docker_addrs,
                usages: vec![Usage::Server],
            });
        }
    }
    if docker_tls {
        leaves.push(client("docker-client", CaId::Cluster, "kos-docker-client", &[]));
    }
    CertificatePlan { leaves }
}

fn dedup(v: &mut Vec<IpAddr>) {
    let mut seen = Vec::new();
    v.retain(|x| {
        let new = !seen.contains(x);
        seen.push(*x);
        new
    });
}
