//! Where kos helps `openstack_sdk` authenticate: the authentication methods it must keep
//! linked, the application credential given by name, and failed logins in words the user
//! can act on.
//!
//! kos supports what the `openstack` CLI reads from clouds.yaml, secure.yaml and `OS_*`:
//! `auth_type` `password`/`v3password` (the default), `v3applicationcredential` (by
//! `application_credential_id`, or by `application_credential_name` with the user) and
//! `v3token`.

use super::transport::error_chain;
use crate::api::CloudError;
use openstack_sdk::config::CloudConfig;
use secrecy::ExposeSecret as _;
use serde_json::json;

/// Keep the authentication methods kos supports in the binary.
///
/// openstack_sdk looks the cloud's `auth_type` up in a registry that each plugin crate
/// fills at link time (`inventory`). A plugin crate nothing refers to is left out by the
/// linker, and its `auth_type` is then "not a supported type". The SDK's build script is
/// meant to refer to every plugin crate, but it parses its own Cargo.toml for a
/// `[dependencies]` table, and the published (normalised) manifest has one
/// `[dependencies.NAME]` table per crate, so it refers to none: password and token stay in
/// only because other SDK code uses them, and application credentials were dropped. Taking
/// each plugin's address here makes the linker keep every one, whatever the SDK does.
pub(super) fn link_auth_plugins() {
    std::hint::black_box((
        &openstack_sdk_auth_applicationcredential::ANCHOR,
        &openstack_sdk_auth_password::ANCHOR,
        &openstack_sdk_auth_token::ANCHOR,
    ));
}

/// Whether `config` is an application credential given by name (no ID).
pub(super) fn application_credential_by_name(config: &CloudConfig) -> bool {
    let app_cred = matches!(config.auth_type.as_deref(), Some("v3applicationcredential" | "applicationcredential"));
    let auth = config.auth.as_ref();
    app_cred && auth.is_some_and(|a| a.application_credential_id.is_none() && a.application_credential_name.is_some())
}

/// The login Keystone takes for an application credential given by name: the name, the
/// secret, and its user (by ID, or by name with the user's domain).
///
/// openstack_sdk 0.22's plugin authenticates by ID only: `application_credential_name`
/// is missing from the fields it asks the configuration for (so it never sees it), and it
/// would send the user's domain as `user_domain_name` where Keystone wants
/// `domain: {name}`. kos logs in by name once itself, reads the credential's ID from the
/// token, and lets the SDK go on by ID (see [`resolve_application_credential_id`]).
fn by_name_request(config: &CloudConfig) -> Result<serde_json::Value, String> {
    let auth = config.auth.as_ref().ok_or("no `auth` section")?;
    let name = auth.application_credential_name.as_deref().ok_or("no application_credential_name")?;
    let secret = auth.application_credential_secret.as_ref().ok_or("no application_credential_secret")?;
    let user = if let Some(id) = &auth.user_id {
        json!({ "id": id })
    } else if let Some(username) = &auth.username {
        let domain = match (&auth.user_domain_id, &auth.user_domain_name) {
            (Some(id), _) => json!({ "id": id }),
            (None, Some(name)) => json!({ "name": name }),
            (None, None) => {
                return Err(
                    "an application credential given by name needs the user's domain: set user_domain_name (or user_domain_id)".into()
                );
            }
        };
        json!({ "name": username, "domain": domain })
    } else {
        return Err("an application credential given by name needs its user: set username and user_domain_name (or user_id), or give application_credential_id".into());
    };
    Ok(json!({
        "auth": { "identity": {
            "methods": ["application_credential"],
            "application_credential": { "name": name, "secret": secret.expose_secret(), "user": user },
        } }
    }))
}

/// Keystone's token endpoint under `auth_url` (which may or may not end in `/v3`).
fn tokens_url(auth_url: &str) -> String {
    let base = auth_url.trim_end_matches('/');
    if base.ends_with("/v3") { format!("{base}/auth/tokens") } else { format!("{base}/v3/auth/tokens") }
}

/// Why `url` of `cloud` cannot be reached over TLS, if that is the reason: asked with a
/// client that trusts what the SDK's does. The SDK's version discovery keeps only "Service
/// is not working" of an untrusted certificate; this one request (made only after a
/// failure) finds the cause. calls: 1 `GET url`, or none for a plain-HTTP URL.
pub(super) async fn tls_probe(cloud: &str, config: &CloudConfig, url: &str) -> Option<CloudError> {
    if !url.starts_with("https://") {
        return None;
    }
    let err = http_client(config).ok()?.get(url).send().await.err()?;
    let (found_url, tls) = super::transport::tls_failure(&err)?;
    Some(super::transport::untrusted(cloud, found_url.as_deref().unwrap_or(url), &tls, config.cacert.as_deref()))
}

/// An HTTP client that trusts what the SDK's client trusts: the system roots, plus the
/// cloud's `cacert`; `verify: false` is honoured as the SDK honours it.
fn http_client(config: &CloudConfig) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    if let Some(cacert) = &config.cacert {
        let pem = std::fs::read(cacert).map_err(|e| format!("cannot read cacert {cacert}: {e}"))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("cacert {cacert}: {e}"))? {
            builder = builder.add_root_certificate(cert);
        }
    }
    if config.verify == Some(false) {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| format!("cannot build an HTTP client: {}", error_chain(&e)))
}

/// For an application credential given by name, log in by name once and put the
/// credential's ID into `config`, so the SDK's plugin (ID only) does the real login and its
/// renewals. calls: 1 `POST /v3/auth/tokens`.
pub(super) async fn resolve_application_credential_id(cloud: &str, config: &mut CloudConfig) -> Result<(), CloudError> {
    let auth_error = |message: String| CloudError::Auth { cloud: cloud.to_owned(), message };
    let body = by_name_request(config).map_err(auth_error)?;
    let auth_url = config.auth.as_ref().and_then(|a| a.auth_url.clone()).ok_or_else(|| auth_error("no auth_url for this cloud".into()))?;
    let client = http_client(config).map_err(auth_error)?;
    let reply = client
        .post(tokens_url(&auth_url))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| match super::transport::tls_failure(&e) {
            Some((url, tls)) => super::transport::untrusted(cloud, &url.unwrap_or(auth_url.clone()), &tls, config.cacert.as_deref()),
            None => CloudError::Unavailable { service: "identity", attempts: 1, message: error_chain(&e) },
        })?;
    let status = reply.status();
    let text = reply.text().await.unwrap_or_default();
    if !status.is_success() {
        let keystone = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| status.to_string());
        if status.is_server_error() {
            return Err(CloudError::Unavailable { service: "identity", attempts: 1, message: keystone });
        }
        return Err(auth_error(refused(&keystone, config)));
    }
    let id = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["token"]["application_credential"]["id"].as_str().map(str::to_owned))
        .ok_or_else(|| auth_error("Keystone's token names no application credential".into()))?;
    if let Some(auth) = config.auth.as_mut() {
        auth.application_credential_id = Some(id);
    }
    Ok(())
}

/// The kinds of login kos supports, by the cloud's `auth_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Password,
    ApplicationCredential,
    Token,
    /// Another `auth_type` (left to the SDK, which says whether it knows it).
    Other,
}

pub(super) fn kind(config: &CloudConfig) -> Kind {
    match config.auth_type.as_deref() {
        None | Some("password" | "v3password") => Kind::Password,
        Some("v3applicationcredential" | "applicationcredential") => Kind::ApplicationCredential,
        Some("v3token" | "token") => Kind::Token,
        Some(_) => Kind::Other,
    }
}

/// Who a token says is logged in, for the messages of a refused call: the application
/// credential (`(name, ID)`) if there is one, the user, the token's roles and the project.
pub(super) fn describe_login(
    kind: Kind,
    user: &str,
    roles: &[&str],
    project: &str,
    app_cred: Option<(Option<&str>, Option<&str>)>,
) -> String {
    let roles = if roles.is_empty() { "(none)".to_owned() } else { roles.join(", ") };
    let user = format!("user `{user}`, roles {roles} in project `{project}`");
    match (app_cred, kind) {
        (Some((name, id)), _) => format!("application credential `{}` ({}) of {user}", name.unwrap_or("?"), id.unwrap_or("?")),
        (None, Kind::Token) => format!("token of {user}"),
        (None, _) => user,
    }
}

/// The secret a login needs but the configuration lacks, as the line that says where to
/// put it; `None` when it is there. (Without this the SDK asks its "auth helper", which
/// kos does not have, and says only that.)
pub(super) fn missing_secret(config: &CloudConfig) -> Option<String> {
    let auth = config.auth.as_ref();
    let (has, key, var) = match kind(config) {
        Kind::Password => (auth.is_some_and(|a| a.password.is_some()), "password", "OS_PASSWORD"),
        Kind::ApplicationCredential => (
            auth.is_some_and(|a| a.application_credential_secret.is_some()),
            "application_credential_secret",
            "OS_APPLICATION_CREDENTIAL_SECRET",
        ),
        Kind::Token => (auth.is_some_and(|a| a.token.is_some()), "token", "OS_TOKEN"),
        Kind::Other => (true, "", ""),
    };
    (!has).then(|| format!("no {key} for this cloud: put `{key}` under its `auth:` in secure.yaml (or clouds.yaml), or export {var}"))
}

/// Keystone accepted the login but its answer could not be read: for an application
/// credential with an expiry, Keystone Zed writes the token's `expires_at` without a time
/// zone (`2026-11-26T05:22:03`), which openstack_sdk 0.22 refuses (as a body it cannot
/// decode). Said in one line instead of being retried as an unreachable Keystone.
pub(super) fn unreadable_login(err: &openstack_sdk::OpenStackError, config: &CloudConfig) -> Option<String> {
    use openstack_sdk::{AuthError, OpenStackError};
    // The SDK's `AuthError::Reqwest` is `#[error(transparent)]`: its `source()` skips the
    // reqwest error, so it is matched here rather than found in the chain.
    let OpenStackError::AuthError { source: AuthError::Reqwest { source } } = err else { return None };
    if !source.is_decode() {
        return None;
    }
    Some(match kind(config) {
        Kind::ApplicationCredential => "Keystone's answer to the application credential login cannot be read: an application credential made with `--expiration` gets a token whose `expires_at` has no time zone (Keystone Zed), which the OpenStack SDK kos uses (openstack_sdk 0.22) refuses; use an application credential without an expiry (delete it when it is no longer needed) or another login".into(),
        _ => format!("Keystone's answer to the login cannot be read: {}", error_chain(err)),
    })
}

/// A failed login in words the user can act on: what Keystone refused and what to do
/// about it, by the kind of login (the SDK says only "error setting auth header: ...").
pub(super) fn auth_message(err: &openstack_sdk::OpenStackError, config: &CloudConfig) -> String {
    use openstack_sdk::{AuthError, OpenStackError};
    match err {
        OpenStackError::AuthError { source: source @ AuthError::Identity(_) } => {
            let text = source.to_string();
            let keystone = text.strip_prefix("authentication method error: ").unwrap_or(&text);
            refused(keystone, config)
        }
        _ => error_chain(err),
    }
}

/// Keystone refused the login of `config` with `keystone` (its message).
fn refused(keystone: &str, config: &CloudConfig) -> String {
    let auth = config.auth.as_ref();
    match kind(config) {
        Kind::Password => format!(
            "Keystone refused the user and password ({keystone}): check the user, its domain and the password of this cloud (an exported OS_PASSWORD or OS_USERNAME wins over clouds.yaml and secure.yaml)"
        ),
        Kind::ApplicationCredential => {
            let which = auth
                .and_then(|a| a.application_credential_id.clone().or_else(|| a.application_credential_name.clone()))
                .unwrap_or_default();
            format!(
                "Keystone refused the application credential `{which}` ({keystone}): it was deleted, has expired, or its secret is wrong; create a new one (`openstack application credential create NAME`) and put its ID and secret in clouds.yaml and secure.yaml"
            )
        }
        Kind::Token => format!(
            "Keystone refused the token ({keystone}): it has expired or was revoked; issue a new one (`openstack token issue`) and put it in secure.yaml or OS_TOKEN"
        ),
        Kind::Other => format!("Keystone refused the credentials ({keystone}): check the credentials of this cloud"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openstack_sdk::config::Auth;

    fn app_cred(auth: Auth) -> CloudConfig {
        CloudConfig { auth_type: Some("v3applicationcredential".into()), auth: Some(auth), ..Default::default() }
    }

    #[test]
    fn an_application_credential_by_name_is_sent_with_its_user_and_the_users_domain() {
        let config = app_cred(Auth {
            application_credential_name: Some("ci".into()),
            application_credential_secret: Some("s3".into()),
            username: Some("demo".into()),
            user_domain_name: Some("Default".into()),
            ..Default::default()
        });
        assert!(application_credential_by_name(&config));
        let body = by_name_request(&config).unwrap();
        assert_eq!(
            body["auth"]["identity"]["application_credential"],
            json!({"name": "ci", "secret": "s3", "user": {"name": "demo", "domain": {"name": "Default"}}})
        );
    }

    #[test]
    fn an_application_credential_by_name_without_its_user_says_what_to_add() {
        let config = app_cred(Auth {
            application_credential_name: Some("ci".into()),
            application_credential_secret: Some("s3".into()),
            ..Default::default()
        });
        assert!(by_name_request(&config).unwrap_err().contains("set username and user_domain_name"));
        let no_domain = app_cred(Auth { username: Some("demo".into()), ..config.auth.clone().unwrap() });
        assert!(by_name_request(&no_domain).unwrap_err().contains("user_domain_name"));
    }

    #[test]
    fn an_application_credential_by_id_is_left_to_the_sdk() {
        let config = app_cred(Auth {
            application_credential_id: Some("abc".into()),
            application_credential_name: Some("ci".into()),
            ..Default::default()
        });
        assert!(!application_credential_by_name(&config));
        assert!(!application_credential_by_name(&CloudConfig::default()));
    }

    #[test]
    fn a_missing_secret_says_which_key_and_which_variable() {
        let password = CloudConfig { auth: Some(Auth { username: Some("demo".into()), ..Default::default() }), ..Default::default() };
        let m = missing_secret(&password).unwrap();
        assert!(m.contains("no password") && m.contains("secure.yaml") && m.contains("OS_PASSWORD"), "{m}");
        let app = app_cred(Auth { application_credential_id: Some("abc".into()), ..Default::default() });
        assert!(missing_secret(&app).unwrap().contains("OS_APPLICATION_CREDENTIAL_SECRET"));
        let token = CloudConfig { auth_type: Some("v3token".into()), auth: Some(Auth::default()), ..Default::default() };
        assert!(missing_secret(&token).unwrap().contains("OS_TOKEN"));
        let complete = app_cred(Auth { application_credential_secret: Some("s".into()), ..Default::default() });
        assert_eq!(missing_secret(&complete), None);
    }

    #[test]
    fn a_refused_login_names_the_fix_for_its_kind() {
        let app = app_cred(Auth { application_credential_id: Some("abc".into()), ..Default::default() });
        let m = refused("The request you have made requires authentication.", &app);
        assert!(m.contains("application credential `abc`") && m.contains("openstack application credential create"), "{m}");
        let token = CloudConfig { auth_type: Some("v3token".into()), ..Default::default() };
        assert!(refused("x", &token).contains("openstack token issue"));
        assert!(refused("x", &CloudConfig::default()).contains("user and password"));
    }

    #[test]
    fn a_login_is_described_by_its_credential_user_roles_and_project() {
        assert_eq!(
            describe_login(Kind::ApplicationCredential, "demo", &["member"], "demo", Some((Some("ci"), Some("3f2a")))),
            "application credential `ci` (3f2a) of user `demo`, roles member in project `demo`"
        );
        assert_eq!(
            describe_login(Kind::Token, "demo", &["reader", "member"], "p", None),
            "token of user `demo`, roles reader, member in project `p`"
        );
        assert_eq!(describe_login(Kind::Password, "demo", &[], "p", None), "user `demo`, roles (none) in project `p`");
    }

    #[test]
    fn the_token_endpoint_is_under_v3_whether_or_not_auth_url_names_it() {
        assert_eq!(tokens_url("http://k:5000/v3"), "http://k:5000/v3/auth/tokens");
        assert_eq!(tokens_url("http://k:5000/v3/"), "http://k:5000/v3/auth/tokens");
        assert_eq!(tokens_url("http://k:5000"), "http://k:5000/v3/auth/tokens");
    }
}
