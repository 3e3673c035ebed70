//! Applying the add-on manifests (kos-render's `addons/*.yaml`) through the API server:
//! [`wait_for_api`] until it is ready, within a bound, then [`apply`] each object with
//! server-side apply as field manager `kos`.
//!
//! Objects are mapped to their API endpoints from a small table built from k8s-openapi's
//! own constants (plural, scope), not by discovery: kos applies only the kinds it
//! renders, the mapping is then checked by a unit test with no server, and a kind kos
//! does not know is refused before anything is sent. Every document is checked before
//! the first request, so a bad manifest applies nothing.

use http::Request;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::discovery::ApiResource;
use kube::{Client, Config};
use std::time::Duration;
use tokio::time::Instant;

/// The field manager of everything kos applies.
pub const FIELD_MANAGER: &str = "kos";

/// How long one readiness request may take (connect, TLS, answer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between readiness requests.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Why add-ons could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum AddonError {
    #[error("the admin kubeconfig is not usable")]
    Kubeconfig(#[source] KubeconfigError),
    #[error("cannot build the Kubernetes API client")]
    Client(#[source] kube::Error),
    #[error(
        "the API server at {server} was not ready within {} s (last: {last}); the add-ons were not applied: run `kos up --only addons` once it answers",
        waited.as_secs()
    )]
    NotReady { server: String, waited: Duration, last: String },
    #[error("{file}: document {index} is not a Kubernetes object kos can apply: {reason}")]
    Manifest { file: String, index: usize, reason: String },
    #[error(
        "{file}: {kind} `{name}` ({api_version}) is not a kind kos knows how to apply (known: {known}); nothing was applied"
    )]
    UnknownKind { file: String, api_version: String, kind: String, name: String, known: String },
    #[error(
        "cannot apply {object} from {file}: {reason}; the objects before it were applied, run `kos up --only addons` again once this is fixed"
    )]
    Apply { object: String, file: String, reason: String },
}

/// Build a client from the admin kubeconfig and wait, at most `wait`, until the API
/// server answers `GET /readyz` with `ok`.
///
/// Each request is bounded too, so the whole wait ends within `wait` plus at most one
/// second. A TLS server that is not an API server (anything answering other than `ok`)
/// is not ready either.
pub async fn wait_for_api(kubeconfig_yaml: &str, wait: Duration) -> Result<Client, AddonError> {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig_yaml).map_err(AddonError::Kubeconfig)?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(AddonError::Kubeconfig)?;
    config.connect_timeout = Some(ATTEMPT_TIMEOUT);
    config.read_timeout = Some(ATTEMPT_TIMEOUT);
    config.write_timeout = Some(ATTEMPT_TIMEOUT);
    let server = config.cluster_url.to_string().trim_end_matches('/').to_string();
    let client = Client::try_from(config).map_err(AddonError::Client)?;

    let deadline = Instant::now() + wait;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let bound = ATTEMPT_TIMEOUT.min(remaining).max(Duration::from_secs(1));
        let last = match tokio::time::timeout(bound, ready(&client)).await {
            Ok(Ok(())) => return Ok(client),
            Ok(Err(e)) => e,
            Err(_) => format!("no answer within {} s", bound.as_secs()),
        };
        if Instant::now() + POLL_INTERVAL >= deadline {
            return Err(AddonError::NotReady { server, waited: wait, last });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// One readiness request: `Ok` only for the API server's literal `ok`.
async fn ready(client: &Client) -> Result<(), String> {
    let request = Request::get("/readyz").body(Vec::new()).map_err(|e| e.to_string())?;
    let body = client.request_text(request).await.map_err(|e| describe(&e))?;
    if body.trim() == "ok" {
        Ok(())
    } else {
        Err(format!("GET /readyz answered `{}` instead of `ok`; is this a Kubernetes API server?", one_line(&body, 60)))
    }
}

/// One object applied, and what the apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// `ConfigMap`, `ClusterRoleBinding`, ...
    pub kind: String,
    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub name: String,
    pub outcome: Outcome,
}

/// What server-side apply did to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// The object existed and changed.
    Configured,
    /// The object existed and the apply changed nothing (same resourceVersion).
    Unchanged,
}

impl std::fmt::Display for Applied {
    /// `ConfigMap kube-system/coredns: unchanged`, kubectl's words.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let outcome = match self.outcome {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        };
        write!(f, "{} {}: {outcome}", self.kind, self.name)
    }
}

/// Server-side apply (field manager `kos`, taking over conflicting fields) of every
/// object of `manifests` (file name, multi-document YAML), in order.
///
/// Every document is mapped before the first request: a document that is not an object
/// or of a kind kos does not know applies nothing. Before each apply the object is read,
/// so that an apply that changed nothing (the server keeps the resourceVersion) is
/// reported as [`Outcome::Unchanged`] and a re-run of `kos up` can say so.
pub async fn apply(client: &Client, manifests: &[(String, String)]) -> Result<Vec<Applied>, AddonError> {
    let objects = objects(manifests)?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Vec::with_capacity(objects.len());
    for o in objects {
        let api: Api<DynamicObject> = match &o.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &o.resource),
            None => Api::all_with(client.clone(), &o.resource),
        };
        let failed =
            |e: kube::Error| AddonError::Apply { object: o.describe(), file: o.file.clone(), reason: describe(&e) };
        let before = api.get_opt(&o.name).await.map_err(failed)?.map(|b| b.metadata.resource_version);
        let after = api.patch(&o.name, &params, &Patch::Apply(&o.object)).await.map_err(failed)?;
        let outcome = match before {
            None => Outcome::Created,
            Some(version) if version.is_some() && version == after.metadata.resource_version => Outcome::Unchanged,
            Some(_) => Outcome::Configured,
        };
        applied.push(Applied { kind: o.resource.kind.clone(), name: o.qualified_name(), outcome });
    }
    Ok(applied)
}

/// A document of a manifest, ready to apply.
#[derive(Debug, Clone)]
struct Object {
    file: String,
    resource: ApiResource,
    /// `None` for cluster-scoped kinds.
    namespace: Option<String>,
    name: String,
    object: DynamicObject,
}

impl Object {
    fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    fn describe(&self) -> String {
        format!("{} {}", self.resource.kind, self.qualified_name())
    }
}

/// A kind kos applies: its endpoint and scope.
#[derive(Debug, Clone)]
struct Kind {
    resource: ApiResource,
    namespaced: bool,
}

/// Namespaced or cluster-scoped, from k8s-openapi's scope types.
trait Scope {
    const NAMESPACED: bool;
}
impl Scope for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Scope for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}

fn kind<K>() -> Kind
where
    K: k8s_openapi::Resource + kube::Resource<DynamicType = ()>,
    <K as k8s_openapi::Resource>::Scope: Scope,
{
    Kind {
        resource: ApiResource::erase::<K>(&()),
        namespaced: <<K as k8s_openapi::Resource>::Scope as Scope>::NAMESPACED,
    }
}

/// Every kind kos may apply: those kos-render's add-ons use, and the few a cluster
/// add-on commonly adds (so a new add-on rarely needs a change here).
fn known_kinds() -> Vec<Kind> {
    use k8s_openapi::api::{apps, core, policy, rbac};
    vec![
        kind::<core::v1::Namespace>(),
        kind::<core::v1::ServiceAccount>(),
        kind::<core::v1::ConfigMap>(),
        kind::<core::v1::Secret>(),
        kind::<core::v1::Service>(),
        kind::<rbac::v1::ClusterRole>(),
        kind::<rbac::v1::ClusterRoleBinding>(),
        kind::<rbac::v1::Role>(),
        kind::<rbac::v1::RoleBinding>(),
        kind::<apps::v1::Deployment>(),
        kind::<apps::v1::DaemonSet>(),
        kind::<policy::v1::PodDisruptionBudget>(),
    ]
}

/// Every document of every manifest, mapped to its endpoint; the first problem found
/// is the error.
fn objects(manifests: &[(String, String)]) -> Result<Vec<Object>, AddonError> {
    let kinds = known_kinds();
    let mut objects = Vec::new();
    for (file, text) in manifests {
        let bad = |index: usize, reason: String| AddonError::Manifest { file: file.clone(), index, reason };
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(text).map_err(|e| bad(1, format!("not YAML: {e}")))?;
        // Empty documents (a trailing `---`) are skipped, as kubectl does.
        for (i, doc) in docs.into_iter().enumerate().filter(|(_, d)| !d.is_null()) {
            let index = i + 1;
            let object: DynamicObject = serde_json::from_value(doc).map_err(|e| bad(index, e.to_string()))?;
            let Some(types) = object.types.clone() else {
                return Err(bad(index, "it has no apiVersion and kind".into()));
            };
            let Some(name) = object.metadata.name.clone().filter(|n| !n.is_empty()) else {
                return Err(bad(index, format!("the {} has no metadata.name", types.kind)));
            };
            let Some(kind) =
                kinds.iter().find(|k| k.resource.api_version == types.api_version && k.resource.kind == types.kind)
            else {
                let known: Vec<String> =
                    kinds.iter().map(|k| format!("{}/{}", k.resource.api_version, k.resource.kind)).collect();
                let known = known.join(", ");
                return Err(AddonError::UnknownKind {
                    file: file.clone(),
                    api_version: types.api_version,
                    kind: types.kind,
                    name,
                    known,
                });
            };
            let namespace = match (kind.namespaced, object.metadata.namespace.clone()) {
                (true, Some(ns)) => Some(ns),
                // kos's manifests name their namespace; guessing `default` would hide a
                // rendering bug.
                (true, None) => return Err(bad(index, format!("{} `{name}` has no metadata.namespace", types.kind))),
                (false, Some(ns)) => {
                    return Err(bad(
                        index,
                        format!("{} `{name}` is cluster-scoped but names namespace `{ns}`", types.kind),
                    ));
                }
                (false, None) => None,
            };
            objects.push(Object { file: file.clone(), resource: kind.resource.clone(), namespace, name, object });
        }
    }
    Ok(objects)
}

/// A kube error as one readable line: the API's message, else the innermost cause that
/// says something (`tcp connect error: Connection refused (os error 111)`, `invalid peer
/// certificate: UnknownIssuer`), without the wrappers' `ServiceError: client error
/// (Connect)`.
fn describe(error: &kube::Error) -> String {
    if let kube::Error::Api(status) = error {
        let failed: Vec<&str> = status.message.lines().filter(|l| l.starts_with("[-]")).collect();
        let message = if failed.is_empty() { status.message.clone() } else { failed.join(", ") };
        return format!("HTTP {} {}: {}", status.code, status.reason, one_line(&message, 200));
    }
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        let text = e.to_string();
        // Wrappers often repeat their cause's text; keep each piece once.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.retain(|p| !text.contains(p.as_str()));
            parts.push(text);
        }
        source = e.source();
    }
    one_line(parts.last().map_or("", String::as_str), 300)
}

/// `text` on one line, whitespace collapsed, at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max { line } else { format!("{}…", line.chars().take(max).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use kos_core::plan::{ClusterPlan, Observed};
    use kos_core::settings::Settings;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    fn example_file(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)
    }

    /// The repository's example: settings, observed addresses and their plan.
    fn example() -> (Settings, Observed, ClusterPlan) {
        let settings = Settings::load(&example_file("settings.yaml")).unwrap();
        let observed = Observed::parse(&std::fs::read_to_string(example_file("observed.yaml")).unwrap()).unwrap();
        let plan = kos_core::plan::plan(&settings, &observed).unwrap();
        (settings, observed, plan)
    }

    /// The add-on manifests kos renders for the example, as `apply` takes them.
    fn rendered_manifests() -> Vec<(String, String)> {
        let (settings, observed, plan) = example();
        let inputs = kos_render::Inputs {
            settings: &settings,
            plan: &plan,
            tenant_cidr: observed.tenant_cidr,
            local_dir: Path::new("/nonexistent"),
            env: &Default::default(),
        };
        kos_render::addons::render_addons(&inputs).unwrap().into_iter().map(|f| (f.path, f.contents)).collect()
    }

    #[test]
    fn every_rendered_addon_object_maps_to_its_endpoint_and_scope() {
        let manifests = rendered_manifests();
        assert!(manifests.iter().any(|(f, _)| f == kos_render::addons::COREDNS_FILE), "the example enables CoreDNS");
        let mapped: Vec<String> = objects(&manifests)
            .unwrap()
            .iter()
            .map(|o| {
                let r = &o.resource;
                let group = if r.group.is_empty() { "core".to_string() } else { r.group.clone() };
                format!("{} {group}/{}/{} {}", o.file, r.version, r.plural, o.qualified_name())
            })
            .collect();
        // The plurals and scopes are the API server's (k8s-openapi's URL path segments),
        // written out here so that a wrong one is seen in review.
        assert_eq!(
            mapped,
            [
                "addons/coredns.yaml core/v1/serviceaccounts kube-system/coredns",
                "addons/coredns.yaml rbac.authorization.k8s.io/v1/clusterroles system:coredns",
                "addons/coredns.yaml rbac.authorization.k8s.io/v1/clusterrolebindings system:coredns",
                "addons/coredns.yaml core/v1/configmaps kube-system/coredns",
                "addons/coredns.yaml apps/v1/deployments kube-system/coredns",
                "addons/coredns.yaml core/v1/services kube-system/kube-dns",
                "addons/cluster-admins.yaml rbac.authorization.k8s.io/v1/clusterrolebindings kos:cluster-admins",
            ]
        );
    }

    #[test]
    fn the_kind_table_agrees_with_the_api_servers_plurals() {
        let plurals: Vec<(String, String, bool)> =
            known_kinds().into_iter().map(|k| (k.resource.kind, k.resource.plural, k.namespaced)).collect();
        let expect = [
            ("Namespace", "namespaces", false),
            ("ServiceAccount", "serviceaccounts", true),
            ("ConfigMap", "configmaps", true),
            ("Secret", "secrets", true),
            ("Service", "services", true),
            ("ClusterRole", "clusterroles", false),
            ("ClusterRoleBinding", "clusterrolebindings", false),
            ("Role", "roles", true),
            ("RoleBinding", "rolebindings", true),
            ("Deployment", "deployments", true),
            ("DaemonSet", "daemonsets", true),
            ("PodDisruptionBudget", "poddisruptionbudgets", true),
        ];
        let expect: Vec<(String, String, bool)> =
            expect.iter().map(|(k, p, n)| (k.to_string(), p.to_string(), *n)).collect();
        assert_eq!(plurals, expect);
    }

    #[test]
    fn an_unknown_kind_or_a_broken_document_applies_nothing_and_says_why() {
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n".to_string();
        let case = |text: &str| {
            objects(&[("a.yaml".into(), cm.clone()), ("b.yaml".into(), text.into())]).unwrap_err().to_string()
        };
        let err = case("---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: backup, namespace: x}\n");
        assert!(
            err.starts_with(
                "b.yaml: CronJob `backup` (batch/v1) is not a kind kos knows how to apply (known: v1/Namespace, "
            ),
            "{err}"
        );
        assert!(err.ends_with("; nothing was applied"), "{err}");
        // A known kind at another version is unknown too.
        let err = case("apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: p, namespace: x}\n");
        assert!(err.contains("PodDisruptionBudget `p` (policy/v1beta1) is not a kind"), "{err}");
        assert_eq!(
            case("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"),
            "b.yaml: document 1 is not a Kubernetes object kos can apply: Service `s` has no metadata.namespace"
        );
        assert_eq!(
            case("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok, namespace: x}\n---\nkind: x\n"),
            "b.yaml: document 2 is not a Kubernetes object kos can apply: it has no apiVersion and kind"
        );
        assert_eq!(
            case("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r, namespace: x}\n"),
            "b.yaml: document 1 is not a Kubernetes object kos can apply: ClusterRole `r` is cluster-scoped but names namespace `x`"
        );
        // Empty documents are skipped.
        assert_eq!(objects(&[("a.yaml".into(), format!("---\n{cm}---\n"))]).unwrap().len(), 1);
    }

    #[test]
    fn applied_lines_read_like_kubectl() {
        let line =
            Applied { kind: "ConfigMap".into(), name: "kube-system/coredns".into(), outcome: Outcome::Unchanged };
        assert_eq!(line.to_string(), "ConfigMap kube-system/coredns: unchanged");
    }

    /// The example's admin kubeconfig and PKI folder, with the server moved to `server`.
    fn admin_kubeconfig(pki_dir: &Path, server: &str) -> String {
        let (settings, observed, plan) = example();
        let pki = kos_pki::Pki::open(pki_dir);
        pki.ensure(&plan.certificates, kos_pki::OffsetDateTime::now_utc()).unwrap();
        let inputs = kos_render::Inputs {
            settings: &settings,
            plan: &plan,
            tenant_cidr: observed.tenant_cidr,
            local_dir: pki_dir,
            env: &Default::default(),
        };
        let files = kos_render::local::render_local(&inputs, &pki).unwrap();
        let admin = files.into_iter().find(|f| f.path == "admin.kubeconfig").unwrap();
        let mut config = Kubeconfig::from_yaml(&admin.contents).unwrap();
        config.clusters[0].cluster.as_mut().unwrap().server = Some(server.to_string());
        serde_saphyr::to_string(&config).unwrap()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
    }

    #[test]
    fn a_closed_port_gives_the_clear_error_within_the_bound() {
        let tmp = tempfile::tempdir().unwrap();
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let kubeconfig = admin_kubeconfig(tmp.path(), &format!("https://127.0.0.1:{port}"));
        let wait = Duration::from_secs(3);
        let started = std::time::Instant::now();
        let Err(err) = runtime().block_on(wait_for_api(&kubeconfig, wait)) else { panic!("ready?") };
        let elapsed = started.elapsed();
        assert!(elapsed <= wait + Duration::from_secs(1), "waited {elapsed:?}");
        let message = err.to_string();
        assert!(
            message
                .starts_with(&format!("the API server at https://127.0.0.1:{port} was not ready within 3 s (last: ")),
            "{message}"
        );
        assert!(message.contains("Connection refused"), "the cause is named: {message}");
        assert!(
            message.ends_with("the add-ons were not applied: run `kos up --only addons` once it answers"),
            "{message}"
        );
    }

    /// A child process killed when dropped.
    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// `openssl`, or `None` (with a note) outside CI; in CI a missing tool fails.
    fn openssl() -> Option<PathBuf> {
        let found = std::env::var_os("PATH")
            .and_then(|p| std::env::split_paths(&p).map(|d| d.join("openssl")).find(|c| c.exists()));
        if found.is_none() {
            assert!(std::env::var_os("CI").is_none(), "CI is set but `openssl` is missing");
            eprintln!("skipped: `openssl` is not installed");
        }
        found
    }

    /// `openssl s_server -www` on 127.0.0.1 presenting `cert` (a stem in the PKI),
    /// demanding a client certificate of the cluster CA; stderr (its log) to `log`.
    fn s_server(openssl: &Path, pki: &Path, cert: &str, port: u16, log: &Path) -> Child {
        let mut server = Child(
            Command::new(openssl)
                .args(["s_server", "-www", "-Verify", "1", "-verify_return_error", "-accept"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("-cert")
                .arg(pki.join(format!("{cert}.crt")))
                .arg("-key")
                .arg(pki.join(format!("{cert}.key")))
                .arg("-CAfile")
                .arg(pki.join("ca.crt"))
                .stdout(Stdio::null())
                .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
                .spawn()
                .unwrap(),
        );
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(server.0.try_wait().unwrap().is_none(), "openssl s_server exited");
            assert!(started.elapsed() < Duration::from_secs(20), "openssl s_server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// A real TLS server with the rendered API server certificate that demands a client
    /// certificate of the cluster CA, but is not Kubernetes (`openssl s_server -www`
    /// answers every GET with an HTML page): the client must connect over mutual TLS
    /// without panicking (one rustls provider), get that page, and still not call the
    /// server ready.
    #[test]
    fn a_tls_server_that_is_not_kubernetes_is_not_ready_and_the_client_speaks_mutual_tls() {
        let Some(openssl) = openssl() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let pki = tmp.path().join("pki");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // 127.0.0.1 is one of the API server certificate's SANs, so the client verifies it.
        let kubeconfig = admin_kubeconfig(&pki, &format!("https://127.0.0.1:{port}"));
        let log = tmp.path().join("s_server.log");
        let server = s_server(&openssl, &pki, "apiserver", port, &log);

        let wait = Duration::from_secs(3);
        let started = std::time::Instant::now();
        let Err(err) = runtime().block_on(wait_for_api(&kubeconfig, wait)) else { panic!("ready?") };
        assert!(started.elapsed() <= wait + Duration::from_secs(1), "waited {:?}", started.elapsed());
        let message = err.to_string();
        // The page came back: TCP, TLS with the cluster CA and the client certificate
        // all worked; only the answer was not the API server's.
        assert!(message.contains("GET /readyz answered `<HTML>"), "{message}");
        assert!(message.contains("instead of `ok`; is this a Kubernetes API server?"), "{message}");
        assert!(
            message.starts_with(&format!("the API server at https://127.0.0.1:{port} was not ready within 3 s")),
            "{message}"
        );
        drop(server);
        // s_server logs the client certificate it verified: the admin's.
        let log = std::fs::read_to_string(&log).unwrap();
        assert!(log.contains("depth=0 O = kos:cluster-admins, CN = kubernetes-admin\nverify return:1"), "{log}");
    }

    /// A server whose certificate the cluster CA did not sign (etcd's, from the etcd CA)
    /// is refused, and the error says it is the certificate.
    #[test]
    fn a_server_certificate_of_another_ca_is_refused_and_named() {
        let Some(openssl) = openssl() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let pki = tmp.path().join("pki");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let kubeconfig = admin_kubeconfig(&pki, &format!("https://127.0.0.1:{port}"));
        let _server = s_server(&openssl, &pki, "etcd/server-master-1", port, &tmp.path().join("s_server.log"));
        let Err(err) = runtime().block_on(wait_for_api(&kubeconfig, Duration::from_secs(1))) else { panic!("ready?") };
        let message = err.to_string();
        assert!(message.contains("(last: invalid peer certificate: UnknownIssuer)"), "{message}");
    }
}
