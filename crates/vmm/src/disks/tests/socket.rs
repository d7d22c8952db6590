//! The control socket's disk endpoints over HTTP, and the hot-plug cycle
//! the seccomp tests run.

use super::*;
use crate::api;
use crate::api::testing::{request, shared};
use flint_contract::socket::VmState;

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
    let table = Arc::new(DiskTable::from_config(&config).unwrap());
    let mut r = boot(&config, table, dir.to_path_buf());
    let attach = |id: &str| {
        DiskOp::Attach(AttachRequest {
            id: id.into(),
            path: dir.join(format!("{id}.img")),
            read_only: false,
            serial: Some(format!("vol-{id}")),
            limits: serde_json::from_str(r#"{"volume_type":"gp3","size_gib":1}"#).unwrap(),
            direct: false,
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
    let reply = r.run(DiskOp::Resize { id: "a".into() });
    assert_eq!(reply, Ok(DiskReply::Resized(2 << 20)));
    let unthrottled = r.table.set_limits("a", None).unwrap();
    assert_eq!(unthrottled.size_bytes(), 2 << 20);
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
    let (status, _, body) = request(path, method, uri, body);
    (status, body)
}

#[test]
fn control_socket_disk_endpoints() {
    let mut r = rig(1);
    let sock = r.dir.join("vm.sock");
    let shared = shared(VmState::Running);
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
            seen.push(http(&sock, "GET", "/vm/disks/vol-api/metrics", ""));
            seen.push(http(
                &sock,
                "PATCH",
                "/vm/disks/vol-api",
                r#"{"limits":null}"#,
            ));
            seen.push(http(
                &sock,
                "PATCH",
                "/vm/disks/vol-api",
                r#"{"resize":true,"limits":{"volume_type":"gp3","size_gib":2}}"#,
            ));
            seen.push(http(&sock, "GET", "/vm/metrics", ""));
            seen.push(http(&sock, "DELETE", "/vm/disks/vol-api", ""));
            seen.push(http(&sock, "DELETE", "/vm/disks/vol-api?force=true", ""));
            seen.push(http(&sock, "GET", "/vm/disks/vol-api", ""));
            seen.push(http(&sock, "GET", "/vm/disks/vol-api/metrics", ""));
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
            200, 409, 422, 400, 200, 200, 404, 200, 200, 200, 200, 200, 202, 200, 404, 404, 405,
            400
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
    // The hot-plugged disk's own volume: EBS metrics, gp2's burst bucket.
    let metrics: serde_json::Value = serde_json::from_str(&seen[8].1).unwrap();
    assert_eq!(metrics["BurstBalance"], 100.0, "{metrics}");
    assert_eq!(metrics["VolumeThrottledOps"], 0);
    let cleared: serde_json::Value = serde_json::from_str(&seen[9].1).unwrap();
    assert!(cleared["limits"].is_null());
    let both: serde_json::Value = serde_json::from_str(&seen[10].1).unwrap();
    assert_eq!(both["limits"]["volume_type"], "gp3", "{both}");
    assert_eq!(both["size_bytes"], 2 << 20);
    let prometheus = &seen[11].1;
    assert!(
        prometheus.contains("flint_volume_read_ops_total{volume_id=\"vol-api\"} "),
        "{prometheus}"
    );
    assert!(prometheus.contains("{volume_id=\"vol-boot0\"}"));
    let detaching: serde_json::Value = serde_json::from_str(&seen[12].1).unwrap();
    assert_eq!(detaching["state"], "detaching");
    let removed: serde_json::Value = serde_json::from_str(&seen[13].1).unwrap();
    assert_eq!(removed["state"], "detached");
    assert!(r.table.get("vol-api").is_none(), "out of the registry");
    assert!(seen[2].1.contains("no such file"), "{}", seen[2].1);
    // Every reply as the daemon reads it: the contract's types.
    use flint_contract::socket::{ErrorReply, Resized, VolumeMetrics};
    let read = |i: usize| seen[i].1.as_str();
    let attached: DiskInfo = serde_json::from_str(read(0)).unwrap();
    assert_eq!((attached.id.as_str(), attached.slot), ("vol-api", 2));
    assert_eq!(attached.serial.as_deref(), Some("vol-api"));
    let listed: Vec<DiskInfo> = serde_json::from_str(read(4)).unwrap();
    assert!(listed.contains(&attached));
    let resized: Resized = serde_json::from_str(read(7)).unwrap();
    assert_eq!(resized.size_bytes, 2 << 20);
    let metrics: VolumeMetrics = serde_json::from_str(read(8)).unwrap();
    assert_eq!(metrics.burst_balance, Some(100.0));
    let detaching: DiskInfo = serde_json::from_str(read(12)).unwrap();
    assert_eq!(detaching.state, DiskState::Detaching);
    for i in [1, 2, 3, 6, 14, 15, 16, 17] {
        let e: ErrorReply = serde_json::from_str(read(i)).unwrap();
        assert!(!e.error.is_empty());
    }
}

#[test]
fn no_running_boot_is_503_and_the_stale_command_is_dropped() {
    let dir = scratch();
    let sock = dir.join("idle.sock");
    let shared = shared(VmState::Starting);
    let config = config_with_disks(&dir, 1);
    shared.set_disks(Arc::new(DiskTable::from_config(&config).unwrap()));
    api::start(&sock, shared.clone(), false).unwrap();
    // Reads, metrics and limits need no main loop.
    let (status, body) = http(&sock, "GET", "/vm/disks", "");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&sock, "GET", "/vm/disks/vol-boot0/metrics", "");
    assert_eq!(status, 200, "{body}");
    let limits = r#"{"limits":{"volume_type":"io1","size_gib":4,"iops":200}}"#;
    let (status, body) = http(&sock, "PATCH", "/vm/disks/vol-boot0", limits);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""iops":200"#), "{body}");
    let started = std::time::Instant::now();
    let (status, body) = http(&sock, "DELETE", "/vm/disks/vol-boot0", "");
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The caller gave up: a boot that starts now must not run it.
    assert!(shared.next_disk_command().is_none());
}
