//! kos on the nodes: reach them over SSH, find out what each one has, and change only
//! what differs from what the cluster wants.
//!
//! - [`remote`]: the [`remote::Remote`] trait (run a script as root, with stdin) that every
//!   executor here is written against; [`ssh`] implements it with the system `ssh`.
//! - [`artifacts`]: where kubelet, kube-proxy and kubectl come from, verified by checksum.

pub mod artifacts;
pub mod changes;
pub mod execute;
pub mod probe;
pub mod provision;
pub mod remote;
pub mod ssh;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
pub mod wanted;
