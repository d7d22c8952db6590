//! `flint serve` driving the instance lifecycle with real boto3, against
//! the stand-in VMM (tests/support/standin_vmm.py: the per-VM control
//! socket and flint vmm's exit codes, no KVM). Each test runs one scenario
//! of tests/serve_instances/scenarios.py on its own data dir and daemon:
//! lifecycle with waiters, ClientToken/DryRun/bad input/filters/pages,
//! concurrent conflicting requests, guest power-off and VMM crash, and
//! SIGKILL of the daemon with re-adoption; the `flint` CLI's --query,
//! --output and --help, compared with the aws CLI's output. No host networking
//! (`--bridge none`).
//!
//! boto3 comes from the venv scripts/install-deps makes
//! (/var/cache/flint/venv or $FLINT_VENV). Without it the test fails
//! rather than skipping.

mod support;

fn scenario(name: &str) {
    support::python_scenario(
        &support::venv_python(),
        "tests/serve_instances/scenarios.py",
        "flint-serve",
        name,
    );
}

#[test]
fn lifecycle_with_waiters_stop_start_and_terminate() {
    scenario("lifecycle");
}

#[test]
fn client_tokens_dry_run_bad_input_filters_and_pages() {
    scenario("requests");
}

#[test]
fn concurrent_conflicting_requests_stay_consistent() {
    scenario("concurrency");
}

#[test]
fn guest_power_off_and_vmm_crash() {
    scenario("guest_events");
}

#[test]
fn the_cli_prints_as_the_aws_cli_with_query_and_output() {
    scenario("cli_output");
}

#[test]
fn the_data_dir_is_private_to_root() {
    scenario("private_data");
}

#[test]
fn admission_refuses_what_the_host_cannot_hold() {
    scenario("capacity");
}

#[test]
fn a_full_data_dir_is_a_clear_error_and_the_vm_keeps_running() {
    scenario("full_disk");
}

#[test]
fn sigkill_of_the_daemon_leaves_vms_running_and_they_are_readopted() {
    scenario("restart");
}
