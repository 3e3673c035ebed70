//! `kos-test-standin`: a TEST STAND-IN for kubelet and kube-proxy. It is NOT a kubelet and
//! NOT a kube-proxy: it runs no pods and programs no rules.
//!
//! kos's end-to-end tests run on machines where no real kubelet or kube-proxy binary can be
//! had. They install this program, through kos's own `artifacts.source: local` path, under
//! the names `kubelet` and `kube-proxy`, and it behaves by the name it was started under
//! (`argv[0]`'s basename):
//!
//! - `--version` prints `Kubernetes v0.0.0-kos-test-standin` and exits 0.
//! - Otherwise it accepts exactly the flags kos renders into the systemd units (any other
//!   flag: `Error: unknown flag: --x`, exit 1, as the real binaries do), reads the files those
//!   flags name, and checks what a real kubelet or kube-proxy would need to start: the
//!   configuration's `kind` and `apiVersion`, the certificates, keys and kubeconfigs it
//!   points at. Any problem: a message on stderr and exit 1, so systemd shows the unit failed.
//! - When everything holds it writes a JSON report (`binary`, `args`, `checked`, `pid`) to
//!   `/run/kos-test-standin/<binary>.json` (or `$KOS_TEST_STANDIN_REPORT_DIR`) and idles
//!   until it is stopped (SIGTERM or SIGINT, whose default action ends it).

mod checks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What `--version` prints.
const VERSION_LINE: &str = "Kubernetes v0.0.0-kos-test-standin";

/// Overrides the report folder (tests).
const REPORT_DIR_ENV: &str = "KOS_TEST_STANDIN_REPORT_DIR";
const DEFAULT_REPORT_DIR: &str = "/run/kos-test-standin";

/// Which program this copy stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binary {
    Kubelet,
    KubeProxy,
}

impl Binary {
    fn from_argv0(arg0: &str) -> Option<Binary> {
        match Path::new(arg0).file_name()?.to_str()? {
            "kubelet" => Some(Binary::Kubelet),
            "kube-proxy" => Some(Binary::KubeProxy),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Binary::Kubelet => "kubelet",
            Binary::KubeProxy => "kube-proxy",
        }
    }

    /// The value flags kos renders into the unit (kubelet.service.j2, kube-proxy.service.j2).
    fn flags(self) -> &'static [&'static str] {
        match self {
            Binary::Kubelet => &["config", "kubeconfig", "hostname-override", "node-ip"],
            Binary::KubeProxy => &["config"],
        }
    }
}

/// Flag name (without `--`) to value; a repeated flag keeps its last value, as pflag does.
type Flags = BTreeMap<&'static str, String>;

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Version,
    Help,
    Run(Flags),
}

/// Parse pflag-style arguments: `--flag=value` or `--flag value`, `--version`, `--help`.
fn parse_args(binary: Binary, args: &[String]) -> Result<Command, String> {
    let mut flags = Flags::new();
    let mut version = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(body) = arg.strip_prefix("--") else {
            if arg.starts_with('-') && arg.len() > 1 {
                return Err(format!("Error: unknown shorthand flag: {arg:?}"));
            }
            return Err(format!(
                "Error: unexpected argument {arg:?}; {} takes flags only",
                binary.name()
            ));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        match name {
            "version" => version = true,
            "help" => return Ok(Command::Help),
            _ => {
                let Some(known) = binary.flags().iter().find(|f| **f == name) else {
                    return Err(format!("Error: unknown flag: --{name}"));
                };
                let value = match inline {
                    Some(v) => v.to_string(),
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("Error: flag needs an argument: --{name}"))?,
                };
                flags.insert(known, value);
            }
        }
    }
    Ok(if version {
        Command::Version
    } else {
        Command::Run(flags)
    })
}

fn usage(binary: Binary) -> String {
    let flags: Vec<String> = binary
        .flags()
        .iter()
        .map(|f| format!("--{f}=..."))
        .collect();
    format!(
        "{name}: kos TEST STAND-IN (not a real {name}).\nAccepts: {} --version --help\nChecks the files kos renders, reports to {DEFAULT_REPORT_DIR}/{name}.json (or ${REPORT_DIR_ENV}), then idles until stopped.",
        flags.join(" "),
        name = binary.name()
    )
}

/// What the stand-in checked, written once everything held.
#[derive(Debug, serde::Serialize)]
struct Report<'a> {
    binary: &'a str,
    args: &'a [String],
    checked: &'a [String],
    pid: u32,
}

fn report_dir() -> PathBuf {
    std::env::var_os(REPORT_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_REPORT_DIR), PathBuf::from)
}

/// Write the report through a temporary file and a rename, so a reader never sees half of it.
fn write_report(binary: Binary, args: &[String], checked: &[String]) -> Result<PathBuf, String> {
    let dir = report_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create the report folder {}: {e}", dir.display()))?;
    let report = Report {
        binary: binary.name(),
        args,
        checked,
        pid: std::process::id(),
    };
    let json =
        serde_json::to_vec_pretty(&report).map_err(|e| format!("cannot encode the report: {e}"))?;
    let path = dir.join(format!("{}.json", binary.name()));
    let tmp = dir.join(format!(".{}.json.{}", binary.name(), std::process::id()));
    std::fs::write(&tmp, json).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let arg0 = argv.first().map_or("", String::as_str);
    let Some(binary) = Binary::from_argv0(arg0) else {
        eprintln!(
            "kos-test-standin: started as {arg0:?}; this TEST STAND-IN must be installed (copied or linked) as `kubelet` or `kube-proxy`"
        );
        return ExitCode::from(2);
    };
    let args = &argv[1..];
    let flags = match parse_args(binary, args) {
        Ok(Command::Version) => {
            println!("{VERSION_LINE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Help) => {
            println!("{}", usage(binary));
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(flags)) => flags,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(1);
        }
    };
    let checked = match binary {
        Binary::Kubelet => checks::kubelet(&flags),
        Binary::KubeProxy => checks::kube_proxy(&flags),
    };
    let checked = match checked {
        Ok(checked) => checked,
        Err(msg) => {
            eprintln!("{} (kos test stand-in): {msg}", binary.name());
            return ExitCode::from(1);
        }
    };
    match write_report(binary, args, &checked) {
        Ok(path) => eprintln!(
            "{} (kos test stand-in): all checks passed, report in {}; idling",
            binary.name(),
            path.display()
        ),
        Err(msg) => {
            eprintln!("{} (kos test stand-in): {msg}", binary.name());
            return ExitCode::from(1);
        }
    }
    // Idle like a daemon. SIGTERM (systemctl stop) and SIGINT keep their default action,
    // which ends the process; std has no portable way to catch them without unsafe code.
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn binary_comes_from_argv0_basename() {
        assert_eq!(
            Binary::from_argv0("/usr/local/bin/kubelet"),
            Some(Binary::Kubelet)
        );
        assert_eq!(Binary::from_argv0("kube-proxy"), Some(Binary::KubeProxy));
        assert_eq!(Binary::from_argv0("/x/kos-test-standin"), None);
    }

    #[test]
    fn both_flag_forms_are_accepted() {
        let got = parse_args(
            Binary::Kubelet,
            &args(&["--config=/a", "--kubeconfig", "/b", "--node-ip=10.0.0.1"]),
        )
        .unwrap();
        let want = Flags::from([
            ("config", "/a".to_string()),
            ("kubeconfig", "/b".to_string()),
            ("node-ip", "10.0.0.1".to_string()),
        ]);
        assert_eq!(got, Command::Run(want));
    }

    #[test]
    fn unknown_flag_is_refused_like_cobra() {
        assert_eq!(
            parse_args(Binary::Kubelet, &args(&["--config=/a", "--x=1"])),
            Err("Error: unknown flag: --x".to_string())
        );
        // kube-proxy gets --config only from kos.
        assert_eq!(
            parse_args(Binary::KubeProxy, &args(&["--kubeconfig=/a"])),
            Err("Error: unknown flag: --kubeconfig".to_string())
        );
        assert!(parse_args(Binary::Kubelet, &args(&["-v=2"])).is_err());
        assert!(parse_args(Binary::Kubelet, &args(&["config"])).is_err());
    }

    #[test]
    fn flag_without_value_is_refused() {
        assert_eq!(
            parse_args(Binary::Kubelet, &args(&["--config"])),
            Err("Error: flag needs an argument: --config".to_string())
        );
    }

    #[test]
    fn version_wins_over_other_flags() {
        assert_eq!(
            parse_args(Binary::KubeProxy, &args(&["--config=/a", "--version"])),
            Ok(Command::Version)
        );
        assert_eq!(
            parse_args(Binary::Kubelet, &args(&["--version=raw"])),
            Ok(Command::Version)
        );
    }
}
