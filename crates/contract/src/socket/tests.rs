//! Every request and reply of the per-VM socket, written by one side and
//! read by the other: the JSON on the wire (as the stand-in VMM and the
//! scenario scripts see it) and the value read back.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;
use crate::ebs::VolumeType;

/// `value` as the sender writes it must be `wire`, and read back as the
/// receiver reads it, `value` again.
fn round_trip<T>(value: &T, wire: &str)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_string(value).unwrap();
    assert_eq!(text, wire);
    assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), value);
}

fn gp3(size_gib: u64) -> Limits {
    Limits::of_volume(VolumeType::Gp3, size_gib, None, None)
}

#[test]
fn paths_and_actions() {
    assert_eq!(disk_path("vol-1"), "/vm/disks/vol-1");
    assert_eq!(disk_metrics_path("vol-1"), "/vm/disks/vol-1/metrics");
    assert_eq!(detach_path("vol-1", false), "/vm/disks/vol-1");
    assert_eq!(detach_path("vol-1", true), "/vm/disks/vol-1?force=true");
    for a in VmAction::ALL {
        assert_eq!(VmAction::from_path(&a.path()), Some(a));
        assert_eq!(a.path(), format!("/vm/{}", a.name()));
    }
    assert_eq!(VmAction::Shutdown.path(), "/vm/shutdown");
    assert_eq!(VmAction::from_path("/vm/metadata"), None);
    round_trip(
        &Accepted {
            accepted: "shutdown".into(),
        },
        r#"{"accepted":"shutdown"}"#,
    );
    round_trip(
        &ErrorReply::new("no such path: /x"),
        r#"{"error":"no such path: /x"}"#,
    );
}

#[test]
fn vm_status() {
    let status = VmStatus {
        state: VmState::ShuttingDown,
        boots: 2,
        vcpus: 4,
        memory_mib: 1024,
        pid: 42,
        msi_gsis: 3,
    };
    round_trip(
        &status,
        r#"{"state":"shutting-down","boots":2,"vcpus":4,"memory_mib":1024,"pid":42,"msi_gsis":3}"#,
    );
    // The stand-in VMM of the fast tests sends no msi_gsis.
    let standin: VmStatus = serde_json::from_str(
        r#"{"state": "running", "boots": 1, "vcpus": 1, "memory_mib": 512, "pid": 7}"#,
    )
    .unwrap();
    assert_eq!((standin.state, standin.msi_gsis), (VmState::Running, 0));
    for (state, name) in [
        (VmState::Starting, "starting"),
        (VmState::Running, "running"),
        (VmState::Stopped, "stopped"),
    ] {
        assert_eq!(
            serde_json::to_string(&state).unwrap(),
            format!("\"{name}\"")
        );
    }
}

#[test]
fn attach_requests() {
    let request = AttachRequest {
        id: "vol-0123456789abcdef0".into(),
        path: "/data/volumes/vol-0123456789abcdef0.raw".into(),
        read_only: false,
        serial: Some("vol0123456789abcdef0".into()),
        limits: Some(gp3(8)),
        direct: true,
    };
    round_trip(
        &request,
        r#"{"id":"vol-0123456789abcdef0","path":"/data/volumes/vol-0123456789abcdef0.raw","read_only":false,"serial":"vol0123456789abcdef0","limits":{"volume_type":"gp3","size_gib":8,"iops":3000,"throughput_mibps":125},"direct":true}"#,
    );
    request.validate().unwrap();
    // The smallest body, and the one the daemon used to build by hand
    // (keys sorted).
    let bare: AttachRequest = serde_json::from_str(r#"{"id":"d","path":"/x"}"#).unwrap();
    assert_eq!(
        (bare.serial, bare.limits, bare.read_only),
        (None, None, false)
    );
    let old: AttachRequest = serde_json::from_str(
        r#"{"direct":true,"id":"vol-0123456789abcdef0","limits":{"iops":3000,"size_gib":8,
        "throughput_mibps":125,"volume_type":"gp3"},"path":"/data/volumes/vol-0123456789abcdef0.raw",
        "read_only":false,"serial":"vol0123456789abcdef0"}"#,
    )
    .unwrap();
    assert_eq!(old, request);
    assert!(serde_json::from_str::<AttachRequest>(r#"{"id":"d","path":"/x","x":1}"#).is_err());
    let bad = |r: AttachRequest| r.validate().map_err(|e| (e.status(), e.to_string()));
    let e = bad(AttachRequest {
        limits: Some(Limits::of_volume(VolumeType::St1, 10, None, None)),
        ..request.clone()
    });
    assert_eq!(
        e,
        Err((
            400,
            "bad limits: a st1 volume must be 125 to 16384 GiB, got 10".into()
        ))
    );
    assert!(
        bad(AttachRequest {
            path: "rel".into(),
            ..request.clone()
        })
        .is_err()
    );
    assert!(
        bad(AttachRequest {
            serial: Some(request.id.clone()),
            ..request
        })
        .is_err(),
        "21 bytes"
    );
}

#[test]
fn disk_patches() {
    round_trip(&DiskPatch::resize(), r#"{"resize":true}"#);
    round_trip(
        &DiskPatch::limits(Some(gp3(10))),
        r#"{"limits":{"volume_type":"gp3","size_gib":10,"iops":3000,"throughput_mibps":125}}"#,
    );
    // null lifts the limits; an absent field leaves them.
    round_trip(&DiskPatch::limits(None), r#"{"limits":null}"#);
    round_trip(&DiskPatch::default(), "{}");
    assert!(DiskPatch::default().validate().is_err());
    DiskPatch::limits(None).validate().unwrap();
    let both = DiskPatch {
        resize: true,
        limits: Some(Some(gp3(10))),
    };
    round_trip(
        &both,
        r#"{"resize":true,"limits":{"volume_type":"gp3","size_gib":10,"iops":3000,"throughput_mibps":125}}"#,
    );
}

#[test]
fn disk_entries_and_sizes() {
    let entry = DiskInfo {
        id: "vol-1".into(),
        path: "/v/vol-1.raw".into(),
        read_only: false,
        direct: false,
        serial: None,
        slot: 17,
        state: DiskState::Detaching,
        size_bytes: 1 << 30,
        limits: None,
        eject_wait: None,
    };
    round_trip(
        &entry,
        r#"{"id":"vol-1","path":"/v/vol-1.raw","read_only":false,"direct":false,"serial":null,"slot":17,"state":"detaching","size_bytes":1073741824,"limits":null}"#,
    );
    for wait in [
        EjectWait::GuestNotListening,
        EjectWait::NotRead,
        EjectWait::GuestHolding,
    ] {
        let waiting = DiskInfo {
            eject_wait: Some(wait),
            ..entry.clone()
        };
        let text = serde_json::to_string(&waiting).unwrap();
        assert!(
            text.ends_with(&format!(r#","eject_wait":"{}"}}"#, wait.name())),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<DiskInfo>(&text).unwrap(), waiting);
    }
    // The stand-in VMM's entries carry no "direct".
    let standin: DiskInfo = serde_json::from_str(
        r#"{"id": "vol-1", "path": "/v/vol-1.raw", "read_only": false, "serial": "vol1",
            "slot": 16, "state": "attached", "size_bytes": 0,
            "limits": {"volume_type": "gp2", "size_gib": 1}}"#,
    )
    .unwrap();
    assert_eq!(standin.state, DiskState::Attached);
    assert!(!standin.direct);
    round_trip(
        &Resized {
            size_bytes: 5 << 30,
        },
        r#"{"size_bytes":5368709120}"#,
    );
    round_trip(
        &vec![entry.clone()],
        &format!("[{}]", serde_json::to_string(&entry).unwrap()),
    );
}

#[test]
fn volume_metrics() {
    let m = VolumeMetrics {
        read_ops: 10,
        write_ops: 5,
        read_bytes: 40_960,
        write_bytes: 20_480,
        total_read_time: 0.01,
        total_write_time: 0.02,
        queue_length: 1,
        idle_time: 1.5,
        burst_balance: None,
        throttled_ops: 2,
        throttled_bytes: 8_192,
    };
    round_trip(
        &m,
        r#"{"VolumeReadOps":10,"VolumeWriteOps":5,"VolumeReadBytes":40960,"VolumeWriteBytes":20480,"VolumeTotalReadTime":0.01,"VolumeTotalWriteTime":0.02,"VolumeQueueLength":1,"VolumeIdleTime":1.5,"BurstBalance":null,"VolumeThrottledOps":2,"VolumeThrottledBytes":8192}"#,
    );
    let with_balance = VolumeMetrics {
        burst_balance: Some(99.5),
        ..m.clone()
    };
    let text = serde_json::to_string(&with_balance).unwrap();
    assert_eq!(
        serde_json::from_str::<VolumeMetrics>(&text).unwrap(),
        with_balance
    );
    // The families follow the JSON, name for name and value for value.
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = text
        .trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .map(|kv| kv.split(':').next().unwrap().trim_matches('"'))
        .collect();
    let names: Vec<&str> = METRIC_FAMILIES.iter().map(|f| f.name).collect();
    assert_eq!(names, keys);
    for (f, value) in METRIC_FAMILIES.iter().zip(with_balance.values()) {
        assert_eq!(json[f.name].as_f64(), value, "{}", f.name);
        assert!(f.prometheus.starts_with("flint_volume_"));
    }
    assert_eq!(m.values()[8], None, "no BurstBalance, no series");
}

#[test]
fn exit_codes_are_distinct() {
    use crate::exit::*;
    let codes = [
        EXIT_POWEROFF,
        EXIT_CONFIG,
        EXIT_FAILURE,
        EXIT_REBOOT,
        EXIT_HARD_STOP,
        EXIT_NO_OS,
    ];
    assert_eq!(codes, [0, 1, 2, 3, 4, 5]);
}
