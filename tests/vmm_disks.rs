//! The real `flint vmm` process (seccomp filters on) with its control
//! socket's disk endpoints, on the local /dev/kvm: the guest is a few bytes
//! of code that halts (any KVM flavour runs it), so nothing ejects; the
//! guest's half of hot-plug is in the unit tests and tests/hotplug.rs.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// An ELF64 kernel whose entry point runs `cli; hlt; jmp .-3` at 1 MiB.
fn halting_kernel(path: &Path) {
    const LOAD: u64 = 0x10_0000;
    const CODE_OFFSET: u64 = 0x1000;
    let code = [0xfa, 0xf4, 0xeb, 0xfd];
    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&LOAD.to_le_bytes()); // entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // program headers
    elf.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    elf.extend_from_slice(&0u32.to_le_bytes());
    for half in [64u16, 56, 1, 64, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    // One PT_LOAD, read + execute.
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&5u32.to_le_bytes());
    for word in [CODE_OFFSET, LOAD, LOAD, 4, 4, 0x1000] {
        elf.extend_from_slice(&word.to_le_bytes());
    }
    elf.resize(CODE_OFFSET as usize, 0);
    elf.extend_from_slice(&code);
    std::fs::write(path, elf).unwrap();
}

fn image(dir: &Path, name: &str, len: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap().set_len(len).unwrap();
    path
}

/// (status, JSON body) of one request.
fn call(sock: &Path, method: &str, uri: &str, body: &str) -> (u16, Value) {
    let (status, body) = raw(sock, method, uri, body);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// (status, body) of one request.
fn raw(sock: &Path, method: &str, uri: &str, body: &str) -> (u16, String) {
    let mut s = UnixStream::connect(sock).unwrap();
    let raw = format!(
        "{method} {uri} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out.split_once("\r\n\r\n").unwrap().1.to_string())
}

struct Vmm(Child);

impl Drop for Vmm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn disk_endpoints_of_a_running_vmm() {
    if std::fs::File::open("/dev/kvm").is_err() {
        eprintln!("no /dev/kvm: skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("flint-vmm-disks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kernel = dir.join("halt.elf");
    halting_kernel(&kernel);
    let boot = image(&dir, "boot.img", 1 << 20);
    let hot = image(&dir, "hot.img", 2 << 20);
    let sock = dir.join("vm.sock");
    let child = Command::new(env!("CARGO_BIN_EXE_flint"))
        .arg("vmm")
        .arg("--kernel")
        .arg(&kernel)
        .arg("--memory")
        .arg("128")
        .arg("--disk")
        .arg(format!(
            "{},serial=vol-boot,id=boot,type=gp2,size_gib=8",
            boot.display()
        ))
        .arg("--console")
        .arg(dir.join("console.log"))
        .arg("--api-socket")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut vmm = Vmm(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(sock.exists() && call(&sock, "GET", "/vm", "").1["state"] == "running") {
        assert!(Instant::now() < deadline, "the VMM did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (status, list) = call(&sock, "GET", "/vm/disks", "");
    assert_eq!(status, 200);
    assert_eq!(list[0]["id"], "boot");
    assert_eq!(list[0]["serial"], "vol-boot");
    assert_eq!(list[0]["slot"], 1);
    assert_eq!(list[0]["limits"]["volume_type"], "gp2");
    // The boot disk's volume: EBS metrics, limits changed live.
    let (status, m) = call(&sock, "GET", "/vm/disks/boot/metrics", "");
    assert_eq!(
        (status, m["BurstBalance"].as_f64()),
        (200, Some(100.0)),
        "{m}"
    );
    let io1 = r#"{"limits":{"volume_type":"io1","size_gib":8,"iops":400}}"#;
    let (status, entry) = call(&sock, "PATCH", "/vm/disks/boot", io1);
    assert_eq!(
        (status, &entry["limits"]["iops"]),
        (200, &400.into()),
        "{entry}"
    );
    let (_, m) = call(&sock, "GET", "/vm/disks/boot/metrics", "");
    assert!(m["BurstBalance"].is_null(), "io1 has no bucket: {m}");
    let gp2_iops = r#"{"limits":{"volume_type":"gp2","size_gib":8,"iops":24}}"#;
    assert_eq!(call(&sock, "PATCH", "/vm/disks/boot", gp2_iops).0, 400);

    let attach = format!(
        r#"{{"id":"vol-hot","path":"{}","read_only":false,"serial":"vol-hot","limits":{{"volume_type":"gp3","size_gib":2}}}}"#,
        hot.display()
    );
    let (status, entry) = call(&sock, "PUT", "/vm/disks", &attach);
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["slot"], 2);
    assert_eq!(entry["size_bytes"], 2 << 20);
    assert_eq!(entry["limits"]["size_gib"], 2);
    // The hot-plugged disk has its own volume, in both metrics endpoints.
    let (status, m) = call(&sock, "GET", "/vm/disks/vol-hot/metrics", "");
    assert_eq!((status, &m["VolumeReadOps"]), (200, &0.into()), "{m}");
    let (status, text) = raw(&sock, "GET", "/vm/metrics", "");
    assert_eq!(status, 200);
    for id in ["boot", "vol-hot"] {
        let series = format!("flint_volume_write_ops_total{{volume_id=\"{id}\"}} ");
        assert!(text.contains(&series), "{text}");
    }
    assert_eq!(call(&sock, "PUT", "/vm/disks", &attach).0, 409);
    let missing = r#"{"id":"vol-x","path":"/nonexistent/x.img"}"#;
    assert_eq!(call(&sock, "PUT", "/vm/disks", missing).0, 422);
    assert_eq!(call(&sock, "PUT", "/vm/disks", "{").0, 400);

    std::fs::OpenOptions::new()
        .write(true)
        .open(&hot)
        .unwrap()
        .set_len(3 << 20)
        .unwrap();
    let (status, size) = call(&sock, "PATCH", "/vm/disks/vol-hot", r#"{"resize":true}"#);
    assert_eq!((status, size["size_bytes"].as_u64()), (200, Some(3 << 20)));
    let (status, entry) = call(&sock, "PATCH", "/vm/disks/vol-hot", r#"{"limits":null}"#);
    assert_eq!((status, entry["limits"].is_null()), (200, true));

    let (status, entry) = call(&sock, "DELETE", "/vm/disks/vol-hot", "");
    assert_eq!((status, entry["state"].as_str()), (202, Some("detaching")));
    // This guest never ejects: the disk stays until forced out.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(call(&sock, "GET", "/vm/disks/vol-hot", "").0, 200);
    let (status, entry) = call(&sock, "DELETE", "/vm/disks/vol-hot?force=true", "");
    assert_eq!((status, entry["state"].as_str()), (200, Some("detached")));
    assert_eq!(call(&sock, "GET", "/vm/disks/vol-hot", "").0, 404);
    assert_eq!(call(&sock, "GET", "/vm/disks/vol-hot/metrics", "").0, 404);
    let (_, text) = raw(&sock, "GET", "/vm/metrics", "");
    assert!(!text.contains("vol-hot"), "{text}");

    // A guest reset keeps attached disks (in their slots) and finishes
    // pending detaches.
    let (_, entry) = call(
        &sock,
        "PUT",
        "/vm/disks",
        &attach.replace("vol-hot", "vol-kept"),
    );
    let kept_slot = entry["slot"].clone();
    let gp3 = r#"{"limits":{"volume_type":"gp3","size_gib":8,"iops":4000}}"#;
    assert_eq!(call(&sock, "PATCH", "/vm/disks/vol-kept", gp3).0, 200);
    assert_eq!(call(&sock, "DELETE", "/vm/disks/boot", "").0, 202);
    assert_eq!(call(&sock, "PUT", "/vm/reboot", "").0, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    while call(&sock, "GET", "/vm", "").1["boots"] != 2 {
        assert!(Instant::now() < deadline, "no second boot");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, list) = call(&sock, "GET", "/vm/disks", "");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (&list[0]["id"], &list[0]["slot"]),
        (&"vol-kept".into(), &kept_slot)
    );
    // Its volume outlived the boot: the limits set before the reset.
    assert_eq!(list[0]["limits"]["iops"], 4000, "{list:?}");
    assert_eq!(call(&sock, "GET", "/vm/disks/vol-kept/metrics", "").0, 200);
    assert_eq!(call(&sock, "GET", "/vm/disks/boot/metrics", "").0, 404);

    assert_eq!(call(&sock, "PUT", "/vm/stop", "").0, 202);
    let status = vmm.0.wait().unwrap();
    let mut stderr = String::new();
    vmm.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(4), "{stderr}");
    assert!(!stderr.contains("seccomp"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
