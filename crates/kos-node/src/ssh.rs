//! Reaching nodes over SSH with the system `ssh`, so agents, `~/.ssh/config`, jump hosts
//! and known_hosts behave exactly as they do for the user's own `ssh`.
//!
//! kos writes one ssh_config per cluster ([`render_ssh_config`], a pure function, and
//! [`SshConfig::write`]) into `<state>/ssh/` next to the cluster's own known_hosts file, and
//! opens one ControlMaster connection per node ([`SshNode::connect`], through the `openssh`
//! crate's native multiplexing). Every script then runs over that one connection
//! ([`SshNode`] implements [`Remote`]). The same file lets a user reach a node by hand:
//! `ssh -F <state>/ssh/config <cluster>-<node>`.
//!
//! Host keys are recorded under the server's id (`HostKeyAlias`) when it is known, so a
//! rebuilt server that gets an old address back starts a fresh entry instead of tripping
//! over (or, worse, being trusted with) the previous server's key.

use crate::remote::{Output, Remote, RemoteError, Stdin};
use kos_core::settings::Settings;
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Seconds ssh waits for the TCP connection and the server's greeting.
const CONNECT_TIMEOUT_SECS: u64 = 10;
/// A silent connection is probed every this many seconds and dropped after
/// [`SERVER_ALIVE_COUNT_MAX`] probes go unanswered (a dead node is noticed within a minute).
const SERVER_ALIVE_INTERVAL_SECS: u64 = 15;
const SERVER_ALIVE_COUNT_MAX: u32 = 4;

/// How long [`SshNode::connect`] keeps retrying a refused login: on a fresh server sshd may
/// answer a few seconds before cloud-init has written the authorized key. Longer than that,
/// the key or user is wrong and waiting would only hide it.
/// Seconds an idle SSH master stays up (see `connect`).
const MASTER_IDLE_EXIT: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(900) {
    Some(n) => n,
    None => std::num::NonZeroUsize::MIN,
};

pub const DENIED_GRACE: Duration = Duration::from_secs(15);

/// The user's own ssh configuration, read after kos's (see [`render_ssh_config`]).
pub const USER_SSH_CONFIG: &str = "~/.ssh/config";

/// Linux takes at most 128 KiB in one argument, and the remote login shell receives the
/// whole command line as one (`$SHELL -c '<command>'`); large content goes on stdin.
const MAX_SCRIPT_BYTES: usize = 120 * 1024;

/// One node as ssh sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The node's name in the settings (for messages).
    pub node: String,
    /// The `Host` name in the generated ssh_config: `<cluster>-<node>`.
    pub alias: String,
    /// Where to connect: an IP address or a DNS name.
    pub address: String,
    /// The name its host key is recorded under: the server's id when known.
    pub host_key_alias: Option<String>,
}

impl SshTarget {
    /// The target for `node` of `cluster` at `address`; `server_id` is the cloud's id of
    /// the server, when known (its host key is then recorded under it).
    pub fn new(cluster: &str, node: &str, address: &str, server_id: Option<&str>) -> SshTarget {
        SshTarget {
            node: node.to_string(),
            alias: format!("{cluster}-{node}"),
            address: address.to_string(),
            host_key_alias: server_id.map(str::to_string),
        }
    }

    /// The name ssh records this target's host key under in known_hosts (what
    /// `ssh-keygen -R` takes).
    pub fn known_hosts_name(&self, port: u16) -> String {
        match (&self.host_key_alias, port) {
            (Some(alias), _) => alias.clone(),
            (None, 22) => self.address.clone(),
            (None, port) => format!("[{}]:{port}", self.address),
        }
    }
}

/// The `Host` name of the cluster's bastion. A dot cannot occur in a node name (a DNS
/// label), so it never clashes with a node's alias.
pub fn bastion_alias(cluster: &str) -> String {
    format!("{cluster}.bastion")
}

/// `ssh.private_key` as a path: `~/` is the user's home (`home`), a relative path is relative
/// to the settings file's folder.
pub fn private_key_path(settings: &Settings, home: Option<&Path>) -> PathBuf {
    let key = &settings.ssh.private_key;
    match (key.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ if key.is_absolute() || key.starts_with("~") => key.clone(),
        _ => settings.base_dir().join(key),
    }
}

/// The files an ssh_config names.
#[derive(Debug, Clone, Copy)]
pub struct ConfigPaths<'a> {
    /// The ssh_config itself: the hop through the bastion reads it again, and logs next to it.
    pub file: &'a Path,
    /// The private key.
    pub identity: &'a Path,
    pub known_hosts: &'a Path,
    /// The user's own config, included last ([`USER_SSH_CONFIG`]); `None` leaves it out.
    pub user_config: Option<&'a Path>,
}

/// Where the hop through the bastion to `alias` logs its errors (see [`render_ssh_config`]).
pub fn jump_log(config_file: &Path, alias: &str) -> PathBuf {
    config_file.with_file_name(format!("{alias}.jump.log"))
}

/// The cluster's ssh_config: one `Host` block per target (and one for the bastion, which
/// the nodes are reached through), then the user's own config.
///
/// The hop through the bastion is the `ProxyCommand` that `ProxyJump` stands for (`ssh -F
/// <this file> -W [%h]:%p <bastion>`), written out to add `-E <log>`: otherwise the hop's
/// errors go nowhere (ssh gives a ProxyCommand its own stderr, which is /dev/null under a
/// ControlMaster) and a refused bastion would look like a slow node.
///
/// ssh keeps the first value it obtains for each option, reading the file top to bottom.
/// Our blocks come first, so what kos relies on (address, user, key, known_hosts, batch
/// mode) cannot be overridden; `user_config` is included last, under `Match all`, so the
/// user's file can still add what kos leaves open (an agent, ciphers, a corporate
/// ProxyCommand for hosts kos does not name). `ssh -F` would otherwise skip it entirely.
///
/// Paths must be absolute, valid UTF-8 and free of line breaks ([`SshConfig::write`] checks).
pub fn render_ssh_config(settings: &Settings, paths: &ConfigPaths<'_>, targets: &[SshTarget]) -> String {
    let ConfigPaths { file, identity, known_hosts, user_config } = *paths;
    let cluster = &settings.cluster.name;
    let ssh = &settings.ssh;
    let mut out = String::new();
    let _ = writeln!(out, "# ssh_config of cluster {cluster}, written by kos on every run: do not edit.");
    let _ = writeln!(out, "# Reach a node with: ssh -F <this file> {cluster}-<node>");
    let common = |out: &mut String| {
        let _ = writeln!(out, "  IdentityFile {}", path_value(identity));
        out.push_str("  IdentitiesOnly yes\n");
        let _ = writeln!(out, "  UserKnownHostsFile {}", path_value(known_hosts));
        out.push_str("  StrictHostKeyChecking accept-new\n");
        // Readable entries, so `ssh-keygen -R <name>` and a reader of the file agree.
        out.push_str("  HashKnownHosts no\n");
        // Addresses are reused by the cloud; the key is checked under the host's name only.
        out.push_str("  CheckHostIP no\n");
        out.push_str("  BatchMode yes\n");
        out.push_str("  PasswordAuthentication no\n");
        out.push_str("  KbdInteractiveAuthentication no\n");
        let _ = writeln!(out, "  ConnectTimeout {CONNECT_TIMEOUT_SECS}");
        let _ = writeln!(out, "  ServerAliveInterval {SERVER_ALIVE_INTERVAL_SECS}");
        let _ = writeln!(out, "  ServerAliveCountMax {SERVER_ALIVE_COUNT_MAX}");
    };
    for t in targets {
        let _ = writeln!(out, "\nHost {}", value(&t.alias));
        let _ = writeln!(out, "  HostName {}", value(&t.address.replace('%', "%%")));
        let _ = writeln!(out, "  User {}", value(&ssh.user));
        let _ = writeln!(out, "  Port {}", ssh.port);
        if let Some(alias) = &t.host_key_alias {
            let _ = writeln!(out, "  HostKeyAlias {}", value(alias));
        }
        if ssh.bastion.is_some() {
            let _ = writeln!(
                out,
                "  ProxyCommand ssh -F {} -E {} -W '[%h]:%p' {}",
                sh_quote(&file.to_string_lossy().replace('%', "%%")),
                sh_quote(&jump_log(file, &t.alias).to_string_lossy().replace('%', "%%")),
                bastion_alias(cluster)
            );
        }
        common(&mut out);
    }
    if let Some(b) = &ssh.bastion {
        // The hop runs `ssh -F <this file>`, so this block applies to it.
        let _ = writeln!(out, "\nHost {}", bastion_alias(cluster));
        let _ = writeln!(out, "  HostName {}", value(&b.host.replace('%', "%%")));
        let _ = writeln!(out, "  User {}", value(&b.user));
        let _ = writeln!(out, "  Port {}", b.port);
        common(&mut out);
    }
    if let Some(user_config) = user_config {
        out.push_str("\n# Last, so it can add options but not change the ones above (ssh keeps the first value).\n");
        out.push_str("Match all\n");
        let _ = writeln!(out, "  Include {}", value(&user_config.to_string_lossy()));
    }
    out
}

/// What Ansible needs to reach a node the way kos does, as host variables of `kos inventory`:
/// the user, port and key, and `ansible_ssh_common_args` with the options kos's ssh_config
/// gives the node — the cluster's known_hosts under the server's id (`host_key_alias`),
/// `accept-new`, only this key, and the hop through the bastion (through kos's ssh_config in
/// `config_dir`, so the bastion's own options apply). Without an ssh_config there (no `kos up`
/// from this machine yet), the bastion is a plain `ProxyJump`.
pub fn ansible_vars(settings: &Settings, config_dir: &Path, host_key_alias: Option<&str>) -> Vec<(&'static str, serde_json::Value)> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let key = private_key_path(settings, home.as_deref());
    let key = std::path::absolute(&key).unwrap_or(key);
    let config = config_dir.join("config");
    let mut args = vec!["-o IdentitiesOnly=yes".to_owned(), "-o BatchMode=yes".to_owned()];
    if config.exists() {
        let known_hosts = config_dir.join("known_hosts");
        args.push(format!("-o UserKnownHostsFile={}", sh_quote(&known_hosts.to_string_lossy())));
        args.push("-o StrictHostKeyChecking=accept-new".to_owned());
        args.push("-o CheckHostIP=no".to_owned());
        if let Some(alias) = host_key_alias {
            args.push(format!("-o HostKeyAlias={}", sh_quote(alias)));
        }
        if settings.ssh.bastion.is_some() {
            let hop = format!("ssh -F {} -W [%h]:%p {}", sh_quote(&config.to_string_lossy()), bastion_alias(&settings.cluster.name));
            args.push(format!("-o ProxyCommand={}", sh_quote(&hop)));
        }
    } else if let Some(b) = &settings.ssh.bastion {
        args.push(format!("-o ProxyJump={}", sh_quote(&format!("{}@{}:{}", b.user, b.host, b.port))));
    }
    vec![
        ("ansible_user", settings.ssh.user.clone().into()),
        ("ansible_port", settings.ssh.port.into()),
        ("ansible_ssh_private_key_file", key.to_string_lossy().into_owned().into()),
        ("ansible_ssh_common_args", args.join(" ").into()),
    ]
}

/// A config value, double-quoted when it has blanks or quote characters.
fn value(s: &str) -> String {
    if !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '#')) {
        return s.to_string();
    }
    let mut q = String::from("\"");
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// A word for the shell that runs a ProxyCommand.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A path value of an option that expands `%` tokens (IdentityFile, UserKnownHostsFile).
fn path_value(p: &Path) -> String {
    value(&p.to_string_lossy().replace('%', "%%"))
}

/// The cluster's ssh_config on disk, ready for [`SshNode::connect`].
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// `<state>/ssh/config`.
    pub file: PathBuf,
    /// `<state>/ssh/known_hosts`.
    pub known_hosts: PathBuf,
    /// Where each connection's ControlMaster socket directory is made; short, because a
    /// Unix socket path is limited to about 108 bytes.
    control_dir: PathBuf,
    /// The login user: not root means `sudo -n`.
    user: String,
    port: u16,
    /// What the file says about each node (a connection must use the same).
    targets: Vec<SshTarget>,
    /// The bastion nodes are reached through, if any (for messages).
    bastion: Option<SshTarget>,
    bastion_port: u16,
}

/// `ssh.private_key` as an absolute path, once it is known to exist (or its `.pub`, for a
/// key held by an agent): checked before `kos up` changes anything, so a missing key never
/// leaves servers behind that kos then cannot reach.
pub fn check_private_key(settings: &Settings) -> Result<PathBuf, RemoteError> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let key = private_key_path(settings, home.as_deref());
    let key = std::path::absolute(&key).map_err(|e| local(format!("cannot resolve {}", key.display()), e))?;
    let pub_key = PathBuf::from(format!("{}.pub", key.display()));
    if !key.exists() && !pub_key.exists() {
        return Err(RemoteError::Local {
            what: format!(
                "the SSH private key {} does not exist; set ssh.private_key in the settings to the key the nodes accept",
                key.display()
            ),
            source: None,
        });
    }
    Ok(key)
}

impl SshConfig {
    /// Write `<dir>/config` (mode 0600) for `targets`, creating `dir` (mode 0700); known
    /// hosts go to `<dir>/known_hosts`.
    pub fn write(dir: &Path, settings: &Settings, targets: &[SshTarget]) -> Result<SshConfig, RemoteError> {
        use std::os::unix::fs::PermissionsExt;
        let key = check_private_key(settings)?;
        std::fs::create_dir_all(dir).map_err(|e| local(format!("cannot create {}", dir.display()), e))?;
        let dir = std::path::absolute(dir).map_err(|e| local(format!("cannot resolve {}", dir.display()), e))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| local(format!("cannot restrict {}", dir.display()), e))?;
        let file = dir.join("config");
        let known_hosts = dir.join("known_hosts");

        for path in [&key, &file, &known_hosts] {
            if path.to_str().is_none_or(has_control) {
                return Err(RemoteError::Local {
                    what: format!("{} cannot be written into an ssh_config (not UTF-8, or a line break); use another path", path.display()),
                    source: None,
                });
            }
        }
        let ssh = &settings.ssh;
        let names = targets
            .iter()
            .flat_map(|t| [&t.alias, &t.address].into_iter().chain(&t.host_key_alias))
            .chain([&ssh.user])
            .chain(ssh.bastion.iter().flat_map(|b| [&b.host, &b.user]));
        if let Some(bad) = names.into_iter().find(|s| s.is_empty() || has_control(s)) {
            return Err(RemoteError::Local {
                what: format!("{bad:?} cannot be written into an ssh_config (empty, or a control character)"),
                source: None,
            });
        }

        let paths = ConfigPaths { file: &file, identity: &key, known_hosts: &known_hosts, user_config: Some(Path::new(USER_SSH_CONFIG)) };
        let text = render_ssh_config(settings, &paths, targets);
        // Whole or not at all, so an ssh started meanwhile reads a whole file.
        kos_fs::write_atomic(&file, text.as_bytes(), 0o600).map_err(|e| local(format!("cannot write {}", file.display()), e))?;

        Ok(SshConfig {
            file,
            known_hosts,
            control_dir: control_dir(),
            user: ssh.user.clone(),
            port: ssh.port,
            targets: targets.to_vec(),
            bastion: ssh.bastion.as_ref().map(|b| SshTarget::new(&settings.cluster.name, "bastion", &b.host, None)),
            bastion_port: ssh.bastion.as_ref().map_or(22, |b| b.port),
        })
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn local(what: String, source: std::io::Error) -> RemoteError {
    RemoteError::Local { what, source: Some(source) }
}

/// `$TMPDIR` when it is short, else `/tmp`: the socket ends up at
/// `<dir>/.ssh-connectionXXXXXX/master`, which must stay under the ~108-byte limit.
fn control_dir() -> PathBuf {
    let tmp = std::env::temp_dir();
    if tmp.is_absolute() && tmp.as_os_str().len() <= 48 { tmp } else { PathBuf::from("/tmp") }
}

/// One node, reached through its own ControlMaster connection.
///
/// Close it with [`SshNode::close`]; dropping it also stops the master connection.
#[derive(Debug)]
pub struct SshNode {
    node: String,
    alias: String,
    session: Session,
    /// Run scripts through `sudo -n` (the login user is not root).
    sudo: bool,
}

/// Why one connection attempt failed.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// The host key differs from the recorded one; `name` is the known_hosts name, when ssh said.
    HostKeyChanged {
        name: Option<String>,
    },
    Denied,
    /// Not answering (yet): refused, timed out, no route, reset.
    Retry,
}

/// Sort ssh's complaint (its log of a failed connection) into what to do next.
fn classify_connect_error(text: &str) -> Attempt {
    if text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || text.contains("Host key verification failed") {
        let name =
            text.lines().find_map(|l| l.trim().strip_prefix("Host key for ")?.split_once(" has changed").map(|(n, _)| n.to_string()));
        return Attempt::HostKeyChanged { name };
    }
    if text.contains("Permission denied (") || text.contains("Too many authentication failures") {
        return Attempt::Denied;
    }
    Attempt::Retry
}

/// What to do after a failed attempt, the line that says why, and whether it was the hop
/// through the bastion (`jump`, its log) that failed rather than the node's own ssh (`master`).
fn diagnose(master: &str, jump: &str) -> (Attempt, String, bool) {
    let hop = classify_connect_error(jump);
    if hop != Attempt::Retry {
        return (hop, format!("bastion: {}", last_line(jump)), true);
    }
    let own = classify_connect_error(master);
    // Reaching the node failed on the way (the master only says "Connection closed by
    // UNKNOWN"); the hop's log names the cause.
    if own == Attempt::Retry && !jump.trim().is_empty() {
        return (own, format!("bastion: {}", last_line(jump)), true);
    }
    (own, last_line(master), false)
}

/// The most telling line of ssh's log: the last one that is not a warning about adding a key.
fn last_line(text: &str) -> String {
    text.lines()
        .map(|l| l.trim())
        .rfind(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added") && *l != "stdio forwarding failed")
        .unwrap_or("no message from ssh")
        .to_string()
}

fn ssh_in_path() -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("ssh").is_file()))
}

/// A message and its sources, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(e) = source {
        let _ = write!(s, ": {e}");
        source = e.source();
    }
    s
}

/// A session builder for one connection attempt with `remaining` time left.
fn session_builder(config: &SshConfig, remaining: Duration) -> SessionBuilder {
    let mut builder = SessionBuilder::default();
    builder
        .config_file(&config.file)
        .control_directory(&config.control_dir)
        .known_hosts_check(KnownHosts::Add)
        // A kos killed by SIGKILL or Ctrl-C cannot close its masters: they exit by
        // themselves after this long idle (longer than any wait inside one run).
        .control_persist(openssh::ControlPersist::IdleFor(MASTER_IDLE_EXIT))
        .connect_timeout(Duration::from_secs(remaining.as_secs().clamp(1, CONNECT_TIMEOUT_SECS)));
    builder
}

/// What ssh said when a connection attempt failed, to be diagnosed; an error for what no
/// retry can mend (no `ssh` program, a failure that is not the connection's).
fn connect_error_text(error: &openssh::Error, target: &SshTarget) -> Result<String, RemoteError> {
    match error {
        // launch_master spawns `ssh` and then reads its log: NotFound is either missing.
        openssh::Error::Connect(io) if io.kind() == std::io::ErrorKind::NotFound && !ssh_in_path() => Err(RemoteError::Local {
            what: "cannot run `ssh`; install the OpenSSH client (Debian: openssh-client)".to_string(),
            source: Some(std::io::Error::new(io.kind(), io.to_string())),
        }),
        openssh::Error::Connect(io) if io.kind() == std::io::ErrorKind::NotFound => Ok("ssh failed without a message".to_string()),
        openssh::Error::Connect(io) => Ok(io.to_string()),
        other => Err(RemoteError::Transport { node: target.node.clone(), detail: chain(other) }),
    }
}

/// A changed host key, named as known_hosts holds it (the bastion's when the hop failed).
fn host_key_changed(config: &SshConfig, target: &SshTarget, name: Option<String>, via_bastion: bool) -> RemoteError {
    let fallback = match config.bastion.as_ref().filter(|_| via_bastion) {
        Some(b) => b.known_hosts_name(config.bastion_port),
        None => target.known_hosts_name(config.port),
    };
    RemoteError::HostKeyChanged {
        node: target.node.clone(),
        known_hosts: config.known_hosts.display().to_string(),
        alias: name.unwrap_or(fallback),
    }
}

impl SshNode {
    /// Open the master connection to `target`, waiting up to `wait` for its SSH to answer.
    ///
    /// Refused, timed-out and unroutable connections are retried with a short backoff until
    /// `wait` has passed ([`RemoteError::Unreachable`] with ssh's last complaint). A refused
    /// login is retried for [`DENIED_GRACE`] at most ([`RemoteError::Denied`]); a changed host
    /// key fails at once ([`RemoteError::HostKeyChanged`]).
    ///
    /// `target` must be one the config was written with (ssh reads the address and host key
    /// alias from the file): after a server is rebuilt, write the config again.
    pub async fn connect(config: &SshConfig, target: &SshTarget, wait: Duration) -> Result<SshNode, RemoteError> {
        if !config.targets.contains(target) {
            return Err(RemoteError::Local {
                what: format!(
                    "{}: {} was written for other addresses or server ids; write it again before connecting",
                    target.node,
                    config.file.display()
                ),
                source: None,
            });
        }
        let start = Instant::now();
        let deadline = start + wait;
        let mut backoff = Duration::from_millis(200);
        let mut first_denied: Option<Instant> = None;
        let jump_log_file = jump_log(&config.file, &target.alias);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            // The hop through the bastion appends to its log; each attempt reads only its own.
            let _ = std::fs::remove_file(&jump_log_file);
            tracing::debug!(node = %target.node, alias = %target.alias, config = %config.file.display(), "ssh: connecting");
            let error = match session_builder(config, remaining).connect_mux(&target.alias).await {
                Ok(session) => {
                    tracing::debug!(node = %target.node, after_ms = start.elapsed().as_millis() as u64, "ssh: connected");
                    return Ok(SshNode { node: target.node.clone(), alias: target.alias.clone(), session, sudo: config.user != "root" });
                }
                Err(e) => e,
            };
            let text = connect_error_text(&error, target)?;
            let jump = match config.bastion {
                Some(_) => std::fs::read_to_string(&jump_log_file).unwrap_or_default(),
                None => String::new(),
            };
            let (attempt, why, via_bastion) = diagnose(&text, &jump);
            let now = Instant::now();
            match attempt {
                Attempt::HostKeyChanged { name } => return Err(host_key_changed(config, target, name, via_bastion)),
                Attempt::Denied => {
                    let since = *first_denied.get_or_insert(now);
                    if now >= deadline || now.duration_since(since) >= DENIED_GRACE {
                        return Err(RemoteError::Denied { node: target.node.clone(), detail: why });
                    }
                }
                Attempt::Retry => {
                    first_denied = None;
                    if now >= deadline {
                        return Err(RemoteError::Unreachable { node: target.node.clone(), secs: wait.as_secs(), last: why });
                    }
                }
            }
            tracing::debug!(node = %target.node, error = %why, "ssh: not yet, retrying");
            tokio::time::sleep(backoff.min(deadline.saturating_duration_since(now))).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// The `Host` name of this node in the ssh_config.
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// Stop the master connection.
    pub async fn close(self) {
        if let Err(e) = self.session.close().await {
            tracing::debug!(node = %self.node, error = %chain(&e), "ssh: closing the master connection failed");
        }
    }

    fn transport(&self, what: &str, e: &dyn std::error::Error) -> RemoteError {
        RemoteError::Transport { node: self.node.clone(), detail: format!("{what}: {}", chain(e)) }
    }
}

/// What `sudo -n` says when it will not run the command, or `None`.
fn sudo_refusal(output: &Output) -> Option<String> {
    let stderr = output.stderr_text();
    let first = stderr.lines().next().unwrap_or("").trim();
    let refused = match output.status {
        Some(1) => {
            first.starts_with("sudo: ")
                && ["a password is required", "not in the sudoers", "is not allowed to", "a terminal is required"]
                    .iter()
                    .any(|m| first.contains(m))
        }
        // No sudo at all: the login shell reports it before /bin/sh ever runs.
        Some(127) => first.contains("sudo: command not found") || first.contains("sudo: not found"),
        _ => false,
    };
    refused.then(|| first.to_string())
}

impl Remote for SshNode {
    fn node(&self) -> &str {
        &self.node
    }

    async fn run(&self, script: &str, stdin: Stdin) -> Result<Output, RemoteError> {
        if script.len() > MAX_SCRIPT_BYTES {
            return Err(RemoteError::Transport {
                node: self.node.clone(),
                detail: format!(
                    "a script of {} bytes is longer than a remote command line may be ({MAX_SCRIPT_BYTES}); send large content on stdin",
                    script.len()
                ),
            });
        }
        tracing::debug!(node = %self.node, sudo = self.sudo, stdin_bytes = stdin.len(), %script, "ssh: run");
        // `command` quotes each argument for the remote login shell.
        let mut command = if self.sudo {
            let mut c = self.session.command("sudo");
            c.args(["-n", "/bin/sh", "-c", script]);
            c
        } else {
            let mut c = self.session.command("/bin/sh");
            c.args(["-c", script]);
            c
        };
        command.stdin(if stdin.is_empty() { Stdio::null() } else { Stdio::piped() }).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().await.map_err(|e| self.transport("cannot start the command", &e))?;
        let (stdout, stderr) = self.exchange(&mut child, stdin).await?;
        let output = Output { status: self.exit_status(child).await?, stdout, stderr };
        if self.sudo
            && let Some(detail) = sudo_refusal(&output)
        {
            return Err(RemoteError::NoSudo { node: self.node.clone(), detail });
        }
        tracing::debug!(node = %self.node, status = ?output.status, "ssh: done");
        Ok(output)
    }
}

impl SshNode {
    /// Feed `stdin` to a running command while reading its stdout and stderr to the end.
    async fn exchange(&self, child: &mut openssh::Child<&openssh::Session>, stdin: Stdin) -> Result<(Vec<u8>, Vec<u8>), RemoteError> {
        let input = child.stdin().take();
        let feed = async move {
            let Some(mut input) = input else {
                return Ok(());
            };
            // A script may exit without reading all of its input; that is its business.
            match stdin.write_to(&mut input).await {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(e),
                Ok(()) => match input.shutdown().await {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
                    _ => Ok(()),
                },
            }
        };
        let out = child.stdout().take();
        let read_out = async move {
            let mut buf = Vec::new();
            if let Some(mut out) = out {
                out.read_to_end(&mut buf).await?;
            }
            Ok::<_, std::io::Error>(buf)
        };
        let err = child.stderr().take();
        let read_err = async move {
            let mut buf = Vec::new();
            if let Some(mut err) = err {
                err.read_to_end(&mut buf).await?;
            }
            Ok::<_, std::io::Error>(buf)
        };
        let (fed, stdout, stderr) = tokio::join!(feed, read_out, read_err);
        fed.map_err(|e| self.transport("sending input to the command failed", &e))?;
        let stdout = stdout.map_err(|e| self.transport("reading the command's output failed", &e))?;
        let stderr = stderr.map_err(|e| self.transport("reading the command's output failed", &e))?;
        Ok((stdout, stderr))
    }

    /// The command's exit status; `None` when the shell was killed by a signal.
    async fn exit_status(&self, child: openssh::Child<&openssh::Session>) -> Result<Option<i32>, RemoteError> {
        Ok(match child.wait().await {
            Ok(status) => status.code(),
            // The native mux reports exit status 127 as an error; to us it is an exit status
            // (a command not found inside the script), with its output.
            Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => Some(127),
            // No exit status: the shell was killed by a signal, or the connection dropped;
            // the master connection tells which.
            Err(openssh::Error::RemoteProcessTerminated) => match self.session.check().await {
                Ok(()) => None,
                Err(e) => {
                    return Err(self.transport("the connection dropped while a command ran", &e));
                }
            },
            Err(e) => return Err(self.transport("the connection dropped while a command ran", &e)),
        })
    }
}

#[cfg(test)]
mod tests;
