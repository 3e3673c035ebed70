//! Kubeconfigs, built as kube's typed `Kubeconfig` with the certificates embedded, so
//! each file stands alone (no paths that differ between machines).

use crate::{Inputs, RenderError};
use base64::Engine as _;
use kube::config::{AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};

fn b64(pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem.as_bytes())
}

/// A kubeconfig with one cluster, one user and one context named `context`.
///
/// `server_url` is the API server's `https://host:port`; `ca_pem` the cluster CA;
/// `cert_pem`/`key_pem` the user's client certificate and key.
pub fn kubeconfig(
    context: &str,
    cluster_name: &str,
    server_url: &str,
    ca_pem: &str,
    user_name: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<String, RenderError> {
    let config = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster {
            name: cluster_name.into(),
            cluster: Some(Cluster { server: Some(server_url.into()), certificate_authority_data: Some(b64(ca_pem)), ..Cluster::default() }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user_name.into(),
            auth_info: Some(AuthInfo {
                client_certificate_data: Some(b64(cert_pem)),
                client_key_data: Some(b64(key_pem).into()),
                ..AuthInfo::default()
            }),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: context.into(),
            context: Some(Context { cluster: cluster_name.into(), user: Some(user_name.into()), ..Context::default() }),
            ..NamedContext::default()
        }],
        current_context: Some(context.into()),
        ..Kubeconfig::default()
    };
    crate::to_yaml("kubeconfig", &config)
}

/// A component's kubeconfig (kubelet, kube-proxy, controller-manager, scheduler):
/// cluster and context named after the cluster, user named `user_name`.
pub fn client_kubeconfig(
    inputs: &Inputs<'_>,
    ca_pem: &str,
    server_url: &str,
    user_name: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<String, RenderError> {
    let cluster = &inputs.plan.cluster;
    kubeconfig(&format!("{user_name}@{cluster}"), cluster, server_url, ca_pem, user_name, cert_pem, key_pem)
}

/// `https://127.0.0.1:<port>`: how components on a master reach their own API server
/// (no dependency on the network or a load balancer).
pub fn loopback_server_url(inputs: &Inputs<'_>) -> String {
    format!("https://127.0.0.1:{}", inputs.plan.api_port)
}
