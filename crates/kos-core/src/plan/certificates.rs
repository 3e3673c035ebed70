//! The certificates a cluster needs, as values.
//!
//! The plan decides *which* certificates exist, who signs them and what they say
//! (subject, SANs, usages); `kos-pki` turns these specs into keys and certificates
//! on disk and reuses what is already there. Keeping the list here, pure, lets unit
//! tests inspect every SAN without generating a single key.

use std::net::IpAddr;

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
