//! The log lines of the `flint` binary: the human format is the message
//! alone (one line for a failing `flint vmm`), `--log-format json` is one
//! object per line, and a stderr that cannot be written is no panic. No
//! KVM needed: `flint vmm` fails on its config before it opens /dev/kvm.

use std::fs::File;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn vmm_missing_kernel(args: &[&str], stderr: Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flint"))
        .args(args)
        .args(["vmm", "--kernel", "/nonexistent/vmlinuz"])
        .stdin(Stdio::null())
        .stderr(stderr)
        .output()
        .expect("run flint vmm")
}

#[test]
fn a_failing_vmm_leaves_one_human_line() {
    let out = vmm_missing_kernel(&[], Stdio::piped());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("flint vmm: kernel /nonexistent/vmlinuz"),
        "{stderr}"
    );
}

#[test]
fn json_lines_carry_level_and_message() {
    for args in [
        &["--log-format", "json"][..],
        &["--log-level", "warn", "--log-format", "json"][..],
    ] {
        let out = vmm_missing_kernel(args, Stdio::piped());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        let line: Value = serde_json::from_str(stderr.trim()).expect("one JSON object");
        assert_eq!(line["level"], "ERROR", "{stderr}");
        assert!(
            line["message"]
                .as_str()
                .unwrap()
                .starts_with("flint vmm: kernel"),
            "{stderr}"
        );
        // No clock in flint vmm's lines.
        assert!(line.get("timestamp").is_none(), "{stderr}");
    }
}

#[test]
fn an_unwritable_stderr_is_no_panic() {
    // eprintln! panics here (exit code 101); a dropped log line does not.
    let full = File::options().write(true).open("/dev/full").unwrap();
    let out = vmm_missing_kernel(&[], Stdio::from(full));
    assert_eq!(out.status.code(), Some(1));
}
