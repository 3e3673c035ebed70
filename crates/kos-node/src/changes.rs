//! The difference between what a node wants and what it has, as a list of changes per
//! phase: the single source of what `kos up` does on a node and what `kos plan` shows.
//! Pure: [`diff`] takes the wants and the probe's view and does no I/O.

use crate::probe::NodeState;
use crate::wanted::{NodePhase, NodeWants, PhaseWants, WantedFile};

/// Why a file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileReason {
    New,
    Content,
    /// Same bytes, wrong mode or owner.
    Mode,
}

/// One change on one node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    InstallPackages {
        packages: Vec<String>,
    },
    SwapOff,
    WriteFile {
        path: String,
        mode: String,
        reason: FileReason,
    },
    /// systemd must re-read unit files.
    DaemonReload,
    /// Apply /etc/sysctl.d/90-kos.conf now.
    ApplySysctls,
    /// Load the modules of /etc/modules-load.d/kos.conf now.
    LoadModules,
    EnableUnit {
        unit: String,
    },
    /// Start a stopped unit, or restart a running one whose files changed.
    RestartUnit {
        unit: String,
        why: String,
    },
    /// Upload an image archive and import it into containerd (`k8s.io` namespace), pinned.
    ImportImage {
        image: String,
        why: String,
    },
    /// Pin an image that is there (imported by an older kos): the kubelet's image garbage
    /// collection never deletes a pinned image, and an air-gapped node cannot pull it again.
    PinImage {
        image: String,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::InstallPackages { packages } => write!(f, "install {}", packages.join(" ")),
            Change::SwapOff => f.write_str("turn swap off"),
            Change::WriteFile { path, mode, reason } => {
                let why = match reason {
                    FileReason::New => "new",
                    FileReason::Content => "changed",
                    FileReason::Mode => "mode/owner",
                };
                write!(f, "write {path} ({mode}, {why})")
            }
            Change::DaemonReload => f.write_str("systemctl daemon-reload"),
            Change::ApplySysctls => f.write_str("apply sysctls"),
            Change::LoadModules => f.write_str("load kernel modules"),
            Change::EnableUnit { unit } => write!(f, "enable {unit}"),
            Change::RestartUnit { unit, why } => write!(f, "restart {unit} ({why})"),
            Change::ImportImage { image, why } => write!(f, "import image {image} ({why})"),
            Change::PinImage { image } => write!(f, "pin image {image} (out of reach of the kubelet's image garbage collection)"),
        }
    }
}

/// The files of a phase that must be written, with why.
pub fn files_to_write<'a>(wants: &'a PhaseWants, has: &NodeState) -> Vec<(&'a WantedFile, FileReason)> {
    wants
        .files
        .iter()
        .filter_map(|w| match has.files.get(&w.path) {
            None => Some((w, FileReason::New)),
            Some(h) if h.sha256 != w.sha256 => Some((w, FileReason::Content)),
            Some(h) if h.mode != w.mode || h.owner != "root:root" => Some((w, FileReason::Mode)),
            Some(_) => None,
        })
        .collect()
}

/// The changes one phase makes on a node, in the order they are carried out.
pub fn diff_phase(phase: NodePhase, wants: &PhaseWants, has: &NodeState) -> Vec<Change> {
    let mut out = Vec::new();
    let missing: Vec<String> = wants.packages.iter().filter(|p| !has.installed.contains(p)).cloned().collect();
    if !missing.is_empty() {
        out.push(Change::InstallPackages { packages: missing });
    }
    if wants.swap_off && has.swaps > 0 {
        out.push(Change::SwapOff);
    }
    let writes = files_to_write(wants, has);
    // A file rewritten only for its mode does not restart anything.
    let changed: Vec<&str> = writes.iter().filter(|(_, r)| *r != FileReason::Mode).map(|(f, _)| f.path.as_str()).collect();
    for (f, reason) in &writes {
        out.push(Change::WriteFile { path: f.path.clone(), mode: format!("{:04o}", f.mode), reason: *reason });
    }
    let pending = |what: &str| has.pending.iter().any(|p| p == what);
    let units_changed = changed.iter().any(|p| p.starts_with("/etc/systemd/system/"));
    if units_changed || (pending("daemon-reload") && !wants.units.is_empty()) {
        out.push(Change::DaemonReload);
    }
    if phase == NodePhase::Runtime {
        if changed.contains(&kos_render::node::paths::SYSCTL) || pending("sysctl") {
            out.push(Change::ApplySysctls);
        }
        if changed.contains(&kos_render::node::paths::MODULES) || pending("modules") {
            out.push(Change::LoadModules);
        }
    }
    for unit in &wants.units {
        let state = has.unit(unit.name);
        if state.enabled != "enabled" {
            out.push(Change::EnableUnit { unit: unit.name.to_string() });
        }
        let touched: Vec<&str> = writes.iter().filter(|(f, r)| unit.restarts_for(&f.path, *r)).map(|(f, _)| f.path.as_str()).collect();
        if state.active != "active" {
            let why = match state.active.as_str() {
                "failed" => "it failed".to_string(),
                "" | "inactive" | "unknown" => "not running".to_string(),
                other => format!("it is {other}"),
            };
            out.push(Change::RestartUnit { unit: unit.name.to_string(), why });
        } else if let Some(first) = touched.first() {
            let more = if touched.len() > 1 { format!(" and {} more", touched.len() - 1) } else { String::new() };
            out.push(Change::RestartUnit { unit: unit.name.to_string(), why: format!("{first}{more} changed") });
        } else if pending(&format!("unit-{}", unit.name)) {
            out.push(Change::RestartUnit { unit: unit.name.to_string(), why: "left pending by an interrupted run".into() });
        }
    }
    for image in &wants.images {
        let why = match has.images.get(&image.name) {
            None => "missing",
            Some(digest) if digest != &image.digest => "differs",
            Some(_) if has.unpinned_images.contains(&image.name) => {
                out.push(Change::PinImage { image: image.name.clone() });
                continue;
            }
            Some(_) => continue,
        };
        out.push(Change::ImportImage { image: image.name.clone(), why: why.into() });
    }
    out
}

/// Every phase's changes for a node (only phases with changes).
pub fn diff(wants: &NodeWants, has: &NodeState, phases: &[NodePhase]) -> Vec<(NodePhase, Vec<Change>)> {
    wants
        .phases
        .iter()
        .filter(|(p, _)| phases.contains(p))
        .map(|(p, w)| (*p, diff_phase(*p, w, has)))
        .filter(|(_, c)| !c.is_empty())
        .collect()
}

/// The distributions kos provisions (apt). Others get a clear refusal.
pub fn check_supported(node: &str, has: &NodeState) -> Result<(), String> {
    let known = matches!(has.os_id.as_str(), "debian" | "ubuntu");
    if known && has.has_apt {
        return Ok(());
    }
    Err(format!(
        "{node} runs `{}` {}: kos provisions Debian and Ubuntu nodes (apt); use a Debian 12+ or Ubuntu 22.04+ image (cloud.image)",
        has.os_id, has.os_version
    ))
}

#[cfg(test)]
mod tests;
