//! The control plane's membership: the order in which masters join etcd, how each one's
//! member starts, and what kos refuses to do to a running control plane.
//!
//! etcd grows one member at a time (a new member must start with the exact list of members
//! the cluster has when it is added), so kos gives every master a place in a joining order,
//! recorded on its server (`kos-etcd-order`) and kept for its life:
//! - the first master in that order makes a new cluster of itself;
//! - every later one joins the masters before it (added as a learner by the executor, then
//!   promoted once it caught up), whether the cluster is new or has run for a year.
//!
//! A master's start depends only on the masters before it, so adding masters never changes
//! the files of the running ones, and a run stopped half-way is finished by the next.

use super::{Observed, PlanError};
use crate::settings::{Role, Settings};
use std::collections::BTreeMap;

/// How a master's etcd member starts the first time (ignored by etcd once it has data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdStart {
    /// Its place in the order masters joined etcd, from 1.
    pub order: u32,
    /// The masters it starts with, in joining order, itself last: only itself for the first.
    pub initial: Vec<String>,
}

impl EtcdStart {
    /// It makes a new cluster (`--initial-cluster-state=new`), not joins one.
    pub fn is_first(&self) -> bool {
        self.initial.len() == 1
    }
}

/// Every master's [`EtcdStart`], by name. A running master keeps its recorded order; new
/// masters come after every master the cluster ever recorded, in the settings' order. A
/// master made by a kos that recorded no order comes first, in the settings' order.
pub fn etcd_starts(settings: &Settings, observed: &Observed) -> BTreeMap<String, EtcdStart> {
    let recorded = |name: &str| observed.nodes.get(name).filter(|o| o.server_id.is_some()).map(|o| o.etcd_order.unwrap_or(0));
    let mut next = observed.nodes.values().filter(|o| o.server_id.is_some()).filter_map(|o| o.etcd_order).max().unwrap_or(0);
    let mut ordered: Vec<(u32, usize, &str)> = settings
        .masters()
        .enumerate()
        .map(|(i, m)| {
            let order = recorded(&m.name).unwrap_or_else(|| {
                next += 1;
                next
            });
            (order, i, m.name.as_str())
        })
        .collect();
    ordered.sort();
    let mut starts = BTreeMap::new();
    for (k, &(order, _, name)) in ordered.iter().enumerate() {
        let initial = ordered[..=k].iter().map(|(_, _, n)| n.to_string()).collect();
        starts.insert(name.to_string(), EtcdStart { order: order.max(1), initial });
    }
    starts
}

/// The running masters the settings no longer name: their etcd members are removed (one at
/// a time, quorum kept) before their servers are deleted.
pub fn removed_masters<'a>(settings: &Settings, observed: &'a Observed) -> Vec<&'a str> {
    removed(settings, observed, Some(Role::Master))
}

/// The nodes, of any role, whose servers are running but that the settings no longer list:
/// each is drained before its server goes.
pub fn removed_nodes<'a>(settings: &Settings, observed: &'a Observed) -> Vec<&'a str> {
    removed(settings, observed, None)
}

fn removed<'a>(settings: &Settings, observed: &'a Observed, role: Option<Role>) -> Vec<&'a str> {
    observed
        .nodes
        .iter()
        .filter(|(name, o)| {
            o.server_id.is_some()
                && role.is_none_or(|r| o.role.as_deref() == Some(r.as_str()))
                && !settings.nodes.iter().any(|n| &n.name == *name)
        })
        .map(|(name, _)| name.as_str())
        .collect()
}

/// Refuses a change of a running control plane's masters that would lose etcd's data:
/// every running master replaced at once (the new ones would have no member to join).
pub fn check(settings: &Settings, observed: &Observed) -> Result<(), PlanError> {
    let removed = removed_masters(settings, observed);
    let running_kept = settings.masters().any(|m| observed.nodes.get(&m.name).is_some_and(|o| o.server_id.is_some()));
    if !removed.is_empty() && !running_kept {
        return Err(PlanError::ReplaceControlPlane { removed: removed.join(", ") });
    }
    Ok(())
}
