//! `flint serve` end to end with real VMs in the emulated KVM host
//! (tests/scenarios/serve.sh), in halves that run side by side, each in
//! an emulated host of its own:
//!
//! - real clients, once per AMI (debian-12 and debian-13), from this
//!   machine through a port forwarded into the emulated host
//!   (tests/serve_e2e/clients.py): boto3's create_instances / waiters /
//!   terminate with user data reaching the guest, EC2's identity in the
//!   guest, EBS volumes attached at every phase of the guest's boot
//!   (firmware, GRUB, kernel before and after acpiphp, userspace, booted)
//!   and detached with the volume_available waiter; on debian-12 also a
//!   reboot and a stop/start with volumes attached across them, and the
//!   aws CLI from PyPI and Debian's awscli 2.9.19 with --endpoint-url
//!   (run / describe / get-console-output / terminate / wait);
//! - in the emulated host, with curl (it has no Python), on debian-12:
//!   RegisterImage of the AMI, ImportKeyPair, RunInstances with user data,
//!   the console and GetConsoleOutput, SSH with the key, EC2's identity as
//!   the guest sees it, an EBS volume hot-attached (mkfs, mount, write),
//!   detached, snapshotted, and a volume from the snapshot attached with
//!   the same data, two jailed VMMs side by side, SIGKILL of flint serve
//!   and re-adoption, a graceful stop of the re-adopted VM, data across
//!   stop/start, terminate deleting the root volume and the TAP.
//!
//! Guests boot one at a time in each emulated host: two nested guests
//! sharing the host's one guest CPU take far longer than the two in turn.

mod support;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Outcome, Scenario};

/// The port the scenario's relay listens on inside the emulated host.
const GUEST_PORT: u16 = 8774;
/// Runs of the whole scenario when the emulated host's kernel dies.
const ATTEMPTS: usize = 2;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Which half of serve.sh runs.
#[derive(Clone, Copy, PartialEq)]
enum Half {
    /// Real clients on this machine; `full`: the boto3 instance also
    /// reboots and stops/starts, and the aws CLIs run.
    Clients { full: bool },
    /// The in-host steps (curl, SSH, jails, re-adoption).
    InHost,
}

/// One run: the scenario in the emulated host and, for the clients' half,
/// once it says the daemon is ready, the clients here. Returns the
/// scenario's outcome and the clients' report (None when they never got
/// to run, or for the in-host half).
fn run_once(ami: &str, half: Half, suffix: &str) -> (Outcome, Option<(bool, String)>) {
    let mut scenario = Scenario::new("serve")
        .disk("ami", &support::image_dir(ami).join("disk.raw"))
        .env("FLINT_AMI_NAME", ami);
    let Half::Clients { full } = half else {
        scenario = scenario.env("FLINT_SERVE_MODE", "inhost").timeout(3000);
        return (scenario.spawn(suffix).finish(), None);
    };
    let port = free_port();
    scenario = scenario
        .env("FLINT_SERVE_MODE", "clients")
        .forward(port, GUEST_PORT)
        .timeout(3600);
    let mut running = scenario.spawn(suffix);
    let deadline = Instant::now() + Duration::from_secs(1200);
    let image_id = loop {
        let log = running.log();
        if let Some(line) = log
            .lines()
            .find(|l| l.starts_with("FLINT-SERVE clients-ready"))
        {
            break line
                .split("image=")
                .nth(1)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty());
        }
        if running.ended() || Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let clients = image_id.map(|image_id| {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let flag = |on: bool| if on { "1" } else { "0" };
        let out = Command::new(support::venv_python())
            .arg(repo.join("tests/serve_e2e/clients.py"))
            .env("FLINT_ENDPOINT", format!("http://127.0.0.1:{port}/"))
            .env("FLINT_IMAGE_ID", image_id)
            .env("FLINT_PYPI_AWS", support::venv().join("bin/aws"))
            .env("FLINT_CLI_CHECKS", flag(full))
            .env(
                "FLINT_CLIENTS_LIFECYCLE",
                if full { "full" } else { "boot" },
            )
            .output()
            .expect("run tests/serve_e2e/clients.py");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("clients:\n{report}");
        (out.status.success(), report)
    });
    (running.finish(), clients)
}

#[test]
fn serve_debian_12_clients_boot_reboot_stop_start_volumes_and_clis() {
    let (outcome, report) = serve("debian-12", Half::Clients { full: true });
    assert_clients(&outcome, &report, true);
}

#[test]
fn serve_debian_12_in_host_ssh_volumes_jails_readoption() {
    let (outcome, _) = serve("debian-12", Half::InHost);
    outcome.assert_pass();
    for name in [
        "serve-listening",
        "register-image",
        "import-key-pair",
        "run-instances",
        "running",
        "run-second-instance",
        "vmm-jailed",
        "second-vmm-jailed",
        "jail-uids-differ",
        "second-instance-stopped-early",
        "second-instance-terminated",
        "user-data-console",
        "get-console-output",
        "ssh-with-key",
        "guest-sees-ec2-identity",
        "volume-created",
        "volume-attached",
        "volume-hot-attached-written",
        "volume-detached",
        "volume-gone-in-guest",
        "snapshot-completed",
        "volume-from-snapshot",
        "snapshot-data-in-guest",
        "volume-force-detached",
        "volume-deleted",
        "vm-survives-daemon-sigkill",
        "serve-restarted",
        "readopted",
        "describe-after-restart",
        "vmm-jailed-after-readoption",
        "stop",
        "stopped",
        "volume-kept",
        "started",
        "data-survives-stop-start",
        "terminate",
        "terminated",
        "root-volume-deleted",
        "tap-removed",
    ] {
        outcome.assert_result(name);
    }
}

#[test]
fn serve_debian_13_clients_boot_identity_and_volumes() {
    let (outcome, report) = serve("debian-13", Half::Clients { full: false });
    assert_clients(&outcome, &report, false);
}

/// Runs one half, again when the emulated host's kernel died (never for
/// a plain failure: a second run of a half costs half an hour).
fn serve(ami: &str, half: Half) -> (Outcome, String) {
    let mut attempt = 0;
    let (outcome, clients) = loop {
        attempt += 1;
        let suffix = if attempt == 1 {
            String::new()
        } else {
            format!("-retry{}", attempt - 1)
        };
        let (outcome, clients) = run_once(ami, half, &suffix);
        if outcome.passed || attempt == ATTEMPTS || !outcome.emulated_host_crashed() {
            break (outcome, clients);
        }
        eprintln!(
            "\n!!! serve {ami}: the emulated host's kernel died (log {}); running it again\n",
            outcome.log_path.display()
        );
    };
    if half == Half::InHost {
        return (outcome, String::new());
    }
    let (clients_ok, report) = clients.expect("the scenario never reported clients-ready");
    assert!(clients_ok, "real clients failed:\n{report}");
    (outcome, report)
}

fn assert_clients(outcome: &Outcome, report: &str, full: bool) {
    let mut checks = vec![
        "boto3-create-instances",
        "boto3-running",
        "boto3-user-data-reaches-guest",
        "boto3-guest-sees-ec2-identity",
        "boto3-mapped-volume-listed",
        "boto3-mapped-volume-in-guest",
        "boto3-instance-attribute",
        // Issue 23: volumes attached at every phase detach.
        "phases-cover-boot",
        "phase-firmware-before-kernel",
        "phases-guest-sees-every-volume",
        "phase-firmware-detach-completes",
        "phase-bootloader-detach-completes",
        "phase-kernel-detach-completes",
        "phase-acpiphp-detach-completes",
        "phase-userspace-detach-completes",
        "phase-booted-detach-completes",
        "phases-guest-let-go-of-every-volume",
        "phases-volumes-deleted",
        "boto3-terminated",
        "boto3-root-volume-deleted",
    ];
    if full {
        checks.extend([
            "phase-rebooting-detach-completes",
            "phase-rebooting-attach-seen-after-reboot",
            "phase-after-reboot-detach-completes",
            "phase-stopping-attach-refused",
            "phase-stopping-detach-completes",
            "phase-firmware-force-detach",
            "boto3-stopped",
            "boto3-restart-keeps-private-ip",
            "aws-pypi-get-console-output",
            "aws-pypi-terminated",
            "aws-debian-get-console-output",
            "aws-debian-terminated",
        ]);
    }
    for check in checks {
        assert!(
            report.lines().any(|l| l == format!("PASS {check}")),
            "clients did not pass {check}:\n{report}"
        );
    }
    outcome.assert_pass();
    for name in [
        "serve-listening",
        "register-image",
        "import-key-pair",
        "clients-done",
        "clients-left-nothing-running",
    ] {
        outcome.assert_result(name);
    }
}
