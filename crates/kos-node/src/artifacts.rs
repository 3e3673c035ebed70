//! Where kubelet, kube-proxy and kubectl come from (and, from a `local` folder, the
//! container runtime, the CNI plugins and the container images), and the SHA-256 each
//! must have.
//!
//! [`resolve`] turns `artifacts.source` into one [`Artifact`] per binary, before any node
//! is touched, so a wrong version, an unreachable mirror or a corrupt local file stops
//! `kos up` early, with the file or URL named:
//!
//! - `upstream` / `mirror`: kos fetches only the small published `<binary>.sha256` files;
//!   each node downloads the binary itself and checks it against that hash, so ~100 MB
//!   binaries never travel over SSH.
//! - `local` (air-gapped clouds): the folder's `SHA256SUMS` is checked against the files
//!   here, on the operator's machine, and kos streams them to the nodes from disk. The
//!   folder's layout (what `testbed/k8s/build.sh` writes):
//!
//!   | in the folder | on a node |
//!   |---|---|
//!   | `bin/kubelet`, `bin/kube-proxy`, `bin/kubectl` (or at the top, as before) | `/usr/local/bin/` |
//!   | `bin/containerd`, `containerd-shim-runc-v2`, `ctr`, `runc`, `crictl` (optional: then the runtime comes from here, not from the distribution) | `/usr/local/bin/` |
//!   | `cni/<plugin>` (bridge, host-local, loopback, portmap) | `/opt/cni/bin/` |
//!   | `images/<name>.tar`: OCI image layouts naming their image (`io.containerd.image.name`) | imported into containerd's `k8s.io` namespace |
//!
//! - `artifacts.extra_images` (any source): folders of the user's own image archives
//!   (`*.tar`, at any depth, listed in the folder's `SHA256SUMS`), checked the same way and
//!   imported on every node ([`resolve_extra_images`]).

use kos_core::settings::ArtifactSource;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Kubernetes binaries kos installs on nodes.
pub const BINARIES: [&str; 3] = ["kubelet", "kube-proxy", "kubectl"];

/// The container runtime's binaries; when a `local` folder holds `bin/containerd`, it must
/// hold all of them, and nodes get the runtime from there instead of from the distribution.
pub const RUNTIME_BINARIES: [&str; 5] = ["containerd", "containerd-shim-runc-v2", "ctr", "runc", "crictl"];

/// The CNI plugins the routed pod network uses (`loopback` for containerd, `portmap` for hostPort).
pub const CNI_PLUGINS: [&str; 4] = ["bridge", "host-local", "loopback", "portmap"];

/// Where CNI plugins from the artifacts go.
pub const CNI_BIN_DIR: &str = "/opt/cni/bin";

/// How `SHA256SUMS` of a local folder is made.
const SUMS_HOWTO: &str = "find bin cni images -type f | sort | xargs sha256sum > SHA256SUMS";

/// Where binaries live upstream: `<base>/v<version>/bin/linux/<arch>/<binary>`.
pub const UPSTREAM_BASE: &str = "https://dl.k8s.io/release";

/// The checksum file of a `local` folder.
pub const SHA256SUMS: &str = "SHA256SUMS";

/// How a node gets a binary.
#[derive(Clone, PartialEq, Eq)]
pub enum Fetch {
    /// kos streams this file of this size (already checked against the artifact's SHA-256).
    Upload { path: PathBuf, len: u64 },
    /// The node downloads this URL and checks it against the artifact's SHA-256.
    Download { url: String },
}

impl fmt::Debug for Fetch {
    /// The size, never the bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fetch::Upload { path, len } => write!(f, "Upload({}, {len} bytes)", path.display()),
            Fetch::Download { url } => f.debug_struct("Download").field("url", url).finish(),
        }
    }
}

/// What an artifact is, and so where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A Kubernetes binary (kubelet, kube-proxy, kubectl).
    Kubernetes,
    /// A container runtime binary (containerd, its shim, ctr, runc, crictl).
    Runtime,
    /// A CNI plugin.
    Cni,
    /// An OCI image archive, imported into containerd.
    Image(ImageRef),
}

/// The image an archive holds: its name and its manifest's digest (what containerd lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `registry.k8s.io/pause:3.10.2`
    pub name: String,
    /// `sha256:...` of the image's manifest.
    pub digest: String,
    /// Where it comes from, and so which nodes get it.
    pub origin: ImageOrigin,
}

/// Which folder an image archive comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageOrigin {
    /// The artifact set's `images/`: the cluster's own (the control plane's only on masters).
    ArtifactSet,
    /// An `artifacts.extra_images` folder: the user's, on every node whatever its name.
    Extra,
}

/// One file a node needs, with the hash it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The file's name: `kubelet`, `bridge`, `pause.tar`.
    pub name: String,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    pub fetch: Fetch,
    /// `/usr/local/bin/<name>`, `/opt/cni/bin/<name>`; for an image, where its archive is
    /// unpacked from on the node.
    pub install_path: String,
    pub kind: Kind,
}

/// Whether the runtime (containerd, runc, the CNI plugins) comes from the artifacts.
pub fn runtime_from_artifacts(artifacts: &[Artifact]) -> bool {
    artifacts.iter().any(|a| a.kind == Kind::Runtime && a.name == "containerd")
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
        "cannot read {}: {source}; a folder of `{field}` needs a SHA256SUMS file: create it with `cd {} && {SUMS_HOWTO}`",
        .path.display(), .dir.display()
    )]
    NoSums {
        /// The setting that names the folder: `artifacts.dir`, `artifacts.extra_images`.
        field: &'static str,
        path: PathBuf,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A line of `SHA256SUMS` is not `HASH  name` or `HASH *name`.
    #[error(
        "{}:{line_no}: `{line}` is not a sha256sum line (64 hex digits, two spaces or ` *`, a file name); regenerate the file with `{SUMS_HOWTO}`",
        .path.display()
    )]
    BadSumsLine { path: PathBuf, line_no: usize, line: String },

    /// A binary kos needs has no line in `SHA256SUMS`.
    #[error(
        "{} has no line for `{name}`; kos needs bin/kubelet, bin/kube-proxy and bin/kubectl (and, with bin/containerd, all of {RUNTIME_BINARIES:?}): add the file and regenerate it with `cd {} && {SUMS_HOWTO}`",
        .path.display(), .dir.display()
    )]
    NotListed { name: String, path: PathBuf, dir: PathBuf },

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
        "{} has SHA-256 {}, but {}:{} (`{}`) says {}: a checksum mismatch: the file changed after SHA256SUMS was written, or the download is corrupt; re-download it, or (if the file is right) regenerate SHA256SUMS with `{SUMS_HOWTO}`",
        .0.path.display(), .0.actual, .0.sums.display(), .0.line_no, .0.line, .0.expected
    )]
    Mismatch(Box<ChecksumMismatch>),

    /// An image archive is not an OCI image layout naming its image.
    #[error(
        "{}: {detail}; an image archive must be an OCI image layout (index.json) whose manifest carries the image's name in the `io.containerd.image.name` annotation (what `ctr images export` and `skopeo copy ... oci-archive:FILE:NAME` write)",
        .path.display()
    )]
    BadImage { path: PathBuf, detail: String },

    /// An `artifacts.extra_images` folder lists no image archive.
    #[error("{} lists no `*.tar` image archive; an `artifacts.extra_images` folder holds OCI image archives and their SHA256SUMS (`cd {} && sha256sum *.tar > SHA256SUMS`)", .path.display(), .dir.display())]
    NoImages { path: PathBuf, dir: PathBuf },

    /// Two image archives of the artifacts have the same file name or hold the same image.
    #[error("{} and {} both {what}; keep one of them (each image is imported once, from one archive)", .first.display(), .second.display())]
    DuplicateImage { first: PathBuf, second: PathBuf, what: String },

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
    Status { url: String, status: u16, version: String, arch: String },

    /// A `.sha256` file does not hold a SHA-256.
    #[error("{url} does not hold a SHA-256 (64 hex digits) but {got:?}; the mirror serves something else at that path")]
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
        other => Err(ArtifactError::UnsupportedArch { uname_m: other.to_string() }),
    }
}

/// The artifacts for `version` (`1.31.2` or `v1.31.2`) on `arch` (`amd64`, `arm64`), in the
/// order of [`BINARIES`]. `base_dir` is the settings file's folder, against which a relative
/// `local` dir is resolved.
pub async fn resolve(source: &ArtifactSource, base_dir: &Path, version: &str, arch: &str) -> Result<Vec<Artifact>, ArtifactError> {
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
        // `components` drops an inner `.`: `settings-folder/artifacts`, not `.../././artifacts`.
        base_dir.join(dir).components().collect()
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
        let bad = || ArtifactError::BadSumsLine { path: path.to_path_buf(), line_no: i + 1, line: line.to_string() };
        let (hash, rest) = line.split_at_checked(64).ok_or_else(bad)?;
        let name = rest.strip_prefix("  ").or_else(|| rest.strip_prefix(" *")).ok_or_else(bad)?;
        if !is_sha256(hash) || name.is_empty() {
            return Err(bad());
        }
        let name = name.strip_prefix("./").unwrap_or(name);
        lines.push(SumsLine { line_no: i + 1, line: line.to_string(), hash: hash.to_ascii_lowercase(), name: name.to_string() });
    }
    Ok(lines)
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `dir/SHA256SUMS`, read and parsed; `field` names the setting in the error.
fn read_sums(dir: &Path, field: &'static str) -> Result<(PathBuf, Vec<SumsLine>), ArtifactError> {
    let sums_path = dir.join(SHA256SUMS);
    let text = std::fs::read_to_string(&sums_path).map_err(|source| ArtifactError::NoSums {
        field,
        path: sums_path.clone(),
        dir: dir.to_path_buf(),
        source,
    })?;
    let sums = parse_sums(&sums_path, &text)?;
    Ok((sums_path, sums))
}

/// The image archives a `SHA256SUMS` lists (`*.tar`, at any depth).
fn image_lines(sums: &[SumsLine]) -> impl Iterator<Item = &SumsLine> {
    sums.iter().filter(|l| l.name.ends_with(".tar"))
}

fn resolve_local(dir: &Path) -> Result<Vec<Artifact>, ArtifactError> {
    let (sums_path, sums) = read_sums(dir, "artifacts.dir")?;
    let find = |name: &str| sums.iter().find(|l| l.name == format!("bin/{name}")).or_else(|| sums.iter().find(|l| l.name == name));
    let not_listed = |name: &str| ArtifactError::NotListed { name: name.to_string(), path: sums_path.clone(), dir: dir.to_path_buf() };
    let mut wanted: Vec<(&SumsLine, Kind, String)> = Vec::new();
    for name in BINARIES {
        let line = find(name).ok_or_else(|| not_listed(name))?;
        wanted.push((line, Kind::Kubernetes, install_path(name)));
    }
    if find("containerd").is_some() {
        for name in RUNTIME_BINARIES {
            let line = find(name).ok_or_else(|| not_listed(name))?;
            wanted.push((line, Kind::Runtime, install_path(name)));
        }
        for name in CNI_PLUGINS {
            let file = format!("cni/{name}");
            let line = sums.iter().find(|l| l.name == file).ok_or_else(|| not_listed(&file))?;
            wanted.push((line, Kind::Cni, format!("{CNI_BIN_DIR}/{name}")));
        }
    }
    let images = image_lines(&sums).filter(|l| l.name.starts_with("images/"));
    let wanted = wanted.into_iter().map(|(l, k, i)| (l, Some((k, i)))).chain(images.map(|l| (l, None)));
    checked(dir, &sums_path, ImageOrigin::ArtifactSet, wanted)
}

/// The image archives of the `artifacts.extra_images` folders (`dirs` as written in the
/// settings, resolved like `artifacts.dir`), each checked against its folder's `SHA256SUMS`.
/// Blocking: hashes every file.
pub fn resolve_extra_images(dirs: &[PathBuf], base_dir: &Path) -> Result<Vec<Artifact>, ArtifactError> {
    let mut all = Vec::new();
    for dir in dirs {
        let dir = local_dir(dir, base_dir);
        let (sums_path, sums) = read_sums(&dir, "artifacts.extra_images")?;
        if image_lines(&sums).next().is_none() {
            return Err(ArtifactError::NoImages { path: sums_path, dir });
        }
        all.extend(checked(&dir, &sums_path, ImageOrigin::Extra, image_lines(&sums).map(|l| (l, None)))?);
    }
    Ok(all)
}

/// Two image archives that would collide on a node: the same file name (they are unpacked
/// to `/var/lib/kos/images/<name>`) or the same image.
pub fn check_unique_images(artifacts: &[Artifact]) -> Result<(), ArtifactError> {
    let images: Vec<(&Artifact, &ImageRef)> = artifacts
        .iter()
        .filter_map(|a| match &a.kind {
            Kind::Image(i) => Some((a, i)),
            _ => None,
        })
        .collect();
    let path = |a: &Artifact| match &a.fetch {
        Fetch::Upload { path, .. } => path.clone(),
        Fetch::Download { url } => PathBuf::from(url),
    };
    for (i, (a, ia)) in images.iter().enumerate() {
        for (b, ib) in &images[..i] {
            let what = if a.name == b.name {
                format!("are named `{}`", a.name)
            } else if ia.name == ib.name {
                format!("hold the image `{}`", ia.name)
            } else {
                continue;
            };
            return Err(ArtifactError::DuplicateImage { first: path(b), second: path(a), what });
        }
    }
    Ok(())
}

/// Each listed file of `dir` hashed and compared with its `SHA256SUMS` line; `None` marks
/// an image archive (of `origin`), whose name and digest are read once its hash is checked.
fn checked<'a>(
    dir: &Path,
    sums_path: &Path,
    origin: ImageOrigin,
    wanted: impl Iterator<Item = (&'a SumsLine, Option<(Kind, String)>)>,
) -> Result<Vec<Artifact>, ArtifactError> {
    let mut artifacts = Vec::new();
    let mut cache = HashCache::load(HashCache::default_path());
    for (entry, what) in wanted {
        let path = dir.join(&entry.name);
        let name = entry.name.rsplit('/').next().unwrap_or(&entry.name).to_string();
        let unreadable = |source| ArtifactError::Unreadable { name: name.clone(), path: path.clone(), source };
        let (actual, len) = cache.hash(&path).map_err(unreadable)?;
        if actual != entry.hash {
            return Err(ArtifactError::Mismatch(Box::new(ChecksumMismatch {
                path,
                sums: sums_path.to_path_buf(),
                line_no: entry.line_no,
                line: entry.line.clone(),
                expected: entry.hash.clone(),
                actual,
            })));
        }
        let (kind, install) = match what {
            Some(known) => known,
            None => (Kind::Image(read_image_ref(&path, origin)?), format!("/var/lib/kos/images/{name}")),
        };
        artifacts.push(Artifact { name, sha256: actual, fetch: Fetch::Upload { path, len }, install_path: install, kind });
    }
    cache.save();
    Ok(artifacts)
}

/// SHA-256 of local files, remembered by their stat (device, inode, size, mtime and ctime
/// to the nanosecond, as git's index keys its entries): a file whose stat is unchanged is
/// not read again. Hashing the 600 MB of an artifact set was half a second of every
/// `kos up`. Kept at `$XDG_CACHE_HOME/kos/sha256` (else `~/.cache/kos/sha256`), 0600; a
/// cache that cannot be read or written only costs the hashing.
#[derive(Debug, Default)]
pub struct HashCache {
    file: Option<PathBuf>,
    /// path → (stat key, SHA-256)
    entries: std::collections::BTreeMap<PathBuf, (String, String)>,
    changed: bool,
}

impl HashCache {
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("kos").join("sha256"))
    }

    /// The cache in `file` (`None`: no cache, every file is hashed).
    pub fn load(file: Option<PathBuf>) -> HashCache {
        let text = file.as_deref().and_then(|f| std::fs::read_to_string(f).ok()).unwrap_or_default();
        let entries = text
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(3, '\t');
                let (key, sha, path) = (f.next()?, f.next()?, f.next()?);
                Some((PathBuf::from(path), (key.to_string(), sha.to_string())))
            })
            .collect();
        HashCache { file, entries, changed: false }
    }

    /// SHA-256 and size of `path`, read only when its stat differs from the entry.
    pub fn hash(&mut self, path: &Path) -> std::io::Result<(String, u64)> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path)?;
        let key = format!("{}:{}:{}:{}.{}:{}.{}", m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec());
        if let Some((k, sha)) = self.entries.get(path)
            && *k == key
        {
            return Ok((sha.clone(), m.size()));
        }
        let (sha, len) = hash_file(path)?;
        self.entries.insert(path.to_path_buf(), (key, sha.clone()));
        self.changed = true;
        Ok((sha, len))
    }

    /// Write it back if a file was hashed (whole or not at all).
    pub fn save(self) {
        let Some(file) = self.file.filter(|_| self.changed) else { return };
        let text: String = self
            .entries
            .iter()
            // Files gone since are forgotten.
            .filter(|(p, _)| p.to_str().is_some_and(|s| !s.contains('\n')) && p.exists())
            .map(|(p, (k, sha))| format!("{k}\t{sha}\t{}\n", p.display()))
            .collect();
        if let Err(e) = kos_fs::write_atomic(&file, text.as_bytes(), 0o600) {
            tracing::debug!(file = %file.display(), error = %e, "cannot keep the hash cache");
        }
    }
}

/// SHA-256 and size of a file, read in chunks.
fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hasher.finalize().iter().map(|b| format!("{b:02x}")).collect(), len))
}

/// The image an OCI archive holds: `index.json`'s one manifest, its digest and its
/// `io.containerd.image.name`. Seeks past the blobs; never reads a layer.
pub fn read_image_ref(path: &Path, origin: ImageOrigin) -> Result<ImageRef, ArtifactError> {
    let bad = |detail: String| ArtifactError::BadImage { path: path.to_path_buf(), detail };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut archive = tar::Archive::new(file);
    let entries = archive.entries_with_seek().map_err(|e| bad(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a tar archive: {e}")))?;
        let is_index = entry.path().map(|p| p.to_string_lossy().trim_start_matches("./") == "index.json").unwrap_or(false);
        if !is_index {
            continue;
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).map_err(|e| bad(format!("index.json: {e}")))?;
        let index: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("index.json is not JSON: {e}")))?;
        let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
        let [m] = manifests.as_slice() else {
            return Err(bad(format!("index.json lists {} manifests; kos imports archives of exactly one image", manifests.len())));
        };
        let name = m["annotations"]["io.containerd.image.name"].as_str().unwrap_or_default();
        let digest = m["digest"].as_str().unwrap_or_default();
        if name.is_empty() || !digest.starts_with("sha256:") {
            return Err(bad("its manifest in index.json has no `io.containerd.image.name` annotation or no sha256 digest".into()));
        }
        return Ok(ImageRef { name: name.to_string(), digest: digest.to_string(), origin });
    }
    Err(bad("no index.json in the archive".into()))
}

/// The URL of a binary under `base` (dl.k8s.io's layout).
pub fn binary_url(base: &str, version: &str, arch: &str, name: &str) -> String {
    let version = version.strip_prefix('v').unwrap_or(version);
    format!("{}/v{version}/bin/linux/{arch}/{name}", base.trim_end_matches('/'))
}

async fn resolve_remote(base: &str, version: &str, arch: &str) -> Result<Vec<Artifact>, ArtifactError> {
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
            let sha256 = fetch_checksum(client, &format!("{url}.sha256"), name, version, arch).await?;
            Ok::<_, ArtifactError>(Artifact {
                name: name.to_string(),
                sha256,
                fetch: Fetch::Download { url },
                install_path: install_path(name),
                kind: Kind::Kubernetes,
            })
        }
    });
    futures_util::future::try_join_all(fetches).await
}

/// Fetch and validate one `.sha256` file; one retry on a network error or a server error
/// (5xx, 429), none on other statuses (a 404 will not heal in a second).
async fn fetch_checksum(client: &reqwest::Client, url: &str, name: &str, version: &str, arch: &str) -> Result<String, ArtifactError> {
    let mut attempt = 0;
    let body = loop {
        attempt += 1;
        let retry = attempt < 2;
        match client.get(url).send().await {
            Ok(resp) if resp.status().is_success() => match resp.text().await {
                Ok(body) => break body,
                Err(_) if retry => {}
                Err(source) => {
                    return Err(ArtifactError::Fetch { url: url.to_string(), source });
                }
            },
            Ok(resp) => {
                let status = resp.status();
                let transient = status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
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
                return Err(ArtifactError::Fetch { url: url.to_string(), source });
            }
        }
        tracing::debug!(url, "fetching a checksum failed; retrying once");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    parse_checksum(&body, name).ok_or_else(|| ArtifactError::BadChecksum { url: url.to_string(), got: snippet(&body) })
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
