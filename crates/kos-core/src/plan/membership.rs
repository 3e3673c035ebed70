//! The control plane's membership: which masters a change of `nodes` adds to or removes
//! from a running etcd, and what kos refuses to do to it.

use super::{Observed, PlanError};
use crate::settings::{Role, Settings};

/// Refuses a change of a running control plane's masters that kos cannot carry out: masters
/// added to one (their etcd would start as a cluster of its own), removed from one (their
/// etcd members would stay).
pub fn check(settings: &Settings, observed: &Observed) -> Result<(), PlanError> {
    // A master's server records how many masters it was made among: a run that made some
    // of a new control plane's masters and stopped is finished by the next, not refused.
    let masters = settings.masters().count() as u32;
    let running =
        |name: &str| observed.nodes.get(name).filter(|o| o.server_id.is_some() && o.role.as_deref() != Some(Role::Worker.as_str()));
    let (running_masters, added): (Vec<&str>, Vec<&str>) = settings.masters().map(|n| n.name.as_str()).partition(|n| running(n).is_some());
    let made_for_fewer = running_masters.iter().filter_map(|n| running(n)).any(|o| o.masters.is_none_or(|m| m < masters));
    if !added.is_empty() && made_for_fewer {
        return Err(PlanError::GrowControlPlane { added: added.join(", "), running: running_masters.join(", ") });
    }
    let removed: Vec<&str> = observed
        .nodes
        .iter()
        .filter(|(name, o)| {
            o.server_id.is_some() && o.role.as_deref() == Some(Role::Master.as_str()) && !settings.nodes.iter().any(|n| &n.name == *name)
        })
        .map(|(name, _)| name.as_str())
        .collect();
    if !removed.is_empty() {
        return Err(PlanError::ShrinkControlPlane { removed: removed.join(", ") });
    }
    Ok(())
}
