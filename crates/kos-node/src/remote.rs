//! The one thing kos needs from a node: run a shell script as root, feed it bytes on
//! stdin, get its exit status and output back. Implemented over SSH by
//! [`crate::ssh::SshNode`]; tests may implement it with a local shell.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// What a script reads on its standard input: parts written in order, each either a small
/// buffer or a file streamed from disk in chunks (a 100 MB binary is never held whole in
/// memory).
#[derive(Debug, Clone, Default)]
pub struct Stdin {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Bytes(Arc<Vec<u8>>),
    File { path: PathBuf, len: u64 },
}

impl Stdin {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes in all.
    pub fn len(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Bytes(b) => b.len() as u64,
                Part::File { len, .. } => *len,
            })
            .sum()
    }

    pub fn push_bytes(&mut self, bytes: impl Into<Arc<Vec<u8>>>) {
        let bytes = bytes.into();
        if !bytes.is_empty() {
            self.parts.push(Part::Bytes(bytes));
        }
    }

    /// A file of `len` bytes, read when the input is written; a file whose size changed
    /// in between is an error, not a silently short or long stream.
    pub fn push_file(&mut self, path: PathBuf, len: u64) {
        self.parts.push(Part::File { path, len });
    }

    /// Write every part to `w`, in order.
    pub async fn write_to<W: AsyncWrite + Unpin>(&self, w: &mut W) -> std::io::Result<()> {
        for part in &self.parts {
            match part {
                Part::Bytes(b) => w.write_all(b).await?,
                Part::File { path, len } => {
                    let file = tokio::fs::File::open(path).await?;
                    let copied = tokio::io::copy(&mut tokio::io::AsyncReadExt::take(file, *len), w).await?;
                    if copied != *len {
                        return Err(std::io::Error::other(format!(
                            "{} shrank to {copied} bytes while being sent ({len} expected)",
                            path.display()
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Everything in one buffer (for test doubles; the SSH transport streams).
    pub async fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.write_to(&mut v).await?;
        Ok(v)
    }
}

impl From<Vec<u8>> for Stdin {
    fn from(bytes: Vec<u8>) -> Stdin {
        let mut s = Stdin::default();
        s.push_bytes(bytes);
        s
    }
}

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
    fn run(&self, script: &str, stdin: Stdin) -> impl Future<Output = Result<Output, RemoteError>> + Send;
}
