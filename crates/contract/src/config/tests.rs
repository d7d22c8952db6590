//! The VM config document: its defaults, the disks' ids, and the shape
//! the daemon writes as the VMM reads it.

use super::*;
use crate::ebs::VolumeType;

#[test]
fn an_empty_document_takes_the_defaults() {
    let c: VmConfig = serde_json::from_str("{}").unwrap();
    assert_eq!((c.vcpus, c.memory_mib, c.shutdown_timeout_s), (1, 512, 30));
    assert!(c.seccomp && c.io_batching && c.kernel.is_none() && c.image.is_none());
    assert_eq!(c.on_reboot, RebootAction::Restart);
    assert!(c.identity.instance_id.starts_with("i-"));
    assert_eq!(c.identity.instance_id.len(), 19);
    assert_eq!(c.identity.instance_type, "flint.custom");
    c.identity.validate().unwrap();
    let k: KernelConfig = serde_json::from_str(r#"{"path": "/k"}"#).unwrap();
    assert_eq!(k.cmdline, default_cmdline());
    let i: ImageConfig = serde_json::from_str(r#"{"path": "/i"}"#).unwrap();
    assert_eq!(i, ImageConfig::new("/i".into()));
    assert_eq!(i.firmware, PathBuf::from(image::DEFAULT_FIRMWARE));
    assert!(serde_json::from_str::<VmConfig>(r#"{"bogus": 1}"#).is_err());
}

#[test]
fn the_root_volume_takes_an_id_and_limits_as_the_daemon_writes_them() {
    // vm.json's `image` as flint serve writes it.
    let json = r#"{"image": {"path": "/var/lib/flint/volumes/vol-1.raw",
        "serial": "vol1", "id": "vol-1",
        "limits": {"volume_type": "gp2", "size_gib": 8}}}"#;
    let config: VmConfig = serde_json::from_str(json).unwrap();
    assert_eq!(config.disk_ids(), ["vol-1"]);
    let root = &config.all_disks()[0];
    assert_eq!(root.serial.as_deref(), Some("vol1"));
    root.limits.unwrap().validate().unwrap();
    assert!(config.boots_firmware());
}

#[test]
fn disk_ids_default_to_the_serial_then_the_position() {
    let disk = |serial: Option<&str>, id: Option<&str>| DiskConfig {
        serial: serial.map(Into::into),
        id: id.map(Into::into),
        ..DiskConfig::new("/d".into())
    };
    let c = VmConfig {
        image: Some(ImageConfig::new("/root".into())),
        disks: vec![
            disk(Some("vol-0a1b"), None),
            disk(Some("has/slash"), None),
            disk(Some("vol1"), Some("vol-1")),
        ],
        ..serde_json::from_str("{}").unwrap()
    };
    assert_eq!(c.disk_ids(), ["disk0", "vol-0a1b", "disk2", "vol-1"]);
    assert_eq!(c.all_disks()[0].path, PathBuf::from("/root"));
}

#[test]
fn disk_ids_serials_and_tap_names_follow_their_rules() {
    assert!(valid_disk_id("vol-0123456789abcdef0"));
    assert!(valid_disk_id(&"a".repeat(MAX_DISK_ID_LEN)));
    for bad in ["", "a/b", "a b", "é", &"a".repeat(MAX_DISK_ID_LEN + 1)] {
        assert!(!valid_disk_id(bad), "{bad:?}");
    }
    assert!(valid_serial("vol0123456789abcdef0"));
    assert!(!valid_serial("vol-0123456789abcdef0"), "21 bytes");
    assert!(!valid_serial("a b"));
    assert!(valid_tap_name("fl456789abcdef0"));
    assert!(!valid_tap_name("fl0123456789abcdef0"));
    let id = |s: &str| Identity {
        instance_id: s.into(),
        instance_type: "t3.micro".into(),
    };
    id("i-0123456789abcdef0").validate().unwrap();
    id("i-01234567").validate().unwrap();
    for bad in ["i-0123", "i-0123456789ABCDEF0", "vol-01234567"] {
        assert!(matches!(
            id(bad).validate(),
            Err(IdentityError::InstanceId(_))
        ));
    }
}

#[test]
fn disks_round_trip_with_their_optional_fields() {
    let full = DiskConfig {
        path: "/v/vol-1.raw".into(),
        read_only: true,
        serial: Some("vol1".into()),
        id: Some("vol-1".into()),
        limits: Some(crate::ebs::Limits::of_volume(
            VolumeType::Gp3,
            8,
            None,
            None,
        )),
        direct: true,
    };
    let text = serde_json::to_string(&full).unwrap();
    assert_eq!(
        text,
        r#"{"path":"/v/vol-1.raw","read_only":true,"serial":"vol1","id":"vol-1","limits":{"volume_type":"gp3","size_gib":8,"iops":3000,"throughput_mibps":125},"direct":true}"#
    );
    assert_eq!(serde_json::from_str::<DiskConfig>(&text).unwrap(), full);
    // Absent optional fields are not written, and read back as absent.
    let bare = DiskConfig::new("/d".into());
    let text = serde_json::to_string(&bare).unwrap();
    assert_eq!(text, r#"{"path":"/d","read_only":false,"serial":null}"#);
    assert_eq!(serde_json::from_str::<DiskConfig>(&text).unwrap(), bare);
}
