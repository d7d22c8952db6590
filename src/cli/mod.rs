//! The `flint` command line: parses arguments and dispatches to the parts
//! that do the work. Every failure ends as one clear line on stderr.

mod args;
mod client;
mod help;
mod logging;
mod metrics;
mod model;
mod output;
mod shorthand;
#[cfg(test)]
mod tests;
mod xml_json;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing::error;

use flint_control::server::{self, ServeArgs};
use flint_vmm::config::VmmArgs;
use flint_vmm::{kvm_check, lifecycle};
use logging::{LogFormat, LogLevel};

#[derive(Parser)]
#[command(name = "flint", version, about = "Run EC2-style instances under KVM")]
#[command(allow_external_subcommands = true)]
struct Cli {
    /// How log lines on stderr look: `human` (the message alone) or `json`
    /// (one object per line, with the level and fields such as instance_id).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// The least severe log level written.
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Info)]
    log_level: LogLevel,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that /dev/kvm works by running a tiny real-mode guest.
    KvmCheck,
    /// Run one virtual machine (one instance) in this process.
    Vmm(Box<VmmArgs>),
    /// Run the host daemon: the EC2 API on a Unix socket (and loopback TCP).
    Serve(Box<ServeArgs>),
    /// Any `aws ec2` verb (describe-instances, run-instances, …) with the
    /// aws CLI's options, sent to the daemon's socket (`--socket PATH`,
    /// default /run/flint/flint.sock, or `--endpoint-url`).
    #[command(external_subcommand)]
    Ec2(Vec<String>),
}

pub fn run() -> ExitCode {
    // The EC2 verbs are an external subcommand, which clap does not list:
    // `flint --help` lists them after its own.
    let mut command = Cli::command();
    if let Some(m) = model::model() {
        command = command.after_help(help::overview(m));
    }
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // No timestamps from `flint vmm`: its stderr may be the console.
    let timestamps = !matches!(cli.command, Command::Vmm(_));
    logging::install(cli.log_format, cli.log_level, timestamps);
    match cli.command {
        Command::KvmCheck => match kvm_check::run() {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                error!("flint kvm-check: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Serve(mut args) => {
            args.log_json = cli.log_format == LogFormat::Json;
            server::run(&args)
        }
        Command::Ec2(argv) => match argv.split_first() {
            // Flint's own verb beside the EC2 ones.
            Some((verb, rest)) if verb == metrics::VERB => metrics::run(rest),
            Some((verb, rest)) => client::run(verb, rest),
            None => ExitCode::from(client::EXIT_USAGE),
        },
        Command::Vmm(args) => match args.to_config() {
            Ok(config) => lifecycle::run(config, args.jail_request()),
            Err(e) => {
                error!("flint vmm: {e}");
                ExitCode::from(flint_contract::exit::EXIT_CONFIG)
            }
        },
    }
}
