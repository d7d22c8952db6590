//! Flint: a lightweight KVM hypervisor that runs EC2-style instances.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
