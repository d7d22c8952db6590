use std::io::{Seek, SeekFrom, Write};

use super::TempDir;
use crate::supervisor::{network, process, vm_config, volume};

#[test]
fn tap_names_fit_ifnamsiz_and_macs_are_local_unicast_and_stable() {
    let id = "i-0123456789abcdef0";
    let tap = network::tap_name(id);
    assert_eq!(tap, "fl456789abcdef0");
    assert!(tap.len() <= 15);
    assert_eq!(network::tap_name("i-01234567"), "fl01234567");
    let mac = network::mac_for(id);
    assert_eq!(mac, network::mac_for(id));
    assert_ne!(mac, network::mac_for("i-0123456789abcdef1"));
    assert!(mac.starts_with("0e:") && mac.len() == 17, "{mac}");
    let id = network::derived_id("subnet-", "172.31.0.0/20");
    assert!(id.starts_with("subnet-") && id.len() == 7 + 17);
}

#[test]
fn disk_serials_are_ec2_nvme_style_and_fit_virtio() {
    let serial = vm_config::disk_serial("vol-0123456789abcdef0");
    assert_eq!(serial, "vol0123456789abcdef0");
    assert!(serial.len() <= flint_contract::config::MAX_SERIAL_LEN);
}

#[test]
fn attached_volumes_go_to_the_vm_in_device_order_and_to_the_metadata() {
    use crate::store::volumes::{AttachmentState, VolumeRecord};
    let attached = |id: &str, device: &str, state| VolumeRecord {
        id: id.into(),
        device: Some(device.into()),
        instance_id: Some("i-0123456789abcdef0".into()),
        attachment_state: Some(state),
        ..VolumeRecord::default()
    };
    let volumes = [
        attached("vol-3", "/dev/xvdba", AttachmentState::Attached),
        attached("vol-1", "/dev/sdg", AttachmentState::Attached),
        attached("vol-0", vm_config::ROOT_DEVICE, AttachmentState::Attached),
        attached("vol-2", "xvdf", AttachmentState::Attaching),
        attached("vol-4", "/dev/sdh", AttachmentState::Detaching),
    ];
    let mapping = vm_config::block_device_mapping(&volumes);
    let entries: Vec<(&str, &str)> = mapping
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Only attached volumes, numbered in device order; attaching and
    // detaching ones are not the guest's (yet, any more).
    assert_eq!(
        entries,
        [
            ("ami", "/dev/xvda"),
            ("ebs1", "sdg"),
            ("ebs2", "xvdba"),
            ("root", "/dev/xvda")
        ]
    );
    assert!(vm_config::device_order("/dev/sdz") < vm_config::device_order("/dev/xvdba"));
    assert_eq!(
        vm_config::device_slot("/dev/xvdf"),
        vm_config::device_slot("sdf")
    );
}

#[test]
fn proc_stat_is_read_after_the_last_parenthesis() {
    let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 10";
    assert_eq!(process::parse_stat(line), Some(987_654));
    let zombie = "4242 (x) Z 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 10";
    assert_eq!(process::parse_stat(zombie), None);
    assert_eq!(process::parse_stat("garbage"), None);
    let me = i32::try_from(std::process::id()).unwrap();
    let ticks = process::start_ticks(me).expect("own start time");
    assert!(process::is_same_process(me, ticks));
    assert!(!process::is_same_process(me, ticks + 1));
    assert!(!process::signal_if_same(me, ticks + 1, 0));
}

#[test]
fn last_words_are_read_from_json_logs_too() {
    let dir = TempDir::new("words-json");
    let log = dir.path().join("vmm.log");
    let marker = crate::supervisor::layout::START_MARKER;
    std::fs::write(
        &log,
        format!(
            "{marker} at 1\n{{\"level\":\"ERROR\",\"message\":\"flint vmm: KVM internal error\",\"target\":\"flint\"}}\n\
             {{\"level\":\"INFO\",\"message\":\"exiting\"}}\n{{not json\n"
        ),
    )
    .unwrap();
    assert_eq!(
        process::last_words(&log).as_deref(),
        Some("KVM internal error")
    );
}

#[test]
fn last_words_come_from_the_latest_run_only() {
    let dir = TempDir::new("words");
    let log = dir.path().join("vmm.log");
    let marker = crate::supervisor::layout::START_MARKER;
    std::fs::write(
        &log,
        format!("{marker} at 1\nflint vmm: old failure\n{marker} at 2\nsome output\n"),
    )
    .unwrap();
    assert_eq!(process::last_words(&log), None);
    std::fs::write(
        &log,
        format!("{marker} at 1\n{marker} at 2\nflint vmm: KVM internal error\n"),
    )
    .unwrap();
    assert_eq!(
        process::last_words(&log).as_deref(),
        Some("KVM internal error")
    );
    assert_eq!(process::last_words(&dir.path().join("missing")), None);
}

#[test]
fn a_sparse_clone_keeps_data_and_holes_and_grows() {
    let dir = TempDir::new("clone");
    let image = dir.path().join("image.raw");
    let mut f = std::fs::File::create(&image).unwrap();
    f.write_all(b"MBR!").unwrap();
    f.seek(SeekFrom::Start(8 << 20)).unwrap();
    f.write_all(b"middle").unwrap();
    f.set_len(16 << 20).unwrap();
    drop(f);
    let dest = dir.path().join("vol.raw");
    let method = volume::clone_image(&image, &dest, 2 * volume::GIB).unwrap();
    let data = std::fs::read(&dest).unwrap();
    assert_eq!(data.len() as u64, 2 * volume::GIB, "{method:?}");
    assert_eq!(&data[..4], b"MBR!");
    assert_eq!(&data[8 << 20..(8 << 20) + 6], b"middle");
    assert!(data[16 << 20..].iter().all(|&b| b == 0));
    use std::os::unix::fs::MetadataExt;
    let allocated = std::fs::metadata(&dest).unwrap().blocks() * 512;
    assert!(
        allocated < 4 << 20,
        "{allocated} bytes allocated: not sparse"
    );
    // No partial file is left behind; a clone onto a bad path fails cleanly.
    assert!(!dest.with_extension("raw.partial").exists());
    assert!(volume::clone_image(&dir.path().join("nope"), &dir.path().join("v2.raw"), 0).is_err());
    assert!(!dir.path().join("v2.raw.partial").exists());
    assert_eq!(volume::gib_for(1), 1);
    assert_eq!(volume::gib_for(volume::GIB + 1), 2);
    // A copy reports its progress, ending at 100 (a reflink reports none).
    let mut seen = Vec::new();
    let copy = dir.path().join("snap.raw");
    let method = volume::clone_with_progress(&image, &copy, 0, &mut |p| seen.push(p)).unwrap();
    if method == volume::CloneMethod::SparseCopy {
        assert_eq!(seen.last(), Some(&100), "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    }
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&image).unwrap()
    );
}

#[test]
fn direct_io_reaches_hot_plugged_and_boot_time_volumes() {
    use crate::store::volumes::VolumeRecord;
    use crate::supervisor::disks::attach_request;
    use flint_contract::config::ImageConfig;
    use flint_contract::socket::AttachRequest;
    let v = VolumeRecord {
        id: "vol-0123456789abcdef0".into(),
        path: "/data/volumes/vol-0123456789abcdef0.raw".into(),
        volume_type: "gp3".into(),
        size_gib: 8,
        ..VolumeRecord::default()
    };
    assert!(attach_request(&v, true).unwrap().direct);
    assert!(!attach_request(&v, false).unwrap().direct);
    // What the VMM reads from the body is what the daemon built.
    let request = attach_request(&v, true).unwrap();
    let body = serde_json::to_string(&request).unwrap();
    let parsed: AttachRequest = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed, request);
    parsed.validate().unwrap();
    assert_eq!(parsed.serial.as_deref(), Some("vol0123456789abcdef0"));
    let mut image = ImageConfig::new("/data/volumes/root.raw".into());
    assert!(!image.disk().direct);
    image.direct = true;
    assert!(image.disk().direct, "the root volume too");
}

#[test]
fn the_vm_config_carries_each_volume_with_its_own_id_and_limits() {
    use crate::store::ips::Subnet;
    use crate::store::volumes::{AttachmentState, VolumeRecord};
    use crate::supervisor::SupervisorConfig;
    use crate::supervisor::limits::limits;
    use crate::supervisor::vm_config::{LaunchSpec, ROOT_DEVICE, build, disk_serial};
    use flint_contract::config::{VmConfig, valid_tap_name};
    let dir = TempDir::new("vm-config");
    let mut cfg = SupervisorConfig::new(dir.path(), Subnet::parse("172.31.0.0/20").unwrap());
    cfg.direct_io = true;
    let mut instance = crate::store::tests::instance(7);
    instance.private_ip = Some("172.31.0.10".parse().unwrap());
    let volume = |id: &str, device: &str, kind: &str, size, iops, state| VolumeRecord {
        id: id.into(),
        path: format!("/data/volumes/{id}.raw"),
        volume_type: kind.into(),
        size_gib: size,
        iops,
        device: Some(device.into()),
        instance_id: Some(instance.id.clone()),
        attachment_state: Some(state),
        ..VolumeRecord::default()
    };
    use AttachmentState::{Attached, Detaching};
    let root = volume(
        "vol-000000000000000a0",
        ROOT_DEVICE,
        "gp3",
        8,
        None,
        Attached,
    );
    // Listed out of device order, with one on its way out.
    let volumes = [
        volume(
            "vol-000000000000000b2",
            "/dev/xvdg",
            "io2",
            10,
            Some(5_000),
            Attached,
        ),
        root.clone(),
        volume(
            "vol-000000000000000c3",
            "/dev/sdh",
            "st1",
            500,
            None,
            Detaching,
        ),
        volume("vol-000000000000000d1", "sdf", "gp2", 100, None, Attached),
    ];
    let spec = LaunchSpec {
        instance: &instance,
        root: &root,
        volumes: &volumes,
        image: None,
        public_key: None,
        tags: Vec::new(),
    };
    let vm = build(&cfg, &spec).unwrap();
    // vm.json as written, read as `flint vmm --config` reads it.
    let text = serde_json::to_string_pretty(&vm).unwrap();
    let read: VmConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(read, vm);
    let expected = [&root, &volumes[3], &volumes[0]];
    assert_eq!(
        read.disk_ids(),
        expected.iter().map(|v| v.id.clone()).collect::<Vec<_>>()
    );
    for (disk, v) in read.all_disks().iter().zip(expected) {
        assert_eq!(disk.id.as_deref(), Some(v.id.as_str()));
        assert_eq!(disk.serial, Some(disk_serial(&v.id)));
        assert_eq!(disk.limits, Some(limits(v).unwrap()), "{}", v.id);
        assert_eq!(disk.path.to_str(), Some(v.path.as_str()));
        assert!(disk.direct && !disk.read_only);
        disk.limits.unwrap().validate().unwrap();
    }
    // The parts the VMM checks without touching the host.
    read.identity.validate().unwrap();
    flint_contract::config::net::validate_nics(&read.nics).unwrap();
    assert!(valid_tap_name(&read.nics[0].tap));
    let metadata = read.metadata.as_ref().unwrap();
    metadata.validate().unwrap();
    assert_eq!(metadata.instance_id, read.identity.instance_id);
    assert_eq!(metadata.instance_type, read.identity.instance_type);
}
