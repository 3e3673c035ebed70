//! The cluster plan: settings + what was observed in the cloud → every decision
//! kos makes (pod CIDRs, service IPs, certificates, files per node), as plain values.

pub mod certificates;
