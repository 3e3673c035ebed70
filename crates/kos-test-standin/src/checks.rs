//! The checks: what a real kubelet or kube-proxy needs from the files kos renders before it
//! would start. Each returns the list of what it verified (for the report) or the first
//! problem, phrased for the journal.
//!
//! Unknown YAML keys are ignored, as the real binaries' lenient decoding does; paths in a
//! configuration file are relative to its folder, as the real binaries resolve them.

use base64::Engine as _;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::Flags;

const KUBELET_API: &str = "kubelet.config.k8s.io/v1beta1";
const KUBE_PROXY_API: &str = "kubeproxy.config.k8s.io/v1alpha1";

/// The parts of a KubeletConfiguration kos sets and a kubelet reads at start.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KubeletConfig {
    api_version: Option<String>,
    kind: Option<String>,
    tls_cert_file: Option<String>,
    tls_private_key_file: Option<String>,
    authentication: Option<Authentication>,
    static_pod_path: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Authentication {
    x509: Option<X509Authentication>,
}

#[derive(Debug, Deserialize)]
struct X509Authentication {
    #[serde(rename = "clientCAFile")]
    client_ca_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KubeProxyConfig {
    api_version: Option<String>,
    kind: Option<String>,
    client_connection: Option<ClientConnection>,
}

#[derive(Debug, Deserialize)]
struct ClientConnection {
    kubeconfig: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig {
    kind: Option<String>,
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    current_context: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: Option<String>,
    certificate_authority_data: Option<String>,
    certificate_authority: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NamedUser {
    name: String,
    user: User,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    client_certificate_data: Option<String>,
    client_certificate: Option<String>,
    client_key_data: Option<String>,
    client_key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NamedContext {
    name: String,
    context: Context,
}

#[derive(Debug, Deserialize)]
struct Context {
    cluster: String,
    user: String,
}

/// What a PEM block must be.
#[derive(Debug, Clone, Copy)]
enum Pem {
    Certificate,
    PrivateKey,
}

impl Pem {
    fn holds(self, text: &str) -> bool {
        match self {
            Pem::Certificate => text.contains("-----BEGIN CERTIFICATE-----"),
            // PKCS#8, SEC1 (EC) or PKCS#1 (RSA).
            Pem::PrivateKey => text
                .lines()
                .any(|l| l.starts_with("-----BEGIN ") && l.ends_with("PRIVATE KEY-----")),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Pem::Certificate => "a PEM certificate",
            Pem::PrivateKey => "a PEM private key",
        }
    }
}

fn required<'a>(flags: &'a Flags, name: &str, rendered: &str) -> Result<&'a str, String> {
    flags
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("--{name} is missing; kos renders {rendered} into the unit"))
}

fn read(path: &Path, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

/// `p` as the binary resolves it: relative to the folder of the file that names it.
fn relative_to(file: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// A file that must exist and hold a PEM block of the given kind.
fn pem_file(path: &Path, field: &str, kind: Pem, named_in: &Path) -> Result<String, String> {
    let text = read(path, &format!("{field} (named in {})", named_in.display()))?;
    if !kind.holds(&text) {
        return Err(format!(
            "{field} {} (named in {}) is not {}",
            path.display(),
            named_in.display(),
            kind.what()
        ));
    }
    Ok(format!("{field} {}: {}", path.display(), kind.what()))
}

/// Base64 data in a kubeconfig that must decode to a PEM block of the given kind.
fn pem_data(data: &str, field: &str, kind: Pem, kubeconfig: &Path) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("{}: {field} is not base64: {e}", kubeconfig.display()))?;
    if !kind.holds(&String::from_utf8_lossy(&bytes)) {
        return Err(format!(
            "{}: {field} does not decode to {}",
            kubeconfig.display(),
            kind.what()
        ));
    }
    Ok(format!(
        "{}: {field}: {}",
        kubeconfig.display(),
        kind.what()
    ))
}

/// `kind` and `apiVersion` of a configuration file.
fn kind_and_api(
    path: &Path,
    kind: Option<&str>,
    api: Option<&str>,
    want_kind: &str,
    want_api: &str,
) -> Result<String, String> {
    if kind != Some(want_kind) {
        return Err(format!(
            "{}: kind is {:?}, expected {want_kind}",
            path.display(),
            kind.unwrap_or("(missing)")
        ));
    }
    if api != Some(want_api) {
        return Err(format!(
            "{}: apiVersion is {:?}, expected {want_api}",
            path.display(),
            api.unwrap_or("(missing)")
        ));
    }
    Ok(format!(
        "{}: kind {want_kind}, apiVersion {want_api}",
        path.display()
    ))
}

/// The kubelet, as kos starts it: `--config`, `--kubeconfig`, `--hostname-override`, `--node-ip`.
pub fn kubelet(flags: &Flags) -> Result<Vec<String>, String> {
    let mut checked = Vec::new();
    let config_path = PathBuf::from(required(
        flags,
        "config",
        "--config=/var/lib/kubelet/config.yaml",
    )?);
    let kubeconfig_path = PathBuf::from(required(
        flags,
        "kubeconfig",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
    )?);
    if let Some(name) = flags.get("hostname-override") {
        if name.is_empty() {
            return Err("--hostname-override is empty".to_string());
        }
        checked.push(format!("--hostname-override {name}"));
    }
    if let Some(ip) = flags.get("node-ip") {
        ip.parse::<IpAddr>()
            .map_err(|_| format!("--node-ip {ip:?} is not an IP address"))?;
        checked.push(format!("--node-ip {ip}: an IP address"));
    }

    let text = read(&config_path, "the --config file")?;
    let config: KubeletConfig = serde_saphyr::from_str(&text).map_err(|e| {
        format!(
            "{} is not a valid KubeletConfiguration: {e}",
            config_path.display()
        )
    })?;
    checked.push(kind_and_api(
        &config_path,
        config.kind.as_deref(),
        config.api_version.as_deref(),
        "KubeletConfiguration",
        KUBELET_API,
    )?);
    match (&config.tls_cert_file, &config.tls_private_key_file) {
        (Some(cert), Some(key)) => {
            checked.push(pem_file(
                &relative_to(&config_path, cert),
                "tlsCertFile",
                Pem::Certificate,
                &config_path,
            )?);
            checked.push(pem_file(
                &relative_to(&config_path, key),
                "tlsPrivateKeyFile",
                Pem::PrivateKey,
                &config_path,
            )?);
        }
        (None, None) => checked.push(format!(
            "{}: no tlsCertFile (the kubelet would self-sign)",
            config_path.display()
        )),
        _ => {
            return Err(format!(
                "{}: tlsCertFile and tlsPrivateKeyFile must be set together",
                config_path.display()
            ));
        }
    }
    if let Some(ca) = config
        .authentication
        .and_then(|a| a.x509)
        .and_then(|x| x.client_ca_file)
    {
        checked.push(pem_file(
            &relative_to(&config_path, &ca),
            "authentication.x509.clientCAFile",
            Pem::Certificate,
            &config_path,
        )?);
    }
    if let Some(pods) = config.static_pod_path {
        let path = relative_to(&config_path, &pods);
        // A missing folder is fine (the real kubelet logs it and watches for it); a
        // folder that cannot be read is not.
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => {
                std::fs::read_dir(&path)
                    .map_err(|e| format!("staticPodPath {}: {e}", path.display()))?;
                checked.push(format!(
                    "staticPodPath {}: a readable folder",
                    path.display()
                ));
            }
            Ok(_) => checked.push(format!("staticPodPath {}: a file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                checked.push(format!(
                    "staticPodPath {}: absent (the real kubelet ignores that)",
                    path.display()
                ));
            }
            Err(e) => return Err(format!("staticPodPath {}: {e}", path.display())),
        }
    }

    checked.extend(kubeconfig(&kubeconfig_path)?);
    Ok(checked)
}

/// kube-proxy, as kos starts it: `--config` only; its kubeconfig comes from the config.
pub fn kube_proxy(flags: &Flags) -> Result<Vec<String>, String> {
    let config_path = PathBuf::from(required(
        flags,
        "config",
        "--config=/var/lib/kube-proxy/config.yaml",
    )?);
    let text = read(&config_path, "the --config file")?;
    let config: KubeProxyConfig = serde_saphyr::from_str(&text).map_err(|e| {
        format!(
            "{} is not a valid KubeProxyConfiguration: {e}",
            config_path.display()
        )
    })?;
    let mut checked = vec![kind_and_api(
        &config_path,
        config.kind.as_deref(),
        config.api_version.as_deref(),
        "KubeProxyConfiguration",
        KUBE_PROXY_API,
    )?];
    let kubeconfig_path = config
        .client_connection
        .and_then(|c| c.kubeconfig)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            format!(
                "{}: clientConnection.kubeconfig is not set",
                config_path.display()
            )
        })?;
    checked.extend(kubeconfig(&relative_to(&config_path, &kubeconfig_path))?);
    Ok(checked)
}

/// A kubeconfig a component can log in with: its current context names a cluster with an
/// https server and a CA, and a user with a client certificate and key.
fn kubeconfig(path: &Path) -> Result<Vec<String>, String> {
    let text = read(path, "the kubeconfig")?;
    let kc: Kubeconfig = serde_saphyr::from_str(&text)
        .map_err(|e| format!("{} is not a valid kubeconfig: {e}", path.display()))?;
    let shown = path.display();
    if let Some(kind) = kc.kind.as_deref().filter(|k| *k != "Config") {
        return Err(format!("{shown}: kind is {kind:?}, expected Config"));
    }
    let current = kc
        .current_context
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| format!("{shown}: no current-context"))?;
    let context = &kc
        .contexts
        .iter()
        .find(|c| c.name == current)
        .ok_or_else(|| format!("{shown}: current-context {current:?} is not in contexts"))?
        .context;
    let cluster = &kc
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .ok_or_else(|| {
            format!(
                "{shown}: cluster {:?} of context {current:?} is not in clusters",
                context.cluster
            )
        })?
        .cluster;
    let user = &kc
        .users
        .iter()
        .find(|u| u.name == context.user)
        .ok_or_else(|| {
            format!(
                "{shown}: user {:?} of context {current:?} is not in users",
                context.user
            )
        })?
        .user;

    let mut checked = vec![format!(
        "{shown}: current-context {current:?} -> cluster {:?}, user {:?}",
        context.cluster, context.user
    )];
    let server = cluster.server.as_deref().unwrap_or("");
    if !server.starts_with("https://") || server.len() <= "https://".len() {
        return Err(format!(
            "{shown}: cluster {:?} has server {server:?}, expected an https:// URL",
            context.cluster
        ));
    }
    checked.push(format!("{shown}: server {server}"));
    checked.push(
        match (
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        ) {
            (Some(data), _) => {
                pem_data(data, "certificate-authority-data", Pem::Certificate, path)?
            }
            (None, Some(file)) => pem_file(
                &relative_to(path, file),
                "certificate-authority",
                Pem::Certificate,
                path,
            )?,
            (None, None) => {
                return Err(format!(
                    "{shown}: cluster {:?} has no certificate-authority(-data)",
                    context.cluster
                ));
            }
        },
    );
    checked.push(
        match (&user.client_certificate_data, &user.client_certificate) {
            (Some(data), _) => pem_data(data, "client-certificate-data", Pem::Certificate, path)?,
            (None, Some(file)) => pem_file(
                &relative_to(path, file),
                "client-certificate",
                Pem::Certificate,
                path,
            )?,
            (None, None) => {
                return Err(format!(
                    "{shown}: user {:?} has no client-certificate(-data)",
                    context.user
                ));
            }
        },
    );
    checked.push(match (&user.client_key_data, &user.client_key) {
        (Some(data), _) => pem_data(data, "client-key-data", Pem::PrivateKey, path)?,
        (None, Some(file)) => pem_file(
            &relative_to(path, file),
            "client-key",
            Pem::PrivateKey,
            path,
        )?,
        (None, None) => {
            return Err(format!(
                "{shown}: user {:?} has no client-key(-data)",
                context.user
            ));
        }
    });
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n";

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn kubeconfig_text(ca: &str, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: demo\n  cluster:\n    server: https://10.0.0.1:6443\n    {ca}\nusers:\n- name: me\n  user:\n    {user}\ncontexts:\n- name: me@demo\n  context:\n    cluster: demo\n    user: me\ncurrent-context: me@demo\n"
        )
    }

    #[test]
    fn kubeconfig_with_data_and_with_relative_files() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.conf");
        let user = format!(
            "client-certificate-data: {}\n    client-key-data: {}",
            b64(CERT),
            b64(KEY)
        );
        std::fs::write(
            &data,
            kubeconfig_text(&format!("certificate-authority-data: {}", b64(CERT)), &user),
        )
        .unwrap();
        assert_eq!(kubeconfig(&data).unwrap().len(), 5);

        std::fs::write(dir.path().join("ca.crt"), CERT).unwrap();
        std::fs::write(dir.path().join("me.crt"), CERT).unwrap();
        std::fs::write(dir.path().join("me.key"), KEY).unwrap();
        let files = dir.path().join("files.conf");
        std::fs::write(
            &files,
            kubeconfig_text(
                "certificate-authority: ca.crt",
                "client-certificate: me.crt\n    client-key: me.key",
            ),
        )
        .unwrap();
        let checked = kubeconfig(&files).unwrap();
        assert!(
            checked
                .iter()
                .any(|c| c.contains("me.key: a PEM private key")),
            "{checked:?}"
        );
    }

    #[test]
    fn kubeconfig_problems_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.conf");
        let cases = [
            (
                kubeconfig_text(
                    "certificate-authority: missing.crt",
                    "client-certificate-data: x",
                ),
                "cannot read certificate-authority",
            ),
            (
                kubeconfig_text(
                    &format!("certificate-authority-data: {}", b64(KEY)),
                    "client-key: x",
                ),
                "does not decode to a PEM certificate",
            ),
            (
                kubeconfig_text(
                    &format!("certificate-authority-data: {}", b64(CERT)),
                    "token: abc",
                ),
                "has no client-certificate",
            ),
            (
                kubeconfig_text(
                    &format!("certificate-authority-data: {}", b64(CERT)),
                    &format!(
                        "client-certificate-data: {}\n    client-key-data: {}",
                        b64(CERT),
                        b64(CERT)
                    ),
                ),
                "client-key-data does not decode to a PEM private key",
            ),
            (
                kubeconfig_text("x: y", "token: t")
                    .replace("current-context: me@demo", "current-context: other"),
                "current-context \"other\" is not in contexts",
            ),
        ];
        for (text, want) in cases {
            std::fs::write(&path, &text).unwrap();
            let err = kubeconfig(&path).unwrap_err();
            assert!(err.contains(want), "{want:?} not in {err:?}\n{text}");
        }
    }

    #[test]
    fn missing_static_pod_path_is_tolerated_like_the_real_kubelet() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "apiVersion: {KUBELET_API}\nkind: KubeletConfiguration\nstaticPodPath: manifests\n"
            ),
        )
        .unwrap();
        let kc = dir.path().join("kubelet.conf");
        let user = format!(
            "client-certificate-data: {}\n    client-key-data: {}",
            b64(CERT),
            b64(KEY)
        );
        std::fs::write(
            &kc,
            kubeconfig_text(&format!("certificate-authority-data: {}", b64(CERT)), &user),
        )
        .unwrap();
        let flags = Flags::from([
            ("config", config.display().to_string()),
            ("kubeconfig", kc.display().to_string()),
        ]);
        let checked = kubelet(&flags).unwrap();
        assert!(
            checked.iter().any(|c| c.contains("manifests: absent")),
            "{checked:?}"
        );
    }

    #[test]
    fn kubelet_needs_both_flags_kos_renders() {
        let err = kubelet(&Flags::from([("config", "/x".to_string())])).unwrap_err();
        assert!(err.contains("--kubeconfig is missing"), "{err}");
    }
}
