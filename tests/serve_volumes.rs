//! `flint serve`'s EBS volume API driven by real boto3 against the
//! stand-in VMM (tests/support/standin_vmm.py, which speaks the per-VM
//! `/vm/disks` contract: hot-plug, eject with a simulated guest that can
//! hang, force, resize, limits, metrics). Each test runs one scenario of
//! tests/serve_volumes/scenarios.py on its own data dir and daemon:
//! create → volume_available → attach to a running instance →
//! volume_in_use → detach; attach to a stopped instance and start;
//! a hung guest's detach until Force; snapshots and volumes made from
//! them; ModifyVolume while attached; errors, ClientToken, DryRun,
//! filters, pages, DeleteOnTermination; SIGKILL of the daemon while a
//! detach is under way; RunInstances' data-volume mappings (made at
//! launch, in vm.json, deleted at termination by DeleteOnTermination)
//! and DescribeInstanceAttribute. No host networking (`--bridge none`).
//!
//! boto3 comes from the venv scripts/install-deps makes
//! (/var/cache/flint/venv or $FLINT_VENV). Without it the test fails
//! rather than skipping.

mod support;

fn scenario(name: &str) {
    support::python_scenario(
        &support::venv_importing(&["boto3"]).join("bin/python3"),
        "tests/serve_volumes/scenarios.py",
        "flint-vol",
        name,
    );
}

#[test]
fn hot_attach_detach_and_attach_to_a_stopped_instance() {
    scenario("hotplug");
}

#[test]
fn snapshots_volumes_from_snapshots_and_modify_volume() {
    scenario("snapshots");
}

#[test]
fn bad_input_tokens_dry_run_filters_pages_and_delete_on_termination() {
    scenario("requests");
}

#[test]
fn run_instances_makes_attaches_and_deletes_mapped_data_volumes() {
    scenario("launch_mappings");
}

#[test]
fn flint_cli_volume_verbs_over_the_unix_socket() {
    scenario("cli_verbs");
}

#[test]
fn sigkill_of_the_daemon_while_detaching_is_reconciled() {
    scenario("restart");
}
