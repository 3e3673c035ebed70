//! Which cloud kos talks to and with which credentials: clouds.yaml, secure.yaml and the
//! `OS_*` variables, read the way the `openstack` CLI reads them.
//!
//! The CLI's precedence, checked against it on the test cloud (`it::cloud_auth`):
//! - the cloud: `--os-cloud` (kos: the settings' `cloud.name`), else `OS_CLOUD`, else the
//!   `OS_*` variables alone (`OS_AUTH_URL`, ...);
//! - its values: an `OS_*` variable wins over secure.yaml, which wins over clouds.yaml
//!   (the CLI's `--os-*` options default to the variables, and options beat the file);
//! - the files: `OS_CLIENT_CONFIG_FILE` / `OS_CLIENT_SECURE_FILE`, else `./`,
//!   `~/.config/openstack/`, `/etc/openstack/`. kos also reads the `secure.yaml` next to
//!   `OS_CLIENT_CONFIG_FILE`, which the CLI does not.
//! - TLS: `cacert` (clouds.yaml) or `OS_CACERT`, the variable winning; `verify: false` or
//!   `insecure: true` (clouds.yaml) and `OS_INSECURE` all mean "do not check the cloud's
//!   certificate", which kos refuses unless told otherwise (see `OpenStackCloud::connect_with`).

use super::transport::error_chain;
use crate::api::CloudError;
use openstack_sdk::config::{CloudConfig, ConfigFile};
use std::path::PathBuf;

/// The cloud `connect` uses and its configuration (see the module's precedence).
pub(super) fn load(cloud_name: Option<&str>) -> Result<(String, CloudConfig), CloudError> {
    let named = cloud_name.map(str::to_owned).or_else(|| std::env::var("OS_CLOUD").ok().filter(|s| !s.is_empty()));
    let Some(name) = named else {
        if std::env::var_os("OS_AUTH_URL").is_some() {
            let name = "envvars".to_owned();
            let mut config = from_env(&name)?;
            config.name = Some(name.clone());
            return Ok((name, config));
        }
        return Err(CloudError::Auth {
            cloud: "(none)".into(),
            message: "no cloud configured: set OS_CLOUD to a cloud of clouds.yaml, or export OS_AUTH_URL and the other OS_* variables"
                .into(),
        });
    };
    let secure_file = std::env::var_os("OS_CLIENT_SECURE_FILE").filter(|f| !f.is_empty()).map(PathBuf::from);
    let (name, file) = from_file(std::env::var_os("OS_CLIENT_CONFIG_FILE").map(PathBuf::from), secure_file, name)?;
    let env = from_env(&name)?;
    let mut config = env_over_file(file, env, std::env::var_os("OS_INTERFACE").is_some());
    if std::env::var("OS_INSECURE").is_ok_and(|v| truthy(&v)) {
        config.verify = Some(false);
    }
    Ok((name, config))
}

/// How the `openstack` CLI reads a yes/no value (`OS_INSECURE=1`, `insecure: "true"`).
fn truthy(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

/// clouds.yaml's `insecure: true` (the older spelling of `verify: false`) as `verify`.
fn insecure_as_verify(mut config: CloudConfig) -> CloudConfig {
    let insecure = config.options.get("insecure").is_some_and(|v| v.clone().into_bool().unwrap_or_else(|_| truthy(&v.to_string())));
    if insecure {
        config.verify = Some(false);
    }
    config
}

/// The `OS_*` variables as a cloud configuration.
fn from_env(cloud: &str) -> Result<CloudConfig, CloudError> {
    CloudConfig::from_env()
        .map_err(|e| CloudError::Auth { cloud: cloud.to_owned(), message: format!("OS_* variables: {}", error_chain(&e)) })
}

/// The cloud `name` of the clouds.yaml `clouds_file` (else of the usual places), with the
/// values of the secure.yaml `secure_file` (else the one next to `clouds_file`, else of
/// the usual places) over it.
pub(super) fn from_file(
    clouds_file: Option<PathBuf>,
    secure_file: Option<PathBuf>,
    name: String,
) -> Result<(String, CloudConfig), CloudError> {
    let secure_file =
        secure_file.or_else(|| clouds_file.as_ref().and_then(|f| f.parent()).map(|dir| dir.join("secure.yaml")).filter(|f| f.is_file()));
    let files = ConfigFile::new_with_user_specified_configs(clouds_file.as_ref(), secure_file.as_ref()).map_err(|e| CloudError::Auth {
        cloud: name.clone(),
        message: format!("cannot read clouds.yaml or secure.yaml: {}", error_chain(&e)),
    })?;
    let config = files
        .get_cloud_config(&name)
        .map(|found| found.map(insecure_as_verify))
        .map_err(|e| CloudError::Auth { cloud: name.clone(), message: error_chain(&e) })?
        .ok_or_else(|| {
            let mut known = files.get_available_clouds();
            known.sort();
            CloudError::Auth {
                cloud: name.clone(),
                message: format!(
                    "not in clouds.yaml (clouds found: {}); point OS_CLIENT_CONFIG_FILE at the right file",
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
            }
        })?;
    Ok((name, config))
}

/// `file` (a cloud of clouds.yaml + secure.yaml) with every value an `OS_*` variable sets
/// (`env`) replacing the file's: the credentials, `auth_type`, `region_name`, `cacert`, and
/// `interface` when `OS_INTERFACE` is set (`env` always has one, its default).
fn env_over_file(file: CloudConfig, env: CloudConfig, interface_from_env: bool) -> CloudConfig {
    // Field by field through JSON, so every credential field is covered, whatever the SDK
    // adds: the SDK's own `CloudConfig::update` skips some (`user_id`, for one).
    let auth = match (file.auth.clone(), env.auth) {
        (Some(file_auth), Some(env_auth)) => {
            let mut merged = serde_json::to_value(&file_auth).unwrap_or_default();
            if let (Some(into), serde_json::Value::Object(from)) =
                (merged.as_object_mut(), serde_json::to_value(&env_auth).unwrap_or_default())
            {
                into.extend(from.into_iter().filter(|(_, v)| !v.is_null()));
            }
            serde_json::from_value(merged).ok().or(Some(file_auth))
        }
        (file_auth, env_auth) => file_auth.or(env_auth),
    };
    CloudConfig {
        auth,
        auth_type: env.auth_type.or(file.auth_type),
        region_name: env.region_name.or(file.region_name),
        cacert: env.cacert.or(file.cacert),
        verify: env.verify.or(file.verify),
        interface: if interface_from_env { env.interface.or(file.interface) } else { file.interface },
        ..file
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openstack_sdk::config::Auth;
    use secrecy::ExposeSecret as _;

    fn file() -> CloudConfig {
        CloudConfig {
            auth: Some(Auth {
                auth_url: Some("http://k/v3".into()),
                user_id: Some("u1".into()),
                password: Some("from-file".into()),
                project_name: Some("demo".into()),
                ..Default::default()
            }),
            region_name: Some("RegionOne".into()),
            interface: Some("internal".into()),
            name: Some("c".into()),
            ..Default::default()
        }
    }

    #[test]
    fn an_os_variable_wins_over_clouds_yaml_and_the_rest_of_the_file_stays() {
        let env = CloudConfig {
            auth: Some(Auth { password: Some("from-env".into()), ..Default::default() }),
            region_name: Some("RegionTwo".into()),
            interface: Some("public".into()),
            ..Default::default()
        };
        let merged = env_over_file(file(), env, false);
        let auth = merged.auth.unwrap();
        assert_eq!(auth.password.unwrap().expose_secret(), "from-env");
        assert_eq!(auth.user_id.as_deref(), Some("u1"), "fields the SDK's own merge forgets are kept");
        assert_eq!(auth.project_name.as_deref(), Some("demo"));
        assert_eq!(merged.region_name.as_deref(), Some("RegionTwo"));
        assert_eq!(merged.interface.as_deref(), Some("internal"), "the env's default interface is no OS_INTERFACE");
        assert_eq!(merged.name.as_deref(), Some("c"));
    }

    #[test]
    fn os_cacert_wins_over_the_files_cacert() {
        let file = CloudConfig { cacert: Some("/file/ca.pem".into()), ..file() };
        let env = CloudConfig { cacert: Some("/env/ca.pem".into()), auth: Some(Auth::default()), ..Default::default() };
        assert_eq!(env_over_file(file.clone(), env, false).cacert.as_deref(), Some("/env/ca.pem"));
        let none = CloudConfig { auth: Some(Auth::default()), ..Default::default() };
        assert_eq!(env_over_file(file, none, false).cacert.as_deref(), Some("/file/ca.pem"));
    }

    #[test]
    fn insecure_in_clouds_yaml_is_verify_false() {
        let mut insecure = file();
        insecure.options.insert("insecure".into(), true.into());
        assert_eq!(insecure_as_verify(insecure).verify, Some(false));
        let mut as_text = file();
        as_text.options.insert("insecure".into(), "yes".into());
        assert_eq!(insecure_as_verify(as_text).verify, Some(false));
        assert_eq!(insecure_as_verify(file()).verify, None);
        assert!(truthy("1") && truthy("True") && !truthy("0") && !truthy("false"));
    }

    #[test]
    fn no_os_variables_leave_the_file_as_it_is() {
        let merged = env_over_file(file(), CloudConfig { auth: Some(Auth::default()), ..Default::default() }, false);
        assert_eq!(merged.auth.unwrap().password.unwrap().expose_secret(), "from-file");
        assert_eq!(merged.region_name.as_deref(), Some("RegionOne"));
    }
}
