//! One look at a node, in one SSH round trip: its distribution, architecture, which of
//! the wanted packages are installed, the SHA-256, mode and owner of every wanted file, the
//! state of kos's units, and whether swap is on. It changes nothing on the node but its own
//! cache of file hashes ([`HASH_CACHE`]), where kos has provisioned before.
//!
//! [`script`] builds the shell script from the node's wants; [`parse`] reads its output
//! back. Both are pure, so the format is tested without a node.

use crate::wanted::NodeWants;
use std::collections::BTreeMap;

/// A file as the node has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub sha256: String,
    pub mode: u32,
    /// `user:group`
    pub owner: String,
}

/// A systemd unit as the node has it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitState {
    /// `systemctl is-enabled` (`enabled`, `disabled`, `not-found`, ...).
    pub enabled: String,
    /// `systemctl is-active` (`active`, `inactive`, `failed`, ...).
    pub active: String,
}

/// What the probe saw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeState {
    /// `ID` of /etc/os-release (`debian`, `ubuntu`, ...).
    pub os_id: String,
    pub os_version: String,
    /// `uname -m`
    pub machine: String,
    pub installed: Vec<String>,
    /// Only the wanted paths that exist.
    pub files: BTreeMap<String, FileState>,
    pub units: BTreeMap<String, UnitState>,
    /// Active swap devices.
    pub swaps: u32,
    /// The apt/dpkg world is there (`apt-get` found).
    pub has_apt: bool,
    /// Images in containerd's `k8s.io` namespace: name → manifest digest (only when the
    /// wants name images and `ctr` answers).
    pub images: BTreeMap<String, String>,
    /// Those of [`NodeState::images`] without containerd's `io.cri-containerd.pinned` label.
    pub unpinned_images: std::collections::BTreeSet<String>,
    /// `stat -fc %T /sys/fs/cgroup`: `cgroup2fs` (v2), `tmpfs` (v1 or hybrid).
    pub cgroup_fs: String,
    /// `net.netfilter.nf_conntrack_max` exists and cannot be written here (read-only in a
    /// network namespace or a container); absent (module not loaded yet) is not fixed.
    pub conntrack_max_fixed: bool,
    /// The probe's root shell lacks CAP_SYS_RESOURCE.
    pub no_sys_resource: bool,
    /// The interface of the default route (`ip route show default`).
    pub interface: Option<String>,
    /// `/var/lib/etcd/member` exists: etcd has data here.
    pub etcd_data: bool,
    /// With data: the `--initial-cluster` and `--initial-cluster-state` its manifest holds.
    pub etcd_started_with: Option<kos_render::EtcdStartedWith>,
    /// `kubelet --version` of the installed kubelet (`/usr/local/bin/kubelet`).
    pub kubelet_version: Option<kos_core::settings::KubeVersion>,
    /// The tag of the image the kube-apiserver static pod manifest names.
    pub apiserver_version: Option<kos_core::settings::KubeVersion>,
    /// Actions an interrupted run left undone (markers in [`PENDING_DIR`]): `daemon-reload`,
    /// `sysctl`, `modules`, `unit-<name>`.
    pub pending: Vec<String>,
}

impl NodeState {
    /// What shapes the files this node gets.
    pub fn facts(&self) -> kos_render::NodeFacts {
        kos_render::NodeFacts {
            cgroup_v1: !self.cgroup_fs.is_empty() && self.cgroup_fs != "cgroup2fs",
            conntrack_max_fixed: self.conntrack_max_fixed,
            oom_score_restricted: self.no_sys_resource,
            interface: self.interface.clone(),
            etcd_data: self.etcd_data,
            etcd_started_with: self.etcd_started_with.clone().filter(|_| self.etcd_data),
            kubelet_version: self.kubelet_version,
            apiserver_version: self.apiserver_version,
        }
    }

    pub fn unit(&self, name: &str) -> UnitState {
        self.units.get(name).cloned().unwrap_or_default()
    }
}

/// Where the executor marks actions it still owes (a restart after a file changed), so
/// that a run killed between writing a file and restarting its unit is finished by the
/// next one instead of leaving the old configuration running.
pub const PENDING_DIR: &str = "/var/lib/kos/pending";

/// Shell: `$c` is crictl on containerd's socket (the runtime kos installs), and
/// `started NAME` prints when the running container named NAME started (seconds since
/// the epoch), or fails when none runs. Each static pod kos writes has one container,
/// named as the pod and as its manifest file.
pub const CRICTL: &str = "c='crictl --runtime-endpoint unix:///run/containerd/containerd.sock'\n\
     started() { id=$($c ps -q --name \"^$1\\$\" --state running 2>/dev/null | head -n 1); [ -n \"$id\" ] || return 1; \
     at=$($c inspect \"$id\" 2>/dev/null | sed -n 's/^ *\"startedAt\": \"\\([^\"]*\\)\".*/\\1/p' | head -n 1); \
     date -d \"$at\" +%s 2>/dev/null; }\n";

/// containerd's label that makes an image pinned for CRI (the kubelet's image garbage
/// collection skips pinned images; containerd pins its sandbox image the same way).
pub const PINNED: &str = "io.cri-containerd.pinned=pinned";

/// Quote for /bin/sh: single quotes, with embedded single quotes closed and escaped.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The probe script for a node's wants. Prints one record per line, fields separated
/// by a tab; it changes nothing.
pub fn script(wants: &NodeWants) -> String {
    script_with_cache(wants, HASH_CACHE)
}

/// [`script`] with its hash cache at `cache` (a test's own folder).
pub fn script_with_cache(wants: &NodeWants, cache: &str) -> String {
    let mut s = String::from(
        "set -u\n\
         . /etc/os-release 2>/dev/null; printf 'os\\t%s\\t%s\\n' \"${ID:-unknown}\" \"${VERSION_ID:-}\"\n\
         printf 'machine\\t%s\\n' \"$(uname -m)\"\n\
         command -v apt-get >/dev/null 2>&1 && printf 'apt\\n'\n\
         printf 'swaps\\t%s\\n' \"$(tail -n +2 /proc/swaps 2>/dev/null | wc -l)\"\n\
         printf 'cgroup\\t%s\\n' \"$(stat -fc %T /sys/fs/cgroup 2>/dev/null)\"\n\
         printf 'iface\\t%s\\n' \"$(ip -o route show default 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == \"dev\") { print $(i + 1); exit } }')\"\n\
         f=/proc/sys/net/netfilter/nf_conntrack_max\n\
         c=$(awk '/^CapEff/ { print $2 }' /proc/self/status); [ -n \"$c\" ] && [ $(( 0x$c >> 24 & 1 )) = 0 ] && printf 'caps\\tno-sys-resource\\n'\n\
         if [ -e $f ]; then case $(stat -c %a $f) in 6??) [ -w $f ] || printf 'conntrack\\tfixed\\n';; *) printf 'conntrack\\tfixed\\n';; esac; fi\n",
    );
    s.push_str(&etcd_section("/var/lib/etcd", "/etc/kubernetes/manifests/etcd.yaml"));
    s.push_str(&versions_section("/usr/local/bin/kubelet", "/etc/kubernetes/manifests/kube-apiserver.yaml"));
    if !wants.all_images().is_empty() {
        s.push_str("command -v ctr >/dev/null 2>&1 && ctr -n k8s.io images ls 2>/dev/null | awk 'NR > 1 { printf \"image\\t%s\\t%s\\t%s\\n\", $1, $3, $NF }'\n");
    }
    s.push_str(&format!("for m in {PENDING_DIR}/*; do [ -e \"$m\" ] && printf 'pending\\t%s\\n' \"${{m##*/}}\"; done\n"));
    let packages = wants.all_packages();
    if !packages.is_empty() {
        let list: Vec<String> = packages.iter().map(|p| sh_quote(p)).collect();
        s.push_str(&format!(
            "command -v dpkg-query >/dev/null 2>&1 && dpkg-query -W -f='pkg\\t${{Package}}\\t${{db:Status-Abbrev}}\\n' {} 2>/dev/null\n",
            list.join(" ")
        ));
    }
    let paths = wants.all_paths();
    if !paths.is_empty() {
        let list: Vec<String> = paths.iter().map(|p| sh_quote(p)).collect();
        s.push_str(&files_section(&list.join(" "), &sh_quote(cache)));
    }
    for unit in wants.all_units() {
        let q = sh_quote(unit);
        s.push_str(&format!(
            "printf 'unit\\t%s\\t%s\\t%s\\n' {q} \"$(systemctl is-enabled {q} 2>/dev/null || true)\" \"$(systemctl is-active {q} 2>/dev/null || true)\"\n"
        ));
    }
    s.push_str("exit 0\n");
    s
}

/// Whether etcd has data under `data`, and then the initial-cluster flags its manifest at
/// `manifest` started it with.
pub fn etcd_section(data: &str, manifest: &str) -> String {
    format!(
        "[ -d {data}/member ] && printf 'etcd\\tdata\\n' && \
         sed -n 's/^ *- --initial-cluster\\(-state\\)\\{{0,1\\}}=\\(.*\\)$/etcd\\tinitial\\1\\t\\2/p' {manifest} 2>/dev/null\n"
    )
}

/// The version of the kubelet at `kubelet` and of the API server the manifest at
/// `manifest` runs (its image's tag), each when there is one.
pub fn versions_section(kubelet: &str, manifest: &str) -> String {
    format!(
        "[ -x {kubelet} ] && printf 'version\\tkubelet\\t%s\\n' \"$({kubelet} --version 2>/dev/null | sed 's/^Kubernetes //')\"\n\
         sed -n 's/^ *image: .*\\/kube-apiserver:\\(v[0-9.]*\\) *$/version\\tapiserver\\t\\1/p' {manifest} 2>/dev/null\n"
    )
}

/// The probe's cache of file hashes on the node: `<stat key>\t<sha256>\t<path>` per line,
/// the key being size, inode, mtime and ctime (to the nanosecond), as git's index keys its
/// entries. A file whose stat matches its entry is not read again; any write changes its
/// ctime (kos replaces files by rename: a new inode too). Rewritten whole by every probe with
/// the wanted files only; kept only where kos has provisioned (`/var/lib/kos` exists).
pub const HASH_CACHE: &str = "/var/lib/kos/sha256.cache";

/// Every wanted file that exists, with its SHA-256, mode and owner, in a few processes: one
/// `stat` for all, `sha256sum` only for the files whose stat differs from the cache (on a
/// node whose files are unchanged, none: hashing ~250 MB of binaries per node was most of a
/// no-op `kos up`).
fn files_section(list: &str, cache: &str) -> String {
    format!(
        "tab=$(printf '\\t'); c={cache}; w=/dev/null; [ -d \"${{c%/*}}\" ] && w=\"$c.$$\"\n\
         stat --printf '%s:%i:%y:%z\\t%a\\t%U:%G\\t%n\\n' -- {list} 2>/dev/null | \\\n\
         awk -F '\\t' -v c=\"$c\" 'BEGIN {{ while ((getline l < c) > 0) {{ n = split(l, a, \"\\t\"); if (n == 3) {{ k[a[3]] = a[1]; h[a[3]] = a[2] }} }} }}\n\
           {{ print ((($4 in k) && k[$4] == $1) ? h[$4] : \"-\") \"\\t\" $1 \"\\t\" $2 \"\\t\" $3 \"\\t\" $4 }}' | \\\n\
         while IFS=\"$tab\" read -r h key m o f; do\n\
           [ \"$h\" = - ] && h=$(sha256sum < \"$f\" | cut -d' ' -f1)\n\
           printf 'file\\t%s\\t%s\\t%s\\t%s\\n' \"$f\" \"$h\" \"$m\" \"$o\"\n\
           printf '%s\\t%s\\t%s\\n' \"$key\" \"$h\" \"$f\" >&3\n\
         done 3>\"$w\"\n\
         [ \"$w\" = /dev/null ] || mv -f \"$w\" \"$c\"\n"
    )
}

/// Read the probe's output.
pub fn parse(out: &str) -> Result<NodeState, String> {
    let mut st = NodeState::default();
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["os", id, version] => {
                st.os_id = id.to_string();
                st.os_version = version.to_string();
            }
            ["machine", m] => st.machine = m.to_string(),
            ["apt"] => st.has_apt = true,
            ["cgroup", fs] => st.cgroup_fs = fs.to_string(),
            ["conntrack", "fixed"] => st.conntrack_max_fixed = true,
            ["etcd", "data"] => st.etcd_data = true,
            ["etcd", "initial", members] => st.etcd_started_with.get_or_insert_default().members = members.to_string(),
            ["etcd", "initial-state", state] => st.etcd_started_with.get_or_insert_default().state = state.to_string(),
            ["iface", name] => st.interface = Some(name.to_string()).filter(|n| !n.is_empty()),
            ["caps", "no-sys-resource"] => st.no_sys_resource = true,
            // Unreadable: no version, as on a node kos has not provisioned.
            ["version", "kubelet", v] => st.kubelet_version = v.trim().parse().ok(),
            ["version", "apiserver", v] => st.apiserver_version = v.trim().parse().ok(),
            ["image", name, digest, labels] => {
                st.images.insert(name.to_string(), digest.to_string());
                if !labels.split(',').any(|l| l == PINNED) {
                    st.unpinned_images.insert(name.to_string());
                }
            }
            ["pending", what] => st.pending.push(what.to_string()),
            ["swaps", n] => st.swaps = n.trim().parse().map_err(|_| format!("bad swap count in `{line}`"))?,
            // `ii ` = desired install, installed; anything else (rc, iU, ...) is not usable.
            ["pkg", name, status] => {
                if status.trim() == "ii" {
                    st.installed.push(name.to_string());
                }
            }
            ["file", path, sha, mode, owner] => {
                let mode = u32::from_str_radix(mode, 8).map_err(|_| format!("bad mode in `{line}`"))?;
                st.files.insert(path.to_string(), FileState { sha256: sha.to_string(), mode, owner: owner.to_string() });
            }
            ["unit", name, enabled, active] => {
                let pick = |s: &str| s.lines().last().unwrap_or("").trim().to_string();
                st.units.insert(name.to_string(), UnitState { enabled: pick(enabled), active: pick(active) });
            }
            [""] => {}
            _ => return Err(format!("unexpected probe output line `{line}`")),
        }
    }
    if st.os_id.is_empty() {
        return Err("the probe printed no `os` line (is /bin/sh there?)".into());
    }
    Ok(st)
}
