//! Networking end to end: the debian-12 AMI under Flint with a TAP in the
//! emulated KVM host, the VMM's DHCP and metadata service, cloud-init's
//! Ec2 datasource, SSH with the metadata's key (tests/scenarios/vmm-net.sh).

mod support;

use support::Scenario;

fn debian12_image() -> std::path::PathBuf {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(repo.join("images/build"))
        .arg("debian-12")
        .output()
        .expect("run images/build");
    assert!(
        out.status.success(),
        "images/build debian-12 failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("disk.raw")
}

#[test]
fn cloud_init_configures_the_ami_from_dhcp_and_imdsv2() {
    let outcome = Scenario::new("vmm-net")
        .disk("ami", &debian12_image())
        .timeout(1500)
        .run();
    outcome.assert_pass();
    for name in [
        "tap-created",
        "net-user-data-ran",
        "net-user",
        "net-hostname",
        "net-cloud_id",
        "net-address",
        "net-ssh_key",
        "net-token_len",
        "net-v2_instance_id",
        "net-v1_status",
        "net-bad_token_status",
        "net-no_ttl_status",
        "net-big_ttl_status",
        "net-xff_status",
        "net-post_status",
        "net-missing_status",
        "net-user_data_status",
        "net-tag_name",
        "net-ds-ec2",
        "net-api-update",
        "net-v1_after_required",
        "net-v2_after_required",
        "net-tag_after_update",
        "net-ssh-with-key",
        "net-ping-gateway-from-host",
        "net-graceful-shutdown",
    ] {
        outcome.assert_result(name);
    }
}
