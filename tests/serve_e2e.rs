//! `flint serve` end to end with a real VM in the emulated KVM host
//! (tests/scenarios/serve.sh): the debian-12-test AMI registered through
//! the EC2 API, an instance with a key pair and user data, SSH, data
//! surviving stop/start, SIGKILL of the daemon and re-adoption, terminate.
//! The EC2 calls are made with curl (the emulated host has no Python).

mod support;

use support::Scenario;

#[test]
#[ignore = "not yet run in the emulated KVM host: the payload disk needs more room for the image copies (see tests/scenarios/serve.sh); run with --ignored"]
fn serve_runs_an_instance_through_its_lifecycle() {
    let outcome = Scenario::new("serve")
        .disk(
            "ami",
            &support::image_dir("debian-12-test").join("disk.raw"),
        )
        .timeout(2400)
        .run();
    outcome.assert_pass();
    for name in [
        "serve-listening",
        "register-image",
        "import-key-pair",
        "run-instances",
        "running",
        "user-data-console",
        "get-console-output",
        "ssh-with-key",
        "stop",
        "stopped",
        "volume-kept",
        "started",
        "data-survives-stop-start",
        "vm-survives-daemon-sigkill",
        "serve-restarted",
        "readopted",
        "describe-after-restart",
        "stop-after-restart",
        "terminate",
        "terminated",
        "root-volume-deleted",
        "tap-removed",
    ] {
        outcome.assert_result(name);
    }
}
