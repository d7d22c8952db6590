//! What the filters allow, read from their JSON: each thread's rules and
//! the relations between them.

use serde_json::Value;

use super::*;

fn rules(kind: ThreadKind) -> Vec<Value> {
    let json: Value = serde_json::from_str(kind.rules()).unwrap();
    json[kind.name()]["filter"].as_array().unwrap().clone()
}

/// A rule without its comments (what the BPF sees).
fn bare(rule: &Value) -> Value {
    let mut rule = rule.clone();
    let obj = rule.as_object_mut().unwrap();
    obj.remove("comment");
    if let Some(args) = obj.get_mut("args") {
        for arg in args.as_array_mut().unwrap() {
            arg.as_object_mut().unwrap().remove("comment");
        }
    }
    rule
}

/// vCPU threads created by a main thread that already runs under the VMM
/// filter (every boot after a guest reset) run under both filters.
#[test]
fn vmm_filter_allows_everything_the_vcpu_filter_allows() {
    let vmm: Vec<Value> = rules(ThreadKind::Vmm).iter().map(bare).collect();
    for rule in rules(ThreadKind::Vcpu).iter().map(bare) {
        let unconditional = serde_json::json!({ "syscall": rule["syscall"] });
        assert!(
            vmm.contains(&rule) || vmm.contains(&unconditional),
            "vmm.json lacks the vcpu rule {rule}"
        );
    }
}

#[test]
fn the_vcpu_kick_signal_is_the_one_the_vmm_filter_allows() {
    let kick = crate::vcpu::kick_signal() as u64;
    let allowed = rules(ThreadKind::Vmm).iter().any(|r| {
        r["syscall"] == "tgkill" && r["args"][0]["index"] == 2 && r["args"][0]["val"] == kick
    });
    assert!(allowed, "vmm.json must allow tgkill with signal {kick}");
}

#[test]
fn socket_syscalls_are_allowed_on_the_api_thread_only() {
    let socket_calls = [
        "socket",
        "socketpair",
        "bind",
        "listen",
        "connect",
        "accept",
        "accept4",
        "setsockopt",
        "getsockopt",
        "recvfrom",
        "recvmsg",
        "sendto",
        "sendmsg",
        "shutdown",
    ];
    for kind in [ThreadKind::Vmm, ThreadKind::Vcpu] {
        for rule in rules(kind) {
            let name = rule["syscall"].as_str().unwrap();
            assert!(!socket_calls.contains(&name), "{kind} allows {name}");
        }
    }
    let api: Vec<String> = rules(ThreadKind::Api)
        .iter()
        .map(|r| r["syscall"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !api.iter()
            .any(|s| s == "socket" || s == "bind" || s == "connect")
    );
    assert!(!api.iter().any(|s| s == "ioctl" || s == "openat"));
}

#[test]
fn the_report_line_names_thread_filter_and_syscall() {
    let line = report_line(b"vcpu0", ThreadKind::Vcpu.code(), 41);
    assert_eq!(
        std::str::from_utf8(&line.bytes[..line.len]).unwrap(),
        "flint vmm: seccomp: thread 'vcpu0' (vcpu filter) made a forbidden system call 41 (socket); exiting\n"
    );
    let line = report_line(b"x", 0, 100_000);
    assert!(
        std::str::from_utf8(&line.bytes[..line.len])
            .unwrap()
            .contains("100000 (?)")
    );
    assert_eq!(syscall_names::name(59), "execve");
    assert_eq!(syscall_names::name(16), "ioctl");
}
