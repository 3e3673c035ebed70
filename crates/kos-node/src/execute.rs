//! Carry out one phase's [`Change`]s on a node in one SSH round trip: a shell script
//! that installs packages, unpacks the changed files from a tar stream on stdin and
//! moves each into place atomically (owner root, its mode), then reloads, applies and
//! restarts what the changes name.
//!
//! Every post-write action is first recorded as a marker under [`PENDING_DIR`] and the
//! marker removed once the action succeeded, so a run killed in between is finished by
//! the next run (the probe reports the markers).

use crate::changes::Change;
use crate::probe::{CRICTL, PENDING_DIR, PINNED, sh_quote};
use crate::remote::{Remote, RemoteError, Stdin};
use crate::wanted::{Content, NodePhase, PhaseWants, WantedFile};

/// The phase failed on the node.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("{node}: {phase} failed (exit {status}): {detail}")]
    Script { node: String, phase: NodePhase, status: String, detail: String },
    #[error("{node}: cannot pack the files to upload: {detail}")]
    Pack { node: String, detail: String },
}

/// What the node printed as warnings (`kos-warning: ...` lines), e.g. a sysctl the
/// kernel does not offer.
pub type Warnings = Vec<String>;

/// A tar stream of numbered entries whose file contents are streamed from disk when sent
/// (POSIX ustar headers, built here; the bytes of a large file are never all in memory).
#[derive(Default)]
struct TarStream {
    stdin: Stdin,
    count: usize,
}

impl TarStream {
    /// Append one file's content; returns its entry name (`0`, `1`, ...).
    fn append(&mut self, content: &Content) -> Result<Option<String>, String> {
        let len = match content {
            Content::Bytes(b) => b.len() as u64,
            Content::File { len, .. } => *len,
            Content::Download { .. } => return Ok(None),
        };
        let name = self.count.to_string();
        let mut header = tar::Header::new_ustar();
        header.set_path(&name).map_err(|e| e.to_string())?;
        header.set_size(len);
        header.set_mode(0o600);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        self.stdin.push_bytes(header.as_bytes().to_vec());
        match content {
            Content::Bytes(b) => self.stdin.push_bytes(b.clone()),
            Content::File { path, len } => self.stdin.push_file(path.clone(), *len),
            Content::Download { .. } => {}
        }
        let pad = (512 - (len % 512) as usize) % 512;
        if pad > 0 {
            self.stdin.push_bytes(vec![0u8; pad]);
        }
        self.count += 1;
        Ok(Some(name))
    }

    fn finish(mut self) -> Stdin {
        if self.count > 0 {
            self.stdin.push_bytes(vec![0u8; 1024]);
        }
        self.stdin
    }
}

/// The line that puts an uploaded entry in place (`put`, or `putv` checking the SHA-256 of
/// a file streamed from disk), or fetches a download; `target` is a shell word (quoted).
fn place(tar: &mut TarStream, file: &WantedFile, target: &str) -> Result<String, String> {
    let mode = format!("{:04o}", file.mode);
    Ok(match (&file.content, tar.append(&file.content)?) {
        (Content::Download { url }, _) => format!("fetch {} {} {target} {mode}\n", sh_quote(url), sh_quote(&file.sha256)),
        (Content::File { .. }, Some(i)) => format!("putv {i} {target} {mode} {}\n", sh_quote(&file.sha256)),
        (_, Some(i)) => format!("put {i} {target} {mode}\n"),
        (_, None) => return Err(format!("nothing to upload for {}", file.path)),
    })
}

/// The script and the stdin (a tar of the files to upload) for one phase's changes. Long
/// because it is one match over every kind of change, each arm the few script lines it adds;
/// the script's order (files, then units) is easier to check in one place.
pub fn build(wants: &PhaseWants, changes: &[Change]) -> Result<(String, Stdin), String> {
    let mut s = String::from(
        "set -eu\n\
         umask 022\n\
         warn() { echo \"kos-warning: $*\"; }\n\
         t=$(mktemp -d /var/tmp/kos-run.XXXXXX)\n\
         trap 'rm -rf \"$t\"' EXIT\n",
    );
    s.push_str(&format!("mkdir -p {PENDING_DIR}\n"));
    // The proxy for apt and curl, in both spellings (apt reads only the lower case one).
    for line in &wants.env {
        if let Some((name, value)) = line.split_once('=') {
            let v = sh_quote(value);
            s.push_str(&format!("export {name}={v} {}={v}\n", name.to_ascii_lowercase()));
        }
    }
    let mut tar = TarStream::default();
    let mut puts = String::new();
    // Static pods' manifests go in after every other file (the certificates and configs a
    // new pod mounts are in place when the kubelet starts it).
    let mut manifests = String::new();
    let mut pods = Vec::new();
    let mut after = String::new();
    let mut imports = String::new();
    let mut markers = Vec::new();
    for change in changes {
        match change {
            Change::InstallPackages { packages } => {
                let list: Vec<String> = packages.iter().map(|p| sh_quote(p)).collect();
                // --force-confold: a config kos already wrote is kept if the package ships one too.
                s.push_str(&format!(
                    "export DEBIAN_FRONTEND=noninteractive\n\
                     apt-get -q -o DPkg::Lock::Timeout=300 update </dev/null >\"$t/apt.log\" 2>&1 || {{ tail -5 \"$t/apt.log\" >&2; exit 1; }}\n\
                     apt-get -q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install --no-install-recommends {} </dev/null >>\"$t/apt.log\" 2>&1 || {{ tail -15 \"$t/apt.log\" >&2; exit 1; }}\n",
                    list.join(" ")
                ));
            }
            Change::SwapOff => {
                s.push_str("swapoff -a\nsed -i.kos-bak -E 's@^([^#].*[[:space:]]swap[[:space:]].*)$@# \\1  # swap off: kos (the kubelet needs it)@' /etc/fstab\n");
            }
            Change::WriteFile { path, .. } => {
                let Some(file) = wants.files.iter().find(|f| &f.path == path) else {
                    return Err(format!("no wanted file {path}"));
                };
                match static_pod(path) {
                    Some(pod) => {
                        pods.push(pod);
                        manifests.push_str(&place(&mut tar, file, &sh_quote(path))?);
                    }
                    None => puts.push_str(&place(&mut tar, file, &sh_quote(path))?),
                }
            }
            Change::ImportImage { image, .. } => {
                let Some(wanted) = wants.images.iter().find(|i| &i.name == image) else {
                    return Err(format!("no wanted image {image}"));
                };
                let archive = format!("$t/image-{}.tar", imports.lines().count());
                puts.push_str(&place(&mut tar, &wanted.archive, &format!("\"{archive}\""))?);
                imports.push_str(&format!("import \"{archive}\" {}\n", sh_quote(image)));
            }
            Change::PinImage { image } => imports.push_str(&format!("pin {}\n", sh_quote(image))),
            Change::DaemonReload => {
                markers.push("daemon-reload".to_string());
                after.push_str(&format!("systemctl daemon-reload\nrm -f {PENDING_DIR}/daemon-reload\n"));
            }
            Change::ApplySysctls => {
                markers.push("sysctl".to_string());
                // A key the kernel does not offer (bridge-nf-call-* before br_netfilter is
                // loaded) is a warning: pod-network.sh sets ip_forward itself at every boot.
                after.push_str(&format!(
                    "sysctl -q -p {} 2>\"$t/sysctl.err\" || warn \"sysctl: $(tr '\\n' ' ' <\"$t/sysctl.err\")\"\nrm -f {PENDING_DIR}/sysctl\n",
                    kos_render::node::paths::SYSCTL
                ));
            }
            Change::LoadModules => {
                markers.push("modules".to_string());
                after.push_str(&format!(
                    "modprobe -a overlay br_netfilter 2>\"$t/modprobe.err\" || warn \"modprobe: $(tr '\\n' ' ' <\"$t/modprobe.err\")\"\nrm -f {PENDING_DIR}/modules\n"
                ));
            }
            Change::EnableUnit { unit } => {
                after.push_str(&format!("systemctl enable -q {} 2>&1\n", sh_quote(unit)));
            }
            Change::RestartUnit { unit, .. } => {
                let marker = format!("unit-{unit}");
                let q = sh_quote(unit);
                markers.push(marker.clone());
                after.push_str(&format!(
                    "systemctl reset-failed {q} 2>/dev/null || true\nsystemctl restart {q} || {{ systemctl status --no-pager -n 10 {q} >&2 || true; exit 1; }}\nrm -f {PENDING_DIR}/{marker}\n"
                ));
            }
        }
    }
    // Markers first: from here until each action has run, an interrupted run leaves a trace.
    for m in &markers {
        s.push_str(&format!("touch {PENDING_DIR}/{m}\n"));
    }
    let has_entries = tar.count > 0;
    if has_entries || !puts.is_empty() || !manifests.is_empty() {
        s.push_str(
            "d=\"$t/files\"; mkdir -m 0700 \"$d\"\n\
             put() { mkdir -p \"$(dirname \"$2\")\"; chown root:root \"$d/$1\"; chmod \"$3\" \"$d/$1\"; mv -f \"$d/$1\" \"$2.kos-new\"; mv -f \"$2.kos-new\" \"$2\"; }\n\
             putv() { echo \"$4  $d/$1\" | sha256sum -c --quiet >/dev/null 2>&1 || { echo \"$2: the uploaded file's SHA-256 is not $4 (changed on this machine during the upload?)\" >&2; exit 1; }; put \"$1\" \"$2\" \"$3\"; }\n\
             fetch() {\n  mkdir -p \"$(dirname \"$3\")\"\n  curl -fsSL --retry 3 --connect-timeout 20 -o \"$3.kos-new\" \"$1\" || { rm -f \"$3.kos-new\"; echo \"download of $1 failed\" >&2; exit 1; }\n  echo \"$2  $3.kos-new\" | sha256sum -c --quiet >/dev/null 2>&1 || { rm -f \"$3.kos-new\"; echo \"$1: SHA-256 differs from the published checksum $2\" >&2; exit 1; }\n  chown root:root \"$3.kos-new\"; chmod \"$4\" \"$3.kos-new\"; mv -f \"$3.kos-new\" \"$3\"\n}\n",
        );
        if has_entries {
            // -m: each file is as new as its writing (the tar's entries carry no time), which
            // is what the check that a static pod was started again since compares with.
            s.push_str("tar -x -m -o -f - -C \"$d\"\n");
        }
        s.push_str(&puts);
    }
    s.push_str(&replace_static_pods(&manifests, &pods, same_kubelet_restarts(wants, changes)));
    s.push_str(&after);
    if !imports.is_empty() {
        // After the restarts: containerd must be running. The image is unpacked for the
        // kubelet; `images ls` then lists its manifest digest, which the probe compares.
        // Pinned: the kubelet's image garbage collection (at 85 % disk use by default)
        // never deletes a pinned image, and a node without a registry could not pull it back.
        s.push_str(&format!(
            "pin() {{ ctr -n k8s.io images label \"$1\" {PINNED} >/dev/null || {{ echo \"pinning the image $1 failed\" >&2; exit 1; }}; }}\n\
             import() {{ ctr -n k8s.io images import \"$1\" >\"$t/ctr.log\" 2>&1 || {{ echo \"importing the image $2 failed:\" >&2; tail -5 \"$t/ctr.log\" >&2; exit 1; }}; rm -f \"$1\"; pin \"$2\"; }}\n",
        ));
        s.push_str(&imports);
    }
    Ok((s, tar.finish()))
}

/// The pod a file of the kubelet's static-pod folder defines (its name is the file's).
fn static_pod(path: &str) -> Option<&str> {
    path.strip_prefix(kos_render::control_plane::MANIFESTS)?.strip_prefix('/')?.strip_suffix(".yaml")
}

/// Whether the kubelet restarts with the binary it runs (a changed config or certificate).
/// A new kubelet (an upgrade) is restarted at once instead: it starts every static pod
/// again anyway (its container hashes differ), so waiting for the old one to replace them
/// would restart each twice, the second time after `kos up` saw the master serve again.
fn same_kubelet_restarts(wants: &PhaseWants, changes: &[Change]) -> bool {
    let restarts = changes.iter().any(|c| matches!(c, Change::RestartUnit { unit, .. } if unit == "kubelet"));
    let binary = |path: &str| wants.files.iter().any(|f| f.path == path && !matches!(f.content, Content::Bytes(_)));
    let unit = wants.units.iter().find(|u| u.name == "kubelet");
    let new_binary =
        changes.iter().any(|c| matches!(c, Change::WriteFile { path, .. } if binary(path) && unit.is_some_and(|u| u.restarts_on(path))));
    restarts && !new_binary
}

/// How long the script waits for the kubelet to start a replaced static pod again before it
/// restarts the kubelet anyway (with a warning).
const REPLACE_WAIT_SECS: u32 = 120;

/// The lines that write the static pods' manifests (`puts`, for `pods`). When the same
/// kubelet is restarted after them, they first wait until the running kubelet has started each pod
/// that ran before again: a kubelet restarted while it replaces a pod loses track of the old
/// one still stopping and starts the new one beside it. An API server then fails to bind
/// its port, runs again a moment later, and answers before it is ready, while the old one
/// never got its graceful stop (`--shutdown-delay-duration`), during which the API's VIP
/// and balancers move away from it.
fn replace_static_pods(puts: &str, pods: &[&str], same_kubelet_restarts: bool) -> String {
    if puts.is_empty() || !same_kubelet_restarts {
        return puts.to_string();
    }
    let names = pods.join(" ");
    format!(
        "{CRICTL}\
         replaced=; if systemctl is-active -q kubelet; then for m in {names}; do if started \"$m\" >/dev/null; then replaced=\"$replaced $m\"; fi; done; fi\n\
         since=$(date +%s)\n\
         {puts}\
         for m in $replaced; do i=0\n\
           until [ \"$(started \"$m\" || echo 0)\" -ge \"$since\" ]; do\n\
             i=$((i + 1)); [ $i -le {REPLACE_WAIT_SECS} ] || {{ warn \"$m: the kubelet did not start it again within {REPLACE_WAIT_SECS} s\"; break; }}; sleep 1\n\
           done\n\
         done\n"
    )
}

/// Run one phase's changes on a node; returns the warnings it printed.
pub async fn execute<R: Remote>(remote: &R, phase: NodePhase, wants: &PhaseWants, changes: &[Change]) -> Result<Warnings, ExecuteError> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let node = remote.node().to_string();
    let (script, stdin) = build(wants, changes).map_err(|detail| ExecuteError::Pack { node: node.clone(), detail })?;
    let out = remote.run(&script, stdin).await?;
    if !out.success() {
        let err = out.stderr_text();
        let tail: Vec<&str> = err.lines().rev().take(12).collect();
        let detail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        let status = out.status.map_or("signal".to_string(), |s| s.to_string());
        return Err(ExecuteError::Script { node, phase, status, detail });
    }
    Ok(out.stdout_text().lines().filter_map(|l| l.strip_prefix("kos-warning: ")).map(readable).collect())
}

/// The kernel settings the kubelet checks with `protectKernelDefaults` (kos-render's
/// 90-kos.conf sets them).
const KUBELET_CHECKED: [&str; 6] = [
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
];

/// A node's warning as one readable line: sysctl's own messages (one per refused key, in
/// several wordings) become the keys, why, and what it means for the cluster.
fn readable(warning: &str) -> String {
    let Some(errors) = warning.strip_prefix("sysctl: ") else { return warning.to_string() };
    let mut keys: Vec<String> = Vec::new();
    let mut reasons: Vec<&str> = Vec::new();
    // `sysctl: permission denied on key "kernel.panic"`, `... 'kernel.panic'`,
    // `sysctl: cannot stat /proc/sys/net/bridge/bridge-nf-call-iptables: No such file or directory`,
    // `sysctl: setting key "vm.panic_on_oom": Read-only file system`.
    for part in errors.split("sysctl: ").map(str::trim).filter(|p| !p.is_empty()) {
        let quoted = part.split(['"', '\'']).nth(1).filter(|k| k.contains('.'));
        let path = part.split_whitespace().find_map(|w| w.strip_prefix("/proc/sys/")).map(|p| p.trim_end_matches(':').replace('/', "."));
        if let Some(key) = quoted.map(str::to_string).or(path) {
            keys.push(key);
        }
        let reason = if part.contains("permission denied") || part.contains("Permission denied") {
            "not permitted"
        } else if part.contains("Read-only") {
            "read-only"
        } else if part.contains("No such file") || part.contains("cannot stat") {
            "not offered by this kernel"
        } else {
            "refused"
        };
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    if keys.is_empty() {
        return warning.to_string();
    }
    let mut meaning: Vec<&str> = Vec::new();
    if keys.iter().any(|k| KUBELET_CHECKED.contains(&k.as_str())) {
        meaning.push("the kubelet (protectKernelDefaults) will not start unless the node already has kos's values for those it checks");
    }
    if keys.iter().any(|k| k.starts_with("net.bridge.")) {
        meaning.push("without br_netfilter's hooks, traffic between pods on one node may bypass kube-proxy's Service rules");
    }
    if keys.iter().any(|k| k == "net.ipv4.ip_forward") {
        meaning.push("kos's pod network unit turns ip_forward on at every boot itself");
    }
    if meaning.is_empty() {
        meaning.push("they keep the node's current values");
    }
    format!("sysctl: the kernel did not take {} ({}): {}", keys.join(", "), reasons.join(", "), meaning.join("; "))
}

#[cfg(test)]
mod readable_tests {
    use super::readable;

    #[test]
    fn sysctl_refusals_become_one_line_with_the_keys_and_what_they_mean() {
        // What `warn "sysctl: $(tr '\n' ' ' <sysctl.err)"` sends: sysctl's lines joined.
        let raw = "sysctl: sysctl: permission denied on key \"kernel.panic\" sysctl: permission denied on key 'vm.overcommit_memory' \
                   sysctl: cannot stat /proc/sys/net/bridge/bridge-nf-call-iptables: No such file or directory ";
        assert_eq!(
            readable(raw),
            "sysctl: the kernel did not take kernel.panic, vm.overcommit_memory, net.bridge.bridge-nf-call-iptables \
             (not permitted, not offered by this kernel): the kubelet (protectKernelDefaults) will not start unless the node \
             already has kos's values for those it checks; without br_netfilter's hooks, traffic between pods on one node may \
             bypass kube-proxy's Service rules"
        );
        assert_eq!(
            readable("sysctl: sysctl: setting key \"net.ipv4.ip_forward\": Read-only file system"),
            "sysctl: the kernel did not take net.ipv4.ip_forward (read-only): kos's pod network unit turns ip_forward on at every boot itself"
        );
        // Anything else is left as the node said it.
        assert_eq!(readable("modprobe: FATAL: Module br_netfilter not found"), "modprobe: FATAL: Module br_netfilter not found");
        assert_eq!(readable("sysctl: something new"), "sysctl: something new");
    }
}
