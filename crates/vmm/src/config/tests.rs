use std::io::Write;

use super::*;
use flint_contract::config::DiskConfig;

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
    let disk2 = temp_file("d1b", &[0; 1024]);
    let mut a = args(&kernel);
    a.disks = vec![
        format!("{},ro,serial=vol-0123", disk.display()),
        format!("{},direct", disk2.display()),
    ];
    a.vcpus = Some(2);
    a.consoles = vec!["stdio".into(), "/tmp/console.log".into()];
    let config = a.to_config().unwrap();
    config.validate().unwrap();
    assert_eq!(config.vcpus, 2);
    assert_eq!(config.memory_mib, 512);
    assert!(config.disks[0].read_only);
    assert_eq!(config.disks[0].serial.as_deref(), Some("vol-0123"));
    assert!(!config.disks[0].direct && config.disks[1].direct);
    assert!(!config.disks[1].read_only);
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
fn disks_take_an_id_and_ebs_limits_from_flags_and_json() {
    let kernel = temp_file("k5", b"kernel");
    let d1 = temp_file("d5a", &[0; 1024]);
    let d2 = temp_file("d5b", &[0; 1024]);
    let mut a = args(&kernel);
    a.disks = vec![
        format!(
            "{},id=data,type=gp3,size_gib=100,iops=6000,throughput_mibps=250",
            d1.display()
        ),
        format!("{},serial=vol-2", d2.display()),
    ];
    let config = a.to_config().unwrap();
    config.validate().unwrap();
    let limits = config.disks[0].limits.unwrap();
    assert_eq!(limits.size_gib, 100);
    assert_eq!(
        (limits.iops, limits.throughput_mibps),
        (Some(6000), Some(250))
    );
    assert_eq!(config.disk_ids(), ["data", "vol-2"]);

    let flag_error = |spec: String| {
        let mut a = args(&kernel);
        a.disks = vec![spec];
        a.to_config().unwrap_err().to_string()
    };
    let e = flag_error(format!("{},type=gp3", d1.display()));
    assert!(e.contains("size_gib"), "{e}");
    let e = flag_error(format!("{},type=gp9,size_gib=1", d1.display()));
    assert!(e.contains("unknown variant `gp9`"), "{e}");
    let e = flag_error(format!("{},type=gp3,size_gib=many", d1.display()));
    assert!(e.contains("size_gib wants a number"), "{e}");

    let json = format!(
        r#"{{"kernel": {{"path": "{}"}}, "disks": [
            {{"path": "{}", "id": "a", "limits": {{"volume_type": "gp2", "size_gib": 8}}}},
            {{"path": "{}", "limits": null}}]}}"#,
        kernel.display(),
        d1.display(),
        d2.display()
    );
    let config = VmConfig::from_file(&temp_file("c5.json", json.as_bytes())).unwrap();
    config.validate().unwrap();
    assert_eq!(config.disks[0].limits.unwrap().size_gib, 8);
    assert_eq!(config.disk_ids(), ["a", "disk1"]);

    let mut c = config.clone();
    c.disks[0].limits.as_mut().unwrap().iops = Some(3000);
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.contains("limits: iops cannot be set for a gp2 volume"),
        "{e}"
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
}
