//! The ssh_config as text (snapshots, and the system `ssh -G` as an independent reader), and
//! [`SshNode`] against a real `sshd` this file starts on 127.0.0.1 (no mock of ssh anywhere).

#![allow(clippy::print_stdout, clippy::print_stderr)]
use super::*;
use sha2::Digest;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command};
use std::time::Instant as StdInstant;

fn settings_text(key: &str, port: u16, bastion: &str) -> String {
    format!(
        "cluster: {{name: demo}}\ncloud: {{image: i, flavor: f, network: n, router: r}}\nssh: {{user: root, private_key: {key:?}, port: {port}{bastion}}}\nnodes:\n  - {{name: m1, role: master}}\n  - {{name: w1, role: worker}}\n"
    )
}

fn settings(source: &Path, key: &str, port: u16, bastion: &str) -> Settings {
    Settings::parse(source, &settings_text(key, port, bastion)).unwrap_or_else(|e| panic!("{e}"))
}

fn targets() -> Vec<SshTarget> {
    vec![
        SshTarget::new("demo", "m1", "10.0.0.11", Some("6f1c9a52-0d4e-4a47-9a8e-1b2c3d4e5f60")),
        SshTarget::new("demo", "w1", "10.0.0.12", None),
    ]
}

#[test]
fn ssh_config_without_bastion() {
    let s = settings(Path::new("/work/demo.yaml"), "~/.ssh/id_ed25519", 22, "");
    let paths = ConfigPaths {
        file: Path::new("/work/.kos/demo/ssh/config"),
        identity: Path::new("/home/me/.ssh/id_ed25519"),
        known_hosts: Path::new("/work/.kos/demo/ssh/known_hosts"),
        user_config: Some(Path::new(USER_SSH_CONFIG)),
    };
    let text = render_ssh_config(&s, &paths, &targets());
    insta::assert_snapshot!(text);
}

#[test]
fn ssh_config_with_bastion() {
    let s = settings(Path::new("/work/demo.yaml"), "keys/id", 2222, ", bastion: {host: jump.example.org, user: ops}");
    let paths = ConfigPaths {
        file: Path::new("/work/it's/ssh/config"),
        identity: Path::new("/work/my keys/id_%h"),
        known_hosts: Path::new("/work/.kos/demo/ssh/known_hosts"),
        user_config: None,
    };
    let text = render_ssh_config(&s, &paths, &targets());
    insta::assert_snapshot!(text);
    assert!(text.contains("IdentityFile \"/work/my keys/id_%%h\""), "blanks quoted, % escaped");
}

#[test]
fn private_key_resolves_home_and_the_settings_folder() {
    let at = |key: &str| private_key_path(&settings(Path::new("/srv/c/s.yaml"), key, 22, ""), Some(Path::new("/home/me")));
    assert_eq!(at("~/.ssh/id"), Path::new("/home/me/.ssh/id"));
    assert_eq!(at("keys/id"), Path::new("/srv/c/keys/id"));
    assert_eq!(at("/abs/id"), Path::new("/abs/id"));
    let relative = settings(Path::new("s.yaml"), "id", 22, "");
    assert_eq!(private_key_path(&relative, None), Path::new("./id"));
}

#[test]
fn write_makes_a_private_folder_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("cluster/keys")).unwrap();
    std::fs::write(tmp.path().join("cluster/keys/id"), "not read by kos").unwrap();
    let s = settings(&tmp.path().join("cluster/s.yaml"), "keys/id", 22, "");
    let dir = tmp.path().join("state/ssh");
    let config = SshConfig::write(&dir, &s, &targets()).unwrap();
    assert_eq!(config.file, dir.join("config"));
    assert_eq!(config.known_hosts, dir.join("known_hosts"));
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&config.file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!dir.join("config.tmp").exists());
    let text = std::fs::read_to_string(&config.file).unwrap();
    let tmp_path = crate::test_support::regex_escape(&tmp.path().display().to_string());
    insta::with_settings!({filters => vec![(tmp_path.as_str(), "[TMP]")]}, {
        insta::assert_snapshot!(text);
    });

    // A missing key is named with the fix, before any ssh runs.
    let missing = settings(&tmp.path().join("cluster/s.yaml"), "keys/nope", 22, "");
    let err = SshConfig::write(&dir, &missing, &targets()).unwrap_err();
    assert!(matches!(err, RemoteError::Local { .. }), "{err:?}");
    assert!(err.to_string().contains("keys/nope does not exist; set ssh.private_key"), "{err}");
}

/// `ssh` itself, or `None` outside CI when it is missing.
fn ssh_client() -> bool {
    if Path::new("/usr/bin/ssh").exists() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "install openssh-client (scripts/install-test-tools.sh)");
    eprintln!("skipped: no /usr/bin/ssh; install openssh-client (scripts/install-test-tools.sh)");
    false
}

/// What the system ssh makes of the file (`ssh -G`: the options it would use, no connection).
fn ssh_g(config: &Path, alias: &str) -> String {
    let out = Command::new("ssh").arg("-G").arg("-F").arg(config).arg(alias).output().unwrap();
    assert!(out.status.success(), "ssh -G failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn system_ssh_reads_our_values_and_the_user_config_cannot_override_them() {
    if !ssh_client() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let user_config = tmp.path().join("user config");
    std::fs::write(&user_config, "Host *\n  User intruder\n  Port 2200\n  HostName 192.0.2.66\n  ForwardAgent yes\n").unwrap();
    let s = settings(Path::new("/work/demo.yaml"), "k", 2222, ", bastion: {host: jump.example.org, user: ops, port: 22}");
    let key = tmp.path().join("id %d");
    let kh = tmp.path().join("known_hosts");
    let file = tmp.path().join("config");
    std::fs::write(
        &file,
        render_ssh_config(&s, &ConfigPaths { file: &file, identity: &key, known_hosts: &kh, user_config: Some(&user_config) }, &targets()),
    )
    .unwrap();

    let node = ssh_g(&file, "demo-m1");
    let has = |out: &str, line: &str| out.lines().any(|l| l == line);
    for line in [
        "hostname 10.0.0.11".to_string(),
        "user root".to_string(),
        "port 2222".to_string(),
        // Shown as written (tokens are expanded when used; the sshd tests use such a path).
        format!("identityfile {}", key.display().to_string().replace('%', "%%")),
        format!("userknownhostsfile {}", kh.display()),
        "hostkeyalias 6f1c9a52-0d4e-4a47-9a8e-1b2c3d4e5f60".to_string(),
        format!(
            "proxycommand ssh -F '{}' -E '{}' -W '[%h]:%p' demo.bastion",
            file.display(),
            tmp.path().join("demo-m1.jump.log").display()
        ),
        "stricthostkeychecking accept-new".to_string(),
        "batchmode yes".to_string(),
        "passwordauthentication no".to_string(),
        "identitiesonly yes".to_string(),
        "connecttimeout 10".to_string(),
        "serveraliveinterval 15".to_string(),
        // Added by the user's file, which is read (last).
        "forwardagent yes".to_string(),
    ] {
        assert!(has(&node, &line), "`ssh -G` lacks `{line}`:\n{node}");
    }
    let bastion = ssh_g(&file, "demo.bastion");
    for line in ["hostname jump.example.org", "user ops", "port 22", "batchmode yes"] {
        assert!(has(&bastion, line), "`ssh -G` lacks `{line}`:\n{bastion}");
    }
    assert!(!bastion.lines().any(|l| l.starts_with("proxycommand ")), "the bastion is reached directly");
    // No HostKeyAlias for a node whose server id is unknown.
    assert!(!ssh_g(&file, "demo-w1").lines().any(|l| l.starts_with("hostkeyalias ")));
}

#[test]
fn connect_errors_are_sorted_by_what_ssh_said() {
    // Texts as OpenSSH 9.2 prints them.
    let changed = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\nAdd correct host key in /s/known_hosts to get rid of this message.\nOffending ED25519 key in /s/known_hosts:1\n  remove with:\n  ssh-keygen -f \"/s/known_hosts\" -R \"srv-a\"\nHost key for srv-a has changed and you have requested strict checking.\nHost key verification failed.\n";
    assert_eq!(classify_connect_error(changed), Attempt::HostKeyChanged { name: Some("srv-a".into()) });
    assert_eq!(classify_connect_error("root@127.0.0.1: Permission denied (publickey).\r\n"), Attempt::Denied);
    assert_eq!(classify_connect_error("ssh: connect to host 127.0.0.1 port 22999: Connection refused\r\n"), Attempt::Retry);
    assert_eq!(
        last_line("Warning: Permanently added 'x' (ED25519) to the list of known hosts.\r\nroot@h: Permission denied (publickey).\r\n"),
        "root@h: Permission denied (publickey)."
    );
}

#[test]
fn sudo_refusal_is_recognised_in_what_sudo_prints() {
    let out = |status, stderr: &str| Output { status: Some(status), stdout: vec![], stderr: stderr.as_bytes().to_vec() };
    assert_eq!(sudo_refusal(&out(1, "sudo: a password is required\n")).as_deref(), Some("sudo: a password is required"));
    assert!(sudo_refusal(&out(1, "debian is not in the sudoers file.\n")).is_none(), "not sudo's prefix");
    assert!(sudo_refusal(&out(1, "sudo: debian is not in the sudoers file.  This incident will be reported.\n")).is_some());
    assert!(sudo_refusal(&out(127, "bash: line 1: sudo: command not found\n")).is_some());
    assert!(sudo_refusal(&out(2, "sudo: a password is required\n")).is_none(), "a script's own exit status");

    // And what the real sudo says to a user who may not use it (nobody), when both are here.
    if Path::new("/usr/bin/sudo").exists() && Path::new("/usr/bin/setpriv").exists() && is_root() {
        let real = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sudo", "-n", "/bin/sh", "-c", "true"])
            .output()
            .unwrap();
        let real = Output { status: real.status.code(), stdout: real.stdout, stderr: real.stderr };
        assert!(sudo_refusal(&real).is_some(), "not recognised: {real:?}");
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n")
}

// --- against a real sshd ---------------------------------------------------------------

/// A private `sshd` on 127.0.0.1, its keys and a client key, all in a temp dir; the daemon
/// is killed (by its PID) on drop.
struct Sshd {
    tmp: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

/// Whether sshd tests can run here: outside CI they skip with a note when `sshd` is missing
/// (or we are not root, which a second login user would need); in CI that is a failure.
fn sshd_available() -> bool {
    let missing = if !Path::new("/usr/sbin/sshd").exists() || !Path::new("/usr/bin/ssh").exists() {
        "install openssh-server (scripts/install-test-tools.sh)"
    } else if !is_root() {
        "run the tests as root (sshd logs in as root here)"
    } else {
        return true;
    };
    assert!(std::env::var_os("CI").is_none(), "{missing}");
    eprintln!("skipped: {missing}");
    false
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "kos-test", "-f"]).arg(path).status().unwrap();
    assert!(ok.success());
}

impl Sshd {
    /// Keys made, daemon not started yet.
    fn new() -> Option<Sshd> {
        if !sshd_available() {
            return None;
        }
        let tmp = tempfile::Builder::new().prefix("kos-sshd").tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("my keys")).unwrap();
        for k in ["host_a", "host_b", KEY, "stranger"] {
            keygen(&tmp.path().join(k));
        }
        std::fs::copy(tmp.path().join(format!("{KEY}.pub")), tmp.path().join("authorized_keys")).unwrap();
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        Some(Sshd { tmp, port: free_port(), child: None })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Start the daemon with `host_key` without waiting for it to listen.
    fn spawn(&mut self, host_key: &str) {
        let conf = self.path("sshd_config");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nAuthorizedKeysFile {ak}\nPidFile none\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nAllowTcpForwarding yes\nLogLevel VERBOSE\n",
                port = self.port,
                key = self.path(host_key).display(),
                ak = self.path("authorized_keys").display(),
            ),
        )
        .unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.path("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd").arg("-D").arg("-e").arg("-f").arg(&conf).stderr(log).spawn().unwrap();
        self.child = Some(child);
    }

    /// Start the daemon and wait until it accepts connections.
    fn start(&mut self, host_key: &str) {
        self.spawn(host_key);
        let t = StdInstant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("sshd exited ({status}): {}", self.log());
            }
            assert!(t.elapsed() < Duration::from_secs(10), "sshd did not listen: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    fn settings(&self, key: &str, bastion: bool) -> Settings {
        let bastion = if bastion { format!(", bastion: {{host: 127.0.0.1, port: {}}}", self.port) } else { String::new() };
        settings(&self.path("demo.yaml"), key, self.port, &bastion)
    }

    fn config(&self, key: &str, targets: &[SshTarget]) -> SshConfig {
        SshConfig::write(&self.path("state/ssh"), &self.settings(key, false), targets).unwrap()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The client key the daemon accepts, at a path with a blank and a `%` (quoted and escaped
/// in the ssh_config, or ssh would not find it).
const KEY: &str = "my keys/id%h";

fn target(server_id: Option<&str>) -> SshTarget {
    SshTarget::new("demo", "m1", "127.0.0.1", server_id)
}

async fn connected(sshd: &Sshd, t: &SshTarget) -> SshNode {
    let config = sshd.config(KEY, std::slice::from_ref(t));
    SshNode::connect(&config, t, Duration::from_secs(20)).await.unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()))
}

#[tokio::test]
async fn run_streams_stdin_and_returns_status_and_output() {
    let Some(mut sshd) = Sshd::new() else { return };
    sshd.start("host_a");
    let node = connected(&sshd, &target(None)).await;
    assert_eq!(node.node(), "m1");
    assert!(!node.sudo, "root logs in: no sudo");

    // 5 MB of bytes, every value, through stdin; the remote checksum matches ours.
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let want = format!("{:x}", sha2::Sha256::digest(&data));
    let out = node.run("sha256sum | cut -d' ' -f1; id -u", data.into()).await.unwrap();
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout_text(), format!("{want}\n0\n"));
    assert!(out.stderr.is_empty());

    let out = node.run("echo before; echo oops >&2; exit 3", Default::default()).await.unwrap();
    assert_eq!(out.status, Some(3));
    assert_eq!(out.stdout_text(), "before\n");
    assert_eq!(out.stderr_text(), "oops\n");

    // 127 (a command not found) stays an exit status with its output.
    let out = node.run("echo here; no-such-command-kos", Default::default()).await.unwrap();
    assert_eq!(out.status, Some(127));
    assert_eq!(out.stdout_text(), "here\n");
    assert!(out.stderr_text().contains("no-such-command-kos"), "{out:?}");

    // The script reaches /bin/sh verbatim: quotes, backslashes, variables, lines.
    let script = "x='it'\"'\"'s'\nprintf '%s|%s|%s\\n' \"$x\" 'a \"b\" \\c' \"$0\"";
    let out = node.run(script, Default::default()).await.unwrap();
    assert_eq!(out.stdout_text(), "it's|a \"b\" \\c|/bin/sh\n", "{out:?}");

    // A script that ignores its input is not an error.
    let out = node.run("exit 0", vec![7; 1_000_000].into()).await.unwrap();
    assert!(out.success());

    // Scripts up to the command-line limit run; longer ones are refused with the way out.
    let long = format!("# {}\necho long", "x".repeat(100_000));
    assert_eq!(node.run(&long, Default::default()).await.unwrap().stdout_text(), "long\n");
    let err = node.run(&"# x\n".repeat(60_000), Default::default()).await.unwrap_err();
    assert!(err.to_string().contains("send large content on stdin"), "{err}");

    // Several commands at once over the one connection.
    let runs = (0..4).map(|i| node.run("read n; echo $((n * 2))", format!("{i}\n").into_bytes().into()));
    let outs = futures_util::future::join_all(runs).await;
    for (i, out) in outs.into_iter().enumerate() {
        assert_eq!(out.unwrap().stdout_text(), format!("{}\n", i * 2));
    }
    node.close().await;
}

#[tokio::test]
async fn run_through_sudo_passes_script_and_stdin() {
    let Some(mut sshd) = Sshd::new() else { return };
    if !Path::new("/usr/bin/sudo").exists() {
        assert!(std::env::var_os("CI").is_none(), "install sudo (scripts/install-test-tools.sh)");
        eprintln!("skipped: no sudo");
        return;
    }
    sshd.start("host_a");
    let mut node = connected(&sshd, &target(None)).await;
    // The login user here is root; force the path a `debian` user takes (root may sudo).
    node.sudo = true;
    let out = node.run("echo \"$SUDO_USER:$(id -u)\"; wc -c", vec![b'x'; 300_000].into()).await.unwrap();
    assert_eq!(out.stdout_text(), "root:0\n300000\n", "{out:?}");
    let out = node.run("echo no >&2; exit 4", Default::default()).await.unwrap();
    assert_eq!((out.status, out.stderr_text().as_str()), (Some(4), "no\n"));
    node.close().await;
}

#[tokio::test]
async fn connect_waits_for_sshd_to_come_up() {
    let Some(mut sshd) = Sshd::new() else { return };
    let t = target(Some("server-1"));
    let config = sshd.config(KEY, std::slice::from_ref(&t));
    let start = StdInstant::now();
    let (node, ()) = tokio::join!(SshNode::connect(&config, &t, Duration::from_secs(30)), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        sshd.spawn("host_a");
    });
    let node = node.unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    let took = start.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(8), "took {took:?}");
    assert_eq!(node.run("echo up", Default::default()).await.unwrap().stdout_text(), "up\n");
    node.close().await;
}

#[tokio::test]
async fn connect_gives_up_when_nothing_answers() {
    let Some(sshd) = Sshd::new() else { return };
    let t = target(None);
    let config = sshd.config(KEY, std::slice::from_ref(&t));
    let start = StdInstant::now();
    let err = SshNode::connect(&config, &t, Duration::from_secs(2)).await.unwrap_err();
    let took = start.elapsed();
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(6), "took {took:?}");
    let RemoteError::Unreachable { node, secs, last } = &err else { panic!("{err:?}") };
    assert_eq!((node.as_str(), *secs), ("m1", 2));
    assert!(last.contains("Connection refused"), "{last}");
}

#[tokio::test]
async fn changed_host_key_fails_at_once_with_the_fix() {
    let Some(mut sshd) = Sshd::new() else { return };
    sshd.start("host_a");
    let with_id = target(Some("server-1"));
    let plain = SshTarget::new("demo", "w1", "127.0.0.1", None);
    let config = sshd.config(KEY, &[with_id.clone(), plain.clone()]);
    for t in [&with_id, &plain] {
        SshNode::connect(&config, t, Duration::from_secs(10)).await.unwrap().close().await;
    }

    // Same address and port, another host key: the server was replaced.
    sshd.stop();
    sshd.start("host_b");
    for t in [&with_id, &plain] {
        let start = StdInstant::now();
        let err = SshNode::connect(&config, t, Duration::from_secs(30)).await.unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5), "not at once: {:?}", start.elapsed());
        let RemoteError::HostKeyChanged { node, known_hosts, alias } = &err else { panic!("{err:?}") };
        assert_eq!(node, &t.node);
        assert_eq!(Path::new(known_hosts), config.known_hosts);
        assert_eq!(alias, &t.known_hosts_name(sshd.port));
        let message = err.to_string();
        assert!(message.contains(&format!("ssh-keygen -f {} -R {alias}", config.known_hosts.display())), "{message}");
    }

    // A rebuilt server has a new id: its key is a fresh entry, never compared with the old one.
    let rebuilt = target(Some("server-2"));
    let err = SshNode::connect(&config, &rebuilt, Duration::from_secs(10)).await.unwrap_err();
    assert!(err.to_string().contains("write it again"), "a target the file does not describe: {err}");
    let config2 = sshd.config(KEY, std::slice::from_ref(&rebuilt));
    SshNode::connect(&config2, &rebuilt, Duration::from_secs(10)).await.unwrap().close().await;

    // The fix the message gives works.
    let config = sshd.config(KEY, &[with_id.clone(), plain.clone()]);
    let ok = Command::new("ssh-keygen").arg("-f").arg(&config.known_hosts).args(["-R", "server-1"]).output().unwrap();
    assert!(ok.status.success());
    SshNode::connect(&config, &with_id, Duration::from_secs(10)).await.unwrap().close().await;
}

#[tokio::test]
async fn wrong_key_is_denied_within_the_grace() {
    let Some(mut sshd) = Sshd::new() else { return };
    sshd.start("host_a");
    let t = target(None);
    let config = sshd.config("stranger", std::slice::from_ref(&t));
    let start = StdInstant::now();
    let err = SshNode::connect(&config, &t, Duration::from_secs(120)).await.unwrap_err();
    let took = start.elapsed();
    assert!(took >= DENIED_GRACE && took < DENIED_GRACE + Duration::from_secs(6), "took {took:?}");
    let RemoteError::Denied { detail, .. } = &err else { panic!("{err:?}") };
    assert!(detail.contains("Permission denied (publickey)"), "{detail}");
    assert!(err.to_string().contains("check ssh.user and ssh.private_key"));

    // With a shorter wait the answer is still Denied (not Unreachable), at the deadline.
    let start = StdInstant::now();
    let err = SshNode::connect(&config, &t, Duration::from_secs(2)).await.unwrap_err();
    assert!(matches!(err, RemoteError::Denied { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(6));
}

#[tokio::test]
async fn nodes_are_reached_through_the_bastion() {
    let Some(mut sshd) = Sshd::new() else { return };
    sshd.start("host_a");
    // The same sshd plays the bastion and the node (reached from it as 127.0.0.1).
    let t = target(Some("server-1"));
    let config = SshConfig::write(&sshd.path("state/ssh"), &sshd.settings(KEY, true), std::slice::from_ref(&t)).unwrap();
    let node = SshNode::connect(&config, &t, Duration::from_secs(20)).await.unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
    assert_eq!(node.run("echo via-bastion", Default::default()).await.unwrap().stdout_text(), "via-bastion\n");
    node.close().await;
    // Both hops recorded their keys in the cluster's file: the bastion by address, the node by id.
    let known = std::fs::read_to_string(&config.known_hosts).unwrap();
    let names: Vec<&str> = known.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(names.len(), 2, "{known}");
    assert!(names.contains(&format!("[127.0.0.1]:{}", sshd.port).as_str()) && names.contains(&"server-1"), "{known}");

    // What goes wrong on the bastion is said, not waited out as a silent node.
    let bastion_name = format!("[127.0.0.1]:{}", sshd.port);
    let stranger = SshConfig::write(&sshd.path("other/ssh"), &sshd.settings("stranger", true), std::slice::from_ref(&t)).unwrap();
    let err = SshNode::connect(&stranger, &t, Duration::from_secs(2)).await.unwrap_err();
    let RemoteError::Denied { detail, .. } = &err else { panic!("{err:?}") };
    assert!(detail.starts_with("bastion: ") && detail.contains("Permission denied"), "{detail}");

    sshd.stop();
    sshd.start("host_b");
    let start = StdInstant::now();
    let err = SshNode::connect(&config, &t, Duration::from_secs(30)).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5), "not at once: {:?}", start.elapsed());
    let RemoteError::HostKeyChanged { alias, .. } = &err else { panic!("{err:?}") };
    assert_eq!(alias, &bastion_name, "the bastion's entry is the one to remove first");

    sshd.stop();
    let err = SshNode::connect(&config, &t, Duration::from_secs(2)).await.unwrap_err();
    let RemoteError::Unreachable { last, .. } = &err else { panic!("{err:?}") };
    assert!(last.starts_with("bastion: ") && last.contains("Connection refused"), "{last}");
}

#[tokio::test]
async fn a_dropped_connection_is_a_transport_error() {
    let Some(mut sshd) = Sshd::new() else { return };
    sshd.start("host_a");
    let node = connected(&sshd, &target(None)).await;
    // Kill the sshd process serving this connection (the script's parent).
    let err = node.run("kill -9 $PPID; sleep 20", Default::default()).await.unwrap_err();
    assert!(matches!(err, RemoteError::Transport { .. }), "{err:?}");
    let err = node.run("true", Default::default()).await.unwrap_err();
    assert!(matches!(err, RemoteError::Transport { .. }), "{err:?}");
}

/// `kos inventory`'s host variables: what kos's ssh_config says, in Ansible's words, the
/// hop through the bastion by kos's own config once it exists, else a plain ProxyJump.
#[test]
fn ansible_vars_reach_a_node_as_kos_does() {
    let s = settings(Path::new("/work/demo.yaml"), "/keys/id", 2222, ", bastion: {host: jump.example.org, user: ops}");
    let dir = tempfile::tempdir().unwrap();
    let get = |vars: &[(&str, serde_json::Value)], k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()).unwrap();

    let before = ansible_vars(&s, dir.path(), Some("srv-1"));
    assert_eq!(get(&before, "ansible_user"), "root");
    assert_eq!(get(&before, "ansible_port"), 2222, "a number, as Ansible's own inventories give it");
    assert_eq!(get(&before, "ansible_ssh_private_key_file"), "/keys/id");
    assert_eq!(get(&before, "ansible_ssh_common_args"), "-o IdentitiesOnly=yes -o BatchMode=yes -o ProxyJump='ops@jump.example.org:22'");

    std::fs::write(dir.path().join("config"), "# kos's\n").unwrap();
    let after = ansible_vars(&s, dir.path(), Some("srv-1"));
    let d = dir.path().display();
    assert_eq!(
        get(&after, "ansible_ssh_common_args"),
        format!(
            "-o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile='{d}/known_hosts' -o StrictHostKeyChecking=accept-new -o CheckHostIP=no -o HostKeyAlias='srv-1' -o ProxyCommand='ssh -F '\\''{d}/config'\\'' -W [%h]:%p demo.bastion'"
        )
    );
}
