//! Cluster add-ons applied through the API server once it answers: CoreDNS, and the
//! binding that gives the `admin` certificate's group its rights.
//!
//! Built as typed k8s-openapi objects. CoreDNS follows kubeadm's manifest, hardened so
//! that `checkov` passes without skips other than the image digest: non-root on an
//! unprivileged port setting, no capabilities, read-only root, and the API token mounted
//! explicitly instead of through automount.

use crate::{Inputs, Kind, RenderError, RenderedFile, object, to_yaml_documents};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, Container, ContainerPort, DownwardAPIProjection,
    DownwardAPIVolumeFile, HTTPGetAction, KeyToPath, ObjectFieldSelector, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecurityContext, Service, ServiceAccount,
    ServiceAccountTokenProjection, ServicePort, ServiceSpec, Sysctl, Toleration, Volume, VolumeMount, VolumeProjection,
    WeightedPodAffinityTerm,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kos_core::plan::certificates::CLUSTER_ADMINS_GROUP;
use kos_core::settings::DnsAddon;
use std::collections::BTreeMap;

/// The CoreDNS release kubeadm pins for the Kubernetes line kos deploys by default
/// (kubeadm 1.37's `CoreDNSVersion`; answers A, AAAA, PTR and SRV for services).
pub const COREDNS_VERSION: &str = "v1.14.6";

/// Where the add-on files go, relative to the operator's output folder.
pub const COREDNS_FILE: &str = "addons/coredns.yaml";
pub const CLUSTER_ADMINS_FILE: &str = "addons/cluster-admins.yaml";

const NAMESPACE: &str = "kube-system";
const COREDNS: &str = "coredns";
/// Port CoreDNS's health plugin answers on (liveness).
const HEALTH_PORT: i32 = 8080;
/// Port CoreDNS's ready plugin answers on (readiness).
const READY_PORT: i32 = 8181;
/// CoreDNS runs as the distroless image's `nonroot` user.
const NONROOT_UID: i64 = 65532;

/// Add-on manifests, as operator-side files under `addons/`.
pub fn render_addons(inputs: &Inputs<'_>) -> Result<Vec<RenderedFile>, RenderError> {
    let mut files = Vec::new();
    if inputs.settings.addons.dns == Some(DnsAddon::CoreDns) {
        files.push(RenderedFile::local(Kind::Addon, COREDNS_FILE, 0o644, coredns(inputs)?));
    }
    files.push(RenderedFile::local(Kind::Addon, CLUSTER_ADMINS_FILE, 0o644, cluster_admins()?));
    Ok(files)
}

/// `kos:cluster-admins` → `cluster-admin`. The `admin` certificate carries the group, so
/// deleting this binding disarms every copy of it without rotating the CA.
fn cluster_admins() -> Result<String, RenderError> {
    let binding = ClusterRoleBinding {
        metadata: meta(CLUSTER_ADMINS_GROUP, None, labels(&[("app.kubernetes.io/managed-by", "kos")])),
        role_ref: RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: "ClusterRole".into(), name: "cluster-admin".into() },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Group".into(),
            name: CLUSTER_ADMINS_GROUP.into(),
            namespace: None,
        }]),
    };
    to_yaml_documents(CLUSTER_ADMINS_FILE, &[object("ClusterRoleBinding", &binding)?])
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn meta(name: &str, namespace: Option<&str>, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: namespace.map(Into::into), labels: Some(labels), ..ObjectMeta::default() }
}

/// The Corefile: cluster names from the API, everything else forwarded to the node's
/// resolvers.
fn corefile(domain: &str) -> String {
    format!(
        r#".:53 {{
    errors
    health {{
        lameduck 5s
    }}
    ready
    kubernetes {domain} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    prometheus :9153
    forward . /etc/resolv.conf {{
        max_concurrent 1000
    }}
    cache 30 {{
        disable success {domain}
        disable denial {domain}
    }}
    loop
    reload
    loadbalance
}}
"#
    )
}

fn coredns(inputs: &Inputs<'_>) -> Result<String, RenderError> {
    let plan = inputs.plan;
    let app = labels(&[("k8s-app", "kube-dns")]);
    let with_app = |extra: &[(&str, &str)]| {
        let mut l = app.clone();
        l.extend(labels(extra));
        l
    };

    let account = ServiceAccount { metadata: meta(COREDNS, Some(NAMESPACE), app.clone()), ..ServiceAccount::default() };
    let role = ClusterRole {
        metadata: meta("system:coredns", None, app.clone()),
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(["endpoints", "services", "pods", "namespaces"].map(String::from).to_vec()),
                verbs: vec!["list".into(), "watch".into()],
                ..PolicyRule::default()
            },
            PolicyRule {
                api_groups: Some(vec!["discovery.k8s.io".into()]),
                resources: Some(vec!["endpointslices".into()]),
                verbs: vec!["list".into(), "watch".into()],
                ..PolicyRule::default()
            },
        ]),
        ..ClusterRole::default()
    };
    let binding = ClusterRoleBinding {
        metadata: meta("system:coredns", None, app.clone()),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "system:coredns".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: COREDNS.into(),
            namespace: Some(NAMESPACE.into()),
            api_group: None,
        }]),
    };
    let config = ConfigMap {
        metadata: meta(COREDNS, Some(NAMESPACE), app.clone()),
        data: Some(BTreeMap::from([("Corefile".to_string(), corefile(&plan.domain))])),
        ..ConfigMap::default()
    };
    let deployment = coredns_deployment(inputs, &app)?;
    let mut service_meta = meta("kube-dns", Some(NAMESPACE), with_app(&[("kubernetes.io/name", "CoreDNS")]));
    service_meta.annotations = Some(labels(&[("prometheus.io/port", "9153"), ("prometheus.io/scrape", "true")]));
    let port = |name: &str, protocol: &str, port: i32| ServicePort {
        name: Some(name.into()),
        protocol: Some(protocol.into()),
        port,
        target_port: Some(IntOrString::Int(port)),
        ..ServicePort::default()
    };
    let service = Service {
        metadata: service_meta,
        spec: Some(ServiceSpec {
            selector: Some(app.clone()),
            cluster_ip: Some(plan.dns_ip.to_string()),
            ports: Some(vec![port("dns", "UDP", 53), port("dns-tcp", "TCP", 53), port("metrics", "TCP", 9153)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    to_yaml_documents(
        COREDNS_FILE,
        &[
            object("ServiceAccount", &account)?,
            object("ClusterRole", &role)?,
            object("ClusterRoleBinding", &binding)?,
            object("ConfigMap", &config)?,
            object("Deployment", &deployment)?,
            object("Service", &service)?,
        ],
    )
}

/// CoreDNS's Deployment, hardened. Long because it is one typed object literal, read top to
/// bottom like the manifest it becomes; split up, its fields would be harder to review.
fn coredns_deployment(inputs: &Inputs<'_>, app: &BTreeMap<String, String>) -> Result<Deployment, RenderError> {
    let image = format!("{}/coredns/coredns:{COREDNS_VERSION}", inputs.settings.artifacts.image_repository);
    let quantity = |s: &str| Quantity(s.to_string());
    let http_probe = |path: &str, port: i32| HTTPGetAction {
        path: Some(path.into()),
        port: IntOrString::Int(port),
        scheme: Some("HTTP".into()),
        ..HTTPGetAction::default()
    };
    let container_port = |name: &str, port: i32, protocol: &str| ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some(protocol.into()),
        ..ContainerPort::default()
    };
    let container = Container {
        name: COREDNS.into(),
        image: Some(image),
        // Not `Always` (checkov CKV_K8S_15, skipped in .checkov.yaml): cluster DNS must be
        // able to restart while the registry is unreachable; the tag is pinned.
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec!["-conf".into(), "/etc/coredns/Corefile".into()]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([("cpu".into(), quantity("100m")), ("memory".into(), quantity("70Mi"))])),
            limits: Some(BTreeMap::from([("cpu".into(), quantity("1")), ("memory".into(), quantity("170Mi"))])),
            ..ResourceRequirements::default()
        }),
        ports: Some(vec![
            container_port("dns", 53, "UDP"),
            container_port("dns-tcp", 53, "TCP"),
            container_port("metrics", 9153, "TCP"),
            container_port("liveness-probe", HEALTH_PORT, "TCP"),
            container_port("readiness-probe", READY_PORT, "TCP"),
        ]),
        liveness_probe: Some(Probe {
            http_get: Some(http_probe("/health", HEALTH_PORT)),
            initial_delay_seconds: Some(60),
            timeout_seconds: Some(5),
            success_threshold: Some(1),
            failure_threshold: Some(5),
            ..Probe::default()
        }),
        readiness_probe: Some(Probe { http_get: Some(http_probe("/ready", READY_PORT)), ..Probe::default() }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            // Port 53 needs no capability: the pod's sysctl makes it unprivileged inside
            // the pod's own network namespace (see below).
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(NONROOT_UID),
            run_as_group: Some(NONROOT_UID),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "config-volume".into(),
                mount_path: "/etc/coredns".into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "kube-api-access".into(),
                mount_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    };

    let pod = PodSpec {
        service_account_name: Some(COREDNS.into()),
        // The token is mounted by the explicit projected volume below, the same one
        // automount would create; only this container sees it (checkov CKV_K8S_38).
        automount_service_account_token: Some(false),
        priority_class_name: Some("system-cluster-critical".into()),
        dns_policy: Some("Default".into()),
        node_selector: Some(labels(&[("kubernetes.io/os", "linux")])),
        tolerations: Some(vec![
            Toleration { key: Some("CriticalAddonsOnly".into()), operator: Some("Exists".into()), ..Toleration::default() },
            Toleration {
                key: Some("node-role.kubernetes.io/control-plane".into()),
                effect: Some("NoSchedule".into()),
                ..Toleration::default()
            },
        ]),
        affinity: Some(k8s_openapi::api::core::v1::Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector { match_labels: Some(app.clone()), ..LabelSelector::default() }),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..PodAffinityTerm::default()
                    },
                }]),
                ..PodAntiAffinity::default()
            }),
            ..Default::default()
        }),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(NONROOT_UID),
            run_as_group: Some(NONROOT_UID),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }),
            // A "safe" sysctl (allowed by every kubelet): binding :53 inside the pod's
            // network namespace without NET_BIND_SERVICE. Adding the capability would
            // not help a non-root process with allowPrivilegeEscalation=false (no
            // ambient capabilities, and no_new_privs ignores file capabilities).
            sysctls: Some(vec![Sysctl { name: "net.ipv4.ip_unprivileged_port_start".into(), value: "53".into() }]),
            ..PodSecurityContext::default()
        }),
        containers: vec![container],
        volumes: Some(vec![
            Volume {
                name: "config-volume".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: COREDNS.into(),
                    items: Some(vec![KeyToPath { key: "Corefile".into(), path: "Corefile".into(), mode: None, user: None }]),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
            service_account_volume(),
        ]),
        ..PodSpec::default()
    };

    Ok(Deployment {
        metadata: meta(COREDNS, Some(NAMESPACE), app.clone()),
        spec: DeploymentSpec {
            replicas: Some(2),
            selector: LabelSelector { match_labels: Some(app.clone()), ..LabelSelector::default() },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment { max_unavailable: Some(IntOrString::Int(1)), max_surge: None }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(app.clone()), ..ObjectMeta::default() }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    })
}

/// The volume the service-account admission plugin would inject: a bound, expiring
/// token, the cluster CA (`kube-root-ca.crt`) and the namespace.
fn service_account_volume() -> Volume {
    Volume {
        name: "kube-api-access".into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o444),
            default_user: None,
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        path: "token".into(),
                        expiration_seconds: Some(3607),
                        audience: None,
                        user: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".into(),
                        items: Some(vec![KeyToPath { key: "ca.crt".into(), path: "ca.crt".into(), mode: None, user: None }]),
                        optional: None,
                    }),
                    ..VolumeProjection::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector {
                                field_path: "metadata.namespace".into(),
                                api_version: Some("v1".into()),
                            }),
                            ..DownwardAPIVolumeFile::default()
                        }]),
                    }),
                    ..VolumeProjection::default()
                },
            ]),
        }),
        ..Volume::default()
    }
}

#[cfg(test)]
mod tests;
