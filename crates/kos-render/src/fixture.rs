//! A rendered example cluster for the tests of every module: the repository's
//! `examples/settings.yaml` with `examples/observed.yaml`, and a real PKI generated in
//! a temporary folder (ECDSA keys are cheap).

use crate::{Inputs, RenderedFile, Target};
use kos_core::plan::{self, ClusterPlan, Observed};
use kos_core::settings::Settings;
use std::path::Path;

pub const SETTINGS: &str = include_str!("../../../examples/settings.yaml");
pub const OBSERVED: &str = include_str!("../../../examples/observed.yaml");

/// A cluster rendered from settings text (the example's, or a variant of it).
pub struct Rendered {
    pub plan: ClusterPlan,
    pub files: Vec<RenderedFile>,
    pub pki_dir: tempfile::TempDir,
}

impl Rendered {
    /// The file at `path` on `target`; panics with the list of paths when absent.
    pub fn file(&self, target: &Target, path: &str) -> &RenderedFile {
        self.files.iter().find(|f| &f.target == target && f.path == path).unwrap_or_else(|| {
            let paths: Vec<String> = self.files.iter().filter(|f| &f.target == target).map(|f| f.path.clone()).collect();
            panic!("no {path} for {target:?}; have: {paths:#?}")
        })
    }

    pub fn node_file(&self, node: &str, path: &str) -> &RenderedFile {
        self.file(&Target::Node(node.to_string()), path)
    }

    pub fn local_file(&self, path: &str) -> &RenderedFile {
        self.file(&Target::Local, path)
    }

    /// Paths of one target, sorted.
    pub fn paths(&self, target: &Target) -> Vec<String> {
        let mut v: Vec<String> = self.files.iter().filter(|f| &f.target == target).map(|f| f.path.clone()).collect();
        v.sort();
        v
    }
}

/// Render the example cluster (optionally with the settings text changed by `edit`).
pub fn render_example(edit: impl FnOnce(String) -> String) -> Rendered {
    render_example_in(edit, &crate::Environment::default())
}

/// [`render_example`] for what kos learned of the nodes and the artifact set.
pub fn render_example_in(edit: impl FnOnce(String) -> String, env: &crate::Environment) -> Rendered {
    render_observed(edit, OBSERVED, env)
}

/// [`render_example_in`] with another observed state (e.g. more masters and a VIP).
pub fn render_observed(edit: impl FnOnce(String) -> String, observed: &str, env: &crate::Environment) -> Rendered {
    let text = edit(SETTINGS.to_string());
    let settings = Settings::parse(Path::new("examples/settings.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let observed = Observed::parse(observed).unwrap_or_else(|e| panic!("{e}"));
    let plan = plan::plan(&settings, &observed).unwrap_or_else(|e| panic!("{e}"));
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = kos_pki::Pki::open(pki_dir.path().join("pki"));
    pki.ensure(&plan.certificates, kos_pki::OffsetDateTime::now_utc()).unwrap();
    let inputs = Inputs {
        settings: &settings,
        plan: &plan,
        tenant_cidr: observed.tenant_cidr,
        local_dir: Path::new("/home/operator/.kos/demo/local"),
        env,
    };
    let files = crate::render(&inputs, &pki).unwrap_or_else(|e| panic!("{e}"));
    Rendered { plan, files, pki_dir }
}

/// The example with three masters (its default endpoint is then `vip`).
pub fn three_masters(s: String) -> String {
    s.replace("  - name: worker-1\n", "  - name: master-2\n    role: master\n  - name: master-3\n    role: master\n  - name: worker-1\n")
}

/// What the cloud shows of [`three_masters`]: addresses and the API's VIP.
pub const OBSERVED_HA: &str = "tenant_cidr: 192.168.50.0/24\napi_vip: 192.168.50.100\napi_floating_ip: 203.0.113.100\nnodes:\n  master-1: {fixed_ip: 192.168.50.11, floating_ip: 203.0.113.11}\n  master-2: {fixed_ip: 192.168.50.21}\n  master-3: {fixed_ip: 192.168.50.31}\n  worker-1: {fixed_ip: 192.168.50.12}\n  worker-2: {fixed_ip: 192.168.50.13}\n";

/// insta settings that replace what changes on every run (PEM bodies, base64 key
/// material) with stable placeholders.
pub fn snapshot_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"-----BEGIN ([A-Z ]+)-----[\s\S]*?-----END [A-Z ]+-----", "[$1 PEM]");
    // Long base64 values come out as folded scalars (`key: >-` then the value).
    s.add_filter(r"(client-certificate-data|client-key-data|certificate-authority-data): (>-\n\s+)?[A-Za-z0-9+/=]+", "$1: [BASE64]");
    s.add_filter(r"secret: [A-Za-z0-9+/=]{40,}", "secret: [ENCRYPTION KEY]");
    // Of files holding fresh keys: a test of its own checks what it covers.
    s.add_filter(r"kos.io/files-sha256: [0-9a-f]{64}", "kos.io/files-sha256: [SHA-256 OF THE MOUNTED FILES]");
    s
}
