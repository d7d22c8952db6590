//! Instance actions (RunInstances, DescribeInstances, Start/Stop/Reboot/
//! TerminateInstances, DescribeInstanceStatus, GetConsoleOutput,
//! ModifyInstanceMetadataOptions, ModifyInstanceAttribute, DescribeVolumes).
//!
//! TODO(supervisor): owned by the VM-supervisor work (src/control/supervisor/).
//! Two hooks, both called by `flint serve`:
//!
//! - [`start`] — once, before the daemon accepts connections: build the
//!   supervisor (bridge set-up, re-adoption of running VMs, reconciliation)
//!   and install it with `ctx.supervisor.set(Arc::new(sup))`; handlers get
//!   it back with `call.ctx.supervisor::<Supervisor>()`.
//! - [`register`] — add the actions to the registry (see `api/mod.rs` for
//!   `ActionSpec`, `DryRun`, `Call`, and the helpers in `filters`, `paging`
//!   and `instance_types::instance_type`).
//!
//! [`stop`] runs when the daemon exits (SIGTERM/SIGINT); it must not stop
//! the instances, which outlive the daemon.

use super::{Context, Registry};

/// Starts whatever the instance actions need; an error aborts `flint serve`.
pub fn start(_ctx: &Context) -> Result<(), String> {
    Ok(())
}

/// Registers the instance actions.
pub fn register(_registry: &mut Registry) {}

/// The daemon is exiting (after the listeners closed).
pub fn stop(_ctx: &Context) {}
