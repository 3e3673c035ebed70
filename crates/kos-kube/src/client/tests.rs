//! The real client against real TLS servers on loopback: a closed port, a TLS server that is
//! not Kubernetes (openssl s_server), a server certificate of another CA.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The example's admin kubeconfig and PKI folder, with the server moved to `server`.
fn admin_kubeconfig(pki_dir: &Path, server: &str) -> String {
    crate::loopback::with_server(&crate::loopback::kubeconfigs(pki_dir).0, server)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

#[test]
fn a_closed_port_gives_the_clear_error_within_the_bound() {
    let tmp = tempfile::tempdir().unwrap();
    // A port that was free a moment ago: nothing listens there.
    let port = crate::loopback::free_port();
    let kubeconfig = admin_kubeconfig(tmp.path(), &format!("https://127.0.0.1:{port}"));
    let wait = Duration::from_secs(3);
    let started = std::time::Instant::now();
    let Err(err) = runtime().block_on(wait_for_api(&kubeconfig, wait)) else { panic!("ready?") };
    let elapsed = started.elapsed();
    assert!(elapsed <= wait + Duration::from_secs(1), "waited {elapsed:?}");
    let message = err.to_string();
    assert!(message.starts_with(&format!("the API server at https://127.0.0.1:{port} was not ready within 3 s (last: ")), "{message}");
    assert!(message.contains("Connection refused"), "the cause is named: {message}");
    assert!(message.ends_with("the add-ons were not applied: run `kos up --only addons` once it answers"), "{message}");
}

/// A child process killed when dropped.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl`, or `None` (with a note) outside CI; in CI a missing tool fails.
fn openssl() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join("openssl")).find(|c| c.exists()));
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI is set but `openssl` is missing");
        eprintln!("skipped: `openssl` is not installed");
    }
    found
}

/// `openssl s_server -www` on 127.0.0.1 presenting `cert` (a stem in the PKI),
/// demanding a client certificate of the cluster CA; stderr (its log) to `log`.
fn s_server(openssl: &Path, pki: &Path, cert: &str, port: u16, log: &Path) -> Child {
    let mut server = Child(
        Command::new(openssl)
            .args(["s_server", "-www", "-Verify", "1", "-verify_return_error", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(pki.join(format!("{cert}.crt")))
            .arg("-key")
            .arg(pki.join(format!("{cert}.key")))
            .arg("-CAfile")
            .arg(pki.join("ca.crt"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
            .spawn()
            .unwrap(),
    );
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(server.0.try_wait().unwrap().is_none(), "openssl s_server exited");
        assert!(started.elapsed() < Duration::from_secs(20), "openssl s_server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// A real TLS server with the rendered API server certificate that demands a client
/// certificate of the cluster CA, but is not Kubernetes (`openssl s_server -www`
/// answers every GET with an HTML page): the client must connect over mutual TLS
/// without panicking (one rustls provider), get that page, and still not call the
/// server ready.
#[test]
fn a_tls_server_that_is_not_kubernetes_is_not_ready_and_the_client_speaks_mutual_tls() {
    let Some(openssl) = openssl() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let port = crate::loopback::free_port();
    // 127.0.0.1 is one of the API server certificate's SANs, so the client verifies it.
    let kubeconfig = admin_kubeconfig(&pki, &format!("https://127.0.0.1:{port}"));
    let log = tmp.path().join("s_server.log");
    let server = s_server(&openssl, &pki, "apiserver", port, &log);

    let wait = Duration::from_secs(3);
    let started = std::time::Instant::now();
    let Err(err) = runtime().block_on(wait_for_api(&kubeconfig, wait)) else { panic!("ready?") };
    assert!(started.elapsed() <= wait + Duration::from_secs(1), "waited {:?}", started.elapsed());
    let message = err.to_string();
    // The page came back: TCP, TLS with the cluster CA and the client certificate
    // all worked; only the answer was not the API server's.
    assert!(message.contains("GET /readyz answered `<HTML>"), "{message}");
    assert!(message.contains("instead of `ok`; is this a Kubernetes API server?"), "{message}");
    assert!(message.starts_with(&format!("the API server at https://127.0.0.1:{port} was not ready within 3 s")), "{message}");
    drop(server);
    // s_server logs the client certificate it verified: the admin's.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("depth=0 O = kos:cluster-admins, CN = kubernetes-admin\nverify return:1"), "{log}");
}

/// A server whose certificate the cluster CA did not sign (etcd's, from the etcd CA)
/// is refused, and the error says it is the certificate.
#[test]
fn a_server_certificate_of_another_ca_is_refused_and_named() {
    let Some(openssl) = openssl() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let port = crate::loopback::free_port();
    let kubeconfig = admin_kubeconfig(&pki, &format!("https://127.0.0.1:{port}"));
    let _server = s_server(&openssl, &pki, "etcd/server-master-1", port, &tmp.path().join("s_server.log"));
    let Err(err) = runtime().block_on(wait_for_api(&kubeconfig, Duration::from_secs(1))) else { panic!("ready?") };
    let message = err.to_string();
    assert!(message.contains("(last: invalid peer certificate: UnknownIssuer)"), "{message}");
}
