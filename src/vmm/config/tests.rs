use std::io::Write;

use super::*;

fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flint-config-test-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    fs::File::create(&path)
        .unwrap()
        .write_all(contents)
        .unwrap();
    path
}

fn args(kernel: &Path) -> VmmArgs {
    VmmArgs {
        kernel: Some(kernel.to_path_buf()),
        ..Default::default()
    }
}

#[test]
fn flags_build_a_valid_config_with_defaults() {
    let kernel = temp_file("k1", b"kernel");
    let disk = temp_file("d1", &[0; 1024]);
    let mut a = args(&kernel);
    a.disks = vec![format!("{},ro,serial=vol-0123", disk.display())];
    a.vcpus = Some(2);
    a.consoles = vec!["stdio".into(), "/tmp/console.log".into()];
    let config = a.to_config().unwrap();
    config.validate().unwrap();
    assert_eq!(config.vcpus, 2);
    assert_eq!(config.memory_mib, 512);
    assert!(config.disks[0].read_only);
    assert_eq!(config.disks[0].serial.as_deref(), Some("vol-0123"));
    assert!(config.console.stdio);
    assert_eq!(config.console.file, Some(PathBuf::from("/tmp/console.log")));
    assert!(config.seccomp);
}

#[test]
fn config_file_round_trips_and_flags_override_it() {
    let kernel = temp_file("k2", b"kernel");
    let json = format!(
        r#"{{"vcpus": 4, "memory_mib": 1024, "kernel": {{"path": "{}", "cmdline": "console=ttyS0"}}}}"#,
        kernel.display()
    );
    let file = temp_file("c2.json", json.as_bytes());
    let mut a = VmmArgs {
        config: Some(file),
        ..Default::default()
    };
    a.memory = Some(256);
    let config = a.to_config().unwrap();
    config.validate().unwrap();
    assert_eq!((config.vcpus, config.memory_mib), (4, 256));
    assert_eq!(config.kernel.unwrap().cmdline, "console=ttyS0");
}

#[test]
fn bad_configs_are_clear_errors() {
    let kernel = temp_file("k3", b"kernel");
    let check = |mutate: &dyn Fn(&mut VmConfig), wanted: &str| {
        let mut config = args(&kernel).to_config().unwrap();
        mutate(&mut config);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains(wanted), "{err:?} does not mention {wanted:?}");
    };
    check(&|c| c.vcpus = 0, "vcpus");
    check(&|c| c.vcpus = 255, "vcpus");
    check(&|c| c.memory_mib = 1, "memory");
    check(&|c| c.kernel = None, "nothing to boot");
    check(
        &|c| c.kernel.as_mut().unwrap().path = "/nonexistent/vmlinuz".into(),
        "kernel /nonexistent/vmlinuz",
    );
    check(
        &|c| c.kernel.as_mut().unwrap().path = "/tmp".into(),
        "is a directory",
    );
    check(
        &|c| c.kernel.as_mut().unwrap().cmdline = "x".repeat(5000),
        "command line",
    );
    check(
        &|c| c.disks.push(DiskConfig::new("/nonexistent.img".into())),
        "disk /nonexistent.img",
    );
    let disk = temp_file("d3", &[0; 512]);
    check(
        &|c| {
            c.disks.push(DiskConfig {
                read_only: true,
                serial: Some("x".repeat(21)),
                ..DiskConfig::new(disk.clone())
            })
        },
        "serial",
    );
    check(
        &|c| {
            let d = DiskConfig {
                read_only: true,
                ..DiskConfig::new(disk.clone())
            };
            c.disks.push(d.clone());
            c.disks.push(d);
        },
        "given twice",
    );
}

#[test]
fn bad_flags_and_files_are_clear_errors() {
    let kernel = temp_file("k4", b"kernel");
    let mut a = args(&kernel);
    a.disks = vec!["x.img,rw".into()];
    assert!(
        a.to_config()
            .unwrap_err()
            .to_string()
            .contains("unknown option")
    );
    a.disks = vec![",ro".into()];
    assert!(
        a.to_config()
            .unwrap_err()
            .to_string()
            .contains("path comes first")
    );
    let bad = temp_file("bad.json", b"{\"vcpus\": 2, \"bogus\": 1}");
    let a = VmmArgs {
        config: Some(bad),
        ..Default::default()
    };
    assert!(a.to_config().unwrap_err().to_string().contains("bogus"));
    let a = VmmArgs {
        config: Some("/nonexistent.json".into()),
        ..Default::default()
    };
    assert!(
        a.to_config()
            .unwrap_err()
            .to_string()
            .contains("cannot read")
    );
}

#[test]
fn disk_ids_default_to_the_serial_and_must_be_unique() {
    let disk = temp_file("ids", &[0; 512]);
    let other = temp_file("ids2", &[0; 512]);
    let kernel = temp_file("k-ids", b"kernel");
    let mut c = args(&kernel).to_config().unwrap();
    c.disks = vec![
        DiskConfig {
            serial: Some("vol-0a1b".into()),
            ..DiskConfig::new(disk.clone())
        },
        DiskConfig {
            serial: Some("has/slash".into()),
            ..DiskConfig::new(other.clone())
        },
    ];
    assert_eq!(c.disk_ids(), ["vol-0a1b", "disk1"]);
    c.validate().unwrap();
    c.disks[1].id = Some("vol-0a1b".into());
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("given twice")
    );
    c.disks[1].id = Some("a/b".into());
    assert!(c.validate().unwrap_err().to_string().contains("disk id"));
    // Limits and id round-trip through the JSON config.
    let json = format!(
        r#"{{"path":"{}","id":"vol-1","limits":{{"volume_type":"io2","size_gib":4,"iops":100}}}}"#,
        disk.display()
    );
    let d: DiskConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(d.id.as_deref(), Some("vol-1"));
    assert_eq!(d.limits.unwrap().iops, Some(100));
}
