//! The real API server client: kube-rs over mutual TLS, from a kubeconfig kos rendered.

use crate::apply::{FIELD_MANAGER, Object, Outcome};
use crate::{Connect, Eviction, KubeApi, KubeError, Lease};
use http::Request;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, EvictParams, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::time::Duration;
use tokio::time::Instant;

/// How long one readiness request may take (connect, TLS, answer).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between readiness requests.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// A kube-rs client of one API server.
#[derive(Clone)]
pub struct KubeClient {
    client: Client,
    /// The same server without kube-client's retry layer, for evictions: a 429 to an
    /// eviction is a disruption budget's "not now", not throttling, and that layer would
    /// ask again up to 15 times with a backoff growing to minutes (a drain against a real
    /// API server blocked ~6 min in one eviction, far past its own bounded wait). The
    /// drain asks again itself, within its bound, and names the budget that refuses.
    once: Client,
    server: String,
}

impl std::fmt::Debug for KubeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeClient").field("server", &self.server).finish()
    }
}

impl KubeClient {
    /// A client of the kubeconfig's current context; every request bounded by
    /// [`ATTEMPT_TIMEOUT`]. Nothing is sent yet.
    pub async fn new(kubeconfig_yaml: &str) -> Result<KubeClient, KubeError> {
        let kubeconfig = Kubeconfig::from_yaml(kubeconfig_yaml).map_err(KubeError::Kubeconfig)?;
        let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.map_err(KubeError::Kubeconfig)?;
        config.connect_timeout = Some(ATTEMPT_TIMEOUT);
        config.read_timeout = Some(ATTEMPT_TIMEOUT);
        config.write_timeout = Some(ATTEMPT_TIMEOUT);
        let server = config.cluster_url.to_string().trim_end_matches('/').to_string();
        let mut no_retry = config.clone();
        no_retry.default_retry = false;
        let once = Client::try_from(no_retry).map_err(KubeError::Client)?;
        let client = Client::try_from(config).map_err(KubeError::Client)?;
        Ok(KubeClient { client, once, server })
    }
}

/// Build a client from a kubeconfig and wait, at most `wait`, until the API server answers
/// `GET /readyz` with `ok`.
///
/// Each request is bounded too, so the whole wait ends within `wait` plus at most one
/// second. A TLS server that is not an API server (anything answering other than `ok`)
/// is not ready either.
pub async fn wait_for_api(kubeconfig_yaml: &str, wait: Duration) -> Result<KubeClient, KubeError> {
    let client = KubeClient::new(kubeconfig_yaml).await?;
    let deadline = Instant::now() + wait;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let bound = ATTEMPT_TIMEOUT.min(remaining).max(Duration::from_secs(1));
        let last = match tokio::time::timeout(bound, client.ready()).await {
            Ok(Ok(())) => return Ok(client),
            Ok(Err(e)) => e,
            Err(_) => format!("no answer within {} s", bound.as_secs()),
        };
        if Instant::now() + POLL_INTERVAL >= deadline {
            return Err(KubeError::NotReady { server: client.server, waited: wait, last });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The real [`Connect`]: [`wait_for_api`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Connector;

impl Connect for Connector {
    type Api = KubeClient;

    async fn connect(&self, kubeconfig: &str, wait: Duration) -> Result<KubeClient, KubeError> {
        wait_for_api(kubeconfig, wait).await
    }
}

/// The same kubeconfig pointed at `server` (`https://host:port`): one master's own API
/// server rather than the cluster's endpoint. (JSON, which is YAML.)
pub fn pointed_at(kubeconfig_yaml: &str, server: &str) -> Result<String, KubeError> {
    let mut config = kube::config::Kubeconfig::from_yaml(kubeconfig_yaml).map_err(KubeError::Kubeconfig)?;
    for c in config.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        c.server = Some(server.to_string());
    }
    serde_json::to_string(&config).map_err(|e| KubeError::Read(format!("cannot write a kubeconfig for {server}: {e}")))
}

impl KubeApi for KubeClient {
    fn server(&self) -> &str {
        &self.server
    }

    async fn version(&self) -> Result<String, String> {
        self.client.apiserver_version().await.map(|i| i.git_version).map_err(|e| describe(&e))
    }

    async fn ready(&self) -> Result<(), String> {
        let request = Request::get("/readyz").body(Vec::new()).map_err(|e| e.to_string())?;
        let body = self.client.request_text(request).await.map_err(|e| describe(&e))?;
        if body.trim() == "ok" {
            Ok(())
        } else {
            Err(format!("GET /readyz answered `{}` instead of `ok`; is this a Kubernetes API server?", one_line(&body, 60)))
        }
    }

    /// The object is read first, so that an apply that changed nothing (the server keeps
    /// the resourceVersion) is [`Outcome::Unchanged`].
    async fn apply(&self, o: &Object) -> Result<Outcome, String> {
        let api: Api<DynamicObject> = match &o.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &o.resource),
            None => Api::all_with(self.client.clone(), &o.resource),
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let before = api.get_opt(&o.name).await.map_err(|e| describe(&e))?.map(|b| b.metadata.resource_version);
        let after = api.patch(&o.name, &params, &Patch::Apply(&o.object)).await.map_err(|e| describe(&e))?;
        Ok(match before {
            None => Outcome::Created,
            Some(version) if version.is_some() && version == after.metadata.resource_version => Outcome::Unchanged,
            Some(_) => Outcome::Configured,
        })
    }

    /// The dry run's answer is compared with the object as it is, leaving out what any
    /// write changes (resourceVersion, managedFields' timestamps).
    async fn would_apply(&self, o: &Object) -> Result<Outcome, String> {
        let api: Api<DynamicObject> = match &o.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &o.resource),
            None => Api::all_with(self.client.clone(), &o.resource),
        };
        let Some(before) = api.get_opt(&o.name).await.map_err(|e| describe(&e))? else { return Ok(Outcome::Created) };
        let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
        let after = api.patch(&o.name, &params, &Patch::Apply(&o.object)).await.map_err(|e| describe(&e))?;
        let comparable = |mut d: DynamicObject| {
            d.metadata.resource_version = None;
            d.metadata.managed_fields = None;
            serde_json::to_value(d).unwrap_or_default()
        };
        Ok(if comparable(before) == comparable(after) { Outcome::Unchanged } else { Outcome::Configured })
    }

    async fn nodes(&self) -> Result<Vec<Node>, String> {
        let list = Api::<Node>::all(self.client.clone()).list(&ListParams::default()).await.map_err(|e| describe(&e))?;
        Ok(list.items)
    }

    async fn pods(&self, namespace: &str) -> Result<Vec<Pod>, String> {
        let list = Api::<Pod>::namespaced(self.client.clone(), namespace).list(&ListParams::default()).await.map_err(|e| describe(&e))?;
        Ok(list.items)
    }

    async fn deployment(&self, namespace: &str, name: &str) -> Result<Option<Deployment>, String> {
        Api::<Deployment>::namespaced(self.client.clone(), namespace).get_opt(name).await.map_err(|e| describe(&e))
    }

    async fn label_node(&self, node: &str, key: &str, value: &str) -> Result<(), String> {
        let patch = serde_json::json!({"metadata": {"labels": {key: value}}});
        Api::<Node>::all(self.client.clone())
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|e| describe(&e))
    }

    async fn cordon(&self, node: &str) -> Result<(), String> {
        Api::<Node>::all(self.client.clone()).cordon(node).await.map(drop).map_err(|e| describe(&e))
    }

    async fn schedule(&self, node: &str, unschedulable: bool, key: &str, value: Option<&str>) -> Result<(), String> {
        let patch = serde_json::json!({"spec": {"unschedulable": unschedulable}, "metadata": {"annotations": {key: value}}});
        Api::<Node>::all(self.client.clone())
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|e| describe(&e))
    }

    async fn pods_on(&self, node: &str) -> Result<Vec<Pod>, String> {
        let params = ListParams::default().fields(&format!("spec.nodeName={node}"));
        let list = Api::<Pod>::all(self.client.clone()).list(&params).await.map_err(|e| describe(&e))?;
        Ok(list.items)
    }

    /// 429 is a disruption budget's refusal (asked again later); 404 a pod already gone.
    async fn evict(&self, namespace: &str, pod: &str) -> Result<Eviction, String> {
        match Api::<Pod>::namespaced(self.once.clone(), namespace).evict(pod, &EvictParams::default()).await {
            Ok(_) => Ok(Eviction::Accepted),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(Eviction::Gone),
            Err(kube::Error::Api(status)) if status.code == 429 => Ok(Eviction::Refused(one_line(&status.message, 200))),
            Err(e) => Err(describe(&e)),
        }
    }

    async fn delete_pod(&self, namespace: &str, pod: &str) -> Result<bool, String> {
        match Api::<Pod>::namespaced(self.client.clone(), namespace).delete(pod, &DeleteParams::default()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(e) => Err(describe(&e)),
        }
    }

    async fn delete_node(&self, node: &str) -> Result<bool, String> {
        match Api::<Node>::all(self.client.clone()).delete(node, &DeleteParams::default()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(e) => Err(describe(&e)),
        }
    }

    async fn lease(&self, namespace: &str, name: &str) -> Result<Option<Lease>, String> {
        Api::<Lease>::namespaced(self.client.clone(), namespace).get_opt(name).await.map_err(|e| describe(&e))
    }
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
mod tests;
