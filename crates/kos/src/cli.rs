//! The command line, as clap definitions only; each subcommand's code is in `commands/`.

use crate::env_vars;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Kubernetes on OpenStack: one settings file to a working cluster, pods routed by Neutron.
#[derive(Debug, Parser)]
#[command(name = "kos", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a settings file; prints every problem as FILE:LINE:COL with the fix (exit 2).
    Validate(SettingsArg),
    /// Write every file the cluster needs (per node and for the operator) to a folder.
    Render(RenderArgs),
    /// Inspect or renew the cluster's certificates.
    Certs(CertsArgs),
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
    /// List every certificate with its expiry.
    Check(SettingsArg),
    /// Re-issue leaf certificates (all, or those named); CAs are kept.
    Renew {
        #[command(flatten)]
        settings: SettingsArg,
        /// Only these certificates (file stems such as `apiserver`, `nodes/worker-1/kubelet-client`).
        #[arg(long = "only", value_delimiter = ',')]
        only: Vec<String>,
    },
}
