//! `kos --version`: the crate's version and the commit it was built from (when built from a
//! git checkout; `cargo install --path` is one), e.g. `0.1.0 (4eef6a6 2026-11-25)`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let full = match (git(&["rev-parse", "--short=7", "HEAD"]), git(&["log", "-1", "--format=%cs"])) {
        (Some(commit), Some(date)) => format!("{version} ({commit} {date})"),
        _ => version.to_owned(),
    };
    println!("cargo:rustc-env=KOS_VERSION={full}");
    // Rebuilt when HEAD moves (a commit, a checkout), not on every build.
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(refs) = git(&["rev-parse", "--git-path", "refs/heads"]) {
        println!("cargo:rerun-if-changed={refs}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
