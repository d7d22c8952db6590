//! AMI boot end to end: the debian-12 AMI under Flint through SeaBIOS and
//! its own GRUB, in the emulated KVM host (see tests/scenarios/vmm-ami.sh).

mod support;

use support::Scenario;

#[test]
fn ami_boots_through_seabios_and_grub_with_the_ec2_identity() {
    let image = support::image_dir("debian-12-test").join("disk.raw");
    let outcome = Scenario::new("vmm-ami")
        .disk("ami1", &image)
        .disk("ami2", &image)
        .timeout(2700)
        .run();
    outcome.assert_pass();
    for stage in ["firmware", "grub", "kernel", "userspace", "login"] {
        outcome.assert_result(&format!("ami-{stage}"));
    }
    for vm in ["ami1", "ami2"] {
        for check in [
            "sys-vendor",
            "bios-vendor",
            "product-name",
            "asset-tag",
            "uuid-ec2",
            "detect-virt",
            "vcpus",
            "memory",
            "ds-identify-ec2",
            "acpi-tables",
            "no-failed-units",
        ] {
            outcome.assert_result(&format!("{vm}-{check}"));
        }
    }
    for name in [
        "ami1-rebooted",
        "ami1-login-after-reboot",
        "ami1-poweroff-exit-0",
        "ami2-api-shutdown-accepted",
        "ami2-graceful-shutdown",
        "ami2-clean-poweroff",
        "blank-disk-exit-5",
        "blank-disk-no-bootable-device",
        "blank-disk-reason",
        "truncated-image-exit-5",
        "truncated-image-reports",
        "empty-image-exit-1",
        "empty-image-reason",
    ] {
        outcome.assert_result(name);
    }
}
