//! Which share of `pod_cidr` each node routes.
//!
//! Order of precedence: a range already recorded on the node's instance (pods on a
//! running node cannot move), then a pin from the settings, then the lowest free range.
//! Ranges recorded on instances that are no longer in the settings stay reserved until
//! those instances are gone, so a new node never shares a range with one being deleted.

use super::PlanError;
use crate::plan::observed::Observed;
use crate::settings::Settings;
use ipnet::Ipv4Net;
use std::collections::BTreeMap;

/// Node name → pod CIDR, for every node in the settings.
pub fn assign(settings: &Settings, observed: &Observed) -> Result<BTreeMap<String, Ipv4Net>, PlanError> {
    let net = &settings.networking;
    let mut assigned: BTreeMap<String, Ipv4Net> = BTreeMap::new();
    // Ranges held by existing instances, in or out of the settings.
    let mut taken: Vec<(String, Ipv4Net)> = Vec::new();

    for (name, node) in &observed.nodes {
        let Some(recorded) = node.pod_cidr else { continue };
        let in_settings = settings.nodes.iter().any(|n| &n.name == name);
        if in_settings && (!net.pod_cidr.contains(&recorded) || recorded.prefix_len() != net.node_prefix) {
            return Err(PlanError::RecordedCidrOutsidePodCidr {
                node: name.clone(),
                recorded,
                pod_cidr: net.pod_cidr,
                node_prefix: net.node_prefix,
            });
        }
        if let Some((other, _)) = taken.iter().find(|(_, t)| overlaps(t, &recorded)) {
            return Err(PlanError::RecordedCidrsCollide { a: other.clone(), b: name.clone(), cidr: recorded });
        }
        taken.push((name.clone(), recorded));
        if in_settings {
            assigned.insert(name.clone(), recorded);
        }
    }

    for (name, pin) in &net.pod_cidrs {
        if let Some(recorded) = assigned.get(name) {
            if recorded != pin {
                return Err(PlanError::PinDiffersFromRecorded { node: name.clone(), pinned: *pin, recorded: *recorded });
            }
            continue;
        }
        if let Some((holder, _)) = taken.iter().find(|(_, t)| overlaps(t, pin)) {
            return Err(PlanError::PinTaken { node: name.clone(), pinned: *pin, holder: holder.clone() });
        }
        taken.push((name.clone(), *pin));
        assigned.insert(name.clone(), *pin);
    }

    let mut free = net.pod_cidr.subnets(net.node_prefix).map_err(|_| PlanError::NoRoom { node: String::new() })?;
    for node in &settings.nodes {
        if assigned.contains_key(&node.name) {
            continue;
        }
        let next = free.find(|candidate| !taken.iter().any(|(_, t)| overlaps(t, candidate)));
        let Some(cidr) = next else {
            return Err(PlanError::NoRoom { node: node.name.clone() });
        };
        taken.push((node.name.clone(), cidr));
        assigned.insert(node.name.clone(), cidr);
    }
    Ok(assigned)
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(b) || b.contains(a)
}
