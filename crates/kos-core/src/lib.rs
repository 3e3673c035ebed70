//! kos's pure core.
//!
//! `settings` turns a settings file into validated [`settings::Settings`] (every problem
//! reported with file, line and column); `plan` turns settings plus what was observed in
//! the cloud into a [`plan::ClusterPlan`]. Nothing here talks to a network or writes a file,
//! so every decision can be unit-tested.

pub mod plan;
pub mod settings;
