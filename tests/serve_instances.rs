//! `flint serve` driving the instance lifecycle with real boto3, against
//! the stand-in VMM (tests/support/standin_vmm.py: the per-VM control
//! socket and flint vmm's exit codes, no KVM). Each test runs one scenario
//! of tests/serve_instances/scenarios.py on its own data dir and daemon:
//! lifecycle with waiters, ClientToken/DryRun/bad input/filters/pages,
//! concurrent conflicting requests, guest power-off and VMM crash, and
//! SIGKILL of the daemon with re-adoption. No host networking
//! (`--bridge none`).
//!
//! boto3 comes from the venv scripts/install-deps makes
//! (/var/cache/flint/venv or $FLINT_VENV). Without it the test fails
//! rather than skipping.

mod support;

use std::path::Path;
use std::process::Command;

fn scenario(name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("flint-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(support::venv_python())
        .arg(root.join("tests/serve_instances/scenarios.py"))
        .arg(name)
        .arg(&dir)
        .env("FLINT_BIN", env!("CARGO_BIN_EXE_flint"))
        .env("FLINT_STANDIN", root.join("tests/support/standin_vmm.py"))
        .output()
        .expect("run the scenario");
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        panic!(
            "scenario {name} failed ({})\n--- output\n{stdout}\n--- errors\n{stderr}\n--- flint serve\n{log}",
            out.status
        );
    }
    assert!(
        stdout.contains(&format!("scenario {name}: passed")),
        "{stdout}"
    );
    assert!(!log.contains("panicked"), "flint serve panicked:\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
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
fn sigkill_of_the_daemon_leaves_vms_running_and_they_are_readopted() {
    scenario("restart");
}
