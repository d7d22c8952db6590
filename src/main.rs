//! Flint: a lightweight KVM hypervisor that runs EC2-style instances.

mod cli;
mod contract;
mod control;
mod vmm;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
