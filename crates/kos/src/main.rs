//! The `kos` binary: parse the command line, run one command, print its error once and
//! choose the exit code (0 done, 1 failed, 2 bad input).

#![forbid(unsafe_code)]

mod cli;
mod commands;
mod env_vars;
mod printer;
mod progress;

use clap::Parser;
use cli::{Cli, Command};
use printer::{Level, Printer};

fn main() {
    let cli = Cli::parse();
    let level = if cli.quiet {
        Level::Quiet
    } else if cli.verbose {
        Level::Verbose
    } else {
        Level::Normal
    };
    let printer = Printer::new(level);
    init_logs(level);
    let tls = kos_cloud::openstack::ConnectOptions { insecure_skip_tls_verify: cli.insecure_skip_tls_verify };
    let result = match &cli.command {
        Command::Validate(args) => commands::validate(args, printer),
        Command::Render(args) => commands::render(args, printer),
        Command::Certs(args) => commands::certs(args, tls, printer),
        Command::Check(args) => commands::check(args, tls, printer),
        Command::Up(args) => commands::up(args, tls, printer),
        Command::Replace(args) => commands::replace(args, tls, printer),
        Command::Plan(args) => match commands::plan(args, tls, printer) {
            // terraform's convention: 2 for pending changes, 1 for every error.
            Ok(pending) if args.detailed_exitcode && pending > 0 => std::process::exit(2),
            Err(err) if args.detailed_exitcode => {
                print_error(&err, printer);
                std::process::exit(1);
            }
            other => other.map(drop),
        },
        Command::Status(args) => commands::status(args, tls, printer),
        Command::Backup(args) => commands::backup(args, tls, printer),
        Command::Restore(args) => commands::restore(args, tls, printer),
        Command::Inventory(args) => commands::inventory(args, tls, printer),
        Command::Destroy(args) => commands::destroy(args, tls, printer),
        Command::Expose(args) => commands::expose(args, tls, printer),
        Command::Kubeconfig(args) => commands::kubeconfig(args, printer),
        Command::Completions(args) => {
            use clap::CommandFactory as _;
            clap_complete::generate(args.shell, &mut Cli::command(), "kos", &mut std::io::stdout());
            Ok(())
        }
    };
    if let Err(err) = result {
        print_error(&err, printer);
        std::process::exit(err.exit_code());
    }
}

/// The one place an error is printed.
fn print_error(err: &commands::CommandError, printer: Printer) {
    match err {
        // Diagnostics are already complete sentences with their own locations.
        commands::CommandError::Settings(d) => printer.diagnostics(d),
        other => printer.error(other),
    }
}

/// Logs go to stderr: what `KOS_LOG` asks for; else with `-v` every script kos runs on a
/// node (never the files it uploads: those travel on stdin and are not logged).
fn init_logs(level: Level) {
    let filter = match std::env::var(env_vars::KOS_LOG) {
        Ok(f) => tracing_subscriber::EnvFilter::new(f),
        Err(_) if level == Level::Verbose => tracing_subscriber::EnvFilter::new("kos_node=debug"),
        Err(_) => return,
    };
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .try_init();
}
