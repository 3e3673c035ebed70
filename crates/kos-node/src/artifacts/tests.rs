use super::*;
use crate::wanted::sha256_hex;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn hex(bytes: &[u8]) -> String {
    sha256_hex(bytes)
}

/// A folder with the real kubelet, kube-proxy and kubectl (linked from the built artifact
/// set) and a SHA256SUMS written by the given function from their hashes; with the hashes.
/// `None` when the set is not built (outside CI).
fn local_folder(sums: impl FnOnce(&str, &str, &str) -> String) -> Option<(tempfile::TempDir, [String; 3])> {
    let set = crate::test_support::artifact_set()?;
    let dir = tempfile::tempdir().unwrap();
    let files = [("bin/kubelet", "kubelet"), ("bin/kube-proxy", "kube-proxy"), ("bin/kubectl", "kubectl")];
    let h = crate::test_support::link_from_set(&set, dir.path(), &files);
    std::fs::write(dir.path().join(SHA256SUMS), sums(&h[0], &h[1], &h[2])).unwrap();
    Some((dir, [h[0].clone(), h[1].clone(), h[2].clone()]))
}

fn local(dir: &Path) -> ArtifactSource {
    ArtifactSource::Local { dir: dir.to_path_buf() }
}

#[test]
fn node_arch_maps_uname() {
    assert_eq!(node_arch("x86_64").unwrap(), "amd64");
    assert_eq!(node_arch("aarch64\n").unwrap(), "arm64");
    let err = node_arch("riscv64").unwrap_err().to_string();
    assert!(err.contains("`riscv64`") && err.contains("x86_64 (amd64) and aarch64 (arm64)"), "{err}");
}

#[test]
fn fetch_debug_never_shows_bytes() {
    let f = Fetch::Upload { path: PathBuf::from("/art/bin/kubelet"), len: 17 };
    assert_eq!(format!("{f:?}"), "Upload(/art/bin/kubelet, 17 bytes)");
}

#[tokio::test]
async fn local_folder_is_uploaded_after_checking_each_hash() {
    // Text mode, binary mode and `./` prefixes, as sha256sum writes them.
    let Some((dir, [kubelet, _, kubectl])) =
        local_folder(|a, b, c| format!("{a}  kubelet\n{b} *kube-proxy\n\n{}  ./kubectl\n", c.to_uppercase()))
    else {
        return;
    };
    let got = resolve(&local(dir.path()), Path::new("/nowhere"), "1.31.2", "amd64").await.unwrap();
    let names: Vec<_> = got.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, BINARIES);
    assert_eq!(got[0].sha256, kubelet);
    assert_eq!(got[2].sha256, kubectl, "hash is lowercased");
    assert_eq!(got[1].install_path, "/usr/local/bin/kube-proxy");
    let len = std::fs::metadata(dir.path().join("kube-proxy")).unwrap().len();
    assert_eq!(got[1].fetch, Fetch::Upload { path: dir.path().join("kube-proxy"), len });
    assert!(got.iter().all(|a| a.kind == Kind::Kubernetes), "no runtime without bin/containerd");
}

#[tokio::test]
async fn relative_local_dir_is_relative_to_the_settings_folder() {
    let settings_dir = tempfile::tempdir().unwrap();
    let Some((dir, _)) = local_folder(|a, b, c| format!("{a}  kubelet\n{b}  kube-proxy\n{c}  kubectl\n")) else { return };
    std::fs::rename(dir.path(), settings_dir.path().join("bin")).unwrap();
    let source = ArtifactSource::Local { dir: "./bin".into() };
    let got = resolve(&source, settings_dir.path(), "1.31.2", "amd64").await.unwrap();
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn local_folder_without_sha256sums_says_how_to_make_it() {
    let Some((dir, _)) = local_folder(|_, _, _| String::new()) else { return };
    std::fs::remove_file(dir.path().join(SHA256SUMS)).unwrap();
    let err = resolve(&local(dir.path()), Path::new("."), "1.31.2", "amd64").await.unwrap_err();
    assert!(matches!(err, ArtifactError::NoSums { .. }), "{err:?}");
    assert!(err.to_string().contains("find bin cni images -type f | sort | xargs sha256sum > SHA256SUMS"), "{err}");
}

#[tokio::test]
async fn local_binary_missing_from_folder_is_named() {
    let Some((dir, _)) = local_folder(|a, b, c| format!("{a}  kubelet\n{b}  kube-proxy\n{c}  kubectl\n")) else { return };
    std::fs::remove_file(dir.path().join("kube-proxy")).unwrap();
    let err = resolve(&local(dir.path()), Path::new("."), "1.31.2", "amd64").await.unwrap_err();
    let ArtifactError::Unreadable { name, path, .. } = &err else { panic!("{err:?}") };
    assert_eq!(name, "kube-proxy");
    assert_eq!(path, &dir.path().join("kube-proxy"));
    assert!(err.to_string().contains("kube-proxy"), "{err}");
}

#[tokio::test]
async fn local_binary_missing_from_sha256sums_is_named() {
    let Some((dir, _)) = local_folder(|a, b, _| format!("{a}  kubelet\n{b}  kube-proxy\n")) else { return };
    let err = resolve(&local(dir.path()), Path::new("."), "1.31.2", "amd64").await.unwrap_err();
    let ArtifactError::NotListed { name, .. } = &err else { panic!("{err:?}") };
    assert_eq!(name, "kubectl");
    let msg = err.to_string();
    assert!(msg.contains("SHA256SUMS has no line for `kubectl`"), "{msg}");
}

#[tokio::test]
async fn local_checksum_mismatch_names_file_and_line() {
    let Some((dir, [_, kube_proxy, _])) = local_folder(|a, b, c| format!("{a}  kubelet\n{b}  kube-proxy\n{c}  kubectl\n")) else { return };
    // The binary changed after SHA256SUMS was written (the link replaced by other bytes).
    std::fs::remove_file(dir.path().join("kube-proxy")).unwrap();
    std::fs::write(dir.path().join("kube-proxy"), b"something else").unwrap();
    let err = resolve(&local(dir.path()), Path::new("."), "1.31.2", "amd64").await.unwrap_err();
    let ArtifactError::Mismatch(m) = &err else { panic!("{err:?}") };
    assert_eq!(m.path, dir.path().join("kube-proxy"));
    assert_eq!(m.line_no, 2);
    assert_eq!(m.expected, kube_proxy);
    assert_eq!(m.actual, hex(b"something else"));
    let msg = err.to_string();
    assert!(msg.contains(&format!("SHA256SUMS:2 (`{kube_proxy}  kube-proxy`)")), "{msg}");
    assert!(msg.contains("checksum mismatch") && msg.contains("re-download"), "{msg}");
}

#[tokio::test]
async fn local_malformed_sha256sums_line_is_quoted() {
    let Some((dir, _)) = local_folder(|a, _, _| format!("{a}  kubelet\nnot a checksum line\n")) else { return };
    let err = resolve(&local(dir.path()), Path::new("."), "1.31.2", "amd64").await.unwrap_err();
    let ArtifactError::BadSumsLine { line_no, line, .. } = &err else { panic!("{err:?}") };
    assert_eq!((*line_no, line.as_str()), (2, "not a checksum line"));
}

#[test]
fn binary_url_follows_dl_k8s_io_layout() {
    assert_eq!(binary_url(UPSTREAM_BASE, "v1.31.2", "arm64", "kubelet"), "https://dl.k8s.io/release/v1.31.2/bin/linux/arm64/kubelet");
    assert_eq!(binary_url("http://m.example/k8s/", "1.31.2", "amd64", "kubectl"), "http://m.example/k8s/v1.31.2/bin/linux/amd64/kubectl");
}

#[test]
fn published_checksum_formats() {
    let h = "ab".repeat(32);
    assert_eq!(parse_checksum(&format!("{h}\n"), "kubelet"), Some(h.clone()));
    assert_eq!(parse_checksum(&format!("{}  kubelet\n", h.to_uppercase()), "kubelet"), Some(h.clone()));
    assert_eq!(parse_checksum(&format!("{h} *bin/kubelet"), "kubelet"), Some(h.clone()));
    assert_eq!(parse_checksum(&format!("{h}  kubectl"), "kubelet"), None, "a line for another binary");
    assert_eq!(parse_checksum(&h[..63], "kubelet"), None);
    assert_eq!(parse_checksum("<html>404</html>", "kubelet"), None);
    assert_eq!(parse_checksum("", "kubelet"), None);
}

/// A tiny HTTP/1.1 server on 127.0.0.1: each path answers with its queued responses in
/// turn (the last one repeats); unknown paths get a 404. Records every path requested.
struct TestServer {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
}

async fn serve(routes: HashMap<String, Vec<(u16, String)>>) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::<String>::new()));
    let routes = Arc::new(Mutex::new(routes));
    let seen = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let routes = routes.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                seen.lock().unwrap().push(path.clone());
                let (status, body) = {
                    let mut routes = routes.lock().unwrap();
                    match routes.get_mut(&path) {
                        Some(queue) if queue.len() > 1 => queue.remove(0),
                        Some(queue) => queue[0].clone(),
                        None => (404, "404 page not found\n".to_string()),
                    }
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    TestServer { base, requests }
}

fn sums_route(prefix: &str, name: &str, reply: (u16, String)) -> (String, Vec<(u16, String)>) {
    (format!("{prefix}/v1.31.2/bin/linux/amd64/{name}.sha256"), vec![reply])
}

#[tokio::test]
async fn mirror_checksums_are_fetched_and_the_node_downloads_the_binary() {
    let (a, b, c) = ("a".repeat(64), "B".repeat(64), "c".repeat(64));
    let server = serve(HashMap::from([
        sums_route("/k8s", "kubelet", (200, a.clone())),
        sums_route("/k8s", "kube-proxy", (200, format!("{b}  kube-proxy\n"))),
        sums_route("/k8s", "kubectl", (200, format!("{c}\n"))),
    ]))
    .await;
    let source = ArtifactSource::Mirror { url: format!("{}/k8s", server.base) };
    let got = resolve(&source, Path::new("."), "v1.31.2", "amd64").await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].sha256, a);
    assert_eq!(got[1].sha256, "b".repeat(64));
    assert_eq!(got[2].fetch, Fetch::Download { url: format!("{}/k8s/v1.31.2/bin/linux/amd64/kubectl", server.base) });
    assert_eq!(got[2].install_path, "/usr/local/bin/kubectl");
    let mut seen = server.requests.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            "/k8s/v1.31.2/bin/linux/amd64/kube-proxy.sha256",
            "/k8s/v1.31.2/bin/linux/amd64/kubectl.sha256",
            "/k8s/v1.31.2/bin/linux/amd64/kubelet.sha256",
        ],
        "only the small checksum files are fetched here"
    );
}

#[tokio::test]
async fn mirror_404_names_the_url_and_the_layout() {
    let h = "d".repeat(64);
    let server = serve(HashMap::from([sums_route("", "kubelet", (200, h.clone())), sums_route("", "kubectl", (200, h))])).await;
    let source = ArtifactSource::Mirror { url: server.base.clone() };
    let err = resolve(&source, Path::new("."), "1.31.2", "amd64").await.unwrap_err();
    let ArtifactError::Status { url, status, .. } = &err else { panic!("{err:?}") };
    assert_eq!(url, &format!("{}/v1.31.2/bin/linux/amd64/kube-proxy.sha256", server.base));
    assert_eq!(*status, 404);
    let msg = err.to_string();
    assert!(msg.contains("HTTP 404") && msg.contains("Kubernetes 1.31.2 exists for linux/amd64"), "{msg}");
    let tries = server.requests.lock().unwrap().iter().filter(|p| p.ends_with("kube-proxy.sha256")).count();
    assert_eq!(tries, 1, "a 404 is not retried");
}

#[tokio::test]
async fn mirror_malformed_checksum_is_refused_with_what_was_served() {
    let h = "e".repeat(64);
    let server = serve(HashMap::from([
        sums_route("", "kubelet", (200, h.clone())),
        sums_route("", "kube-proxy", (200, h)),
        sums_route("", "kubectl", (200, "<html><body>Welcome to our mirror</body></html>".to_string())),
    ]))
    .await;
    let source = ArtifactSource::Mirror { url: server.base.clone() };
    let err = resolve(&source, Path::new("."), "1.31.2", "amd64").await.unwrap_err();
    let ArtifactError::BadChecksum { url, got } = &err else { panic!("{err:?}") };
    assert!(url.ends_with("/v1.31.2/bin/linux/amd64/kubectl.sha256"), "{url}");
    assert!(got.contains("Welcome to our mirror"), "{got}");
}

#[tokio::test]
async fn mirror_server_error_is_retried_once() {
    let h = "f".repeat(64);
    let server = serve(HashMap::from([
        sums_route("", "kubelet", (200, h.clone())),
        ("/v1.31.2/bin/linux/amd64/kube-proxy.sha256".to_string(), vec![(503, "busy".to_string()), (200, h.clone())]),
        ("/v1.31.2/bin/linux/amd64/kubectl.sha256".to_string(), vec![(500, "down".to_string())]),
    ]))
    .await;
    let source = ArtifactSource::Mirror { url: server.base.clone() };
    let err = resolve(&source, Path::new("."), "1.31.2", "amd64").await.unwrap_err();
    let ArtifactError::Status { url, status, .. } = &err else { panic!("{err:?}") };
    assert!(url.ends_with("kubectl.sha256") && *status == 500, "{err}");
    let seen = server.requests.lock().unwrap().clone();
    let count = |name: &str| seen.iter().filter(|p| p.ends_with(name)).count();
    assert_eq!(count("kube-proxy.sha256"), 2, "one 503, then the retry succeeds");
    assert_eq!(count("kubectl.sha256"), 2, "a persistent 500: one retry, then the error");
}

#[tokio::test]
async fn unreachable_mirror_names_the_url() {
    // A port nobody listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let source = ArtifactSource::Mirror { url: format!("http://127.0.0.1:{port}/k8s") };
    let err = resolve(&source, Path::new("."), "1.31.2", "amd64").await.unwrap_err();
    let ArtifactError::Fetch { url, .. } = &err else { panic!("{err:?}") };
    assert!(url.starts_with(&format!("http://127.0.0.1:{port}/k8s/v1.31.2/bin/linux/amd64/")), "{url}");
}

/// An OCI archive as `ctr images export` or testbed/k8s/pack-image.py write it (the blobs
/// are not read by kos: only index.json).
fn oci_archive(name: Option<&str>) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, path, data).unwrap();
    };
    add("blobs/sha256/0123", &[0u8; 4096]);
    let annotations = name.map_or(String::new(), |n| format!(r#","annotations":{{"io.containerd.image.name":"{n}"}}"#));
    add("index.json", format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"sha256:feed","size":1{annotations}}}]}}"#).as_bytes());
    tar.into_inner().unwrap()
}

/// The layout testbed/k8s/build.sh writes: bin/, cni/, images/; the runtime comes along
/// when bin/containerd is there, and each image is known by its name and digest.
#[tokio::test]
async fn a_full_local_set_brings_runtime_cni_and_images() {
    // The built set's real programs and its pause image, linked into a folder of our own.
    let Some(set) = crate::test_support::artifact_set() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<String> = BINARIES.iter().chain(RUNTIME_BINARIES.iter()).map(|n| format!("bin/{n}")).collect();
    files.extend(CNI_PLUGINS.iter().map(|n| format!("cni/{n}")));
    files.push("images/pause.tar".into());
    let pairs: Vec<(&str, &str)> = files.iter().map(|f| (f.as_str(), f.as_str())).collect();
    let hashes = crate::test_support::link_from_set(&set, dir.path(), &pairs);
    let sums: String = files.iter().zip(&hashes).map(|(f, h)| format!("{h}  {f}\n")).collect();
    std::fs::write(dir.path().join(SHA256SUMS), &sums).unwrap();
    let got = resolve(&local(dir.path()), Path::new("."), "1.37.2", "amd64").await.unwrap();
    assert!(runtime_from_artifacts(&got));
    let find = |n: &str| got.iter().find(|a| a.name == n).unwrap();
    assert_eq!(find("runc").install_path, "/usr/local/bin/runc");
    assert_eq!(find("portmap").install_path, "/opt/cni/bin/portmap");
    assert_eq!(find("kubelet").kind, Kind::Kubernetes);
    let pause = find("pause.tar");
    let Kind::Image(image) = &pause.kind else { panic!("{pause:?}") };
    assert!(image.name.starts_with("registry.k8s.io/pause:3.") && image.origin == ImageOrigin::ArtifactSet, "{image:?}");
    assert!(image.digest.starts_with("sha256:") && image.digest.len() == 71, "{image:?}");
    let len = std::fs::metadata(dir.path().join("images/pause.tar")).unwrap().len();
    assert_eq!(pause.fetch, Fetch::Upload { path: dir.path().join("images/pause.tar"), len });

    // A runtime set missing a piece is named; an archive naming no image is refused.
    std::fs::write(dir.path().join(SHA256SUMS), sums.replace("  cni/portmap", "  cni/portmap-gone")).unwrap();
    let err = resolve(&local(dir.path()), Path::new("."), "1.37.2", "amd64").await.unwrap_err();
    assert!(err.to_string().contains("has no line for `cni/portmap`"), "{err}");
    let nameless = oci_archive(None);
    // The link goes first: writing through it would change the built set itself.
    std::fs::remove_file(dir.path().join("images/pause.tar")).unwrap();
    std::fs::write(dir.path().join("images/pause.tar"), &nameless).unwrap();
    let sums = sums
        .lines()
        .map(|l| if l.ends_with("images/pause.tar") { format!("{}  images/pause.tar", sha256_hex(&nameless)) } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join(SHA256SUMS), sums).unwrap();
    let err = resolve(&local(dir.path()), Path::new("."), "1.37.2", "amd64").await.unwrap_err();
    assert!(matches!(err, ArtifactError::BadImage { .. }) && err.to_string().contains("io.containerd.image.name"), "{err}");
}

/// The user's own images (`artifacts.extra_images`): any `*.tar` its SHA256SUMS lists, each
/// checked; a folder without images, a changed archive and two archives of one image are
/// refused with the file named.
#[test]
fn extra_image_folders_are_checked_and_must_not_collide() {
    let settings_dir = tempfile::tempdir().unwrap();
    let apps = settings_dir.path().join("apps");
    std::fs::create_dir_all(apps.join("more")).unwrap();
    let web = oci_archive(Some("example.org/web:1.0"));
    let db = oci_archive(Some("example.org/db:2.1"));
    std::fs::write(apps.join("web.tar"), &web).unwrap();
    std::fs::write(apps.join("more/db.tar"), &db).unwrap();
    let sums = format!("{}  web.tar\n{}  ./more/db.tar\n", sha256_hex(&web), sha256_hex(&db));
    std::fs::write(apps.join(SHA256SUMS), &sums).unwrap();

    // Relative to the settings' folder, like `artifacts.dir`.
    let got = resolve_extra_images(&[PathBuf::from("apps")], settings_dir.path()).unwrap();
    let names: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|a| match &a.kind {
            Kind::Image(i) if i.origin == ImageOrigin::Extra => (a.name.as_str(), i.name.as_str(), a.install_path.as_str()),
            other => panic!("not an image of artifacts.extra_images: {other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [("web.tar", "example.org/web:1.0", "/var/lib/kos/images/web.tar"), ("db.tar", "example.org/db:2.1", "/var/lib/kos/images/db.tar")]
    );
    check_unique_images(&got).unwrap();

    // The same folder twice: the same file names.
    let twice = resolve_extra_images(&[apps.clone(), apps.clone()], Path::new("/")).unwrap();
    let err = check_unique_images(&twice).unwrap_err();
    assert!(err.to_string().contains("are named `web.tar`"), "{err}");
    // Another archive of an image already carried.
    let mut other = got.clone();
    other[1].kind =
        Kind::Image(ImageRef { name: "example.org/web:1.0".into(), digest: "sha256:beef".into(), origin: ImageOrigin::ArtifactSet });
    let err = check_unique_images(&other).unwrap_err();
    assert!(err.to_string().contains("hold the image `example.org/web:1.0`"), "{err}");

    // A changed archive names its SHA256SUMS line.
    std::fs::write(apps.join("web.tar"), oci_archive(Some("example.org/web:1.1"))).unwrap();
    let err = resolve_extra_images(std::slice::from_ref(&apps), Path::new("/")).unwrap_err();
    assert!(matches!(err, ArtifactError::Mismatch(ref m) if m.line_no == 1), "{err}");

    // No SHA256SUMS, or one that lists no archive.
    let err = resolve_extra_images(&[settings_dir.path().join("nowhere")], Path::new("/")).unwrap_err();
    assert!(err.to_string().contains("a folder of `artifacts.extra_images` needs a SHA256SUMS"), "{err}");
    std::fs::write(apps.join(SHA256SUMS), format!("{}  notes.txt\n", sha256_hex(b"x"))).unwrap();
    let err = resolve_extra_images(&[apps], Path::new("/")).unwrap_err();
    assert!(matches!(err, ArtifactError::NoImages { .. }) && err.to_string().contains("lists no `*.tar` image archive"), "{err}");
}

/// A file is read again only when its stat changed: a forged entry is believed while the
/// stat matches, and replaced once the file is written; files gone are forgotten.
#[test]
fn the_hash_cache_reads_a_file_only_when_its_stat_changed() {
    let dir = tempfile::tempdir().unwrap();
    let cache_file = dir.path().join("cache/kos/sha256");
    let bin = dir.path().join("kubelet");
    std::fs::write(&bin, b"one").unwrap();
    let mut cache = HashCache::load(Some(cache_file.clone()));
    let (sha, len) = cache.hash(&bin).unwrap();
    assert_eq!((sha.as_str(), len), (crate::wanted::sha256_hex(b"one").as_str(), 3));
    cache.save();
    let text = std::fs::read_to_string(&cache_file).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&cache_file).unwrap().permissions().mode() & 0o777, 0o600);

    let forged = "f".repeat(64);
    std::fs::write(&cache_file, text.replace(&sha, &forged)).unwrap();
    assert_eq!(HashCache::load(Some(cache_file.clone())).hash(&bin).unwrap().0, forged, "not read again");

    std::fs::write(&bin, b"two").unwrap();
    let mut cache = HashCache::load(Some(cache_file.clone()));
    assert_eq!(cache.hash(&bin).unwrap().0, crate::wanted::sha256_hex(b"two"));
    cache.save();
    std::fs::remove_file(&bin).unwrap();
    let mut cache = HashCache::load(Some(cache_file.clone()));
    let other = dir.path().join("kube-proxy");
    std::fs::write(&other, b"x").unwrap();
    cache.hash(&other).unwrap();
    cache.save();
    let text = std::fs::read_to_string(&cache_file).unwrap();
    assert!(!text.contains("kubelet") && text.contains("kube-proxy"), "{text}");
    // No cache at all: every file is hashed, nothing written.
    let mut none = HashCache::load(None);
    assert_eq!(none.hash(&other).unwrap().0, crate::wanted::sha256_hex(b"x"));
    none.save();
}
