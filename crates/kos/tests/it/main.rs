//! kos's one integration-test binary: a module per area, shared helpers in `support`.
//!
//! Tests that need the real test bed are gated by the environment variables the test-bed
//! wrappers set (see `support::testbed`); in CI (`CI` set) a missing test bed is a failure,
//! never a silent skip.

mod support;
mod testbed_nodes;
