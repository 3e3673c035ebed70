//! What the unit tests share: the repository's example cluster.

#![allow(clippy::unwrap_used)]

use kos_core::plan::{ClusterPlan, Observed};
use kos_core::settings::Settings;
use std::path::{Path, PathBuf};

fn example_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)
}

/// The repository's example: settings, observed addresses and their plan.
pub fn example() -> (Settings, Observed, ClusterPlan) {
    let settings = Settings::load(&example_file("settings.yaml")).unwrap();
    let observed = Observed::parse(&std::fs::read_to_string(example_file("observed.yaml")).unwrap()).unwrap();
    let plan = kos_core::plan::plan(&settings, &observed).unwrap();
    (settings, observed, plan)
}
