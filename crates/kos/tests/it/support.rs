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
    assert!(std::env::var_os("CI").is_none(), "CI is set but {var} is not: the test bed was not started (start it with `{how_to_start}`)");
    eprintln!("skipped: this test needs the test bed; run it with `{how_to_start}`");
    false
}

/// Folder of the test tools `scripts/install-test-tools.sh` installs.
pub fn tools_dir() -> std::path::PathBuf {
    std::env::var_os("KOS_TOOLS").map(Into::into).unwrap_or_else(|| "/opt/kos-test-tools".into())
}

/// Path of a test tool (PyPI tools from the tools virtualenv, else the system's), or
/// `None` outside CI when it is missing (the test then skips with a note). In CI a
/// missing tool fails the test: `.ci/run` installs them all.
pub fn tool(name: &str) -> Option<std::path::PathBuf> {
    let venv = tools_dir().join("bin").join(name);
    if venv.exists() {
        return Some(venv);
    }
    let found = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.exists())).unwrap_or(None);
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but `{name}` is missing: scripts/install-test-tools.sh should have installed it"
        );
        eprintln!("skipped: `{name}` is not installed (run scripts/install-test-tools.sh)");
    }
    found
}

/// Run a command, returning (success, stdout, stderr).
pub fn run(cmd: &mut std::process::Command) -> (bool, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The repository's root folder.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// `kos render` of the repository's example (settings + observed addresses) with its
/// state in `state` and its output in `out`.
pub fn render_command(state: &std::path::Path, out: &std::path::Path) -> assert_cmd::Command {
    let root = repo_root();
    let mut cmd = assert_cmd::Command::cargo_bin("kos").expect("kos binary");
    cmd.args(["render", "-f"])
        .arg(root.join("examples/settings.yaml"))
        .arg("--observed")
        .arg(root.join("examples/observed.yaml"))
        .arg("--state-dir")
        .arg(state)
        .arg("--out")
        .arg(out);
    cmd
}

/// `kos render` of the repository's example into a fresh temporary folder; returns
/// (tempdir guard, output folder). The state folder is `<tempdir>/state`.
pub fn render_example() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    render_command(&tmp.path().join("state"), &out).current_dir(tmp.path()).assert().success();
    (tmp, out)
}

/// Local inputs that `kos check` accepts, for tests of the cloud side only (their servers
/// are never provisioned): an SSH key file and an artifact folder in `dir` holding the real
/// kubelet, kube-proxy and kubectl of the test bed's artifact set (links, with their lines of
/// its SHA256SUMS) — dl.k8s.io, the default source, is out of this machine's reach. Returns
/// the settings lines for both.
pub fn cloud_only_inputs(dir: &std::path::Path) -> (String, String) {
    let key = dir.join("k");
    std::fs::write(&key, "a key the cloud tests never use\n").expect("key written");
    let real = crate::harness::artifact_set();
    let real_sums = std::fs::read_to_string(real.join("SHA256SUMS")).expect("the artifact set's SHA256SUMS");
    let art = dir.join("artifacts");
    std::fs::create_dir_all(art.join("bin")).expect("artifact folder");
    let mut sums = String::new();
    for name in ["kubelet", "kube-proxy", "kubectl"] {
        let file = format!("bin/{name}");
        // Called again for the same folder (a test writes its settings more than once).
        let _ = std::fs::remove_file(art.join(&file));
        std::os::unix::fs::symlink(real.join(&file), art.join(&file)).expect("link to the real binary");
        let line = real_sums.lines().find(|l| l.ends_with(&format!("  {file}"))).unwrap_or_else(|| panic!("{file} in {}", real.display()));
        sums.push_str(line);
        sums.push('\n');
    }
    std::fs::write(art.join("SHA256SUMS"), sums).expect("SHA256SUMS written");
    (format!("ssh: {{user: debian, private_key: {}}}\n", key.display()), format!("artifacts: {{source: local, dir: {}}}\n", art.display()))
}

/// A test-bed node's supervisor log and console (systemd's boot and shutdown, colours
/// stripped; the last 40 lines), and what its systemd is doing now (its processes and their
/// cgroups, state, pending jobs and failed units, asked through its namespaces, each with
/// systemctl's exit status): to explain a timeout.
/// `server` is the Nova server's name (the node's hostname).
pub(crate) fn node_console(server: &str) -> String {
    let run = std::path::PathBuf::from(std::env::var("TB_RUN").unwrap_or_default());
    let dirs = std::fs::read_dir(run.join("nodes")).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>()).unwrap_or_default();
    let Some(dir) = dirs.into_iter().find(|d| std::fs::read_to_string(d.join("hostname")).is_ok_and(|h| h.trim() == server)) else {
        return format!("(no node of server {server} under {}/nodes)", run.display());
    };
    let log = std::fs::read_to_string(dir.join("console.log")).unwrap_or_else(|e| format!("(no console: {e})"));
    let plain: String = strip_ansi(&log);
    let lines: Vec<&str> = plain.lines().collect();
    let console = lines[lines.len().saturating_sub(40)..].join("\n");
    let nspawn = std::fs::read_to_string(dir.join("nspawn.pid")).unwrap_or_default();
    let systemd = std::process::Command::new("sh")
        .arg("-c")
        .arg(
            "p=$(pgrep -P \"$1\" | head -1) && [ -n \"$p\" ] || { echo 'no PID 1 under nspawn'; exit; }; \
             ps -o pid,stat,etime,cmd --ppid \"$p\" -p \"$p\" | head -40; \
             for c in $(pgrep -P \"$p\" | head -20); do printf '%s cgroup %s\\n' \"$c\" \"$(cut -d: -f3 /proc/$c/cgroup 2>/dev/null | sort -u | tr '\\n' ' ')\"; done; \
             for q in is-system-running 'list-jobs --no-pager' '--failed --no-pager'; do \
               out=$(nsenter -t \"$p\" -m -u -i -n -p timeout 5 systemctl $q 2>&1); rc=$?; \
               printf '%s\\n' \"$out\" | head -30; echo \"(systemctl $q: exit $rc)\"; done; \
             echo \"its PID 1 waits in: $(cat /proc/$p/wchan 2>/dev/null)\"; cat /proc/$p/stack 2>/dev/null | head -20; \
             grep -E '^(State|SigPnd|ShdPnd|SigBlk)' /proc/$p/status 2>/dev/null; \
             echo 'its journal, last lines:'; journalctl -D \"$2/upper/var/log/journal\" --no-pager -n 60 -o short-monotonic 2>&1 | tail -60",
        )
        .args(["-", nspawn.trim(), &dir.to_string_lossy()])
        .output()
        .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
        .unwrap_or_else(|e| format!("(cannot ask the node: {e})"));
    format!("node {} ({server}): console, last lines:\n{console}\nits systemd now:\n{systemd}", dir.display())
}

/// Text without terminal colour sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
