//! The operator's files: the admin kubeconfig (context `kos-<cluster>`), a break-glass
//! super-admin kubeconfig, the seed system's `certs/` (`ca.pem`, `cert.pem`, `key.pem`:
//! exactly the names `DOCKER_CERT_PATH` expects) and, with docker's TLS API, a
//! `<node>.env` per node so `source node1.env; docker ps` works.

use crate::kubeconfig::kubeconfig;
use crate::{Inputs, Material, RenderError, RenderedFile};
use kos_core::plan::CaId;

/// Docker's TLS port (IANA-registered for docker over TLS).
pub const DOCKER_TLS_PORT: u16 = 2376;

pub fn render_local(inputs: &Inputs<'_>, material: &dyn Material) -> Result<Vec<RenderedFile>, RenderError> {
    let plan = inputs.plan;
    let host = plan.external_api.ok_or_else(|| RenderError::AddressUnknown { what: "the API server".into() })?;
    let server = format!("https://{host}:{}", plan.api_port);
    let ca = material.ca_cert(CaId::Cluster)?;
    let context = format!("kos-{}", plan.cluster);
    let mut files = vec![
        RenderedFile::local(
            "admin.kubeconfig",
            0o600,
            kubeconfig(&context, &context, &server, &ca, &format!("{context}-admin"), &material.cert("admin")?, &material.key("admin")?)?,
        ),
        // system:masters bypasses RBAC and cannot be revoked: for emergencies and for
        // creating the binding that gives `admin` its rights. Never copied to a node.
        RenderedFile::local(
            "super-admin.kubeconfig",
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
    files.push(RenderedFile::local("certs/ca.pem", 0o644, ca));
    files.push(RenderedFile::local("certs/cert.pem", 0o644, material.cert(client)?));
    files.push(RenderedFile::local("certs/key.pem", 0o600, material.key(client)?));

    if docker_tls {
        let cert_path = inputs.local_dir.join("certs");
        for node in &plan.nodes {
            let ip = node.ssh_address().ok_or_else(|| RenderError::AddressUnknown { what: format!("node `{}`", node.name) })?;
            files.push(RenderedFile::local(
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
