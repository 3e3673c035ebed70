//! The operator's files: the admin kubeconfig (context `kos-<cluster>`), a break-glass
//! super-admin kubeconfig, the seed system's `certs/` (`ca.pem`, `cert.pem`, `key.pem`:
//! exactly the names `DOCKER_CERT_PATH` expects) and, with docker's TLS API, a
//! `<node>.env` per node so `source node1.env; docker ps` works.

use crate::kubeconfig::kubeconfig;
use crate::{Inputs, Kind, Material, RenderError, RenderedFile};
use kos_core::plan::CaId;

/// Docker's TLS port (IANA-registered for docker over TLS).
pub const DOCKER_TLS_PORT: u16 = 2376;

/// The operator's admin kubeconfig (group kos:cluster-admins), under `<state>/local/`.
pub const ADMIN_KUBECONFIG: &str = "admin.kubeconfig";
/// The super-admin kubeconfig (system:masters), under `<state>/local/`.
pub const SUPER_ADMIN_KUBECONFIG: &str = "super-admin.kubeconfig";

pub fn render_local(inputs: &Inputs<'_>, material: &dyn Material) -> Result<Vec<RenderedFile>, RenderError> {
    let plan = inputs.plan;
    let host = plan.external_api.ok_or_else(|| RenderError::AddressUnknown { what: "the API server".into() })?;
    let server = format!("https://{host}:{}", plan.api_port);
    let ca = material.ca_cert(CaId::Cluster)?;
    let context = format!("kos-{}", plan.cluster);
    let mut files = vec![
        RenderedFile::local(
            Kind::AdminKubeconfig,
            ADMIN_KUBECONFIG,
            0o600,
            kubeconfig(&context, &context, &server, &ca, &format!("{context}-admin"), &material.cert("admin")?, &material.key("admin")?)?,
        ),
        // system:masters bypasses RBAC and cannot be revoked: for emergencies and for
        // creating the binding that gives `admin` its rights. Never copied to a node.
        RenderedFile::local(
            Kind::SuperAdminKubeconfig,
            SUPER_ADMIN_KUBECONFIG,
            0o600,
            kubeconfig(
                &format!("{context}-super-admin"),
                &context,
                &server,
                &ca,
                &format!("{context}-super-admin"),
                &material.cert("super-admin")?,
                &material.key("super-admin")?,
            )?,
        ),
    ];

    let docker_tls = inputs.settings.runtime.docker_tls;
    // The seed's client pair: docker's client cert when docker's API is on, else the
    // admin's (what kubectl uses).
    let client = if docker_tls { "docker-client" } else { "admin" };
    files.push(RenderedFile::local(Kind::Operator, "certs/ca.pem", 0o644, ca));
    files.push(RenderedFile::local(Kind::Operator, "certs/cert.pem", 0o644, material.cert(client)?));
    files.push(RenderedFile::local(Kind::Operator, "certs/key.pem", 0o600, material.key(client)?));

    if docker_tls {
        let cert_path = inputs.local_dir.join("certs");
        for node in &plan.nodes {
            let ip = node.ssh_address().ok_or_else(|| RenderError::AddressUnknown { what: format!("node `{}`", node.name) })?;
            files.push(RenderedFile::local(
                Kind::Operator,
                &format!("{}.env", node.name),
                0o644,
                format!(
                    "# source {name}.env; docker ps   (docker's API on {name} over mutual TLS)\nexport DOCKER_HOST=tcp://{ip}:{DOCKER_TLS_PORT}\nexport DOCKER_TLS_VERIFY=1\nexport DOCKER_CERT_PATH={path}\n",
                    name = node.name,
                    path = cert_path.display()
                ),
            ));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use crate::Target;
    use crate::fixture::{render_example, snapshot_settings};

    #[test]
    fn snapshots_of_the_operators_files() {
        let r = render_example(|s| s);
        assert_eq!(
            r.paths(&Target::Local),
            [
                "addons/cluster-admins.yaml",
                "addons/coredns.yaml",
                "admin.kubeconfig",
                "certs/ca.pem",
                "certs/cert.pem",
                "certs/key.pem",
                "super-admin.kubeconfig"
            ]
        );
        snapshot_settings().bind(|| {
            insta::assert_snapshot!("admin.kubeconfig", r.local_file("admin.kubeconfig").contents);
            insta::assert_snapshot!("super-admin.kubeconfig", r.local_file("super-admin.kubeconfig").contents);
        });
        assert_eq!(r.local_file("admin.kubeconfig").mode, 0o600);
        assert_eq!(r.local_file("certs/key.pem").mode, 0o600);
    }

    #[test]
    fn docker_tls_gives_a_node_env_file_each_with_the_seeds_cert_names() {
        let r =
            render_example(|s| s.replace("  kind: containerd ", "  kind: docker ").replace("  # docker_tls: true ", "  docker_tls: true "));
        let env = &r.local_file("master-1.env").contents;
        insta::assert_snapshot!("master-1.env", env);
        assert!(env.contains("DOCKER_HOST=tcp://203.0.113.11:2376"), "floating IP when there is one");
        assert!(r.local_file("worker-2.env").contents.contains("DOCKER_HOST=tcp://192.168.50.13:2376"));
        let client = &r.local_file("certs/cert.pem").contents;
        let pki = kos_pki::Pki::open(r.pki_dir.path().join("pki"));
        assert_eq!(client, &pki.cert_pem("docker-client").unwrap(), "certs/cert.pem is docker's client certificate");
    }
}
