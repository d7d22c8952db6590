//! The `flint` command line: parses arguments and dispatches to the parts
//! that do the work. Every failure ends as one clear line on stderr.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::control::server::{self, ServeArgs};
use crate::vmm::config::VmmArgs;
use crate::vmm::{kvm_check, lifecycle};

#[derive(Parser)]
#[command(name = "flint", version, about = "Run EC2-style instances under KVM")]
struct Cli {
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
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::KvmCheck => match kvm_check::run() {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("flint kvm-check: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Serve(args) => server::run(&args),
        Command::Vmm(args) => match args.to_config() {
            Ok(config) => lifecycle::run(config),
            Err(e) => {
                eprintln!("flint vmm: {e}");
                ExitCode::from(lifecycle::EXIT_CONFIG)
            }
        },
    }
}
