//! kos's one integration-test binary: a module per area, shared helpers in `support`.
//!
//! Tests that need the real test bed are gated by the environment variables the test-bed
//! wrappers set (see `support::testbed`); in CI (`CI` set) a missing test bed or tool is a
//! failure, never a silent skip.

// A test binary: panicking on unexpected errors is how a test fails, and what a test prints
// is part of its output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod cloud_api_octavia;
mod cloud_auth;
mod cloud_client;
mod cloud_commands;
mod harness;
mod kubeconfig;
mod rendered_cluster;
mod support;
mod testbed_cloud;
mod testbed_ha;
mod testbed_nodes;
mod testbed_serves;
mod testbed_up;
mod testbed_upgrade;
