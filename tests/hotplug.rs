//! Disk hot-plug end to end: the Debian cloud kernel's built-in acpiphp in
//! a test guest under `flint vmm`, driven over the per-VM control socket in
//! the emulated KVM host (see tests/scenarios/vmm-hotplug.sh).

mod support;

use support::Scenario;

#[test]
fn attach_detach_resize_and_forced_detach() {
    let outcome = Scenario::new("vmm-hotplug")
        .guest_script("vmm-hotplug-guest.sh")
        .timeout(900)
        .run();
    outcome.assert_pass();
    for name in [
        "hp-ready",
        "boot-disk-listed",
        "attach-hot1",
        "attach-size",
        "hot1-seen-by-guest",
        "attach-duplicate-409",
        "attach-missing-file-422",
        "attach-bad-json-400",
        "get-unknown-404",
        "detach-hot1-202",
        "detach-state-detaching",
        "detach-completed",
        "hot1-gone-in-guest",
        "host-sees-hot-write",
        "attach-hot2",
        "ejected-slot-reused",
        "resize-size",
        "resize-seen-by-guest",
        "limits-returned",
        "force-detach-200",
        "force-detach-gone-404",
        "forced-gone-in-guest",
        "forced-slot-reused",
        "hot3-seen-by-guest",
        "graceful-shutdown",
        "hp-guest-checks",
    ] {
        outcome.assert_result(name);
    }
}
