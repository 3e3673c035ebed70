//! Every environment variable kos reads, in one place: clap's `env =` and the README
//! both come from here.

/// Settings file used when no `-f` is given (then `./settings.yaml`).
pub const KOS_SETTINGS: &str = "KOS_SETTINGS";
/// Folder of kos's local state (PKI, observed cloud state); default `.kos` beside the
/// settings file. Each cluster gets `<dir>/<cluster>/`.
pub const KOS_STATE_DIR: &str = "KOS_STATE_DIR";

/// (name, meaning) of every variable, for `kos --help` and the docs.
pub const ALL: &[(&str, &str)] = &[
    (KOS_SETTINGS, "settings file when no -f is given (default ./settings.yaml)"),
    (KOS_STATE_DIR, "local state folder (default .kos beside the settings file)"),
];
