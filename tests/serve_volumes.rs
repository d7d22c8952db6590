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
//! detach is under way. No host networking (`--bridge none`).
//!
//! boto3 comes from the venv scripts/install-deps makes
//! (/var/cache/flint/venv or $FLINT_VENV). Without it the test fails
//! rather than skipping.

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    let venv = std::env::var_os("FLINT_VENV")
        .map_or_else(|| PathBuf::from("/var/cache/flint/venv"), PathBuf::from);
    let python = venv.join("bin/python3");
    let ok = Command::new(&python)
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} cannot import boto3: run scripts/install-deps",
        python.display()
    );
    python
}

fn scenario(name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("flint-vol-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(python())
        .arg(root.join("tests/serve_volumes/scenarios.py"))
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
fn flint_cli_volume_verbs_over_the_unix_socket() {
    scenario("cli_verbs");
}

#[test]
fn sigkill_of_the_daemon_while_detaching_is_reconciled() {
    scenario("restart");
}
