//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// Whether the test bed announced by `var` is up.
///
/// The wrappers under `testbed/` export `var=1` once their part of the test bed answers.
/// Outside CI a missing test bed skips the test with a note on stderr; in CI (`CI` set)
/// it fails the test, because CI promised to start it.
pub fn testbed(var: &str, how_to_start: &str) -> bool {
    if std::env::var(var).is_ok_and(|v| v == "1") {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but {var} is not: the test bed was not started (start it with `{how_to_start}`)"
    );
    eprintln!("skipped: this test needs the test bed; run it with `{how_to_start}`");
    false
}
