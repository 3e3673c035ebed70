//! Where kubelet, kube-proxy and kubectl come from, and the SHA-256 each must have.
//!
//! [`resolve`] turns `artifacts.source` into one [`Artifact`] per binary, before any node
//! is touched, so a wrong version, an unreachable mirror or a corrupt local file stops
//! `kos up` early, with the file or URL named:
//!
//! - `upstream` / `mirror`: kos fetches only the small published `<binary>.sha256` files;
//!   each node downloads the binary itself and checks it against that hash, so ~100 MB
//!   binaries never travel over SSH.
//! - `local` (air-gapped clouds): the folder's `SHA256SUMS` is checked against the files
//!   here, on the operator's machine, and kos uploads the bytes.

use crate::wanted::sha256_hex;
use kos_core::settings::ArtifactSource;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The Kubernetes binaries kos installs on nodes.
pub const BINARIES: [&str; 3] = ["kubelet", "kube-proxy", "kubectl"];

/// Where binaries live upstream: `<base>/v<version>/bin/linux/<arch>/<binary>`.
pub const UPSTREAM_BASE: &str = "https://dl.k8s.io/release";

/// The checksum file of a `local` folder.
pub const SHA256SUMS: &str = "SHA256SUMS";

/// How a node gets a binary.
#[derive(Clone, PartialEq, Eq)]
pub enum Fetch {
    /// kos uploads these bytes (already checked against the artifact's SHA-256).
    Upload(Arc<Vec<u8>>),
    /// The node downloads this URL and checks it against the artifact's SHA-256.
    Download { url: String },
}

impl fmt::Debug for Fetch {
    /// The size, never the bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fetch::Upload(bytes) => write!(f, "Upload({} bytes)", bytes.len()),
            Fetch::Download { url } => f.debug_struct("Download").field("url", url).finish(),
        }
    }
}

/// One binary a node needs, with the hash it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// `kubelet`, `kube-proxy` or `kubectl`.
    pub name: String,
    /// Lowercase hex SHA-256 of the binary.
    pub sha256: String,
    pub fetch: Fetch,
    /// `/usr/local/bin/<name>`
    pub install_path: String,
}

/// Resolving the artifacts failed; every variant says which file or URL and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// `uname -m` of a node is not an architecture Kubernetes publishes binaries for here.
    #[error(
        "the node's architecture `{uname_m}` (uname -m) is not supported; kos installs Kubernetes binaries for x86_64 (amd64) and aarch64 (arm64) only"
    )]
    UnsupportedArch { uname_m: String },

    /// The local folder has no readable `SHA256SUMS`.
    #[error(
        "cannot read {}: {source}; the `artifacts.dir` folder needs a SHA256SUMS file: create it with `cd {} && sha256sum kubelet kube-proxy kubectl > SHA256SUMS`",
        .path.display(), .dir.display()
    )]
    NoSums {
        path: PathBuf,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A line of `SHA256SUMS` is not `HASH  name` or `HASH *name`.
    #[error(
        "{}:{line_no}: `{line}` is not a sha256sum line (64 hex digits, two spaces or ` *`, a file name); regenerate the file with `sha256sum kubelet kube-proxy kubectl > SHA256SUMS`",
        .path.display()
    )]
    BadSumsLine {
        path: PathBuf,
        line_no: usize,
        line: String,
    },

    /// A binary kos needs has no line in `SHA256SUMS`.
    #[error(
        "{} has no line for `{name}`; kos needs kubelet, kube-proxy and kubectl: regenerate it with `cd {} && sha256sum kubelet kube-proxy kubectl > SHA256SUMS`",
        .path.display(), .dir.display()
    )]
    NotListed {
        name: String,
        path: PathBuf,
        dir: PathBuf,
    },

    /// A binary listed in `SHA256SUMS` cannot be read.
    #[error("cannot read {}: {source}; put the `{name}` binary for the nodes' architecture in that folder", .path.display())]
    Unreadable {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A local binary's hash differs from its `SHA256SUMS` line.
    #[error(
        "{} has SHA-256 {}, but {}:{} (`{}`) says {}: a checksum mismatch: the file changed after SHA256SUMS was written, or the download is corrupt; re-download it, or (if the file is right) regenerate SHA256SUMS with `sha256sum kubelet kube-proxy kubectl > SHA256SUMS`",
        .0.path.display(), .0.actual, .0.sums.display(), .0.line_no, .0.line, .0.expected
    )]
    Mismatch(Box<ChecksumMismatch>),

    /// The HTTP client could not be set up (TLS roots, ...).
    #[error("cannot set up HTTPS to fetch checksums: {source}")]
    Client {
        #[source]
        source: reqwest::Error,
    },

    /// A `.sha256` URL could not be fetched (connection, timeout, TLS), even after a retry.
    #[error(
        "cannot fetch {url}: {source}; check the network (and HTTPS_PROXY) from this machine, or use `artifacts.source: mirror` or `local`"
    )]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// A `.sha256` URL answered with an HTTP error.
    #[error(
        "{url}: HTTP {status}; check that Kubernetes {version} exists for linux/{arch} and, for a mirror, that it keeps dl.k8s.io's layout (<url>/v<version>/bin/linux/<arch>/<binary> with <binary>.sha256 next to it)"
    )]
    Status {
        url: String,
        status: u16,
        version: String,
        arch: String,
    },

    /// A `.sha256` file does not hold a SHA-256.
    #[error(
        "{url} does not hold a SHA-256 (64 hex digits) but {got:?}; the mirror serves something else at that path"
    )]
    BadChecksum { url: String, got: String },
}

/// A local binary whose SHA-256 is not the one its `SHA256SUMS` line gives.
#[derive(Debug)]
pub struct ChecksumMismatch {
    pub path: PathBuf,
    /// The `SHA256SUMS` file, and the line (1-based) and text that list the binary.
    pub sums: PathBuf,
    pub line_no: usize,
    pub line: String,
    pub expected: String,
    pub actual: String,
}

/// The Kubernetes architecture name for a node's `uname -m`.
pub fn node_arch(uname_m: &str) -> Result<&'static str, ArtifactError> {
    match uname_m.trim() {
        "x86_64" | "amd64" => Ok("amd64"),
        "aarch64" | "arm64" => Ok("arm64"),
        other => Err(ArtifactError::UnsupportedArch {
            uname_m: other.to_string(),
        }),
    }
}

/// The artifacts for `version` (`1.31.2` or `v1.31.2`) on `arch` (`amd64`, `arm64`), in the
/// order of [`BINARIES`]. `base_dir` is the settings file's folder, against which a relative
/// `local` dir is resolved.
pub async fn resolve(
    source: &ArtifactSource,
    base_dir: &Path,
    version: &str,
    arch: &str,
) -> Result<Vec<Artifact>, ArtifactError> {
    match source {
        ArtifactSource::Upstream => resolve_remote(UPSTREAM_BASE, version, arch).await,
        ArtifactSource::Mirror { url } => resolve_remote(url, version, arch).await,
        ArtifactSource::Local { dir } => {
            let dir = local_dir(dir, base_dir);
            // Reading and hashing ~150 MB is blocking work; keep it off the async workers.
            match tokio::task::spawn_blocking(move || resolve_local(&dir)).await {
                Ok(result) => result,
                Err(join) => std::panic::resume_unwind(join.into_panic()),
            }
        }
    }
}

fn install_path(name: &str) -> String {
    format!("/usr/local/bin/{name}")
}

/// `dir` as written in the settings: absolute, `~/...`, or relative to the settings' folder.
fn local_dir(dir: &Path, base_dir: &Path) -> PathBuf {
    if let Ok(rest) = dir.strip_prefix("~")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        base_dir.join(dir)
    }
}

/// One parsed line of a `SHA256SUMS` file.
struct SumsLine {
    line_no: usize,
    line: String,
    hash: String,
    name: String,
}

/// Parse sha256sum output: `HASH  name` (text mode) or `HASH *name` (binary mode); blank
/// lines are skipped. Names are kept as written, minus a leading `./`.
fn parse_sums(path: &Path, text: &str) -> Result<Vec<SumsLine>, ArtifactError> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let bad = || ArtifactError::BadSumsLine {
            path: path.to_path_buf(),
            line_no: i + 1,
            line: line.to_string(),
        };
        let (hash, rest) = line.split_at_checked(64).ok_or_else(bad)?;
        let name = rest
            .strip_prefix("  ")
            .or_else(|| rest.strip_prefix(" *"))
            .ok_or_else(bad)?;
        if !is_sha256(hash) || name.is_empty() {
            return Err(bad());
        }
        let name = name.strip_prefix("./").unwrap_or(name);
        lines.push(SumsLine {
            line_no: i + 1,
            line: line.to_string(),
            hash: hash.to_ascii_lowercase(),
            name: name.to_string(),
        });
    }
    Ok(lines)
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn resolve_local(dir: &Path) -> Result<Vec<Artifact>, ArtifactError> {
    let sums_path = dir.join(SHA256SUMS);
    let text = std::fs::read_to_string(&sums_path).map_err(|source| ArtifactError::NoSums {
        path: sums_path.clone(),
        dir: dir.to_path_buf(),
        source,
    })?;
    let sums = parse_sums(&sums_path, &text)?;
    let mut artifacts = Vec::with_capacity(BINARIES.len());
    for name in BINARIES {
        let entry =
            sums.iter()
                .find(|l| l.name == name)
                .ok_or_else(|| ArtifactError::NotListed {
                    name: name.to_string(),
                    path: sums_path.clone(),
                    dir: dir.to_path_buf(),
                })?;
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|source| ArtifactError::Unreadable {
            name: name.to_string(),
            path: path.clone(),
            source,
        })?;
        let actual = sha256_hex(&bytes);
        if actual != entry.hash {
            return Err(ArtifactError::Mismatch(Box::new(ChecksumMismatch {
                path,
                sums: sums_path,
                line_no: entry.line_no,
                line: entry.line.clone(),
                expected: entry.hash.clone(),
                actual,
            })));
        }
        artifacts.push(Artifact {
            name: name.to_string(),
            sha256: actual,
            fetch: Fetch::Upload(Arc::new(bytes)),
            install_path: install_path(name),
        });
    }
    Ok(artifacts)
}

/// The URL of a binary under `base` (dl.k8s.io's layout).
pub fn binary_url(base: &str, version: &str, arch: &str, name: &str) -> String {
    let version = version.strip_prefix('v').unwrap_or(version);
    format!(
        "{}/v{version}/bin/linux/{arch}/{name}",
        base.trim_end_matches('/')
    )
}

async fn resolve_remote(
    base: &str,
    version: &str,
    arch: &str,
) -> Result<Vec<Artifact>, ArtifactError> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("kos/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| ArtifactError::Client { source })?;
    let fetches = BINARIES.map(|name| {
        let client = &client;
        async move {
            let url = binary_url(base, version, arch, name);
            let sha256 =
                fetch_checksum(client, &format!("{url}.sha256"), name, version, arch).await?;
            Ok::<_, ArtifactError>(Artifact {
                name: name.to_string(),
                sha256,
                fetch: Fetch::Download { url },
                install_path: install_path(name),
            })
        }
    });
    futures_util::future::try_join_all(fetches).await
}

/// Fetch and validate one `.sha256` file; one retry on a network error or a server error
/// (5xx, 429), none on other statuses (a 404 will not heal in a second).
async fn fetch_checksum(
    client: &reqwest::Client,
    url: &str,
    name: &str,
    version: &str,
    arch: &str,
) -> Result<String, ArtifactError> {
    let mut attempt = 0;
    let body = loop {
        attempt += 1;
        let retry = attempt < 2;
        match client.get(url).send().await {
            Ok(resp) if resp.status().is_success() => match resp.text().await {
                Ok(body) => break body,
                Err(_) if retry => {}
                Err(source) => {
                    return Err(ArtifactError::Fetch {
                        url: url.to_string(),
                        source,
                    });
                }
            },
            Ok(resp) => {
                let status = resp.status();
                let transient =
                    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                if !(transient && retry) {
                    return Err(ArtifactError::Status {
                        url: url.to_string(),
                        status: status.as_u16(),
                        version: version.strip_prefix('v').unwrap_or(version).to_string(),
                        arch: arch.to_string(),
                    });
                }
            }
            Err(_) if retry => {}
            Err(source) => {
                return Err(ArtifactError::Fetch {
                    url: url.to_string(),
                    source,
                });
            }
        }
        tracing::debug!(url, "fetching a checksum failed; retrying once");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    parse_checksum(&body, name).ok_or_else(|| ArtifactError::BadChecksum {
        url: url.to_string(),
        got: snippet(&body),
    })
}

/// A published `.sha256`: the bare hash (dl.k8s.io), or one sha256sum line naming the
/// binary (what `sha256sum` writes on a hand-made mirror).
fn parse_checksum(body: &str, name: &str) -> Option<String> {
    let mut words = body.split_whitespace();
    let hash = words.next().filter(|h| is_sha256(h))?;
    match (words.next(), words.next()) {
        (None, _) => {}
        (Some(file), None) => {
            let file = file.trim_start_matches('*');
            if file.rsplit('/').next() != Some(name) {
                return None;
            }
        }
        (Some(_), Some(_)) => return None,
    }
    Some(hash.to_ascii_lowercase())
}

/// The start of an unexpected body, for a message.
fn snippet(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &body[..i]),
        None => body.to_string(),
    }
}

#[cfg(test)]
mod tests;
