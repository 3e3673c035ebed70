//! A master's control plane: static pods for etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler (typed `Pod`s), their certificates and
//! keys, the component kubeconfigs, and the API server's encryption-at-rest, audit,
//! authentication and admission configs.
//!
//! Secure defaults: no insecure port anywhere; etcd speaks TLS to clients and peers and
//! demands client certificates; the API server authorises with `Node,RBAC`, accepts
//! anonymous requests only on its health paths, encrypts Secrets at rest and audits;
//! profiling is off; every component binds its own ports to loopback unless it must
//! serve the network.

use crate::kubeconfig::{client_kubeconfig, loopback_server_url};
use crate::{Inputs, Material, NodePhase, RenderError, RenderedFile, Unit, object, to_yaml};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ExecAction, HTTPGetAction, HostPathVolumeSource, Pod, PodSecurityContext, PodSpec, Probe,
    ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kos_core::plan::{CaId, NodePlan};
use kos_core::settings::ApiEndpoint;
use serde_json::json;
use std::collections::BTreeMap;

/// Where the control plane's files live on a master (kubeadm's layout).
pub const PKI: &str = "/etc/kubernetes/pki";
pub const MANIFESTS: &str = "/etc/kubernetes/manifests";
const ENCRYPTION_CONFIG: &str = "/etc/kubernetes/encryption-config.yaml";
const AUDIT_POLICY: &str = "/etc/kubernetes/audit-policy.yaml";
const AUTHENTICATION_CONFIG: &str = "/etc/kubernetes/authentication-config.yaml";
const ADMISSION_CONFIG: &str = "/etc/kubernetes/admission-config.yaml";
const AUDIT_LOG_DIR: &str = "/var/log/kubernetes/audit";
/// etcd's data directory on a master (0700: the kubelet's unit makes it so, see kubelet.service.j2).
pub const ETCD_DATA: &str = "/var/lib/etcd";

/// etcd image tag: the newest patch of the 3.7 series kubeadm 1.37 pairs (3.7.0-0); the
/// API servers of 1.35 and 1.36 support it too (their minimum is 3.5.24).
pub const ETCD_IMAGE_TAG: &str = "3.7.3-0";

/// TLS 1.2 suites allowed on every control-plane port (TLS 1.3 suites are not
/// configurable and all strong).
pub const TLS_CIPHER_SUITES: &str = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305";

/// Every file of one master beyond what every node gets.
pub fn render_master(inputs: &Inputs<'_>, node: &NodePlan, material: &dyn Material) -> Result<Vec<RenderedFile>, RenderError> {
    let mut files = Vec::new();
    let n = node.name.as_str();
    // The static pods' files: the kubelet reads them as it starts its pods; no unit restarts.
    let mut put =
        |path: String, mode: u32, contents: String| files.push(RenderedFile::node(n, NodePhase::Kubernetes, None, &path, mode, contents));

    // Certificates and keys. The cluster CA's key is here because the controller-manager
    // signs kubelet CSRs; the etcd and front-proxy CA keys stay on the operator's machine.
    put(format!("{PKI}/ca.key"), 0o600, material.ca_key(CaId::Cluster)?);
    put(format!("{PKI}/etcd/ca.crt"), 0o644, material.ca_cert(CaId::Etcd)?);
    put(format!("{PKI}/front-proxy-ca.crt"), 0o644, material.ca_cert(CaId::FrontProxy)?);
    for stem in ["apiserver", "apiserver-kubelet-client", "apiserver-etcd-client", "front-proxy-client"] {
        put(format!("{PKI}/{stem}.crt"), 0o644, material.cert(stem)?);
        put(format!("{PKI}/{stem}.key"), 0o600, material.key(stem)?);
    }
    for (kind, stem) in [("server", "server"), ("peer", "peer"), ("healthcheck-client", "healthcheck-client")] {
        let source = format!("etcd/{stem}-{n}");
        put(format!("{PKI}/etcd/{kind}.crt"), 0o644, material.cert(&source)?);
        put(format!("{PKI}/etcd/{kind}.key"), 0o600, material.key(&source)?);
    }
    put(format!("{PKI}/sa.key"), 0o600, material.sa_key()?);
    put(format!("{PKI}/sa.pub"), 0o644, material.sa_pub()?);

    // Components on a master talk to their own API server over loopback.
    let ca = material.ca_cert(CaId::Cluster)?;
    let server = loopback_server_url(inputs);
    for (file, stem, user) in [
        ("controller-manager.conf", "controller-manager", "system:kube-controller-manager"),
        ("scheduler.conf", "scheduler", "system:kube-scheduler"),
    ] {
        let kc = client_kubeconfig(inputs, &ca, &server, user, &material.cert(stem)?, &material.key(stem)?)?;
        put(format!("/etc/kubernetes/{file}"), 0o600, kc);
    }

    put(ENCRYPTION_CONFIG.into(), 0o600, encryption_config(&material.encryption_key()?)?);
    put(AUDIT_POLICY.into(), 0o644, audit_policy()?);
    put(AUTHENTICATION_CONFIG.into(), 0o644, authentication_config()?);
    put(ADMISSION_CONFIG.into(), 0o644, admission_config()?);

    let pods = [
        ("etcd", etcd_pod(inputs, node)?),
        ("kube-apiserver", apiserver_pod(inputs, node)?),
        ("kube-controller-manager", controller_manager_pod(inputs)?),
        ("kube-scheduler", scheduler_pod(inputs)?),
    ];
    for (name, pod) in pods {
        // A pod restarts when a file it reads only as it starts changes: the controller-
        // manager and the scheduler read all of theirs so (kubeconfigs, keys); the API server
        // reads its serving, client-CA, kubelet-client and front-proxy certificates again
        // by itself, but its etcd client certificate, service-account keys and configs
        // only as it starts. etcd reads its certificates again by itself.
        let pod = match read_only_at_start(name) {
            Some(read_at_start) => with_files_hash(pod, &files, read_at_start),
            None => pod,
        };
        files.push(manifest_file(node, name, &pod)?);
    }
    Ok(files)
}

/// The files the API server reads again by itself when they change (its dynamic
/// certificate controllers), so a renewal of them needs no restart. Every other file it
/// mounts from kos, the etcd client certificate among them, it reads only as it starts.
const RELOADED_BY_APISERVER: [&str; 9] = [
    "/etc/kubernetes/pki/ca.crt",
    "/etc/kubernetes/pki/apiserver.crt",
    "/etc/kubernetes/pki/apiserver.key",
    "/etc/kubernetes/pki/apiserver-kubelet-client.crt",
    "/etc/kubernetes/pki/apiserver-kubelet-client.key",
    "/etc/kubernetes/pki/front-proxy-ca.crt",
    "/etc/kubernetes/pki/front-proxy-client.crt",
    "/etc/kubernetes/pki/front-proxy-client.key",
    AUTHENTICATION_CONFIG,
];

/// Which of the files it mounts a control-plane pod reads only as it starts (their hash
/// restarts it), or `None` for a pod that reads all of them again by itself (etcd).
fn read_only_at_start(pod: &str) -> Option<fn(&str) -> bool> {
    match pod {
        "kube-controller-manager" | "kube-scheduler" => Some(|_| true),
        "kube-apiserver" => Some(|path| !RELOADED_BY_APISERVER.contains(&path)),
        _ => None,
    }
}

/// The annotation of a control-plane pod that hashes the files it mounts.
pub const FILES_HASH: &str = "kos.io/files-sha256";

/// `pod` with [`FILES_HASH`]: the SHA-256 of every file of `files` it mounts and `read_at_start`
/// keeps (path and contents), so a renewed client certificate in its kubeconfig changes its
/// manifest and the kubelet starts it again with it; a cluster of several masters gets such
/// changes one master at a time (`kos up`).
fn with_files_hash(mut pod: Pod, files: &[RenderedFile], read_at_start: fn(&str) -> bool) -> Pod {
    let mounted: Vec<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| Some(v.host_path.as_ref()?.path.trim_end_matches('/').to_string()))
        .collect();
    let under = |path: &str| mounted.iter().any(|m| path == m || path.strip_prefix(m.as_str()).is_some_and(|rest| rest.starts_with('/')));
    let listing: String = files
        .iter()
        .filter(|f| under(&f.path) && read_at_start(&f.path))
        .map(|f| format!("{} {}\n", crate::sha256_hex(f.contents.as_bytes()), f.path))
        .collect();
    pod.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(FILES_HASH.into(), crate::sha256_hex(listing.as_bytes()));
    pod
}

/// A static pod's manifest on `node`, in the kubelet's folder, 0600 as CIS 1.1.1 asks.
/// Writing it where there was none restarts the kubelet: a kubelet that started without an
/// API server to reach (a joining master's, with only its etcd manifest) leaves a static
/// pod added later waiting for its volumes for minutes (kubernetes/kubernetes#103658);
/// restarted, it runs it at once, as a kubelet that starts with its manifests in place
/// does. A changed manifest the kubelet takes by itself (it replaces the pod), so that
/// restarts nothing.
pub(crate) fn manifest_file(node: &NodePlan, name: &str, pod: &Pod) -> Result<RenderedFile, RenderError> {
    let path = format!("{MANIFESTS}/{name}.yaml");
    let contents = to_yaml(name, &object(name, pod)?)?;
    Ok(RenderedFile::node(&node.name, NodePhase::Kubernetes, None, &path, 0o600, contents).restarting_if_new(Unit::Kubelet))
}

/// The node's fixed IP, which every master has once rendering is possible.
pub(crate) fn address(node: &NodePlan) -> Result<std::net::Ipv4Addr, RenderError> {
    node.fixed_ip.ok_or_else(|| RenderError::AddressUnknown { what: format!("node `{}`", node.name) })
}

fn image(inputs: &Inputs<'_>, name: &str) -> String {
    format!("{}/{name}:v{}", inputs.settings.artifacts.image_repository, inputs.plan.version)
}

/// A host folder or file mounted into a control-plane container.
struct Mount {
    name: &'static str,
    host: &'static str,
    read_only: bool,
    /// `Directory`, `DirectoryOrCreate`, `File`.
    kind: &'static str,
}

const fn mount(name: &'static str, host: &'static str, read_only: bool, kind: &'static str) -> Mount {
    Mount { name, host, read_only, kind }
}

fn https_probe(host: &str, port: i32, path: &str, initial: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            host: Some(host.into()),
            path: Some(path.into()),
            port: IntOrString::Int(port),
            scheme: Some("HTTPS".into()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(10),
        timeout_seconds: Some(15),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn quantity(s: &str) -> Quantity {
    Quantity(s.into())
}

/// A control-plane static pod: host network (it *is* the network's API), its own
/// seccomp profile, no capabilities, read-only root, no service-account token.
fn static_pod(
    name: &str,
    image: String,
    command: Vec<String>,
    mounts: &[Mount],
    probes: (Probe, Probe, Probe),
    requests: (&str, &str),
) -> Pod {
    let (liveness, readiness, startup) = probes;
    let container = Container {
        name: name.into(),
        image: Some(image),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(command),
        volume_mounts: Some(
            mounts
                .iter()
                .map(|m| VolumeMount {
                    name: m.name.into(),
                    mount_path: m.host.into(),
                    read_only: Some(m.read_only),
                    ..VolumeMount::default()
                })
                .collect(),
        ),
        liveness_probe: Some(liveness),
        readiness_probe: Some(readiness),
        startup_probe: Some(startup),
        resources: Some(requests_of(requests)),
        security_context: Some(locked_down(&[], None)),
        ..Container::default()
    };
    let volumes = mounts
        .iter()
        .map(|m| Volume {
            name: m.name.into(),
            host_path: Some(HostPathVolumeSource { path: m.host.into(), type_: Some(m.kind.into()) }),
            ..Volume::default()
        })
        .collect();
    host_network_pod(name, "control-plane", None, container, volumes)
}

/// A kube-system static pod named `name` on the host's network, labelled with its
/// component and `tier`: system-node-critical, no service-account token, the runtime's
/// seccomp profile; one container, as given.
pub(crate) fn host_network_pod(
    name: &str,
    tier: &str,
    annotations: Option<BTreeMap<String, String>>,
    container: Container,
    volumes: Vec<Volume>,
) -> Pod {
    let labels = BTreeMap::from([("component".to_string(), name.to_string()), ("tier".to_string(), tier.to_string())]);
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("kube-system".into()),
            labels: Some(labels),
            annotations,
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            host_network: Some(true),
            priority_class_name: Some("system-node-critical".into()),
            automount_service_account_token: Some(false),
            security_context: Some(PodSecurityContext { seccomp_profile: Some(runtime_default()), ..PodSecurityContext::default() }),
            containers: vec![container],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// A container's security: no privilege escalation, not privileged, read-only root, every
/// capability dropped but `add`, the runtime's seccomp profile; with `user`, that user and
/// group, and never root.
pub(crate) fn locked_down(add: &[&str], user: Option<i64>) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_user: user,
        run_as_group: user,
        run_as_non_root: user.map(|_| true),
        capabilities: Some(Capabilities {
            add: (!add.is_empty()).then(|| add.iter().map(|c| c.to_string()).collect()),
            drop: Some(vec!["ALL".into()]),
        }),
        seccomp_profile: Some(runtime_default()),
        ..SecurityContext::default()
    }
}

/// CPU and memory requests.
pub(crate) fn requests_of((cpu, memory): (&str, &str)) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([("cpu".to_string(), quantity(cpu)), ("memory".to_string(), quantity(memory))])),
        ..ResourceRequirements::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }
}

fn flags(binary: &str, flags: &[(&str, String)]) -> Vec<String> {
    std::iter::once(binary.to_string()).chain(flags.iter().map(|(k, v)| format!("--{k}={v}"))).collect()
}

/// etcd's command line, by itself: the etcd test starts a real etcd from it.
pub fn etcd_flags(inputs: &Inputs<'_>, node: &NodePlan) -> Result<Vec<(&'static str, String)>, RenderError> {
    let ip = address(node)?;
    // The members it starts with (see kos_core::plan::membership): the first master makes a
    // new cluster of itself, every later one joins the masters before it. etcd reads these
    // only while its data directory is empty.
    let start = node.etcd.as_ref().ok_or_else(|| RenderError::NotAMaster { node: node.name.clone() })?;
    let mut initial = Vec::new();
    for name in &start.initial {
        let m = inputs.plan.node(name).ok_or_else(|| RenderError::NotAMaster { node: name.clone() })?;
        initial.push(format!("{}=https://{}:2380", m.name, address(m)?));
    }
    let mut state = if start.is_first() { "new" } else { "existing" }.to_string();
    let mut initial = initial.join(",");
    // A member that started once keeps the flags it started with (etcd ignores them now).
    if let Some(kept) = inputs.env.facts(&node.name).etcd_started_with.filter(|k| !k.members.is_empty() && !k.state.is_empty()) {
        (initial, state) = (kept.members, kept.state);
    }
    let pki = format!("{PKI}/etcd");
    Ok(vec![
        ("name", node.name.clone()),
        ("data-dir", ETCD_DATA.into()),
        ("listen-client-urls", format!("https://127.0.0.1:2379,https://{ip}:2379")),
        ("advertise-client-urls", format!("https://{ip}:2379")),
        ("listen-peer-urls", format!("https://{ip}:2380")),
        ("initial-advertise-peer-urls", format!("https://{ip}:2380")),
        ("initial-cluster", initial),
        ("initial-cluster-state", state),
        ("initial-cluster-token", inputs.plan.cluster.clone()),
        ("client-cert-auth", "true".into()),
        ("trusted-ca-file", format!("{pki}/ca.crt")),
        ("cert-file", format!("{pki}/server.crt")),
        ("key-file", format!("{pki}/server.key")),
        ("peer-client-cert-auth", "true".into()),
        ("peer-trusted-ca-file", format!("{pki}/ca.crt")),
        ("peer-cert-file", format!("{pki}/peer.crt")),
        ("peer-key-file", format!("{pki}/peer.key")),
        ("auto-tls", "false".into()),
        ("peer-auto-tls", "false".into()),
        ("cipher-suites", TLS_CIPHER_SUITES.into()),
        ("snapshot-count", "10000".into()),
    ])
}

fn etcd_pod(inputs: &Inputs<'_>, node: &NodePlan) -> Result<Pod, RenderError> {
    let command = flags("etcd", &etcd_flags(inputs, node)?);
    // No plaintext metrics port to probe: the probe asks etcd itself over TLS with the
    // health-check client certificate made for exactly this.
    let health = |initial: i32, failures: i32| Probe {
        exec: Some(ExecAction {
            command: Some(
                [
                    "etcdctl",
                    "--endpoints=https://127.0.0.1:2379",
                    "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
                    "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
                    "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
                    "--command-timeout=5s",
                    "endpoint",
                    "health",
                ]
                .map(String::from)
                .to_vec(),
            ),
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(10),
        timeout_seconds: Some(15),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    let image = format!("{}/etcd:{ETCD_IMAGE_TAG}", inputs.settings.artifacts.image_repository);
    Ok(static_pod(
        "etcd",
        image,
        command,
        &[mount("etcd-data", ETCD_DATA, false, "DirectoryOrCreate"), mount("etcd-certs", "/etc/kubernetes/pki/etcd", true, "Directory")],
        (health(10, 8), health(0, 3), health(10, 24)),
        ("100m", "100Mi"),
    ))
}

/// The API server's command line.
pub fn apiserver_flags(inputs: &Inputs<'_>, node: &NodePlan) -> Result<Vec<(&'static str, String)>, RenderError> {
    let plan = inputs.plan;
    let ip = address(node)?;
    let mut flags = vec![
        ("advertise-address", ip.to_string()),
        ("secure-port", plan.api_port.to_string()),
        ("allow-privileged", "true".into()),
        ("authorization-mode", "Node,RBAC".into()),
        // Anonymous requests only on /livez, /readyz, /healthz (probes, load balancer
        // health checks); everything else needs a client certificate or token.
        ("authentication-config", AUTHENTICATION_CONFIG.into()),
        ("client-ca-file", format!("{PKI}/ca.crt")),
        ("enable-admission-plugins", "NamespaceLifecycle,ServiceAccount,NodeRestriction,EventRateLimit".into()),
        ("admission-control-config-file", ADMISSION_CONFIG.into()),
        ("etcd-servers", "https://127.0.0.1:2379".into()),
        ("etcd-cafile", format!("{PKI}/etcd/ca.crt")),
        ("etcd-certfile", format!("{PKI}/apiserver-etcd-client.crt")),
        ("etcd-keyfile", format!("{PKI}/apiserver-etcd-client.key")),
        ("kubelet-client-certificate", format!("{PKI}/apiserver-kubelet-client.crt")),
        ("kubelet-client-key", format!("{PKI}/apiserver-kubelet-client.key")),
        ("kubelet-certificate-authority", format!("{PKI}/ca.crt")),
        ("kubelet-preferred-address-types", "InternalIP,Hostname".into()),
        ("proxy-client-cert-file", format!("{PKI}/front-proxy-client.crt")),
        ("proxy-client-key-file", format!("{PKI}/front-proxy-client.key")),
        ("requestheader-client-ca-file", format!("{PKI}/front-proxy-ca.crt")),
        ("requestheader-allowed-names", "front-proxy-client".into()),
        ("requestheader-extra-headers-prefix", "X-Remote-Extra-".into()),
        ("requestheader-group-headers", "X-Remote-Group".into()),
        ("requestheader-username-headers", "X-Remote-User".into()),
        ("service-account-issuer", format!("https://kubernetes.default.svc.{}", plan.domain)),
        ("service-account-key-file", format!("{PKI}/sa.pub")),
        ("service-account-signing-key-file", format!("{PKI}/sa.key")),
        ("service-account-lookup", "true".into()),
        // CIS 1.2.30: a projected service-account token expires when it says it does (the
        // kubelet renews it at 80 % of its life), not a year later for clients that never
        // re-read it; every client-go since 1.15 re-reads it.
        ("service-account-extend-token-expiration", "false".into()),
        ("service-cluster-ip-range", plan.service_cidr.to_string()),
        ("tls-cert-file", format!("{PKI}/apiserver.crt")),
        ("tls-private-key-file", format!("{PKI}/apiserver.key")),
        ("tls-min-version", "VersionTLS12".into()),
        ("tls-cipher-suites", TLS_CIPHER_SUITES.into()),
        ("encryption-provider-config", ENCRYPTION_CONFIG.into()),
        ("audit-policy-file", AUDIT_POLICY.into()),
        ("audit-log-path", format!("{AUDIT_LOG_DIR}/audit.log")),
        ("audit-log-maxage", "30".into()),
        ("audit-log-maxbackup", "10".into()),
        ("audit-log-maxsize", "100".into()),
        ("request-timeout", "60s".into()),
        // Asked to stop, it ends its watches (their clients list and watch again elsewhere)
        // within 5 s, then exits; without it the open watches hold it until the kubelet kills
        // it after its 30 s grace (measured behind a VIP: a restart from ~44 s to ~15 s, 8 s of
        // it the shutdown delay).
        ("shutdown-watch-termination-grace-period", "5s".into()),
        ("profiling", "false".into()),
    ];
    if let Some(delay) = shutdown_delay(plan.api_endpoint) {
        flags.push(("shutdown-delay-duration", delay.into()));
    }
    Ok(flags)
}

/// How long an API server that is asked to stop (a restart by the kubelet: a new version,
/// a renewed etcd client certificate) keeps serving while its `/readyz` fails, so the
/// API's endpoint stops sending to it before it stops: keepalived moves the VIP after 2
/// failed checks a second apart, each node's haproxy drops it after 2 failed checks 2 s
/// apart (see the endpoint templates), Octavia's monitor after 3 failed checks 5 s apart.
/// A single master's API has nowhere else to go: no delay.
fn shutdown_delay(endpoint: ApiEndpoint) -> Option<&'static str> {
    match endpoint {
        ApiEndpoint::Master => None,
        ApiEndpoint::Vip => Some("8s"),
        ApiEndpoint::Octavia => Some("20s"),
    }
}

fn apiserver_pod(inputs: &Inputs<'_>, node: &NodePlan) -> Result<Pod, RenderError> {
    let ip = address(node)?.to_string();
    let port = i32::from(inputs.plan.api_port);
    Ok(static_pod(
        "kube-apiserver",
        image(inputs, "kube-apiserver"),
        flags("kube-apiserver", &apiserver_flags(inputs, node)?),
        &[
            mount("k8s-certs", PKI, true, "Directory"),
            mount("encryption-config", ENCRYPTION_CONFIG, true, "File"),
            mount("audit-policy", AUDIT_POLICY, true, "File"),
            mount("authentication-config", AUTHENTICATION_CONFIG, true, "File"),
            mount("admission-config", ADMISSION_CONFIG, true, "File"),
            mount("audit-log", AUDIT_LOG_DIR, false, "DirectoryOrCreate"),
            mount("ca-certs", "/etc/ssl/certs", true, "DirectoryOrCreate"),
        ],
        (https_probe(&ip, port, "/livez", 10, 8), https_probe(&ip, port, "/readyz", 0, 3), https_probe(&ip, port, "/livez", 10, 24)),
        ("250m", "256Mi"),
    ))
}

/// The controller-manager's command line.
pub fn controller_manager_flags(inputs: &Inputs<'_>) -> Vec<(&'static str, String)> {
    let plan = inputs.plan;
    let kubeconfig = "/etc/kubernetes/controller-manager.conf".to_string();
    vec![
        ("kubeconfig", kubeconfig.clone()),
        ("authentication-kubeconfig", kubeconfig.clone()),
        ("authorization-kubeconfig", kubeconfig),
        ("bind-address", "127.0.0.1".into()),
        ("client-ca-file", format!("{PKI}/ca.crt")),
        ("requestheader-client-ca-file", format!("{PKI}/front-proxy-ca.crt")),
        ("cluster-name", plan.cluster.clone()),
        // kos gives each node its pod range (recorded on the instance, routed by the
        // Neutron router); the controller-manager must not hand out others.
        ("allocate-node-cidrs", "false".into()),
        ("cluster-cidr", plan.pod_cidr.to_string()),
        ("service-cluster-ip-range", plan.service_cidr.to_string()),
        ("cluster-signing-cert-file", format!("{PKI}/ca.crt")),
        ("cluster-signing-key-file", format!("{PKI}/ca.key")),
        ("root-ca-file", format!("{PKI}/ca.crt")),
        ("service-account-private-key-file", format!("{PKI}/sa.key")),
        ("use-service-account-credentials", "true".into()),
        ("controllers", "*,bootstrapsigner,tokencleaner".into()),
        ("leader-elect", "true".into()),
        ("terminated-pod-gc-threshold", "1000".into()),
        ("tls-min-version", "VersionTLS12".into()),
        ("tls-cipher-suites", TLS_CIPHER_SUITES.into()),
        ("profiling", "false".into()),
    ]
}

fn controller_manager_pod(inputs: &Inputs<'_>) -> Result<Pod, RenderError> {
    let probe = |initial, failures| https_probe("127.0.0.1", 10257, "/healthz", initial, failures);
    Ok(static_pod(
        "kube-controller-manager",
        image(inputs, "kube-controller-manager"),
        flags("kube-controller-manager", &controller_manager_flags(inputs)),
        &[
            mount("k8s-certs", PKI, true, "Directory"),
            mount("kubeconfig", "/etc/kubernetes/controller-manager.conf", true, "File"),
            mount("ca-certs", "/etc/ssl/certs", true, "DirectoryOrCreate"),
        ],
        (probe(10, 8), probe(0, 3), probe(10, 24)),
        ("200m", "128Mi"),
    ))
}

/// The scheduler's command line.
pub fn scheduler_flags() -> Vec<(&'static str, String)> {
    let kubeconfig = "/etc/kubernetes/scheduler.conf".to_string();
    vec![
        ("kubeconfig", kubeconfig.clone()),
        ("authentication-kubeconfig", kubeconfig.clone()),
        ("authorization-kubeconfig", kubeconfig),
        ("bind-address", "127.0.0.1".into()),
        ("leader-elect", "true".into()),
        ("tls-min-version", "VersionTLS12".into()),
        ("tls-cipher-suites", TLS_CIPHER_SUITES.into()),
        ("profiling", "false".into()),
    ]
}

fn scheduler_pod(inputs: &Inputs<'_>) -> Result<Pod, RenderError> {
    let probe = |initial, failures| https_probe("127.0.0.1", 10259, "/healthz", initial, failures);
    Ok(static_pod(
        "kube-scheduler",
        image(inputs, "kube-scheduler"),
        flags("kube-scheduler", &scheduler_flags()),
        &[mount("kubeconfig", "/etc/kubernetes/scheduler.conf", true, "File")],
        (probe(10, 8), probe(0, 3), probe(10, 24)),
        ("100m", "64Mi"),
    ))
}

/// Secrets encrypted with secretbox (XSalsa20-Poly1305); `identity` last so Secrets
/// written before encryption was on can still be read (and get rewritten encrypted).
fn encryption_config(key_b64: &str) -> Result<String, RenderError> {
    to_yaml(
        "encryption config",
        &json!({
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "EncryptionConfiguration",
            "resources": [{
                "resources": ["secrets"],
                "providers": [
                    {"secretbox": {"keys": [{"name": "key1", "secret": key_b64}]}},
                    {"identity": {}}
                ]
            }]
        }),
    )
}

/// Metadata for everything (never request bodies of Secrets, ConfigMaps or token
/// reviews), nothing for health checks and the high-volume reads of system components.
fn audit_policy() -> Result<String, RenderError> {
    to_yaml(
        "audit policy",
        &json!({
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [
                {"level": "None", "nonResourceURLs": ["/healthz*", "/livez*", "/readyz*", "/version"]},
                {"level": "None", "users": ["system:kube-proxy"], "verbs": ["watch"],
                 "resources": [{"group": "", "resources": ["endpoints", "services"]},
                               {"group": "discovery.k8s.io", "resources": ["endpointslices"]}]},
                {"level": "None", "userGroups": ["system:nodes"], "verbs": ["get"],
                 "resources": [{"group": "", "resources": ["nodes", "nodes/status"]}]},
                {"level": "None", "users": ["system:kube-controller-manager", "system:kube-scheduler"], "verbs": ["get", "update"],
                 "namespaces": ["kube-system"], "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}]},
                {"level": "Metadata", "resources": [{"group": "", "resources": ["secrets", "configmaps", "serviceaccounts/token"]},
                                                    {"group": "authentication.k8s.io", "resources": ["tokenreviews"]}]},
                {"level": "Metadata"}
            ]
        }),
    )
}

/// Structured authentication (GA since 1.34): anonymous only for health paths.
fn authentication_config() -> Result<String, RenderError> {
    to_yaml(
        "authentication config",
        &json!({
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "AuthenticationConfiguration",
            "anonymous": {
                "enabled": true,
                "conditions": [{"path": "/livez"}, {"path": "/readyz"}, {"path": "/healthz"}]
            }
        }),
    )
}

/// EventRateLimit: one misbehaving client cannot flood the API server with events.
fn admission_config() -> Result<String, RenderError> {
    to_yaml(
        "admission config",
        &json!({
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "AdmissionConfiguration",
            "plugins": [{
                "name": "EventRateLimit",
                "configuration": {
                    "apiVersion": "eventratelimit.admission.k8s.io/v1alpha1",
                    "kind": "Configuration",
                    "limits": [
                        {"type": "Server", "qps": 50, "burst": 100},
                        {"type": "Namespace", "qps": 20, "burst": 50, "cacheSize": 2000}
                    ]
                }
            }]
        }),
    )
}

#[cfg(test)]
mod tests;
