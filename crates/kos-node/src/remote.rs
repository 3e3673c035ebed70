//! The one thing kos needs from a node: run a shell script as root, feed it bytes on
//! stdin, get its exit status and output back. Implemented over SSH by
//! [`crate::ssh::SshNode`]; tests may implement it with a local shell.

use std::future::Future;

/// What a script printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit status; `None` when the script was killed by a signal.
    pub status: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Reaching or using a node failed (not: a script exited non-zero; that is an [`Output`]).
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The node did not answer SSH within the wait.
    #[error("{node}: SSH did not answer within {secs} s ({last})")]
    Unreachable { node: String, secs: u64, last: String },
    /// The node's host key differs from the one recorded: a new server on a reused address, or
    /// someone in between.
    #[error(
        "{node}: its SSH host key has changed since kos first connected (recorded in {known_hosts}); if the server was rebuilt, remove the old key with `ssh-keygen -f {known_hosts} -R {alias}` and run again"
    )]
    HostKeyChanged { node: String, known_hosts: String, alias: String },
    /// Login was refused (wrong user or key).
    #[error("{node}: SSH login refused: {detail}; check ssh.user and ssh.private_key in the settings")]
    Denied { node: String, detail: String },
    /// `sudo` needs a password or is not allowed for the SSH user.
    #[error("{node}: `sudo -n` failed for the SSH user ({detail}); kos needs passwordless sudo, or ssh.user: root")]
    NoSudo { node: String, detail: String },
    /// This machine's side could not be prepared (the ssh_config, the key, the `ssh` program).
    #[error("{what}")]
    Local {
        what: String,
        #[source]
        source: Option<std::io::Error>,
    },
    /// Anything else on the way (connection dropped mid-command, ...).
    #[error("{node}: {detail}")]
    Transport { node: String, detail: String },
}

/// A node kos can run scripts on.
pub trait Remote: Send + Sync {
    /// The node's name in the settings (for messages).
    fn node(&self) -> &str;

    /// Run `script` with `/bin/sh -c` as root (through `sudo -n` when the login user is not
    /// root), with `stdin` as its standard input.
    fn run(&self, script: &str, stdin: Vec<u8>) -> impl Future<Output = Result<Output, RemoteError>> + Send;
}
