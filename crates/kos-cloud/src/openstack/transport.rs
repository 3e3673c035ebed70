//! One HTTP call to an OpenStack API, its retries, and what its answer means for kos.
//!
//! Requests go through `openstack_sdk`'s generic endpoint machinery (catalog lookup, token
//! header, re-authentication on 401, Nova microversion header) with kos's own [`Call`]
//! instead of the SDK's generated endpoint builders: kos needs the raw status, the
//! `Retry-After` header and the error body verbatim, and decodes answers into its own model.
//!
//! The decisions are pure functions ([`RetryPolicy`], [`error_from_response`]) so they are
//! unit-tested without a cloud.

use crate::api::{CloudError, CloudResult};
use http::{HeaderMap, HeaderValue, Method};
use openstack_sdk::AsyncOpenStack;
use openstack_sdk::api::rest_endpoint_prelude::{ApiVersion, BodyError, Cow, QueryParams, RestEndpoint, ServiceType};
use openstack_sdk::api::{ApiError, QueryAsync, raw};
use openstack_sdk::catalog::CatalogError;
use serde::de::DeserializeOwned;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The OpenStack services kos talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Compute,
    Network,
    Image,
    LoadBalancer,
}

impl Service {
    const ALL: [Service; 4] = [Service::Compute, Service::Network, Service::Image, Service::LoadBalancer];

    /// The catalog's service type, also used in error messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::Compute => "compute",
            Service::Network => "network",
            Service::Image => "image",
            Service::LoadBalancer => "load-balancer",
        }
    }

    fn sdk_type(self) -> ServiceType {
        match self {
            Service::Compute => ServiceType::Compute,
            Service::Network => ServiceType::Network,
            Service::Image => ServiceType::Image,
            Service::LoadBalancer => ServiceType::LoadBalancer,
        }
    }

    /// The API version kos speaks. For Nova it is also the microversion sent: 2.1 is
    /// enough for everything kos does (and keeps `flavor.id` in server details).
    fn version(self) -> ApiVersion {
        match self {
            Service::Compute => ApiVersion::new(2, 1),
            Service::Network | Service::Image | Service::LoadBalancer => ApiVersion::new(2, 0),
        }
    }
}

/// One request, as a value: what [`Transport::send`] sends (and re-sends on retry).
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) service: Service,
    /// Path below the service's versioned endpoint, e.g. `ports` or `servers/detail`.
    pub(crate) path: String,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) body: Option<serde_json::Value>,
    pub(crate) headers: HeaderMap,
}

impl Call {
    pub(crate) fn new(method: Method, service: Service, path: impl Into<String>) -> Self {
        Call { method, service, path: path.into(), query: Vec::new(), body: None, headers: HeaderMap::new() }
    }
    pub(crate) fn get(service: Service, path: impl Into<String>) -> Self {
        Self::new(Method::GET, service, path)
    }
    pub(crate) fn post(service: Service, path: impl Into<String>, body: serde_json::Value) -> Self {
        Self::new(Method::POST, service, path).body(body)
    }
    pub(crate) fn put(service: Service, path: impl Into<String>, body: serde_json::Value) -> Self {
        Self::new(Method::PUT, service, path).body(body)
    }
    pub(crate) fn delete(service: Service, path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, service, path)
    }
    pub(crate) fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }
    pub(crate) fn body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }
    pub(crate) fn header(mut self, name: &'static str, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Whether sending it twice does no more than sending it once. A POST that timed out
    /// may have been carried out; retrying it could make a second (untagged) resource.
    fn idempotent(&self) -> bool {
        self.method != Method::POST
    }

    /// `GET network/ports` (for messages and logs; never carries a body or a secret).
    pub(crate) fn describe(&self) -> String {
        format!("{} {}/{}", self.method, self.service.name(), self.path)
    }
}

impl RestEndpoint for Call {
    fn method(&self) -> Method {
        self.method.clone()
    }
    fn endpoint(&self) -> Cow<'static, str> {
        self.path.clone().into()
    }
    fn service_type(&self) -> ServiceType {
        self.service.sdk_type()
    }
    fn parameters(&self) -> QueryParams<'_> {
        let mut params = QueryParams::default();
        for (key, value) in &self.query {
            params.push(*key, value);
        }
        params
    }
    fn body(&self) -> Result<Option<(&'static str, Vec<u8>)>, BodyError> {
        match &self.body {
            Some(body) => Ok(Some(("application/json", serde_json::to_vec(body)?))),
            None => Ok(None),
        }
    }
    fn request_headers(&self) -> Option<&HeaderMap> {
        (!self.headers.is_empty()).then_some(&self.headers)
    }
    fn api_version(&self) -> Option<ApiVersion> {
        Some(self.service.version())
    }
}

/// An HTTP answer (any status) after retries.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// How often and how long to retry transient failures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Attempts in all (the first included).
    pub(crate) max_attempts: u32,
    /// Delay before the second attempt; doubles each time (before jitter).
    pub(crate) base_delay: Duration,
    /// No single wait is longer, `Retry-After` included.
    pub(crate) max_delay: Duration,
    /// No retry starts after this much time since the first attempt.
    pub(crate) budget: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts within about 30 s: waits of ~0.5, 1, 2, 4, 8 s (± jitter).
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            budget: Duration::from_secs(30),
        }
    }
}

/// What went wrong with one attempt, as far as retrying is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transient {
    /// An HTTP status, with `Retry-After` when the server sent one.
    Status(u16, Option<Duration>),
    /// The connection could not be made: the request was certainly not carried out.
    Connect,
    /// Timeout or broken connection after the request left: it may have been carried out.
    Interrupted,
}

impl RetryPolicy {
    /// Whether `failure` on attempt number `attempt` (1-based) of a call that is or isn't
    /// `idempotent` deserves another attempt (budget aside).
    pub(crate) fn should_retry(&self, attempt: u32, idempotent: bool, failure: &Transient) -> bool {
        if attempt >= self.max_attempts {
            return false;
        }
        match failure {
            Transient::Connect => true,
            // 429 and 503 mean "not now": the request was not processed. Other 5xx and
            // timeouts may have been processed, so only idempotent calls repeat them.
            Transient::Status(429 | 503, _) => true,
            Transient::Status(500..=599, _) | Transient::Interrupted => idempotent,
            Transient::Status(_, _) => false,
        }
    }

    /// Wait before attempt `attempt + 1`: exponential, with "full jitter" in the upper
    /// half (`jitter` in 0..1), at least `Retry-After`, never more than `max_delay`.
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let exp = exp.min(self.max_delay);
        let jittered = exp.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        retry_after.map_or(jittered, |ra| ra.max(jittered)).min(self.max_delay)
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare for OpenStack; ignored).
pub(crate) fn parse_retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    value?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A number in 0..1 that differs between calls and processes (jitter needs no more).
pub(crate) fn jitter() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Who kos is logged in as, for the messages of a refused call: which credential lacks a
/// right, and whether a refused token could have been renewed.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub(crate) kind: super::auth::Kind,
    /// E.g. "application credential `ci` (ID 3f…) of user `demo`, roles member in project `demo`".
    pub(crate) who: String,
    /// The cloud's `cacert`, for the message of an untrusted certificate.
    pub(crate) cacert: Option<String>,
}

impl Login {
    /// What kos needs and how to get it, after "the {who} lacks the right to it".
    fn lacks(&self) -> String {
        let how = match self.kind {
            super::auth::Kind::ApplicationCredential => {
                "an application credential has only the roles chosen with `--role` when it was made (all of its user's by default), and its access rules, if any, must allow every call kos makes: create one with those roles and without `--access-rules`"
            }
            _ => "ask the cloud's operator for them, or use a credential that has them",
        };
        format!("the {} lacks the right to it: kos needs the roles member and load-balancer_member in the project; {how}", self.who)
    }

    /// A 401 after the SDK logged in again (a token that expired or was revoked is renewed
    /// once; a second 401 is the answer to the fresh token, or the renewal failed).
    fn refused_mid_run(&self, service: &str, call: &Call, api: &str) -> String {
        let what = format!("{service} refused {} with HTTP 401 ({api})", call.describe());
        match self.kind {
            super::auth::Kind::Token => format!(
                "{what}: the token has expired or was revoked during the run, and a token login cannot be renewed; issue a new one (`openstack token issue`), or better log in with an application credential or a password, which kos renews by itself"
            ),
            super::auth::Kind::ApplicationCredential => format!(
                "{what} even after logging in again with the {}: its access rules do not allow this call (create one without `--access-rules`, or with rules for every call kos makes), or it was deleted or expired during the run",
                self.who
            ),
            _ => format!(
                "{what} even after logging in again as the {}: the password was changed or the user disabled during the run",
                self.who
            ),
        }
    }
}

/// The certificate problem inside `err` when the cloud's TLS certificate was not trusted:
/// the URL asked (when the error names it) and what the TLS library said.
pub(crate) fn tls_failure(err: &(dyn std::error::Error + 'static)) -> Option<(Option<String>, String)> {
    fn visit(e: &(dyn std::error::Error + 'static), url: &mut Option<String>) -> Option<String> {
        if let Some(r) = e.downcast_ref::<reqwest::Error>()
            && let Some(u) = r.url()
        {
            *url = Some(u.as_str().to_owned());
        }
        if let Some(tls @ (rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)) =
            e.downcast_ref::<rustls::Error>()
        {
            return Some(tls.to_string());
        }
        // An I/O error's `source()` skips the error it wraps: look inside it too.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = visit(inner, url)
        {
            return Some(found);
        }
        visit(e.source()?, url)
    }
    let mut url = None;
    visit(err, &mut url).map(|message| (url, message))
}

/// The one line for an untrusted certificate of `cloud` at `url`: the fix is its CA.
pub(crate) fn untrusted(cloud: &str, url: &str, tls: &str, cacert: Option<&str>) -> CloudError {
    let message = match cacert {
        None => format!(
            "its TLS certificate is not trusted ({tls}); give kos the CA certificate that signed it: `cacert: /path/to/ca.pem` under this cloud in clouds.yaml, or export OS_CACERT=/path/to/ca.pem"
        ),
        Some(file) => format!(
            "its TLS certificate is not trusted ({tls}), not even with the CA of cacert {file}; point `cacert:` (or OS_CACERT) at the CA certificate that signed the cloud's"
        ),
    };
    CloudError::Tls { cloud: cloud.to_owned(), url: url.to_owned(), message }
}

/// The API's own error message from an error body: Neutron's `NeutronError.message`,
/// Nova's `{"<kind>": {"message"}}`, Octavia's `faultstring`/`description`, Keystone's
/// `error.message`; else the body's text (shortened).
pub(crate) fn api_message(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        let pick = |v: &serde_json::Value, key: &str| v.get(key).and_then(|m| m.as_str()).map(str::to_owned);
        if let Some(found) = pick(&json, "faultstring")
            .or_else(|| pick(&json, "description"))
            .or_else(|| pick(&json, "message"))
            .or_else(|| json.get("NeutronError").and_then(|e| pick(e, "message")))
            .or_else(|| json.get("error").and_then(|e| pick(e, "message")))
            .or_else(|| json.as_object().and_then(|o| o.values().find_map(|v| pick(v, "message"))))
        {
            return found;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > 300 { text.chars().take(300).collect::<String>() + "…" } else { text }
}

/// Neutron's error type (`OverQuota`, `SecurityGroupRuleExists`, ...), when present.
pub(crate) fn neutron_error_type(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(json.get("NeutronError")?.get("type")?.as_str()?.to_owned())
}

/// Whether an error answer is a quota refusal (Nova 403/413 "Quota exceeded ...",
/// Neutron 409 `OverQuota`, Octavia 403 "Quota has been met ...").
fn is_quota(status: u16, body: &[u8], message: &str) -> bool {
    if !matches!(status, 403 | 409 | 413) {
        return false;
    }
    if neutron_error_type(body).is_some_and(|t| t == "OverQuota") {
        return true;
    }
    let m = message.to_lowercase();
    m.contains("quota exceeded")
        || m.contains("overquota")
        || m.contains("over quota")
        || m.contains("quota has been met")
        || m.contains("exceeds quota")
        || (m.contains("maximum number of") && m.contains("exceeded"))
}

/// The error a non-success answer means. 404 and 412 are mapped generically here
/// (`NotFound` of the path, `Conflict`); callers that expect them handle them first.
pub(crate) fn error_from_response(cloud: &str, login: &Login, call: &Call, action: &str, status: u16, body: &[u8]) -> CloudError {
    let message = api_message(body);
    let service = call.service.name();
    if is_quota(status, body, &message) {
        return CloudError::Quota { message };
    }
    match status {
        401 => CloudError::Auth { cloud: cloud.to_owned(), message: login.refused_mid_run(service, call, &message) },
        403 => CloudError::Forbidden {
            cloud: cloud.to_owned(),
            service,
            message: format!("{action} ({}) (HTTP 403: {message}): {}", call.describe(), login.lacks()),
        },
        404 => CloudError::NotFound { kind: service, name: call.path.clone() },
        412 => CloudError::Conflict { kind: service, id: call.path.clone() },
        _ => CloudError::Refused { service, action: action.to_owned(), message: format!("{message} (HTTP {status})") },
    }
}

/// Sends [`Call`]s with retries; counts them (for figures and tests).
#[derive(Debug)]
pub(crate) struct Transport {
    pub(crate) session: AsyncOpenStack,
    pub(crate) cloud: String,
    pub(crate) login: Login,
    pub(crate) policy: RetryPolicy,
    calls: AtomicU64,
    /// Per [`Service`]: whether a call to it has been answered yet (see [`Transport::send`]).
    first: [tokio::sync::Mutex<bool>; 4],
}

impl Transport {
    pub(crate) fn new(session: AsyncOpenStack, cloud: String, login: Login) -> Self {
        let first = std::array::from_fn(|_| tokio::sync::Mutex::new(false));
        Transport { session, cloud, login, policy: RetryPolicy::default(), calls: AtomicU64::new(0), first }
    }

    /// The error for a final answer `status` to `call`.
    pub(crate) fn error(&self, call: &Call, action: &str, status: u16, body: &[u8]) -> CloudError {
        error_from_response(&self.cloud, &self.login, call, action, status, body)
    }

    /// HTTP requests sent so far (retries included).
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Send `call`, retrying transient failures; any final HTTP answer is returned as is.
    ///
    /// A service's first call goes alone: calls to it made meanwhile wait until it is
    /// answered, then go at once. An API service validates a token it has not seen with
    /// Keystone on *every* request that carries it until one validation is cached
    /// (keystonemiddleware), so the concurrent first round of a run (the survey: ten or more
    /// calls) made Keystone validate the run's fresh token once per call, one after another:
    /// 1.9 s of a 2.4 s survey on the test cloud (its log: ten `GET /v3/auth/tokens` of
    /// 0.9–1.9 s at the same second). Waiting for one answer per service costs one round trip.
    pub(crate) async fn send(&self, call: &Call) -> CloudResult<Reply> {
        let slot = Service::ALL.iter().position(|s| *s == call.service).unwrap_or(0);
        let mut answered = self.first[slot].lock().await;
        if *answered {
            drop(answered);
            return self.send_now(call).await;
        }
        let reply = self.send_now(call).await;
        *answered = true;
        reply
    }

    async fn send_now(&self, call: &Call) -> CloudResult<Reply> {
        let start = Instant::now();
        let mut attempt = 0u32;
        let mut rediscovered = false;
        loop {
            attempt += 1;
            self.calls.fetch_add(1, Ordering::Relaxed);
            let sent = Instant::now();
            let answer = raw(call.clone()).skip_error_check(true).query_async(&self.session).await;
            // `KOS_LOG=kos_cloud=debug`: every call with its answer and how long it took.
            tracing::debug!(
                call = %call.describe(),
                status = answer.as_ref().map(|r| r.status().as_u16()).unwrap_or(0),
                ms = sent.elapsed().as_millis() as u64,
                "cloud call"
            );
            let (failure, last_message) = match answer {
                Ok(rsp) => {
                    let status = rsp.status().as_u16();
                    if status != 429 && status < 500 {
                        return Ok(Reply { status, body: rsp.body().to_vec() });
                    }
                    let retry_after = parse_retry_after(rsp.headers().get(http::header::RETRY_AFTER));
                    let message = format!("HTTP {status}: {}", api_message(rsp.body()));
                    if !self.policy.should_retry(attempt, call.idempotent(), &Transient::Status(status, retry_after)) {
                        // A final 5xx is the API's answer for a non-idempotent call, but
                        // "unavailable" once retries are used up.
                        if attempt == 1 {
                            return Ok(Reply { status, body: rsp.body().to_vec() });
                        }
                        return Err(self.unavailable(call, attempt, message));
                    }
                    (Transient::Status(status, retry_after), message)
                }
                Err(err) => {
                    if let Some((url, tls)) = tls_failure(&err) {
                        let url = url.unwrap_or_else(|| call.describe());
                        return Err(untrusted(&self.cloud, &url, &tls, self.login.cacert.as_deref()));
                    }
                    let failure = match &err {
                        ApiError::Client { source: openstack_sdk::RestError::Communication { source } } => {
                            if source.is_connect() {
                                Transient::Connect
                            } else {
                                Transient::Interrupted
                            }
                        }
                        ApiError::Client { source: openstack_sdk::RestError::AuthError { .. } } => {
                            return Err(CloudError::Auth { cloud: self.cloud.clone(), message: error_chain(&err) });
                        }
                        // The SDK logs in again after a 401 and its new session has lost the
                        // endpoints version discovery found, so every later call to a service
                        // whose first answer was that 401 is refused with "Api Version `2.1` is
                        // not supported" (seen with an application credential's access rules,
                        // and so with any token refused mid-run). Discover again, once.
                        ApiError::Catalog { source: CatalogError::VersionUnsupported { .. } } if !rediscovered => {
                            rediscovered = true;
                            if self.session.discover_service_endpoint(&call.service.sdk_type()).await.is_ok() {
                                tracing::debug!(call = %call.describe(), "the endpoint was discovered again");
                                continue;
                            }
                            return Err(CloudError::Refused {
                                service: call.service.name(),
                                action: call.describe(),
                                message: error_chain(&err),
                            });
                        }
                        // Retrying can't help: no such service in the catalog, bad URL, ...
                        _ => {
                            return Err(CloudError::Refused {
                                service: call.service.name(),
                                action: call.describe(),
                                message: error_chain(&err),
                            });
                        }
                    };
                    let message = error_chain(&err);
                    if !self.policy.should_retry(attempt, call.idempotent(), &failure) {
                        return Err(self.unavailable(call, attempt, message));
                    }
                    (failure, message)
                }
            };
            let retry_after = match failure {
                Transient::Status(_, ra) => ra,
                _ => None,
            };
            let wait = self.policy.delay(attempt, retry_after, jitter());
            if start.elapsed() + wait > self.policy.budget {
                return Err(self.unavailable(call, attempt, last_message));
            }
            tracing::warn!(call = %call.describe(), attempt, wait_ms = wait.as_millis() as u64, "retrying: {last_message}");
            tokio::time::sleep(wait).await;
        }
    }

    fn unavailable(&self, call: &Call, attempts: u32, message: String) -> CloudError {
        CloudError::Unavailable { service: call.service.name(), attempts, message: format!("{}: {message}", call.describe()) }
    }

    /// Send and require a 2xx answer; anything else is mapped to an error.
    pub(crate) async fn ok(&self, call: &Call, action: &str) -> CloudResult<Reply> {
        let reply = self.send(call).await?;
        if (200..300).contains(&reply.status) { Ok(reply) } else { Err(self.error(call, action, reply.status, &reply.body)) }
    }

    /// Send, require 2xx, decode the JSON body.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: &Call, action: &str) -> CloudResult<T> {
        let reply = self.ok(call, action).await?;
        decode(call, action, &reply.body)
    }

    /// Like [`Transport::json`], with 404 as `None`.
    pub(crate) async fn json_opt<T: DeserializeOwned>(&self, call: &Call, action: &str) -> CloudResult<Option<T>> {
        let reply = self.send(call).await?;
        match reply.status {
            404 => Ok(None),
            200..=299 => decode(call, action, &reply.body).map(Some),
            status => Err(self.error(call, action, status, &reply.body)),
        }
    }

    /// A DELETE where "already gone" (404) is success.
    pub(crate) async fn delete(&self, call: &Call, action: &str) -> CloudResult<()> {
        let reply = self.send(call).await?;
        match reply.status {
            404 | 200..=299 => Ok(()),
            status => Err(self.error(call, action, status, &reply.body)),
        }
    }
}

/// Decode a JSON answer into kos's model.
pub(crate) fn decode<T: DeserializeOwned>(call: &Call, action: &str, body: &[u8]) -> CloudResult<T> {
    serde_json::from_slice(body).map_err(|e| CloudError::Refused {
        service: call.service.name(),
        action: action.to_owned(),
        message: format!("unexpected answer to {}: {e}", call.describe()),
    })
}

/// An error and its sources on one line.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)).unwrap()
    }

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(10),
        budget: Duration::from_secs(30),
    };

    #[test]
    fn transient_failures_are_retried_and_others_are_not() {
        for idempotent in [true, false] {
            assert!(POLICY.should_retry(1, idempotent, &Transient::Status(429, None)));
            assert!(POLICY.should_retry(1, idempotent, &Transient::Status(503, None)));
            assert!(POLICY.should_retry(1, idempotent, &Transient::Connect));
            assert!(!POLICY.should_retry(1, idempotent, &Transient::Status(400, None)));
            assert!(!POLICY.should_retry(1, idempotent, &Transient::Status(409, None)));
        }
        // May have been carried out: only repeated when repeating is harmless.
        assert!(POLICY.should_retry(1, true, &Transient::Status(500, None)));
        assert!(POLICY.should_retry(1, true, &Transient::Interrupted));
        assert!(!POLICY.should_retry(1, false, &Transient::Status(500, None)));
        assert!(!POLICY.should_retry(1, false, &Transient::Status(504, None)));
        assert!(!POLICY.should_retry(1, false, &Transient::Interrupted));
        // Bounded.
        assert!(POLICY.should_retry(5, true, &Transient::Connect));
        assert!(!POLICY.should_retry(6, true, &Transient::Connect));
    }

    #[test]
    fn backoff_doubles_with_jitter_honours_retry_after_and_is_capped() {
        assert_eq!(POLICY.delay(1, None, 1.0), Duration::from_millis(500));
        assert_eq!(POLICY.delay(1, None, 0.0), Duration::from_millis(250));
        assert_eq!(POLICY.delay(2, None, 1.0), Duration::from_secs(1));
        assert_eq!(POLICY.delay(5, None, 1.0), Duration::from_secs(8));
        assert_eq!(POLICY.delay(9, None, 1.0), Duration::from_secs(10), "capped");
        assert_eq!(POLICY.delay(1, Some(Duration::from_secs(3)), 0.0), Duration::from_secs(3), "Retry-After wins when longer");
        assert_eq!(POLICY.delay(1, Some(Duration::from_secs(120)), 0.0), Duration::from_secs(10), "but is capped");
        // All waits of a call fit the budget: 0.5 + 1 + 2 + 4 + 8 = 15.5 s at most.
        let worst: Duration = (1..POLICY.max_attempts).map(|a| POLICY.delay(a, None, 1.0)).sum();
        assert!(worst < POLICY.budget, "{worst:?}");
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }

    #[test]
    fn retry_after_in_seconds_is_read_and_dates_are_ignored() {
        assert_eq!(parse_retry_after(Some(&HeaderValue::from_static("7"))), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(Some(&HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"))), None);
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn the_apis_own_message_is_kept_verbatim() {
        assert_eq!(api_message(&sample("neutron-404.json")), "Port 00000000-0000-0000-0000-000000000000 could not be found.");
        assert_eq!(api_message(&sample("nova-404.json")), "Instance 00000000-0000-0000-0000-000000000000 could not be found.");
        assert_eq!(api_message(&sample("octavia-404.json")), "Load Balancer 00000000-0000-0000-0000-000000000000 not found.");
        assert_eq!(
            api_message(
                br#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#
            ),
            "The request you have made requires authentication."
        );
        assert_eq!(api_message(b"<html><body>502 Bad  Gateway</body></html>\n"), "<html><body>502 Bad Gateway</body></html>");
        assert_eq!(neutron_error_type(&sample("neutron-409-rule-exists.json")).as_deref(), Some("SecurityGroupRuleExists"));
    }

    fn port_call() -> Call {
        Call::post(Service::Network, "ports", serde_json::json!({}))
    }

    #[test]
    fn quota_refusals_of_nova_neutron_and_octavia_are_quota_errors_with_the_message() {
        let nova =
            br#"{"forbidden": {"code": 403, "message": "Quota exceeded for instances: Requested 1, but already used 25 of 25 instances"}}"#;
        let neutron = br#"{"NeutronError": {"type": "OverQuota", "message": "Quota exceeded for resources: ['port'].", "detail": ""}}"#;
        let octavia = br#"{"faultcode": "Client", "faultstring": "Quota has been met for resources: Load Balancer", "debuginfo": null}"#;
        let nova_ports = br#"{"forbidden": {"code": 403, "message": "Maximum number of ports exceeded"}}"#;
        for (status, body, message) in [
            (403, &nova[..], "Quota exceeded for instances: Requested 1, but already used 25 of 25 instances"),
            (409, &neutron[..], "Quota exceeded for resources: ['port']."),
            (403, &octavia[..], "Quota has been met for resources: Load Balancer"),
            (403, &nova_ports[..], "Maximum number of ports exceeded"),
            (413, &nova[..], "Quota exceeded for instances: Requested 1, but already used 25 of 25 instances"),
        ] {
            assert_eq!(
                error_from_response("c", &login(), &port_call(), "create", status, body),
                CloudError::Quota { message: message.into() }
            );
        }
        // A policy refusal that merely mentions quotas is not a quota error.
        let policy =
            br#"{"forbidden": {"code": 403, "message": "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed."}}"#;
        assert!(matches!(error_from_response("c", &login(), &port_call(), "read", 403, policy), CloudError::Forbidden { .. }));
    }

    fn login() -> Login {
        Login { kind: super::super::auth::Kind::Password, who: "user `demo`, roles reader in project `demo`".into(), cacert: None }
    }

    #[test]
    fn a_refusal_names_the_call_the_credential_and_what_kos_needs() {
        let octavia =
            br#"{"faultcode": "Client", "faultstring": "Policy does not allow this request to be performed.", "debuginfo": null}"#;
        let call = Call::get(Service::LoadBalancer, "lbaas/loadbalancers");
        let app = Login {
            kind: super::super::auth::Kind::ApplicationCredential,
            who: "application credential `ci` of user `demo`, roles member in project `demo`".into(),
            cacert: None,
        };
        let err = error_from_response("tc", &app, &call, "list load balancers", 403, octavia);
        assert_eq!(
            err.to_string(),
            "cloud `tc`: load-balancer refused list load balancers (GET load-balancer/lbaas/loadbalancers) (HTTP 403: Policy does not allow this request to be performed.): the application credential `ci` of user `demo`, roles member in project `demo` lacks the right to it: kos needs the roles member and load-balancer_member in the project; an application credential has only the roles chosen with `--role` when it was made (all of its user's by default), and its access rules, if any, must allow every call kos makes: create one with those roles and without `--access-rules`"
        );
        let unauthorized =
            br#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#;
        let servers = Call::get(Service::Compute, "servers/detail");
        let m = error_from_response("tc", &app, &servers, "list servers", 401, unauthorized).to_string();
        assert!(m.starts_with("cannot authenticate to cloud `tc`: compute refused GET compute/servers/detail with HTTP 401"), "{m}");
        assert!(m.contains("access rules"), "{m}");
        let token = Login { kind: super::super::auth::Kind::Token, ..login() };
        let m = error_from_response("tc", &token, &servers, "list servers", 401, unauthorized).to_string();
        assert!(m.contains("cannot be renewed") && m.contains("openstack token issue"), "{m}");
    }

    #[test]
    fn other_answers_map_to_what_the_caller_can_do() {
        let call = Call::put(Service::Network, "routers/r1", serde_json::json!({}));
        assert_eq!(
            error_from_response("c", &login(), &call, "replace routes", 412, &sample("neutron-412-if-match.json")),
            CloudError::Conflict { kind: "network", id: "routers/r1".into() }
        );
        assert!(matches!(
            error_from_response("mycloud", &login(), &call, "x", 401, b"{}"),
            CloudError::Auth { cloud, .. } if cloud == "mycloud"
        ));
        let refused = error_from_response("c", &login(), &port_call(), "create port `a`", 400, br#"{"NeutronError": {"type": "HTTPBadRequest", "message": "Invalid input for operation: 'x' is not a valid IP address.", "detail": ""}}"#);
        assert_eq!(
            refused.to_string(),
            "network refused create port `a`: Invalid input for operation: 'x' is not a valid IP address. (HTTP 400)"
        );
    }

    #[test]
    fn only_post_is_treated_as_non_idempotent() {
        assert!(!port_call().idempotent());
        assert!(Call::put(Service::Network, "ports/x", serde_json::json!({})).idempotent());
        assert!(Call::delete(Service::Network, "ports/x").idempotent());
        assert!(Call::get(Service::Network, "ports").idempotent());
    }

    #[test]
    fn a_call_becomes_the_sdk_endpoint_it_describes() {
        let call =
            Call::get(Service::Network, "ports").query("tags", "a,b").header("If-Match", HeaderValue::from_static("revision_number=3"));
        assert_eq!(RestEndpoint::method(&call), Method::GET);
        assert_eq!(call.endpoint(), "ports");
        assert_eq!(call.service_type(), ServiceType::Network);
        assert_eq!(call.api_version(), Some(ApiVersion::new(2, 0)));
        assert_eq!(call.request_headers().and_then(|h| h.get("If-Match")).unwrap(), "revision_number=3");
        assert_eq!(call.describe(), "GET network/ports");
        let compute = Call::post(Service::Compute, "servers", serde_json::json!({"server": {}}));
        assert_eq!(compute.api_version(), Some(ApiVersion::new(2, 1)));
        assert_eq!(RestEndpoint::body(&compute).unwrap().unwrap().0, "application/json");
    }
}
