//! `flint serve` end to end with real VMs in the emulated KVM host
//! (tests/scenarios/serve.sh), driven by real clients:
//!
//! Once per AMI: debian-12 and debian-13.
//!
//! - from this machine, through a port forwarded into the emulated host
//!   (tests/serve_e2e/clients.py): boto3's create_instances / waiters /
//!   stop / start / terminate with user data reaching the guest, EBS
//!   volumes attached at every phase of the guest's life (firmware, GRUB,
//!   kernel before and after acpiphp, userspace, booted, across a reboot,
//!   while stopping) and detached with the volume_available waiter, and the
//!   aws CLI from PyPI and Debian's awscli 2.9.19 with --endpoint-url
//!   (run / describe / get-console-output / terminate / wait);
//! - inside the emulated host, with curl (it has no Python): RegisterImage
//!   of the AMI, ImportKeyPair, RunInstances with user data, the console
//!   and GetConsoleOutput, SSH with the key, EC2's identity as the guest
//!   sees it (SMBIOS, systemd-detect-virt, cloud-init's platform), an EBS
//!   volume hot-attached (mkfs, mount, write), detached, snapshotted, and a
//!   volume from the snapshot attached with the same data, the first volume
//!   read back on a second instance, data across
//!   stop/start, SIGKILL of flint serve and re-adoption, stop after
//!   restart, terminate deleting the root volume and the TAP (debian-12
//!   only: see `in_host`).
//!
//! Guests boot one at a time in each emulated host (the clients' instance
//! first, then the scenario's): two nested guests sharing the host's one
//! guest CPU take far longer than the two in turn.

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

/// One run: the scenario in the emulated host and, once it says the
/// daemon is ready, the clients here. Returns the scenario's outcome and
/// the clients' report (None when they never got to run).
fn run_once(ami: &str, suffix: &str) -> (Outcome, Option<(bool, String)>) {
    let port = free_port();
    let image = support::image_dir(ami).join("disk.raw");
    let scenario = Scenario::new("serve")
        .disk("ami", &image)
        .env("FLINT_AMI_NAME", ami)
        .env("FLINT_SERVE_INHOST", in_host(ami))
        .forward(port, GUEST_PORT)
        .timeout(4200);
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
        let out = Command::new(support::venv_python())
            .arg(repo.join("tests/serve_e2e/clients.py"))
            .env("FLINT_ENDPOINT", format!("http://127.0.0.1:{port}/"))
            .env("FLINT_IMAGE_ID", image_id)
            .env("FLINT_PYPI_AWS", support::venv().join("bin/aws"))
            .env(
                "FLINT_CLI_CHECKS",
                if ami == "debian-12" { "1" } else { "0" },
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

/// The in-host steps (curl: SSH, volumes with data, snapshots, a second
/// instance, stop/start, daemon SIGKILL and re-adoption) cost three more
/// guest boots and test the daemon more than the AMI: on the default AMI
/// only. On Debian 13 the clients' instance covers its boot, DHCP + IMDS,
/// user data, identity, volumes at every phase, reboot and stop/start.
fn in_host(ami: &str) -> &'static str {
    if ami == "debian-12" { "1" } else { "0" }
}

#[test]
fn serve_runs_debian_12_instances_for_real_clients() {
    serve_runs_instances_for_real_clients("debian-12");
}

#[test]
fn serve_runs_debian_13_instances_for_real_clients() {
    serve_runs_instances_for_real_clients("debian-13");
}

fn serve_runs_instances_for_real_clients(ami: &str) {
    let mut attempt = 0;
    let (outcome, clients) = loop {
        attempt += 1;
        let suffix = if attempt == 1 {
            String::new()
        } else {
            format!("-retry{}", attempt - 1)
        };
        let (outcome, clients) = run_once(ami, &suffix);
        if outcome.passed || attempt == ATTEMPTS || !outcome.emulated_host_crashed() {
            break (outcome, clients);
        }
        eprintln!(
            "\n!!! serve {ami}: the emulated host's kernel died (log {}); running it again\n",
            outcome.log_path.display()
        );
    };
    let (clients_ok, report) = clients.expect("the scenario never reported clients-ready");
    assert!(clients_ok, "real clients failed:\n{report}");
    for check in [
        "boto3-create-instances",
        "boto3-running",
        "boto3-user-data-reaches-guest",
        "boto3-guest-sees-ec2-identity",
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
        "phase-rebooting-detach-completes",
        "phase-rebooting-attach-seen-after-reboot",
        "phase-after-reboot-detach-completes",
        "phase-stopping-attach-refused",
        "phase-stopping-detach-completes",
        "phase-firmware-force-detach",
        "phases-volumes-deleted",
        "boto3-stopped",
        "boto3-restart-keeps-private-ip",
        "boto3-terminated",
        "boto3-root-volume-deleted",
    ] {
        assert!(
            report.lines().any(|l| l == format!("PASS {check}")),
            "clients did not pass {check}:\n{report}"
        );
    }
    // The CLIs' own checks run on the default AMI only (clients.py).
    if ami == "debian-12" {
        for check in [
            "aws-pypi-get-console-output",
            "aws-pypi-terminated",
            "aws-debian-get-console-output",
            "aws-debian-terminated",
        ] {
            assert!(
                report.lines().any(|l| l == format!("PASS {check}")),
                "clients did not pass {check}:\n{report}"
            );
        }
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
    if in_host(ami) != "1" {
        return;
    }
    for name in [
        "run-instances",
        "running",
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
        "stop",
        "stopped",
        "volume-kept",
        "started",
        "data-survives-stop-start",
        "vm-survives-daemon-sigkill",
        "serve-restarted",
        "readopted",
        "describe-after-restart",
        "vmm-jailed-after-readoption",
        "stop-after-restart",
        "terminate",
        "terminated",
        "root-volume-deleted",
        "tap-removed",
        "run-second-instance",
        "vmm-jailed",
        "second-vmm-jailed",
        "jail-uids-differ",
        "second-instance-stopped-early",
        "volume-attached-to-second-instance",
        "volume-read-on-second-instance",
        "volume-detached-from-second-instance",
        "second-instance-terminated",
    ] {
        outcome.assert_result(name);
    }
}
