//! The real [`Cloud`]: OpenStack's Nova, Neutron, Glance and Octavia APIs through
//! `openstack_sdk`, with the project user's rights only.
//!
//! `openstack_sdk` does the configuration (clouds.yaml, secure.yaml, `OS_*`), Keystone
//! authentication (password, application credentials, token), the catalog and TLS
//! (system roots, plus the cloud's `cacert` / `OS_CACERT`). Its on-disk token cache
//! (`~/.osc`) is always off: a cached token would outlive a changed password and hide bad
//! credentials, and kos authenticates once per run anyway. A token that expires during a
//! long run is renewed by the SDK: a 401 makes it log in again with the same credentials
//! (password or application credential) and repeat the request once; a token login cannot
//! be renewed, and then says so (`transport::Login`).
//!
//! TLS is never silently weakened: a cloud whose settings turn certificate checks off
//! (`verify: false`, `insecure: true`, `OS_INSECURE`) is refused unless the caller passes
//! [`ConnectOptions::insecure_skip_tls_verify`], and an untrusted certificate is one line
//! naming the cloud, the URL and the fix (its CA in `cacert:` or `OS_CACERT`).
//!
//! Every request is a [`transport::Call`] sent with retries by [`transport::Transport`];
//! answers are decoded by [`wire`] into [`crate::model`]. What each operation costs in API
//! calls is written on it (the `calls:` lines), so the callers can keep reads constant
//! in the size of the cluster.

mod auth;
mod config;
mod transport;
mod wire;

use crate::api::*;
use crate::model::*;
use base64::Engine as _;
use http::HeaderValue;
use openstack_sdk::AsyncOpenStack;
use openstack_sdk::config::CloudConfig;
use serde_json::json;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;
use transport::{Call, Service, Transport, decode, error_chain};

/// How often kos polls a resource that is changing state.
const POLL: Duration = Duration::from_millis(300);
/// How long kos waits for an Octavia load balancer to leave `PENDING_*`.
const LB_TIMEOUT: Duration = Duration::from_secs(600);
/// How long kos waits for a deleted server to disappear.
const SERVER_DELETE_TIMEOUT: Duration = Duration::from_secs(300);

/// How kos may reach a cloud beyond what its configuration says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Do not check the cloud's TLS certificate (the user passed
    /// `--insecure-skip-tls-verify`). Without it, a cloud configured with `verify: false`,
    /// `insecure: true` or `OS_INSECURE` is refused.
    pub insecure_skip_tls_verify: bool,
}

/// A connection to one OpenStack cloud as one project user.
#[derive(Debug)]
pub struct OpenStackCloud {
    transport: Transport,
    /// The project the token is scoped to (Neutron's quota API wants it).
    project_id: String,
    /// Whether Neutron takes `tags` in a create body (`tag-creation`); asked once.
    tags_on_create: OnceCell<bool>,
}

impl OpenStackCloud {
    /// Authenticate to the cloud named `cloud_name`, else `$OS_CLOUD`, else the `OS_*`
    /// variables (`OS_AUTH_URL`, ...), with the `openstack` CLI's precedence: an `OS_*`
    /// variable over secure.yaml over clouds.yaml (see [`config`]).
    ///
    /// Bad or missing credentials are [`CloudError::Auth`] naming the cloud; an identity
    /// service that does not answer is retried, then [`CloudError::Unavailable`].
    pub async fn connect(cloud_name: Option<&str>) -> Result<Self, CloudError> {
        Self::connect_with(cloud_name, ConnectOptions::default()).await
    }

    /// [`OpenStackCloud::connect`] with `options`.
    pub async fn connect_with(cloud_name: Option<&str>, options: ConnectOptions) -> Result<Self, CloudError> {
        let (name, config) = config::load(cloud_name)?;
        Self::connect_config_with(name, config, options).await
    }

    /// Authenticate to `cloud_name` of the clouds.yaml at `clouds_yaml` (and the
    /// `secure.yaml` next to it), whatever the environment says.
    pub async fn connect_file(clouds_yaml: &std::path::Path, cloud_name: &str) -> Result<Self, CloudError> {
        let (name, config) = config::from_file(Some(clouds_yaml.to_path_buf()), None, cloud_name.to_owned())?;
        Self::connect_config(name, config).await
    }

    /// Authenticate with a configuration already resolved (a caller that reads
    /// clouds.yaml itself).
    pub async fn connect_config(name: String, config: CloudConfig) -> Result<Self, CloudError> {
        Self::connect_config_with(name, config, ConnectOptions::default()).await
    }

    /// [`OpenStackCloud::connect_config`] with `options`.
    pub async fn connect_config_with(name: String, mut config: CloudConfig, options: ConnectOptions) -> Result<Self, CloudError> {
        auth::link_auth_plugins();
        let auth_url = config.auth.as_ref().and_then(|a| a.auth_url.clone()).unwrap_or_default();
        if options.insecure_skip_tls_verify {
            tracing::warn!(cloud = %name, "not checking the cloud's TLS certificate (--insecure-skip-tls-verify)");
            config.verify = Some(false);
        } else if config.verify == Some(false) {
            return Err(CloudError::Tls {
                cloud: name,
                url: auth_url,
                message: "its configuration turns TLS certificate checks off (`verify: false` or `insecure: true` in clouds.yaml, or OS_INSECURE), which lets anyone between kos and the cloud read the credentials and pose as the cloud; kos refuses: give it the cloud's CA certificate instead (`cacert:` in clouds.yaml, or OS_CACERT), or, accepting that risk, pass --insecure-skip-tls-verify".into(),
            });
        }
        if let Some(message) = auth::missing_secret(&config) {
            return Err(CloudError::Auth { cloud: name, message });
        }
        if auth::application_credential_by_name(&config) {
            auth::resolve_application_credential_id(&name, &mut config).await?;
        }
        let policy = transport::RetryPolicy::default();
        let start = Instant::now();
        let mut attempt = 0;
        let session = loop {
            attempt += 1;
            match AsyncOpenStack::builder(&config).disable_auth_cache(true).connect().await {
                Ok(session) => break session,
                Err(err) => {
                    if let Some((url, tls)) = transport::tls_failure(&err) {
                        return Err(transport::untrusted(&name, &url.unwrap_or(auth_url), &tls, config.cacert.as_deref()));
                    }
                    if let Some(message) = auth::unreadable_login(&err, &config) {
                        return Err(CloudError::Auth { cloud: name, message });
                    }
                    let failed_url = match &err {
                        openstack_sdk::OpenStackError::Discovery { url, .. } => url.clone(),
                        _ => auth_url.clone(),
                    };
                    if connect_error_is_transient(&err)
                        && let Some(untrusted) = auth::tls_probe(&name, &config, &failed_url).await
                    {
                        return Err(untrusted);
                    }
                    let message = error_chain(&err);
                    if !connect_error_is_transient(&err) {
                        return Err(CloudError::Auth { cloud: name, message: auth::auth_message(&err, &config) });
                    }
                    let failure = transport::Transient::Connect;
                    let wait = policy.delay(attempt, None, transport::jitter());
                    if !policy.should_retry(attempt, true, &failure) || start.elapsed() + wait > policy.budget {
                        return Err(CloudError::Unavailable { service: "identity", attempts: attempt, message });
                    }
                    tracing::warn!(cloud = %name, attempt, "identity service not answering, retrying: {message}");
                    tokio::time::sleep(wait).await;
                }
            }
        };
        discover_versions(&session, &name, &config).await?;
        let info = session.get_auth_info();
        let project = info.as_ref().and_then(|info| info.token.project.clone());
        let project_id = project.as_ref().and_then(|p| p.id.clone()).ok_or_else(|| CloudError::Auth {
            cloud: name.clone(),
            message: "the token is not scoped to a project: set project_name (or project_id) for this cloud".into(),
        })?;
        let who = match &info {
            Some(info) => {
                let token = &info.token;
                let roles: Vec<&str> = token.roles.iter().flatten().map(|r| r.name.as_str()).collect();
                let project_name = project.and_then(|p| p.name).unwrap_or_else(|| project_id.clone());
                let app_cred = token.application_credential.as_ref().map(|ac| (ac.name.as_deref(), ac.id.as_deref()));
                auth::describe_login(auth::kind(&config), &token.user.name, &roles, &project_name, app_cred)
            }
            None => "login".into(),
        };
        let login = transport::Login { kind: auth::kind(&config), who, cacert: config.cacert.clone() };
        Ok(OpenStackCloud { transport: Transport::new(session, name, login), project_id, tags_on_create: OnceCell::new() })
    }

    /// HTTP requests sent to the cloud's APIs so far, retries included (authentication
    /// not counted). For figures and tests.
    pub fn api_calls(&self) -> u64 {
        self.transport.calls()
    }

    /// The project the client works in.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    fn t(&self) -> &Transport {
        &self.transport
    }

    async fn tags_on_create(&self) -> CloudResult<bool> {
        self.tags_on_create.get_or_try_init(|| async { Ok(self.network_extensions().await?.contains("tag-creation")) }).await.copied()
    }

    /// Create a Neutron resource carrying `tags`: in the create body when Neutron takes it
    /// (atomic), else create then `PUT .../tags`, deleting the resource when tagging
    /// fails, because an untagged resource is one kos would never find again.
    /// calls: 1 (`tag-creation`), else 2 (3 when tagging fails).
    async fn create_tagged<T: serde::de::DeserializeOwned>(
        &self,
        collection: &str,
        key: &str,
        mut body: serde_json::Map<String, serde_json::Value>,
        tags: &[String],
        action: &str,
    ) -> CloudResult<T> {
        let atomic = tags.is_empty() || self.tags_on_create().await?;
        if atomic && !tags.is_empty() {
            body.insert("tags".into(), json!(tags));
        }
        if !tags.is_empty() {
            // The marks also go into the description, which is part of the create itself:
            // a run killed between the create and the tagging leaves a resource that later
            // runs still recognise as the cluster's (see `with_description_marks`).
            let description = body.get("description").and_then(|d| d.as_str()).unwrap_or_default().to_owned();
            body.insert("description".into(), json!(wire::describe_marks(&description, tags)));
        }
        let call = Call::post(Service::Network, collection, json!({ key: body }));
        let reply = self.t().ok(&call, action).await?;
        let created: serde_json::Value = decode(&call, action, &reply.body)?;
        let mut object = created.get(key).cloned().unwrap_or(serde_json::Value::Null);
        if !atomic {
            let id = object.get("id").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            let tag = Call::put(Service::Network, format!("{collection}/{id}/tags"), json!({ "tags": tags }));
            if let Err(err) = self.t().ok(&tag, action).await {
                let undo = Call::delete(Service::Network, format!("{collection}/{id}"));
                if let Err(undo_err) = self.t().delete(&undo, action).await {
                    tracing::error!(resource = %collection, %id, "created but neither tagged nor deleted: {undo_err}");
                    return Err(CloudError::Refused {
                        service: "network",
                        action: action.to_owned(),
                        message: format!("{err}; and deleting the untagged {collection} {id} failed too ({undo_err}): delete it by hand"),
                    });
                }
                return Err(err);
            }
            if let Some(map) = object.as_object_mut() {
                map.insert("tags".into(), json!(tags));
            }
        }
        serde_json::from_value(object).map_err(|e| CloudError::Refused {
            service: "network",
            action: action.to_owned(),
            message: format!("unexpected answer to {}: {e}", call.describe()),
        })
    }

    /// Name-or-ID lookup in `collection`: `GET collection/{id}` when `name_or_id` looks
    /// like an ID (404: go on by name), else (or then) `GET collection?name=...`, which
    /// must match exactly one. calls: 1–2.
    async fn find<T, One, Many>(
        &self,
        service: Service,
        collection: &str,
        kind: &'static str,
        name_or_id: &str,
        from_one: impl FnOnce(One) -> T,
        from_many: impl FnOnce(Many) -> Vec<T>,
    ) -> CloudResult<T>
    where
        One: serde::de::DeserializeOwned,
        Many: serde::de::DeserializeOwned,
    {
        if looks_like_id(name_or_id) {
            let call = Call::get(service, format!("{collection}/{name_or_id}"));
            if let Some(one) = self.t().json_opt::<One>(&call, &format!("read {kind}")).await? {
                return Ok(from_one(one));
            }
        }
        let call = Call::get(service, collection).query("name", name_or_id);
        let many: Many = self.t().json(&call, &format!("list {kind}s")).await?;
        exactly_one(kind, name_or_id, from_many(many))
    }

    /// Poll a load balancer until it is `ACTIVE`. calls: 1 per 0.3 s while pending.
    async fn wait_lb_active(&self, id: &str) -> CloudResult<LoadBalancer> {
        let start = Instant::now();
        let call = Call::get(Service::LoadBalancer, format!("lbaas/loadbalancers/{id}"));
        let mut polls = 0;
        loop {
            polls += 1;
            let lb = self
                .t()
                .json_opt::<wire::LoadBalancerOne>(&call, "wait for the load balancer")
                .await?
                .ok_or_else(|| CloudError::NotFound { kind: "load balancer", name: id.to_owned() })?
                .loadbalancer;
            match lb.provisioning_status.as_str() {
                "ACTIVE" => return Ok(lb),
                "ERROR" => {
                    return Err(CloudError::Refused {
                        service: "load-balancer",
                        action: format!("build load balancer `{}`", lb.name),
                        message: format!("{id} went to provisioning_status ERROR (operating_status {})", lb.operating_status),
                    });
                }
                _ if start.elapsed() > LB_TIMEOUT => {
                    return Err(CloudError::Unavailable {
                        service: "load-balancer",
                        attempts: polls,
                        message: format!("load balancer {id} still {} after {} s", lb.provisioning_status, LB_TIMEOUT.as_secs()),
                    });
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }
}

impl OpenStackCloud {
    /// The steps of [`Cloud::create_load_balancer`] after the load balancer exists.
    async fn build_load_balancer(&self, id: &str, spec: &LoadBalancerSpec, action: &str) -> CloudResult<LoadBalancer> {
        self.wait_lb_active(id).await?;
        let listener = json!({"listener": {
            "name": format!("{}-tcp-{}", spec.name, spec.listener_port),
            "protocol": "TCP",
            "protocol_port": spec.listener_port,
            "loadbalancer_id": id,
        }});
        let call = Call::post(Service::LoadBalancer, "lbaas/listeners", listener);
        let reply = self.octavia_write(&call, id, action).await?;
        let listener_id = decode::<wire::ListenerOne>(&call, action, &reply.body)?.listener.id;
        self.wait_lb_active(id).await?;
        let pool = json!({"pool": {
            "name": format!("{}-pool", spec.name),
            "protocol": "TCP",
            "lb_algorithm": "ROUND_ROBIN",
            "listener_id": listener_id,
        }});
        let call = Call::post(Service::LoadBalancer, "lbaas/pools", pool);
        let reply = self.octavia_write(&call, id, action).await?;
        let pool_id = decode::<wire::PoolOne>(&call, action, &reply.body)?.pool.id;
        self.wait_lb_active(id).await?;
        let members = json!({"members": members_json(&spec.members, spec.member_port, Some(&spec.subnet_id))});
        let call = Call::put(Service::LoadBalancer, format!("lbaas/pools/{pool_id}/members"), members);
        self.octavia_write(&call, id, action).await?;
        self.wait_lb_active(id).await?;
        let monitor = json!({"healthmonitor": monitor_json(&spec.monitor, &pool_id)});
        let call = Call::post(Service::LoadBalancer, "lbaas/healthmonitors", monitor);
        self.octavia_write(&call, id, action).await?;
        self.wait_lb_active(id).await
    }

    /// An Octavia write, repeated while Octavia calls the object immutable (409: the
    /// load balancer or one of its children is still `PENDING_*`, which happens for a
    /// moment even after the load balancer itself shows `ACTIVE`).
    /// calls: 1, plus 1 per 0.3 s while immutable.
    async fn octavia_write(&self, call: &Call, lb_id: &str, action: &str) -> CloudResult<transport::Reply> {
        let start = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let reply = self.t().send(call).await?;
            match reply.status {
                200..=299 => return Ok(reply),
                409 if start.elapsed() < LB_TIMEOUT => {
                    tracing::debug!(lb = %lb_id, attempts, "immutable, waiting: {}", transport::api_message(&reply.body));
                    tokio::time::sleep(POLL).await;
                }
                409 => {
                    return Err(CloudError::Unavailable {
                        service: "load-balancer",
                        attempts,
                        message: format!("{action}: {}", transport::api_message(&reply.body)),
                    });
                }
                status => return Err(self.t().error(call, action, status, &reply.body)),
            }
        }
    }
}

/// Version discovery of the services kos uses (one `GET` of each root, in parallel): the
/// catalog usually lists unversioned URLs (`http://host:9696`), and the SDK resolves the
/// versioned base (`.../v2.0/`) from the discovery document. A service missing from the
/// catalog is skipped here (its calls fail with a clear message; `services()` shows it).
async fn discover_versions(session: &AsyncOpenStack, cloud: &str, config: &CloudConfig) -> Result<(), CloudError> {
    use openstack_sdk::types::ServiceType;
    // Discovery is a plain GET: retried like every other read when a service stumbles.
    let policy = transport::RetryPolicy::default();
    let start = std::time::Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let found = tokio::join!(
            session.discover_service_endpoint(&ServiceType::Compute),
            session.discover_service_endpoint(&ServiceType::Network),
            session.discover_service_endpoint(&ServiceType::Image),
            session.discover_service_endpoint(&ServiceType::LoadBalancer),
        );
        let failed = [("compute", found.0), ("network", found.1), ("image", found.2), ("load-balancer", found.3)]
            .into_iter()
            .find_map(|(service, result)| result.err().map(|err| (service, err)));
        if let Some((service, err)) = &failed {
            if let Some((url, tls)) = transport::tls_failure(err) {
                return Err(transport::untrusted(
                    cloud,
                    &url.unwrap_or_else(|| format!("the {service} endpoint")),
                    &tls,
                    config.cacert.as_deref(),
                ));
            }
            if let openstack_sdk::OpenStackError::Discovery { url, .. } = err
                && let Some(untrusted) = auth::tls_probe(cloud, config, url).await
            {
                return Err(untrusted);
            }
        }
        let failed = failed.map(|(service, err)| (service, error_chain(&err)));
        let Some((service, message)) = failed else { return Ok(()) };
        let wait = policy.delay(attempt, None, transport::jitter());
        if !policy.should_retry(attempt, true, &transport::Transient::Connect) || start.elapsed() + wait > policy.budget {
            return Err(CloudError::Unavailable {
                service,
                attempts: attempt,
                message: format!("version discovery on cloud `{cloud}`: {message}"),
            });
        }
        tracing::warn!(cloud, service, attempt, "version discovery failed, retrying: {message}");
        tokio::time::sleep(wait).await;
    }
}

/// Whether a failed connect is worth retrying (no answer from Keystone) rather than a
/// credentials or configuration problem.
fn connect_error_is_transient(err: &openstack_sdk::OpenStackError) -> bool {
    use openstack_sdk::{AuthError, OpenStackError};
    if matches!(
        err,
        OpenStackError::Discovery { .. }
            | OpenStackError::Communication { .. }
            | OpenStackError::AuthError { source: AuthError::Reqwest { .. } }
    ) {
        return true;
    }
    // Keystone answering 5xx or 429 to the login is the service's trouble, not the
    // credentials' (the fault-injecting proxy of the test bed found this); the SDK reports
    // it as an "identity service error" with the HTTP status, possibly wrapped.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(AuthError::UnknownAuth { code, .. }) = e.downcast_ref::<AuthError>() {
            return *code >= 500 || *code == 429;
        }
        cause = e.source();
    }
    false
}

/// Whether `s` has the shape of an OpenStack ID (UUID, with or without dashes): only
/// then is a lookup by ID tried before the lookup by name.
fn looks_like_id(s: &str) -> bool {
    let hex = s.chars().filter(|c| *c != '-').collect::<String>();
    hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) && (s.len() == 32 || s.len() == 36)
}

/// The one element of `found`, or `NotFound` / `Ambiguous`.
fn exactly_one<T>(kind: &'static str, name: &str, mut found: Vec<T>) -> CloudResult<T> {
    match found.len() {
        0 => Err(CloudError::NotFound { kind, name: name.to_owned() }),
        1 => Ok(found.remove(0)),
        count => Err(CloudError::Ambiguous { kind, name: name.to_owned(), count }),
    }
}

fn route_json(routes: &[Route]) -> Vec<serde_json::Value> {
    routes.iter().map(|r| json!({"destination": r.destination.to_string(), "nexthop": r.nexthop.to_string()})).collect()
}

/// The health monitor's body: every 5 s, 5 s to answer, 3 failures take a member out.
fn monitor_json(monitor: &HealthMonitor, pool_id: &str) -> serde_json::Value {
    let mut m = json!({"pool_id": pool_id, "delay": 5, "timeout": 5, "max_retries": 3});
    if let Some(map) = m.as_object_mut() {
        match monitor {
            HealthMonitor::Tcp => {
                map.insert("type".into(), json!("TCP"));
            }
            HealthMonitor::Https { path, expected_codes } => {
                map.insert("type".into(), json!("HTTPS"));
                map.insert("http_method".into(), json!("GET"));
                map.insert("url_path".into(), json!(path));
                map.insert("expected_codes".into(), json!(expected_codes));
            }
        }
    }
    m
}

fn members_json(members: &[(String, Ipv4Addr)], port: u16, subnet_id: Option<&str>) -> Vec<serde_json::Value> {
    members
        .iter()
        .map(|(name, ip)| {
            let mut m = json!({"name": name, "address": ip.to_string(), "protocol_port": port});
            if let (Some(subnet), Some(map)) = (subnet_id, m.as_object_mut()) {
                map.insert("subnet_id".into(), json!(subnet));
            }
            m
        })
        .collect()
}

impl Cloud for OpenStackCloud {
    fn name(&self) -> &str {
        &self.transport.cloud
    }

    /// calls: 0 (the token's catalog).
    async fn services(&self) -> CloudResult<BTreeSet<String>> {
        Ok(self.t().session.get_token_catalog().unwrap_or_default().into_iter().map(|s| s.service_type).collect())
    }

    /// calls: 1.
    async fn network_extensions(&self) -> CloudResult<BTreeSet<String>> {
        let call = Call::get(Service::Network, "extensions");
        let list: wire::ExtensionList = self.t().json(&call, "list network extensions").await?;
        Ok(list.extensions.into_iter().map(|e| e.alias).collect())
    }

    /// Nova's `GET /limits` (a project user may always read it, unlike
    /// `os-quota-sets/.../detail`) and Neutron's quota details. calls: 2, in parallel.
    async fn quotas(&self) -> CloudResult<Quotas> {
        let limits = Call::get(Service::Compute, "limits");
        let neutron = Call::get(Service::Network, format!("quotas/{}/details.json", self.project_id));
        let (limits, neutron) = tokio::try_join!(
            self.t().json::<wire::Limits>(&limits, "read compute limits"),
            self.t().json::<wire::NeutronQuotaDetails>(&neutron, "read network quotas"),
        )?;
        let (instances, cores, ram) = limits.compute();
        Ok(Quotas {
            instances,
            cores,
            ram,
            ports: neutron.get("port"),
            floating_ips: neutron.get("floatingip"),
            security_groups: neutron.get("security_group"),
            security_group_rules: neutron.get("security_group_rule"),
        })
    }

    /// Neutron's `max_routes` is a server option no API shows to a project user (and
    /// kos never probes by writing): always `None`. calls: 0.
    async fn max_routes(&self) -> CloudResult<Option<u32>> {
        Ok(None)
    }

    /// By ID (`GET /v2/images/{id}`) when it looks like one, else by name. calls: 1–2.
    async fn image(&self, name_or_id: &str) -> CloudResult<Image> {
        self.find(Service::Image, "images", "image", name_or_id, |one: Image| one, |many: wire::ImageList| many.images).await
    }

    /// Flavor IDs may be any string: the list, matched by ID, else by name; else by ID
    /// alone (a private flavor an admin's list leaves out). calls: 1 (2 for that flavor).
    /// `GET flavors/{x}` first cost a second call, one after the other, whenever the settings
    /// name a flavor by its name, which is the usual case.
    async fn flavor(&self, name_or_id: &str) -> CloudResult<Flavor> {
        let call = Call::get(Service::Compute, "flavors/detail");
        let list: wire::FlavorList = self.t().json(&call, "list flavors").await?;
        if let Some(f) = list.flavors.iter().find(|f| f.id == name_or_id) {
            return Ok(f.clone());
        }
        let named: Vec<Flavor> = list.flavors.into_iter().filter(|f| f.name == name_or_id).collect();
        if named.is_empty() {
            let call = Call::get(Service::Compute, format!("flavors/{name_or_id}"));
            if let Some(one) = self.t().json_opt::<wire::FlavorOne>(&call, "read flavor").await? {
                return Ok(one.flavor);
            }
        }
        exactly_one("flavor", name_or_id, named)
    }

    /// calls: 1.
    async fn keypair(&self, name: &str) -> CloudResult<Option<Keypair>> {
        let call = Call::get(Service::Compute, format!("os-keypairs/{name}"));
        Ok(self.t().json_opt::<wire::KeypairOne>(&call, "read keypair").await?.map(|k| k.keypair))
    }

    /// calls: 1–2.
    async fn network(&self, name_or_id: &str) -> CloudResult<Network> {
        let one = |one: wire::NetworkOne| one.network.into();
        let many = |many: wire::NetworkList| many.networks.into_iter().map(Network::from).collect();
        self.find(Service::Network, "networks", "network", name_or_id, one, many).await
    }

    /// IPv4 subnets of the network. calls: 1.
    async fn subnets(&self, network_id: &str) -> CloudResult<Vec<Subnet>> {
        let call = Call::get(Service::Network, "subnets").query("network_id", network_id);
        let list: wire::SubnetList = self.t().json(&call, "list subnets").await?;
        Ok(list.subnets.into_iter().filter_map(wire::WireSubnet::into_model).collect())
    }

    /// calls: 1–2.
    async fn router(&self, name_or_id: &str) -> CloudResult<Router> {
        let one = |one: wire::RouterOne| one.router.into();
        let many = |many: wire::RouterList| many.routers.into_iter().map(Router::from).collect();
        self.find(Service::Network, "routers", "router", name_or_id, one, many).await
    }

    /// `GET /servers/detail`, following Nova's `next` links (1000 servers a page by
    /// default). calls: 1 per 1000 servers.
    async fn servers(&self) -> CloudResult<Vec<Server>> {
        let mut servers = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut call = Call::get(Service::Compute, "servers/detail");
            if let Some(m) = &marker {
                call = call.query("marker", m.clone());
            }
            let page: wire::ServerList = self.t().json(&call, "list servers").await?;
            let next = wire::next_marker(&page.servers_links);
            let empty = page.servers.is_empty();
            servers.extend(page.servers.into_iter().map(Server::from));
            match next {
                Some(m) if !empty && marker.as_ref() != Some(&m) => marker = Some(m),
                _ => return Ok(servers),
            }
        }
    }

    /// calls: 1.
    async fn server(&self, id: &str) -> CloudResult<Option<Server>> {
        let call = Call::get(Service::Compute, format!("servers/{id}"));
        Ok(self.t().json_opt::<wire::ServerOne>(&call, "read server").await?.map(|s| s.server.into()))
    }

    /// Neutron filters: `tags` (all of them), `network_id`, `device_id`. calls: 1.
    async fn ports(&self, filter: &PortFilter) -> CloudResult<Vec<Port>> {
        // No server-side tag filter: a port whose tagging was interrupted carries its
        // marks only in its description.
        let mut call = Call::get(Service::Network, "ports");
        if let Some(n) = &filter.network_id {
            call = call.query("network_id", n.clone());
        }
        if let Some(d) = &filter.device_id {
            call = call.query("device_id", d.clone());
        }
        let list: wire::PortList = wire::with_description_marks(self.t().json(&call, "list ports").await?, "ports")?;
        Ok(list.ports.into_iter().map(Port::from).filter(|p| filter.tags.iter().all(|t| p.tags.contains(t))).collect())
    }

    /// calls: 1.
    async fn floating_ips(&self, tags: &[String]) -> CloudResult<Vec<FloatingIp>> {
        let call = Call::get(Service::Network, "floatingips");
        let list: wire::FloatingIpList = wire::with_description_marks(self.t().json(&call, "list floating IPs").await?, "floatingips")?;
        Ok(list.floatingips.into_iter().filter(|f| tags.iter().all(|t| f.tags.contains(t))).collect())
    }

    /// Rules are the IPv4 ones (Neutron's default IPv6 egress rule is left out). calls: 1.
    async fn security_groups(&self, tags: &[String]) -> CloudResult<Vec<SecurityGroup>> {
        let call = Call::get(Service::Network, "security-groups");
        let list: wire::SecurityGroupList =
            wire::with_description_marks(self.t().json(&call, "list security groups").await?, "security_groups")?;
        Ok(list.security_groups.into_iter().map(SecurityGroup::from).filter(|g| tags.iter().all(|t| g.tags.contains(t))).collect())
    }

    /// calls: 1.
    async fn load_balancers(&self) -> CloudResult<Vec<LoadBalancer>> {
        let call = Call::get(Service::LoadBalancer, "lbaas/loadbalancers");
        Ok(self.t().json::<wire::LoadBalancerList>(&call, "list load balancers").await?.loadbalancers)
    }

    /// calls: 2 (the load balancer's pools, its pool's members).
    async fn load_balancer_members(&self, id: &str) -> CloudResult<Vec<LoadBalancerMember>> {
        let read = Call::get(Service::LoadBalancer, format!("lbaas/loadbalancers/{id}"));
        let detail: wire::LoadBalancerDetail = self.t().json(&read, "read load balancer").await?;
        let pool = exactly_one("pool of load balancer", id, detail.loadbalancer.pools)?;
        let call = Call::get(Service::LoadBalancer, format!("lbaas/pools/{}/members", pool.id));
        Ok(self.t().json::<wire::MemberList>(&call, "list the members of a pool").await?.members)
    }

    /// calls: 1–2 (see `create_tagged`), plus 1 the first time (extensions).
    async fn create_security_group(&self, name: &str, description: &str, tags: &[String]) -> CloudResult<SecurityGroup> {
        let mut body = serde_json::Map::new();
        body.insert("name".into(), json!(name));
        body.insert("description".into(), json!(description));
        let group: wire::WireSecurityGroup =
            self.create_tagged("security-groups", "security_group", body, tags, &format!("create security group `{name}`")).await?;
        Ok(group.into())
    }

    /// An IPv4 rule; one that exists already is success. calls: 1.
    async fn add_security_group_rule(&self, group_id: &str, rule: &RuleSpec) -> CloudResult<()> {
        let mut body = serde_json::Map::new();
        body.insert("security_group_id".into(), json!(group_id));
        body.insert("direction".into(), json!(rule.direction));
        body.insert("ethertype".into(), json!("IPv4"));
        if let Some(p) = rule.protocol {
            body.insert("protocol".into(), json!(p));
        }
        if let Some(p) = rule.port_min {
            body.insert("port_range_min".into(), json!(p));
        }
        if let Some(p) = rule.port_max {
            body.insert("port_range_max".into(), json!(p));
        }
        if let Some(prefix) = &rule.remote_ip_prefix {
            body.insert("remote_ip_prefix".into(), json!(prefix));
        }
        if rule.remote_self {
            body.insert("remote_group_id".into(), json!(group_id));
        }
        let call = Call::post(Service::Network, "security-group-rules", json!({ "security_group_rule": body }));
        let action = format!("add a rule to security group {group_id}");
        let reply = self.t().send(&call).await?;
        match reply.status {
            200..=299 => Ok(()),
            409 if transport::neutron_error_type(&reply.body).as_deref() == Some("SecurityGroupRuleExists") => Ok(()),
            status => Err(self.t().error(&call, &action, status, &reply.body)),
        }
    }

    /// calls: 1.
    async fn delete_security_group(&self, id: &str) -> CloudResult<()> {
        let call = Call::delete(Service::Network, format!("security-groups/{id}"));
        self.t().delete(&call, &format!("delete security group {id}")).await
    }

    /// calls: 1–2 (see `create_tagged`).
    async fn create_port(&self, spec: &PortSpec) -> CloudResult<Port> {
        let mut body = serde_json::Map::new();
        body.insert("name".into(), json!(spec.name));
        body.insert("network_id".into(), json!(spec.network_id));
        body.insert("security_groups".into(), json!(spec.security_group_ids));
        let pairs: Vec<_> = spec.allowed_address_pairs.iter().map(|c| json!({"ip_address": c})).collect();
        body.insert("allowed_address_pairs".into(), json!(pairs));
        let port: wire::WirePort = self.create_tagged("ports", "port", body, &spec.tags, &format!("create port `{}`", spec.name)).await?;
        Ok(port.into())
    }

    /// calls: 1.
    async fn set_allowed_address_pairs(&self, port_id: &str, cidrs: &[String]) -> CloudResult<Port> {
        let pairs: Vec<_> = cidrs.iter().map(|c| json!({"ip_address": c})).collect();
        let call = Call::put(Service::Network, format!("ports/{port_id}"), json!({"port": {"allowed_address_pairs": pairs}}));
        let one: wire::PortOne = self.t().json(&call, &format!("set the address pairs of port {port_id}")).await?;
        Ok(one.port.into())
    }

    /// calls: 1.
    async fn set_tags(&self, collection: &'static str, id: &str, tags: &[String]) -> CloudResult<()> {
        let call = Call::put(Service::Network, format!("{collection}/{id}/tags"), json!({ "tags": tags }));
        self.t().ok(&call, &format!("tag {collection} {id}")).await.map(|_| ())
    }

    /// calls: 1.
    async fn delete_port(&self, id: &str) -> CloudResult<()> {
        let call = Call::delete(Service::Network, format!("ports/{id}"));
        self.t().delete(&call, &format!("delete port {id}")).await
    }

    /// Nova answers a create with the ID only; the returned server is the spec with that
    /// ID, status `BUILD` and no addresses yet (poll [`Cloud::server`]). calls: 1.
    async fn create_server(&self, spec: &ServerSpec) -> CloudResult<Server> {
        let mut server = json!({
            "name": spec.name,
            "imageRef": spec.image_id,
            "flavorRef": spec.flavor_id,
            "networks": [{"port": spec.port_id}],
            "metadata": spec.metadata,
        });
        if let Some(map) = server.as_object_mut() {
            if let Some(key) = &spec.key_name {
                map.insert("key_name".into(), json!(key));
            }
            if let Some(az) = &spec.availability_zone {
                map.insert("availability_zone".into(), json!(az));
            }
            if let Some(data) = &spec.user_data {
                map.insert("user_data".into(), json!(base64::engine::general_purpose::STANDARD.encode(data)));
            }
        }
        let call = Call::post(Service::Compute, "servers", json!({ "server": server }));
        let action = format!("create server `{}`", spec.name);
        let created: serde_json::Value = self.t().json(&call, &action).await?;
        let id = created.get("server").and_then(|s| s.get("id")).and_then(|v| v.as_str()).ok_or_else(|| CloudError::Refused {
            service: "compute",
            action: action.clone(),
            message: "no server ID in the answer".into(),
        })?;
        Ok(Server {
            id: id.to_owned(),
            name: spec.name.clone(),
            status: "BUILD".into(),
            metadata: spec.metadata.clone(),
            fault: None,
            addresses: Vec::new(),
            key_name: spec.key_name.clone(),
            flavor_id: Some(spec.flavor_id.clone()),
        })
    }

    /// Returns once Nova no longer lists the server, so its port is free and a leftover
    /// check right after sees nothing. calls: 1 + 1 per 0.3 s until gone.
    async fn delete_server(&self, id: &str) -> CloudResult<()> {
        let call = Call::delete(Service::Compute, format!("servers/{id}"));
        let action = format!("delete server {id}");
        self.t().delete(&call, &action).await?;
        let start = Instant::now();
        let mut polls = 0;
        while let Some(server) = self.server(id).await? {
            polls += 1;
            if start.elapsed() > SERVER_DELETE_TIMEOUT {
                return Err(CloudError::Unavailable {
                    service: "compute",
                    attempts: polls,
                    message: format!("server {id} still {} {} s after its deletion", server.status, SERVER_DELETE_TIMEOUT.as_secs()),
                });
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    /// calls: 1–2 (see `create_tagged`).
    async fn create_floating_ip(&self, network_id: &str, tags: &[String]) -> CloudResult<FloatingIp> {
        let mut body = serde_json::Map::new();
        body.insert("floating_network_id".into(), json!(network_id));
        self.create_tagged("floatingips", "floatingip", body, tags, "create a floating IP").await
    }

    /// calls: 1.
    async fn set_floating_ip_port(&self, id: &str, port_id: Option<&str>) -> CloudResult<FloatingIp> {
        let call = Call::put(Service::Network, format!("floatingips/{id}"), json!({"floatingip": {"port_id": port_id}}));
        let action = match port_id {
            Some(p) => format!("attach floating IP {id} to port {p}"),
            None => format!("detach floating IP {id}"),
        };
        let reply = self.t().send(&call).await?;
        match reply.status {
            200..=299 => Ok(decode::<wire::FloatingIpOne>(&call, &action, &reply.body)?.floatingip),
            // The address or the port may be missing: Neutron's words say which.
            404 => Err(CloudError::Refused {
                service: "network",
                action,
                message: format!("{} (HTTP 404)", transport::api_message(&reply.body)),
            }),
            status => Err(self.t().error(&call, &action, status, &reply.body)),
        }
    }

    /// calls: 1.
    async fn delete_floating_ip(&self, id: &str) -> CloudResult<()> {
        let call = Call::delete(Service::Network, format!("floatingips/{id}"));
        self.t().delete(&call, &format!("delete floating IP {id}")).await
    }

    /// calls: 1.
    async fn add_routes(&self, router_id: &str, routes: &[Route]) -> CloudResult<Router> {
        let call =
            Call::put(Service::Network, format!("routers/{router_id}/add_extraroutes"), json!({"router": {"routes": route_json(routes)}}));
        let one: wire::RouterOne = self.t().json(&call, &format!("add routes to router {router_id}")).await?;
        Ok(one.router.into())
    }

    /// calls: 1.
    async fn remove_routes(&self, router_id: &str, routes: &[Route]) -> CloudResult<Router> {
        let call = Call::put(
            Service::Network,
            format!("routers/{router_id}/remove_extraroutes"),
            json!({"router": {"routes": route_json(routes)}}),
        );
        let one: wire::RouterOne = self.t().json(&call, &format!("remove routes from router {router_id}")).await?;
        Ok(one.router.into())
    }

    /// Reads the router first, because routes kos's model can't hold (IPv6) must be
    /// written back as they are; then `PUT` with `If-Match: revision_number=N`.
    /// calls: 2.
    async fn replace_routes(&self, router_id: &str, routes: &[Route], revision: u64) -> CloudResult<Router> {
        let conflict = || CloudError::Conflict { kind: "router", id: router_id.to_owned() };
        let read = Call::get(Service::Network, format!("routers/{router_id}"));
        let current = self
            .t()
            .json_opt::<wire::RouterOne>(&read, "read router")
            .await?
            .ok_or_else(|| CloudError::NotFound { kind: "router", name: router_id.to_owned() })?
            .router;
        let mut all = route_json(routes);
        all.extend(current.foreign_raw_routes());
        if Router::from(current).revision_number != revision {
            return Err(conflict());
        }
        let if_match = HeaderValue::from_str(&format!("revision_number={revision}")).map_err(|e| CloudError::Refused {
            service: "network",
            action: "replace routes".into(),
            message: e.to_string(),
        })?;
        let call =
            Call::put(Service::Network, format!("routers/{router_id}"), json!({"router": {"routes": all}})).header("If-Match", if_match);
        let action = format!("replace the routes of router {router_id}");
        let reply = self.t().send(&call).await?;
        match reply.status {
            200..=299 => Ok(decode::<wire::RouterOne>(&call, &action, &reply.body)?.router.into()),
            412 => Err(conflict()),
            status => Err(self.t().error(&call, &action, status, &reply.body)),
        }
    }

    /// Step by step, each step waiting for the load balancer to be `ACTIVE` again: load
    /// balancer (VIP subnet, description = kos's mark), TCP listener, ROUND_ROBIN TCP pool,
    /// members (one batch), TCP health monitor. (Octavia's single-call "fully populated"
    /// create is one request, but on the test cloud (Octavia 11, Zed) it leaves the pool
    /// in `PENDING_CREATE` for good, so it can never be updated.) When a step fails the
    /// half-built load balancer is cascade-deleted; if that fails too, its description
    /// still carries the mark, so `destroy` finds it.
    /// calls: 5 creates + 1 poll per 0.3 s of each wait (≈ 5 + 5×2 on the test cloud).
    async fn create_load_balancer(&self, spec: &LoadBalancerSpec) -> CloudResult<LoadBalancer> {
        let action = format!("create load balancer `{}`", spec.name);
        let vip = match &spec.vip_port_id {
            Some(port) => ("vip_port_id", port),
            None => ("vip_subnet_id", &spec.subnet_id),
        };
        let mut lb = json!({"name": spec.name, "description": spec.description});
        lb[vip.0] = json!(vip.1);
        let body = json!({ "loadbalancer": lb });
        let call = Call::post(Service::LoadBalancer, "lbaas/loadbalancers", body);
        let created: wire::LoadBalancerOne = self.t().json(&call, &action).await?;
        let id = created.loadbalancer.id;
        match self.build_load_balancer(&id, spec, &action).await {
            Ok(lb) => Ok(lb),
            Err(err) => {
                if let Err(undo) = self.delete_load_balancer(&id).await {
                    tracing::error!(lb = %id, "half-built load balancer not deleted: {undo}");
                }
                Err(err)
            }
        }
    }

    /// Octavia's batch member update (`PUT /pools/{id}/members`) replaces the whole list.
    /// calls: 1 (load balancer) + 1 (update) + 1 per 0.3 s until ACTIVE.
    async fn set_load_balancer_members(&self, id: &str, member_port: u16, members: &[(String, Ipv4Addr)]) -> CloudResult<()> {
        let read = Call::get(Service::LoadBalancer, format!("lbaas/loadbalancers/{id}"));
        let reply = self.t().ok(&read, "read load balancer").await?;
        let lb: wire::LoadBalancerOne = decode(&read, "read load balancer", &reply.body)?;
        let detail: wire::LoadBalancerDetail = decode(&read, "read load balancer", &reply.body)?;
        if lb.loadbalancer.provisioning_status != "ACTIVE" {
            self.wait_lb_active(id).await?;
        }
        let pool = exactly_one("pool of load balancer", id, detail.loadbalancer.pools)?;
        let body = json!({"members": members_json(members, member_port, detail.loadbalancer.vip_subnet_id.as_deref())});
        let call = Call::put(Service::LoadBalancer, format!("lbaas/pools/{}/members", pool.id), body);
        self.octavia_write(&call, id, &format!("set the members of load balancer {id}")).await?;
        self.wait_lb_active(id).await.map(drop)
    }

    /// `DELETE ...?cascade=true`, waiting first while the load balancer is `PENDING_*`
    /// (Octavia refuses with 409 then), and after until it is gone.
    /// calls: 1 + 1 per 0.3 s until gone.
    async fn delete_load_balancer(&self, id: &str) -> CloudResult<()> {
        let call = Call::delete(Service::LoadBalancer, format!("lbaas/loadbalancers/{id}")).query("cascade", "true");
        let read = Call::get(Service::LoadBalancer, format!("lbaas/loadbalancers/{id}"));
        let action = format!("delete load balancer {id}");
        let start = Instant::now();
        let mut polls = 0;
        let mut deleted = false;
        loop {
            polls += 1;
            if !deleted {
                let reply = self.t().send(&call).await?;
                match reply.status {
                    200..=299 | 404 => deleted = true,
                    // PENDING_*: immutable for now; try again after the poll below.
                    409 => {}
                    status => return Err(self.t().error(&call, &action, status, &reply.body)),
                }
            }
            match self.t().json_opt::<wire::LoadBalancerOne>(&read, "read load balancer").await? {
                None => return Ok(()),
                Some(lb) if lb.loadbalancer.provisioning_status == "DELETED" => return Ok(()),
                Some(lb) if start.elapsed() > LB_TIMEOUT => {
                    return Err(CloudError::Unavailable {
                        service: "load-balancer",
                        attempts: polls,
                        message: format!(
                            "load balancer {id} still {} after {} s",
                            lb.loadbalancer.provisioning_status,
                            LB_TIMEOUT.as_secs()
                        ),
                    });
                }
                Some(_) => tokio::time::sleep(POLL).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uuid_shaped_strings_are_tried_as_ids() {
        assert!(looks_like_id("c5380123-b48e-451d-9e49-681a43dba1b6"));
        assert!(looks_like_id("c5380123b48e451d9e49681a43dba1b6"));
        assert!(!looks_like_id("demo-net"));
        assert!(!looks_like_id("c5380123-b48e-451d-9e49-681a43dba1bz"));
    }

    #[test]
    fn a_name_must_match_exactly_one() {
        assert_eq!(exactly_one("image", "a", vec![1]), Ok(1));
        assert_eq!(exactly_one::<u8>("image", "a", vec![]), Err(CloudError::NotFound { kind: "image", name: "a".into() }));
        assert_eq!(exactly_one("image", "a", vec![1, 2]), Err(CloudError::Ambiguous { kind: "image", name: "a".into(), count: 2 }));
    }

    #[test]
    fn the_api_monitor_asks_for_readyz_over_https_and_exposures_keep_a_tcp_connect() {
        let https = HealthMonitor::Https { path: "/readyz".into(), expected_codes: "200".into() };
        assert_eq!(
            monitor_json(&https, "p"),
            json!({"pool_id": "p", "type": "HTTPS", "http_method": "GET", "url_path": "/readyz", "expected_codes": "200",
                   "delay": 5, "timeout": 5, "max_retries": 3})
        );
        assert_eq!(
            monitor_json(&HealthMonitor::Tcp, "p"),
            json!({"pool_id": "p", "type": "TCP", "delay": 5, "timeout": 5, "max_retries": 3})
        );
    }

    #[test]
    fn members_carry_the_subnet_when_known() {
        let m = members_json(&[("w1".into(), Ipv4Addr::new(10, 0, 0, 5))], 30080, Some("sub"));
        assert_eq!(m[0], json!({"name": "w1", "address": "10.0.0.5", "protocol_port": 30080, "subnet_id": "sub"}));
        assert!(members_json(&[("w1".into(), Ipv4Addr::new(10, 0, 0, 5))], 1, None)[0].get("subnet_id").is_none());
    }
}
