//! Disk hot-plug end to end: the Debian cloud kernel's built-in acpiphp in
//! a test guest under `flint vmm`, driven over the per-VM control socket in
//! the emulated KVM host (see tests/scenarios/vmm-hotplug.sh): attach,
//! detach, resize, forced detach, 20 cycles without leaks, EBS limits
//! measured by fio on an O_DIRECT volume, a mounted volume's detach held
//! by the guest, and the volume read back on a second VM.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{Scenario, image_dir};

/// A small ext4 filesystem for the "mounted volume" steps, made here (the
/// emulated host has no mkfs).
fn busy_filesystem() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hotplug");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join("busy.ext4");
    let _ = std::fs::remove_file(&path);
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "flint-busy"])
        .arg(&path)
        .arg("16M")
        .output()
        .expect("run mkfs.ext4");
    assert!(
        out.status.success(),
        "mkfs.ext4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[test]
fn attach_detach_resize_and_forced_detach() {
    let tools = image_dir("guest-tools").join("tools.ext4");
    let outcome = Scenario::new("vmm-hotplug")
        .guest_script("vmm-hotplug-guest.sh")
        .disk("guesttools", &tools)
        .disk("busyfs", &busy_filesystem())
        .timeout(1200)
        .run();
    outcome.assert_pass();
    for name in [
        "early-attach",
        "early-detach-202",
        "early-detach-says-why",
        "hp-ready",
        "early-detach-completes",
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
        "loop-20-cycles",
        "loop-no-fd-leak",
        "loop-no-gsi-leak",
        "loop-no-slot-leak",
        "loop-no-memory-leak",
        "attach-iops-direct",
        "attach-direct-listed",
        "fio-within-10pct-of-limit",
        "throttle-counted",
        "limits-lifted",
        "fio-unthrottled-above-limit",
        "attach-busy",
        "busy-detach-202",
        "busy-stays-detaching",
        "busy-detached-once-guest-let-go",
        "busy-guest-data-in-file",
        "graceful-shutdown",
        "hp-guest-checks",
        "second-vm-attach",
        "volume-read-back-on-second-vm",
        "second-vm-exit",
    ] {
        outcome.assert_result(name);
    }
}
