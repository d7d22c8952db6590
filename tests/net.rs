//! Networking end to end: the debian-12 AMI under Flint with a TAP in the
//! emulated KVM host, the VMM's DHCP and metadata service, cloud-init's
//! Ec2 datasource, SSH with the metadata's key (tests/scenarios/vmm-net.sh).

mod support;

use support::Scenario;

#[test]
fn cloud_init_configures_the_ami_from_dhcp_and_imdsv2() {
    let outcome = Scenario::new("vmm-net")
        .disk("ami", &support::image_dir("debian-12").join("disk.raw"))
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
