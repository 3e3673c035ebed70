//! The command line, as clap definitions only; each subcommand's code is in `commands/`.

use crate::env_vars;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Kubernetes on OpenStack: one settings file to a working cluster, pods routed by Neutron.
#[derive(Debug, Parser)]
#[command(name = "kos", version = env!("KOS_VERSION"), about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Do not check the OpenStack cloud's TLS certificate: anyone between kos and the cloud
    /// could then read the credentials and pose as the cloud. Prefer giving kos the cloud's
    /// CA (`cacert:` in clouds.yaml, or OS_CACERT). Without this flag, a cloud configured
    /// with `verify: false`, `insecure: true` or OS_INSECURE is refused.
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a settings file; prints every problem as FILE:LINE:COL with the fix (exit 2).
    Validate(SettingsArg),
    /// Write every file the cluster needs (per node and for the operator) to a folder.
    Render(RenderArgs),
    /// Inspect or renew the cluster's certificates.
    Certs(CertsArgs),
    /// Preflight against the cloud (creates nothing): every finding OK / WARN / FAIL with the fix.
    Check(SettingsArg),
    /// Bring the cluster to the settings: check → instances → runtime → kubernetes → network → addons → verify.
    Up(UpArgs),
    /// Make workers again: drained, their servers deleted (ports, addresses, pod ranges kept), made and provisioned anew.
    Replace(ReplaceArgs),
    /// Show what `kos up` would change in the cloud and on each node, changing nothing.
    Plan(PlanArgs),
    /// Per node: server state, addresses, pod CIDR, route, SSH, kubelet; the API server's view.
    Status(StatusArgs),
    /// Write an archive of the cluster (an etcd snapshot, its PKI, kos's state and settings), mode 0600.
    Backup(BackupArgs),
    /// Put the cluster's objects back from a `kos backup` archive: every master's etcd restored, the workers kept.
    Restore(RestoreArgs),
    /// Ansible dynamic inventory of the cluster (`ansible -i` a script calling `kos inventory "$@"`).
    Inventory(InventoryArgs),
    /// Delete everything the cluster owns in the cloud (shows it first; asks unless --yes).
    Destroy(DestroyArgs),
    /// Put an Octavia load balancer in front of a NodePort service (every worker a member).
    Expose(ExposeArgs),
    /// Print the admin kubeconfig (context `kos-<cluster>`), or merge it into yours with --merge.
    Kubeconfig(KubeconfigArgs),
    /// Print a shell completion script: `kos completions bash > /etc/bash_completion.d/kos`.
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    #[command(flatten)]
    pub settings: SettingsArg,
    /// Merge it into your kubeconfig (the first file of $KUBECONFIG, else ~/.kube/config)
    /// as context `kos-<cluster>` and make that the current context, instead of printing it.
    #[arg(long)]
    pub merge: bool,
    /// The cloud's addresses of the nodes (YAML, see examples/observed.yaml); default:
    /// what the last `kos up` recorded in the state folder.
    #[arg(long)]
    pub observed: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExposeArgs {
    #[command(flatten)]
    pub settings: SettingsArg,
    /// The service's name (names the load balancer `<cluster>-<service>`).
    pub service: String,
    /// The service's nodePort on the workers.
    #[arg(long, required_unless_present = "delete")]
    pub node_port: Option<u16>,
    /// The port the load balancer listens on.
    #[arg(long, default_value_t = 80)]
    pub port: u16,
    /// Remove the load balancer instead.
    #[arg(long)]
    pub delete: bool,
}

/// A phase of `kos up` (`--only`), in the order they run.
pub use kos_run::Phase;

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub settings: SettingsArg,
    /// Run only these phases (comma-separated); default: all.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<Phase>,
    /// Seconds to wait for each node's SSH to answer.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub ssh_wait: u64,
    /// Seconds to wait for the API server before applying the add-ons.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub api_wait: u64,
    /// Seconds to wait, after the add-ons, for every node, the control plane and CoreDNS to be Ready.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub ready_wait: u64,
    /// Nodes provisioned at the same time.
    #[arg(long, default_value_t = 10)]
    pub parallel: usize,
    /// Seconds to wait for a node removed from the settings to be drained (its pods evicted,
    /// their PodDisruptionBudgets respected) before its server is deleted.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub drain_wait: u64,
    /// Delete removed nodes' servers without draining them (when the API server is lost).
    #[arg(long)]
    pub no_drain: bool,
    /// `text` for people; `json`: the run's report (docs/up-report.md) on stdout, and no
    /// progress lines.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Output format of `kos plan`, `kos up` and `kos status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub settings: SettingsArg,
    /// `text` for people, `json` for programs.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Seconds to wait for each node's SSH to answer.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub ssh_wait: u64,
    /// Exit 0 when nothing would change, 2 when something would (or a node cannot be looked
    /// at), 1 on any error: `terraform plan -detailed-exitcode`'s convention, for scripts.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub settings: SettingsArg,
    /// Seconds to wait for each node's SSH to answer.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub ssh_wait: u64,
    /// `text` for people; `json` for programs.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub settings: SettingsArg,
    /// The archive to write (.tar.gz); default `<state>/backups/<cluster>-<UTC time>.tar.gz`.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Seconds to wait for each master's SSH to answer.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub ssh_wait: u64,
}

#[derive(Debug, Args)]
pub struct ReplaceArgs {
    /// The workers to make again (names in the settings' `nodes`).
    #[arg(value_name = "NODE", required = true)]
    pub nodes: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub up: UpArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub settings: SettingsArg,
    /// The archive `kos backup` wrote.
    #[arg(value_name = "ARCHIVE")]
    pub archive: PathBuf,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Seconds to wait for each master's SSH to answer.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub ssh_wait: u64,
    /// Seconds to wait for the API server once the control plane is back.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub api_wait: u64,
    /// Seconds to wait, then, for every node, the control plane and CoreDNS to be Ready.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub ready_wait: u64,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct InventoryMode {
    /// Every group and host (Ansible's `--list`).
    #[arg(long)]
    pub list: bool,
    /// One host's variables (Ansible's `--host NAME`).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub settings: SettingsArg,
    #[command(flatten)]
    pub mode: InventoryMode,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub settings: SettingsArg,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Also delete the local state folder (`.kos/<cluster>/`: the cluster's CA and
    /// certificates, SSH known_hosts, last observed addresses), once the cloud holds nothing
    /// of the cluster.
    #[arg(long)]
    pub purge: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SettingsArg {
    /// Settings file.
    #[arg(short = 'f', long = "file", env = env_vars::KOS_SETTINGS, default_value = "settings.yaml")]
    pub file: PathBuf,
    /// Local state folder (PKI, observed cloud state).
    #[arg(long, env = env_vars::KOS_STATE_DIR)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub settings: SettingsArg,
    /// Output folder: `nodes/<node>/…` mirrors each node's filesystem, `local/…` is the operator's.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// The cloud's addresses of the nodes (YAML, see examples/observed.yaml); default:
    /// what the last `kos up` recorded in the state folder.
    #[arg(long)]
    pub observed: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub action: CertsAction,
}

#[derive(Debug, Subcommand)]
pub enum CertsAction {
    /// List every certificate with its expiry: kos's copies, then what every node holds,
    /// each compared with kos's (exit 1 on any difference).
    Check {
        #[command(flatten)]
        settings: SettingsArg,
        /// Only kos's copies (no cloud, no SSH).
        #[arg(long)]
        local: bool,
        /// Seconds to wait for each node's SSH to answer.
        #[arg(long, default_value_t = 10, value_name = "SECS")]
        ssh_wait: u64,
    },
    /// Re-issue leaf certificates (all, or those named); CAs are kept.
    Renew {
        #[command(flatten)]
        settings: SettingsArg,
        /// Only these certificates (file stems such as `apiserver`, `nodes/worker-1/kubelet-client`).
        #[arg(long = "only", value_delimiter = ',')]
        only: Vec<String>,
    },
}
