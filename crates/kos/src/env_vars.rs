//! Every environment variable kos reads, in one place: clap's `env =` uses these, and
//! the README's table lists the same names.

/// Settings file used when no `-f` is given (then `./settings.yaml`).
pub const KOS_SETTINGS: &str = "KOS_SETTINGS";
/// Folder of kos's local state (PKI, observed cloud state); default `.kos` beside the
/// settings file. Each cluster gets `<dir>/<cluster>/`.
pub const KOS_STATE_DIR: &str = "KOS_STATE_DIR";
// KUBECONFIG: kubectl's kubeconfig search list; `kos kubeconfig --merge` and `kos up` merge
// the admin kubeconfig into its first file (else `~/.kube/config`). Read, never set; its
// constant lives with the code that reads it, `kos_run::kubeconfig::KUBECONFIG`.
/// Log filter (tracing's `EnvFilter` syntax, e.g. `kos_node=debug`); `-v` without it
/// logs every script run on a node and every SSH connection attempt.
pub const KOS_LOG: &str = "KOS_LOG";
