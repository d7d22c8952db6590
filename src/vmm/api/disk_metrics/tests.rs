//! The volume endpoints over a real Unix socket, as a client sees them.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::super::{ApiShared, VmStatus, start};
use crate::vmm::devices::virtio::block::throttle::Limits;
use crate::vmm::devices::virtio::block::throttle::model::VolumeType;
use crate::vmm::devices::virtio::block::{DiskInfo, Volume};

fn exchange(path: &Path, method: &str, uri: &str, body: &str) -> (u16, String, String) {
    let mut s = UnixStream::connect(path).unwrap();
    let raw = format!(
        "{method} {uri} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn server(name: &str) -> (std::path::PathBuf, std::sync::Arc<ApiShared>) {
    let dir = std::env::temp_dir().join(format!("flint-diskapi-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vm.sock");
    let shared = ApiShared::new(VmStatus {
        state: "running",
        boots: 1,
        vcpus: 1,
        memory_mib: 256,
        pid: 1,
    })
    .unwrap();
    let gp2 = Limits {
        volume_type: VolumeType::Gp2,
        size_gib: 100,
        iops: None,
        throughput_mibps: None,
    };
    let info = DiskInfo {
        path: "/var/lib/flint/vol-root.img".into(),
        read_only: false,
        serial: Some("vol-root".into()),
        slot: Some(1),
    };
    shared
        .volumes
        .insert(Volume::for_disk("vol-root", info, Some(gp2)).unwrap());
    shared.volumes.insert(Volume::new("data\"1", None).unwrap());
    start(&path, shared.clone(), false).unwrap();
    (path, shared)
}

#[test]
fn metrics_json_has_ebs_names_and_unknown_disks_are_404() {
    let (path, _shared) = server("json");
    let (status, head, body) = exchange(&path, "GET", "/vm/disks/vol-root/metrics", "");
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("Content-Type: application/json"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["VolumeReadOps"], 0);
    assert_eq!(v["BurstBalance"], 100.0);
    assert_eq!(v["VolumeQueueLength"], 0);
    assert!(v["VolumeIdleTime"].as_f64().unwrap() >= 0.0);
    assert!(v["VolumeTotalReadTime"].is_f64());
    assert_eq!(v.as_object().unwrap().len(), 11);
    let (status, _, body) = exchange(&path, "GET", "/vm/disks/data%221/metrics", "");
    assert_eq!(status, 404, "ids are matched as given: {body}");
    let (status, _, body) = exchange(&path, "GET", "/vm/disks/nope/metrics", "");
    assert_eq!(status, 404);
    assert!(body.contains("no disk with id \\\"nope\\\""), "{body}");
    let (status, head, _) = exchange(&path, "PUT", "/vm/disks/vol-root/metrics", "");
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET"));
}

#[test]
fn prometheus_exposition_has_one_series_per_disk() {
    let (path, _shared) = server("prom");
    let (status, head, body) = exchange(&path, "GET", "/vm/metrics", "");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(!head.contains("application/json"));
    assert!(body.contains("# TYPE flint_volume_read_ops_total counter\n"));
    assert!(body.contains("flint_volume_read_ops_total{volume_id=\"vol-root\"} 0\n"));
    // Label values are escaped.
    assert!(
        body.contains("flint_volume_read_ops_total{volume_id=\"data\\\"1\"} 0\n"),
        "{body}"
    );
    // BurstBalance only for the volume with a bucket.
    assert!(body.contains("flint_volume_burst_balance_percent{volume_id=\"vol-root\"} 100\n"));
    assert!(!body.contains("flint_volume_burst_balance_percent{volume_id=\"data"));
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(series.starts_with("flint_volume_"), "{line}");
        value.parse::<f64>().unwrap();
    }
    assert_eq!(exchange(&path, "POST", "/vm/metrics", "").0, 405);
}

#[test]
fn patch_applies_limits_live_and_refuses_bad_ones() {
    let (path, shared) = server("patch");
    let uri = "/vm/disks/vol-root";
    let body =
        r#"{"limits":{"volume_type":"gp3","size_gib":100,"iops":6000,"throughput_mibps":500}}"#;
    let (status, _, reply) = exchange(&path, "PATCH", uri, body);
    assert_eq!(status, 200, "{reply}");
    let entry: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(entry["id"], "vol-root");
    assert_eq!(entry["serial"], "vol-root");
    assert_eq!(entry["slot"], 1);
    assert_eq!(entry["state"], "attached");
    assert_eq!(entry["limits"]["iops"], 6000);
    let volume = shared.volumes.get("vol-root").unwrap();
    assert_eq!(volume.limits().unwrap().volume_type, VolumeType::Gp3);
    let (_, _, m) = exchange(&path, "GET", "/vm/disks/vol-root/metrics", "");
    assert!(m.contains("\"BurstBalance\":null"), "{m}");

    for (body, says) in [
        (
            r#"{"limits":{"volume_type":"gp4","size_gib":1}}"#,
            "unknown variant `gp4`",
        ),
        (
            r#"{"limits":{"volume_type":"gp3","size_gib":100,"iops":20000}}"#,
            "3000 to 16000 iops",
        ),
        (
            r#"{"limits":{"volume_type":"io1","size_gib":100}}"#,
            "needs iops",
        ),
        (
            r#"{"limits":{"volume_type":"gp2","size_gib":100,"throughput_mibps":200}}"#,
            "only gp3",
        ),
        (
            r#"{"limits":{"volume_type":"st1","size_gib":10}}"#,
            "125 to 16384 GiB",
        ),
        (
            r#"{"limits":{"volume_type":"gp3","size_gib":100},"x":1}"#,
            "unknown field `x`",
        ),
        (r#"{"limits":"#, "bad request body"),
    ] {
        let (status, _, reply) = exchange(&path, "PATCH", uri, body);
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(reply.contains(says), "{body}: {reply}");
    }
    // Unchanged by the refusals.
    assert_eq!(volume.limits().unwrap().iops, Some(6000));
    // null: unthrottled.
    let (status, _, reply) = exchange(&path, "PATCH", uri, r#"{"limits":null}"#);
    assert_eq!(status, 200);
    assert!(reply.contains("\"limits\":null"), "{reply}");
    assert_eq!(volume.limits(), None);
    let (status, _, _) = exchange(&path, "PATCH", "/vm/disks/nope", r#"{"limits":null}"#);
    assert_eq!(status, 404);
    // A PATCH without "limits" (a resize) is not this module's: here, with
    // no hot-plug handler, it is an unknown path.
    let (status, _, _) = exchange(&path, "PATCH", uri, r#"{"resize":true}"#);
    assert_eq!(status, 404);
}
