//! The volume endpoints (metrics, live limits) over a real Unix socket, as
//! a client sees them; no boot runs (none is needed for them).

use std::sync::Arc;

use super::super::start;
use super::super::testing::{request, shared};
use crate::devices::virtio::block::Volume;
use crate::disks::DiskTable;
use flint_contract::config::{DiskConfig, VmConfig};
use flint_contract::ebs::Limits;
use flint_contract::ebs::VolumeType;
use flint_contract::socket::VmState;

fn server(name: &str) -> (std::path::PathBuf, Arc<DiskTable>) {
    let dir = std::env::temp_dir().join(format!("flint-diskapi-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vm.sock");
    let shared = shared(VmState::Running);
    let gp2 = Limits {
        volume_type: VolumeType::Gp2,
        size_gib: 100,
        iops: None,
        throughput_mibps: None,
    };
    let mut config: VmConfig = serde_json::from_str("{}").unwrap();
    config.disks = vec![
        DiskConfig {
            serial: Some("vol-root".into()),
            limits: Some(gp2),
            ..DiskConfig::new("/var/lib/flint/vol-root.img".into())
        },
        DiskConfig {
            id: Some("data".into()),
            ..DiskConfig::new("/var/lib/flint/data.img".into())
        },
    ];
    let table = Arc::new(DiskTable::from_config(&config).unwrap());
    shared.set_disks(table.clone());
    start(&path, shared, false).unwrap();
    (path, table)
}

#[test]
fn metrics_json_has_ebs_names_and_unknown_disks_are_404() {
    let (path, _table) = server("json");
    let (status, head, body) = request(&path, "GET", "/vm/disks/vol-root/metrics", "");
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("Content-Type: application/json"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["VolumeReadOps"], 0);
    assert_eq!(v["BurstBalance"], 100.0);
    assert_eq!(v["VolumeQueueLength"], 0);
    assert!(v["VolumeIdleTime"].as_f64().unwrap() >= 0.0);
    assert!(v["VolumeTotalReadTime"].is_f64());
    assert_eq!(v.as_object().unwrap().len(), 11);
    let (status, _, body) = request(&path, "GET", "/vm/disks/data/metrics", "");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"BurstBalance\":null"),
        "unthrottled: {body}"
    );
    let (status, _, body) = request(&path, "GET", "/vm/disks/nope/metrics", "");
    assert_eq!(status, 404);
    assert!(body.contains("no disk \\\"nope\\\" is attached"), "{body}");
    let (status, head, _) = request(&path, "PUT", "/vm/disks/vol-root/metrics", "");
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET"));
}

#[test]
fn prometheus_exposition_has_one_series_per_disk() {
    let (path, _table) = server("prom");
    let (status, head, body) = request(&path, "GET", "/vm/metrics", "");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(!head.contains("application/json"));
    assert!(body.contains("# TYPE flint_volume_read_ops_total counter\n"));
    assert!(body.contains("flint_volume_read_ops_total{volume_id=\"vol-root\"} 0\n"));
    assert!(body.contains("flint_volume_read_ops_total{volume_id=\"data\"} 0\n"));
    // BurstBalance only for the volume with a bucket.
    assert!(body.contains("flint_volume_burst_balance_percent{volume_id=\"vol-root\"} 100\n"));
    assert!(!body.contains("flint_volume_burst_balance_percent{volume_id=\"data"));
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(series.starts_with("flint_volume_"), "{line}");
        value.parse::<f64>().unwrap();
    }
    let (status, head, _) = request(&path, "POST", "/vm/metrics", "");
    assert_eq!(status, 405);
    assert!(head.contains("Content-Type: application/json"), "{head}");
}

#[test]
fn prometheus_label_values_are_escaped() {
    // Disk ids cannot hold these; a label is escaped all the same.
    let odd = Volume::new("data\"1\\\n", None).unwrap();
    let body = super::prometheus(&[odd]);
    assert!(
        body.contains("flint_volume_read_ops_total{volume_id=\"data\\\"1\\\\\\n\"} 0\n"),
        "{body}"
    );
}

#[test]
fn patch_applies_limits_live_and_refuses_bad_ones() {
    let (path, table) = server("patch");
    let uri = "/vm/disks/vol-root";
    let body =
        r#"{"limits":{"volume_type":"gp3","size_gib":100,"iops":6000,"throughput_mibps":500}}"#;
    let (status, _, reply) = request(&path, "PATCH", uri, body);
    assert_eq!(status, 200, "{reply}");
    let entry: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(entry["id"], "vol-root");
    assert_eq!(entry["serial"], "vol-root");
    assert_eq!(entry["slot"], 1);
    assert_eq!(entry["state"], "attached");
    assert_eq!(entry["limits"]["iops"], 6000);
    let volume = table.get("vol-root").unwrap().volume;
    assert_eq!(volume.limits().unwrap().volume_type, VolumeType::Gp3);
    let (_, _, m) = request(&path, "GET", "/vm/disks/vol-root/metrics", "");
    assert!(m.contains("\"BurstBalance\":null"), "{m}");

    for (body, says) in [
        (
            r#"{"limits":{"volume_type":"gp4","size_gib":1}}"#,
            "unknown variant `gp4`",
        ),
        (
            r#"{"limits":{"volume_type":"gp3","size_gib":200,"iops":90000}}"#,
            "3000 to 80000 iops",
        ),
        (
            r#"{"limits":{"volume_type":"gp2","size_gib":100,"iops":300}}"#,
            "iops cannot be set for a gp2 volume",
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
        (r#"{"limits":"#, "bad disk change"),
    ] {
        let (status, _, reply) = request(&path, "PATCH", uri, body);
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(reply.contains(says), "{body}: {reply}");
    }
    // Unchanged by the refusals.
    assert_eq!(volume.limits().unwrap().iops, Some(6000));
    // null: unthrottled.
    let (status, _, reply) = request(&path, "PATCH", uri, r#"{"limits":null}"#);
    assert_eq!(status, 200);
    assert!(reply.contains("\"limits\":null"), "{reply}");
    assert_eq!(volume.limits(), None);
    let (status, _, _) = request(&path, "PATCH", "/vm/disks/nope", r#"{"limits":null}"#);
    assert_eq!(status, 404);
}
