//! Exit codes of `flint vmm`: how the VM ended, which the daemon reads to
//! move the instance through EC2's states. Before any non-zero exit the
//! VMM writes one line, `flint vmm: REASON`, on stderr.

/// The guest powered off (or a graceful stop completed).
pub const EXIT_POWEROFF: u8 = 0;
/// The config was invalid or the VM could not be built.
pub const EXIT_CONFIG: u8 = 1;
/// The VMM failed while the guest ran (KVM error, a broken vCPU).
pub const EXIT_FAILURE: u8 = 2;
/// The guest rebooted and `on_reboot` is `exit`.
pub const EXIT_REBOOT: u8 = 3;
/// Stopped without the guest's cooperation (hard stop, shutdown timeout).
pub const EXIT_HARD_STOP: u8 = 4;
/// A firmware boot kept resetting before any OS started (no bootable disk).
pub const EXIT_NO_OS: u8 = 5;
