//! Everything kos does through OpenStack APIs.
//!
//! `model` holds the few fields kos reads of each OpenStack resource (its own small serde
//! structs, not the SDK's generated types); `api` is the [`Cloud`] trait every cloud call
//! goes through, so the reconciliation logic is tested against [`fake::FakeCloud`] and the
//! real client (`openstack`, over `openstack_sdk`) is tested once against the test cloud.

pub mod api;
pub mod apply;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod model;
pub mod openstack;
pub mod ops;
pub mod reconcile;
pub mod survey;

pub use api::{Cloud, CloudError};
