//! Applying the add-on manifests (kos-render's `addons/*.yaml`): [`objects`] maps every
//! document to its API endpoint, then [`apply`] applies each with server-side apply as field
//! manager `kos`.
//!
//! Objects are mapped to their API endpoints from a small table built from k8s-openapi's
//! own constants (plural, scope), not by discovery: kos applies only the kinds it
//! renders, the mapping is then checked by a unit test with no server, and a kind kos
//! does not know is refused before anything is sent. Every document is checked before
//! the first request, so a bad manifest applies nothing.

use crate::{KubeApi, KubeError};
use kube::api::DynamicObject;
use kube::discovery::ApiResource;

/// The field manager of everything kos applies.
pub const FIELD_MANAGER: &str = "kos";

/// One object applied, and what the apply did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// `ConfigMap`, `ClusterRoleBinding`, ...
    pub kind: String,
    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub name: String,
    pub outcome: Outcome,
}

/// What server-side apply did to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Created,
    /// The object existed and changed.
    Configured,
    /// The object existed and the apply changed nothing (same resourceVersion).
    Unchanged,
}

impl Applied {
    /// The same, for a plan: `ConfigMap kube-system/coredns: would be configured`.
    pub fn planned(&self) -> String {
        format!("{} {}: would be {}", self.kind, self.name, self.outcome)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        })
    }
}

impl std::fmt::Display for Applied {
    /// `ConfigMap kube-system/coredns: unchanged`, kubectl's words.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.name, self.outcome)
    }
}

/// Server-side apply of every object of `manifests` (file name, multi-document YAML), in
/// order.
///
/// Every document is mapped before the first request: a document that is not an object
/// or of a kind kos does not know applies nothing.
pub async fn apply<K: KubeApi>(api: &K, manifests: &[(String, String)]) -> Result<Vec<Applied>, KubeError> {
    each(api, manifests, false).await
}

/// What [`apply`] would do to each object of `manifests`, with nothing changed (`kos plan`).
pub async fn would_apply<K: KubeApi>(api: &K, manifests: &[(String, String)]) -> Result<Vec<Applied>, KubeError> {
    each(api, manifests, true).await
}

async fn each<K: KubeApi>(api: &K, manifests: &[(String, String)], dry_run: bool) -> Result<Vec<Applied>, KubeError> {
    let objects = objects(manifests)?;
    let mut done = Vec::with_capacity(objects.len());
    for o in objects {
        let outcome = if dry_run { api.would_apply(&o).await } else { api.apply(&o).await };
        let outcome = outcome.map_err(|reason| KubeError::Apply { object: o.describe(), file: o.file.clone(), reason })?;
        done.push(Applied { kind: o.resource.kind.clone(), name: o.qualified_name(), outcome });
    }
    Ok(done)
}

/// A document of a manifest, ready to apply.
#[derive(Debug, Clone)]
pub struct Object {
    /// The manifest it came from.
    pub file: String,
    pub resource: ApiResource,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
    pub object: DynamicObject,
}

impl Object {
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    pub fn describe(&self) -> String {
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
    Kind { resource: ApiResource::erase::<K>(&()), namespaced: <<K as k8s_openapi::Resource>::Scope as Scope>::NAMESPACED }
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
pub fn objects(manifests: &[(String, String)]) -> Result<Vec<Object>, KubeError> {
    let kinds = known_kinds();
    let mut objects = Vec::new();
    for (file, text) in manifests {
        let bad = |index: usize, reason: String| KubeError::Manifest { file: file.clone(), index, reason };
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).map_err(|e| bad(1, format!("not YAML: {e}")))?;
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
            let Some(kind) = kinds.iter().find(|k| k.resource.api_version == types.api_version && k.resource.kind == types.kind) else {
                let known: Vec<String> = kinds.iter().map(|k| format!("{}/{}", k.resource.api_version, k.resource.kind)).collect();
                let known = known.join(", ");
                return Err(KubeError::UnknownKind { file: file.clone(), api_version: types.api_version, kind: types.kind, name, known });
            };
            let namespace = match (kind.namespaced, object.metadata.namespace.clone()) {
                (true, Some(ns)) => Some(ns),
                // kos's manifests name their namespace; guessing `default` would hide a
                // rendering bug.
                (true, None) => return Err(bad(index, format!("{} `{name}` has no metadata.namespace", types.kind))),
                (false, Some(ns)) => {
                    return Err(bad(index, format!("{} `{name}` is cluster-scoped but names namespace `{ns}`", types.kind)));
                }
                (false, None) => None,
            };
            objects.push(Object { file: file.clone(), resource: kind.resource.clone(), namespace, name, object });
        }
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::test_support::example;
    use std::path::Path;

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
        let expect: Vec<(String, String, bool)> = expect.iter().map(|(k, p, n)| (k.to_string(), p.to_string(), *n)).collect();
        assert_eq!(plurals, expect);
    }

    #[test]
    fn an_unknown_kind_or_a_broken_document_applies_nothing_and_says_why() {
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n".to_string();
        let case = |text: &str| objects(&[("a.yaml".into(), cm.clone()), ("b.yaml".into(), text.into())]).unwrap_err().to_string();
        let err = case("---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: backup, namespace: x}\n");
        assert!(
            err.starts_with("b.yaml: CronJob `backup` (batch/v1) is not a kind kos knows how to apply (known: v1/Namespace, "),
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
        let line = Applied { kind: "ConfigMap".into(), name: "kube-system/coredns".into(), outcome: Outcome::Unchanged };
        assert_eq!(line.to_string(), "ConfigMap kube-system/coredns: unchanged");
    }

    /// Against a real API server on loopback ([`crate::loopback`]): what it says to a
    /// server-side apply decides created, unchanged or configured.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_second_apply_of_the_same_objects_is_unchanged_and_an_edit_is_configured() {
        let Some(server) = crate::loopback::LoopbackApi::start().await else { return };
        let api = server.kube().await;
        let manifests = rendered_manifests();
        let planned = would_apply(&api, &manifests).await.unwrap();
        // The admins' binding is there already: the loopback server was set up as `kos up`
        // starts, with the super-admin applying it.
        let fresh = |a: &Applied| a.outcome == if a.name == "kos:cluster-admins" { Outcome::Unchanged } else { Outcome::Created };
        assert!(planned.iter().all(fresh), "{planned:?}");
        assert_eq!(planned[0].planned(), "ServiceAccount kube-system/coredns: would be created");
        let maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(server.client(), "kube-system");
        assert!(maps.get_opt("coredns").await.unwrap().is_none(), "the plan applied nothing");
        let first = apply(&api, &manifests).await.unwrap();
        assert_eq!(first, planned, "apply does what the plan said");
        assert!(first.iter().all(fresh), "{first:?}");
        let again = apply(&api, &manifests).await.unwrap();
        assert!(again.iter().all(|a| a.outcome == Outcome::Unchanged), "{again:?}");
        let edited: Vec<(String, String)> = manifests.iter().map(|(f, t)| (f.clone(), t.replacen("cache 30", "cache 60", 1))).collect();
        let changed: Vec<String> =
            apply(&api, &edited).await.unwrap().into_iter().filter(|a| a.outcome != Outcome::Unchanged).map(|a| a.to_string()).collect();
        assert_eq!(changed, ["ConfigMap kube-system/coredns: configured"]);
        let corefile = maps.get("coredns").await.unwrap().data.unwrap_or_default().remove("Corefile").unwrap_or_default();
        assert!(corefile.contains("cache 60"), "the edit is on the server:\n{corefile}");
        let replanned: Vec<String> =
            would_apply(&api, &manifests).await.unwrap().iter().filter(|a| a.outcome != Outcome::Unchanged).map(Applied::planned).collect();
        assert_eq!(replanned, ["ConfigMap kube-system/coredns: would be configured"], "back to the rendered one");
    }
}
