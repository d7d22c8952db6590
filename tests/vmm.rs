//! `flint vmm` end to end: real Debian kernel + test initramfs under Flint in
//! the emulated KVM host (see tests/scenarios/vmm-direct-boot.sh).

mod support;

use support::Scenario;

#[test]
fn direct_boot_disks_reboot_shutdown_and_signals() {
    let outcome = Scenario::new("vmm-direct-boot")
        .guest_script("vmm-guest.sh")
        .timeout(900)
        .run();
    outcome.assert_pass();
    for name in [
        "full-ready",
        "full-poweroff-exit-0",
        "full-rebooted",
        "full-guest-checks",
        "host-sees-guest-write",
        "host-sees-discard",
        "ro-disk-unchanged",
        "pvh-ready",
        "api-status",
        "api-graceful-shutdown",
        "pvh-power-button-seen",
        "pvh-guest-checks",
        "sigterm-graceful",
        "term-guest-checks",
        "synced-data-survives-sigkill",
        "kill-guest-checks",
        "api-hard-stop-exit-4",
        "bad-kernel-path",
        "not-a-kernel",
        "missing-disk",
    ] {
        outcome.assert_result(name);
    }
}
