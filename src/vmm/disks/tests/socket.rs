//! The control socket's disk endpoints over HTTP, and the hot-plug cycle
//! the seccomp tests run.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use super::*;
use crate::vmm::api::{self, ApiShared, VmStatus};

/// The files `hotplug_cycle` uses, made before its seccomp filter is on.
pub(crate) fn hotplug_files(dir: &Path) {
    for name in ["boot0.img", "a.img", "b.img"] {
        image(dir, name, 1 << 20);
    }
}

/// What the main loop does for hot-plug, from the boot's device set-up to a
/// forced removal; the seccomp tests run it under the VMM thread's filter.
pub(crate) fn hotplug_cycle(dir: &Path) {
    let mut config: VmConfig = serde_json::from_str("{}").unwrap();
    config.memory_mib = 64;
    config.console.file = Some(dir.join("console.log"));
    config.disks.push(DiskConfig::new(dir.join("boot0.img")));
    let table = Arc::new(DiskTable::from_config(&config));
    let mut r = boot(&config, table, dir.to_path_buf());
    let attach = |id: &str| {
        DiskOp::Attach(AttachRequest {
            id: id.into(),
            path: dir.join(format!("{id}.img")),
            read_only: false,
            serial: Some(format!("vol-{id}")),
            limits: serde_json::from_str(r#"{"volume_type":"gp3","size_gib":1}"#).unwrap(),
        })
    };
    r.run(attach("a")).unwrap();
    // Grow the file with a write past its end (no truncate on this thread).
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("a.img"))
        .unwrap();
    file.write_all_at(&[1], (2 << 20) - 1).unwrap();
    drop(file);
    let resize = DiskPatch {
        resize: true,
        limits: Some(None),
    };
    let reply = r.run(DiskOp::Patch {
        id: "a".into(),
        patch: resize,
    });
    assert!(
        matches!(reply, Ok(DiskReply::Entry(ref e)) if e.size_bytes == 2 << 20),
        "{reply:?}"
    );
    let detach = |id: &str, force| DiskOp::Detach {
        id: id.into(),
        force,
    };
    r.run(detach("a", false)).unwrap();
    r.guest_ejects(2);
    assert!(r.table.get("a").is_none());
    r.run(attach("b")).unwrap();
    r.run(detach("b", true)).unwrap();
    r.guest_ejects(2);
    r.run(attach("a")).unwrap();
    drop(r);
    println!("hotplug cycle done");
}

/// One HTTP exchange on the control socket: (status, body).
fn http(path: &Path, method: &str, uri: &str, body: &str) -> (u16, String) {
    let mut s = UnixStream::connect(path).unwrap();
    let raw = format!(
        "{method} {uri} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

#[test]
fn control_socket_disk_endpoints() {
    let mut r = rig(1);
    let sock = r.dir.join("vm.sock");
    let shared = ApiShared::new(VmStatus {
        state: "running",
        boots: 1,
        vcpus: 1,
        memory_mib: 64,
        pid: 1,
    })
    .unwrap();
    shared.set_disks(r.table.clone());
    api::start(&sock, shared.clone(), false).unwrap();
    let disk = image(&r.dir, "api.img", 2 << 20);
    let client = {
        let (sock, disk) = (sock.clone(), disk.clone());
        std::thread::spawn(move || {
            let put = |body: String| http(&sock, "PUT", "/vm/disks", &body);
            let attach = format!(
                r#"{{"id":"vol-api","path":"{}","read_only":false,"serial":"vol-api","limits":{{"volume_type":"gp2","size_gib":2}}}}"#,
                disk.display()
            );
            let mut seen = vec![put(attach.clone()), put(attach)];
            seen.push(put(r#"{"id":"x","path":"/nonexistent/x.img"}"#.into()));
            seen.push(put("{not json".into()));
            seen.push(http(&sock, "GET", "/vm/disks", ""));
            seen.push(http(&sock, "GET", "/vm/disks/vol-api", ""));
            seen.push(http(&sock, "GET", "/vm/disks/nope", ""));
            seen.push(http(
                &sock,
                "PATCH",
                "/vm/disks/vol-api",
                r#"{"resize":true}"#,
            ));
            seen.push(http(
                &sock,
                "PATCH",
                "/vm/disks/vol-api",
                r#"{"limits":null}"#,
            ));
            seen.push(http(&sock, "DELETE", "/vm/disks/vol-api", ""));
            seen.push(http(&sock, "DELETE", "/vm/disks/vol-api?force=true", ""));
            seen.push(http(&sock, "GET", "/vm/disks/vol-api", ""));
            seen.push(http(&sock, "POST", "/vm/disks", ""));
            seen.push(http(&sock, "DELETE", "/vm/disks/x?force=maybe", ""));
            seen
        })
    };
    // The main loop's part: run what the socket hands over.
    while !client.is_finished() {
        while let Some(command) = shared.next_disk_command() {
            let result = r.devices.disks.execute(command.op, &mut r.events);
            let _ = command.reply.send(result);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let seen = client.join().unwrap();
    let statuses: Vec<u16> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses,
        [
            200, 409, 422, 400, 200, 200, 404, 200, 200, 202, 200, 404, 405, 400
        ],
        "{seen:#?}"
    );
    let entry: serde_json::Value = serde_json::from_str(&seen[0].1).unwrap();
    assert_eq!(entry["slot"], 2);
    assert_eq!(entry["state"], "attached");
    assert_eq!(entry["size_bytes"], 2 << 20);
    assert_eq!(entry["limits"]["volume_type"], "gp2");
    let list: serde_json::Value = serde_json::from_str(&seen[4].1).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(seen[7].1, format!(r#"{{"size_bytes":{}}}"#, 2 << 20));
    let cleared: serde_json::Value = serde_json::from_str(&seen[8].1).unwrap();
    assert!(cleared["limits"].is_null());
    let detaching: serde_json::Value = serde_json::from_str(&seen[9].1).unwrap();
    assert_eq!(detaching["state"], "detaching");
    let removed: serde_json::Value = serde_json::from_str(&seen[10].1).unwrap();
    assert_eq!(removed["state"], "detached");
    assert!(seen[2].1.contains("no such file"), "{}", seen[2].1);
}

#[test]
fn no_running_boot_is_503_and_the_stale_command_is_dropped() {
    let dir = scratch();
    let sock = dir.join("idle.sock");
    let shared = ApiShared::new(VmStatus {
        state: "starting",
        boots: 0,
        vcpus: 1,
        memory_mib: 64,
        pid: 1,
    })
    .unwrap();
    let config = config_with_disks(&dir, 1);
    shared.set_disks(Arc::new(DiskTable::from_config(&config)));
    api::start(&sock, shared.clone(), false).unwrap();
    // Reads need no main loop.
    let (status, body) = http(&sock, "GET", "/vm/disks", "");
    assert_eq!(status, 200, "{body}");
    let started = std::time::Instant::now();
    let (status, body) = http(&sock, "DELETE", "/vm/disks/vol-boot0", "");
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The caller gave up: a boot that starts now must not run it.
    assert!(shared.next_disk_command().is_none());
}
