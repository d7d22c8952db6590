//! The test bed proves itself: the emulated KVM host runs KVM guests, and
//! the runner turns every kind of breakage into a failure with the log.

mod support;

use support::Scenario;

#[test]
fn emulated_host_runs_a_tiny_kvm_guest() {
    Scenario::new("kvm-selftest")
        .timeout(300)
        .run()
        .assert_pass()
        .assert_result("kvm-device")
        .assert_result("kvm-check");
}

#[test]
fn qemu_kvm_boots_the_test_guest_to_its_ready_line() {
    let outcome = Scenario::new("qemu-baseline").timeout(600).run();
    outcome.assert_pass();
    for machine in ["q35", "microvm"] {
        outcome
            .assert_result(&format!("qemu-{machine}-ready"))
            .assert_result(&format!("qemu-{machine}-poweroff"))
            .assert_result(&format!("qemu-{machine}-guest-checks"));
        let ms = outcome.metric(&format!("qemu-{machine}-boot-to-ready"));
        assert!(ms.is_some_and(|ms| ms > 0.0), "no boot time for {machine}");
    }
}

/// QEMU as the reference that the test bed boots real AMIs: a whole Debian
/// boot (over 10 minutes of CI time) that tests/ami.rs repeats under Flint
/// with more checks. `cargo test --test testbed -- --ignored` runs it.
#[test]
#[ignore = "a whole AMI boot under QEMU; tests/ami.rs boots the same AMI under Flint"]
fn qemu_kvm_boots_the_debian12_ami_to_login() {
    let outcome = Scenario::new("qemu-ami-baseline")
        .disk(
            "debian12",
            &support::image_dir("debian-12").join("disk.raw"),
        )
        .timeout(1800)
        .run();
    outcome.assert_pass();
    for stage in ["firmware", "grub", "kernel", "userspace", "login"] {
        outcome.assert_result(&format!("ami-{stage}"));
    }
}

/// A failing run must say so, name its log, and show the log's tail.
fn assert_reported_failure(outcome: &support::Outcome, reason: &str) {
    assert!(
        !outcome.passed,
        "a broken scenario passed: {}",
        outcome.report
    );
    assert!(
        outcome.report.contains(reason),
        "wrong reason, wanted {reason:?}:\n{}",
        outcome.report
    );
    assert!(outcome.report.contains("----- last 60 lines of"));
    assert!(
        outcome
            .report
            .contains(&outcome.log_path.display().to_string())
    );
    assert!(outcome.log_path.exists());
}

#[test]
fn a_guest_that_never_gets_ready_fails_the_scenario() {
    let outcome = Scenario::new("selftest-no-ready")
        .no_retry()
        .timeout(120)
        .run();
    assert_reported_failure(&outcome, "scenario exited with 1");
    assert!(
        outcome
            .log
            .contains("FLINT-RESULT name=guest-ready status=fail")
    );
}

#[test]
fn an_emulated_host_that_dies_early_fails_the_run() {
    let outcome = Scenario::new("selftest-host-dies")
        .no_retry()
        .timeout(120)
        .run();
    assert_reported_failure(&outcome, "without a scenario result");
}

#[test]
fn a_hung_host_is_killed_at_the_timeout() {
    let outcome = Scenario::new("selftest-host-hangs")
        .no_retry()
        .timeout(40)
        .run();
    assert_reported_failure(&outcome, "timed out");
    // The runner promises to give up within --timeout + 30 s (counted from
    // its start: the wait for a free slot before it is not its own).
    assert!(
        outcome.runner_time.as_secs() < 40 + 30 + 60,
        "runner overran: {:?}",
        outcome.runner_time
    );
}
