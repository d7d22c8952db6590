//! Hot-plug bookkeeping on the real device set.

use super::*;
use crate::acpi::{EjectWait, GPE_PCI_HOTPLUG};
use crate::layout::GPE0_BLOCK_LEN;
use crate::pci::slots::slot_bar;

#[test]
fn boot_disks_are_listed_with_ids_slots_and_sizes() {
    let dir = scratch();
    let mut config = config_with_disks(&dir, 2);
    config.disks[1].id = Some("data".into());
    config.disks[1].limits = serde_json::from_str(r#"{"volume_type":"gp3","size_gib":1}"#).unwrap();
    let table = Arc::new(DiskTable::from_config(&config).unwrap());
    let r = boot(&config, table, dir);
    let list = r.table.list();
    assert_eq!(list.len(), 2);
    assert_eq!((list[0].id(), list[0].slot), ("vol-boot0", 1));
    assert_eq!((list[1].id(), list[1].slot), ("data", 2));
    assert_eq!(list[0].size_bytes(), 1 << 20);
    assert!(
        list.iter()
            .all(|e| e.state == DiskState::Attached && !e.root)
    );
    assert_eq!(list[1].limits().unwrap().size_gib, 1);
    // Each device runs on its disk's volume (its limits, its counters).
    for e in &list {
        let device = r.devices.disks.device_volume(e.id()).unwrap();
        assert!(Arc::ptr_eq(&device, &e.volume), "{}", e.id());
    }
    assert_eq!(r.pci_id(1), VIRTIO_BLK_ID);
    assert_eq!(r.pci_id(2), VIRTIO_BLK_ID);
    assert_eq!(r.pci_id(3), EMPTY);
    let json = serde_json::to_value(&list[0]).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    let mut want = [
        "id",
        "path",
        "read_only",
        "direct",
        "serial",
        "slot",
        "state",
        "size_bytes",
        "limits",
    ];
    want.sort();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, want);
    assert_eq!(json["state"], "attached");
}

#[test]
fn attach_then_detach_through_the_guest_eject() {
    let mut r = rig(1);
    let entry = r.attach("vol-hot").unwrap();
    assert_eq!(entry.slot, 2, "first free hot-plug slot");
    assert_eq!(entry.size_bytes(), 3 << 20);
    assert_eq!(
        r.pci_id(2),
        VIRTIO_BLK_ID,
        "on the bus before the guest is told"
    );
    assert_eq!(
        r.gpe_status() & (1 << GPE_PCI_HOTPLUG),
        1 << GPE_PCI_HOTPLUG
    );
    assert_eq!(r.pio_read32(PORT_PCI_HOTPLUG), 1 << 2, "PCIU");
    assert_eq!(r.pio_read32(PORT_PCI_HOTPLUG), 0, "PCIU clears on read");
    assert_eq!(r.table.get("vol-hot").unwrap(), entry);
    let device = r.devices.disks.device_volume("vol-hot").unwrap();
    assert!(
        Arc::ptr_eq(&device, &entry.volume),
        "one volume, for the API too"
    );

    assert_eq!(
        r.attach("vol-hot"),
        Err(DiskOpError::AlreadyAttached("vol-hot".into()))
    );
    let missing = r.run(DiskOp::Attach(AttachRequest {
        id: "vol-missing".into(),
        path: "/nonexistent/flint.img".into(),
        read_only: false,
        serial: None,
        limits: None,
        direct: false,
    }));
    assert_eq!(missing.as_ref().map_err(DiskOpError::status), Err(422));
    let relative = r.run(DiskOp::Attach(AttachRequest {
        id: "vol-rel".into(),
        path: "rel.img".into(),
        read_only: false,
        serial: None,
        limits: None,
        direct: false,
    }));
    assert_eq!(relative.map_err(|e| e.status()), Err(400));
    // The same file twice, writable: the lock refuses the second.
    let again = r.run(DiskOp::Attach(AttachRequest {
        id: "vol-again".into(),
        path: entry.path.clone(),
        read_only: false,
        serial: None,
        limits: None,
        direct: false,
    }));
    assert_eq!(again.map_err(|e| e.status()), Err(422));
    assert_eq!(r.table.list().len(), 2, "failed attaches leave nothing");

    let reply = r.run(DiskOp::Detach {
        id: "vol-hot".into(),
        force: false,
    });
    let Ok(DiskReply::EjectRequested(detaching)) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(detaching.state, DiskState::Detaching);
    assert_eq!(r.table.get("vol-hot").unwrap().state, DiskState::Detaching);
    assert_eq!(r.pio_read32(PORT_PCI_HOTPLUG + 4), 1 << 2, "PCID");
    assert_eq!(r.pci_id(2), VIRTIO_BLK_ID, "stays until the guest ejects");
    r.guest_ejects(2);
    assert_eq!(r.pci_id(2), EMPTY);
    assert_eq!(r.pio_read32(PORT_PCI_HOTPLUG + 4), 0);
    assert!(r.table.get("vol-hot").is_none(), "and its volume with it");
    assert!(r.devices.disks.device_volume("vol-hot").is_none());
    let gone = r.run(DiskOp::Detach {
        id: "vol-hot".into(),
        force: false,
    });
    assert_eq!(gone, Err(DiskOpError::NotFound("vol-hot".into())));
    // The slot and the file are free again.
    let again = r.attach("vol-hot").unwrap();
    assert_eq!(again.slot, 2);
}

#[test]
fn a_detach_says_why_it_waits_and_a_missed_request_is_signalled_again() {
    let mut r = rig(1);
    // Attached while the guest does not listen yet (firmware, early boot).
    r.attach("vol-early").unwrap();
    r.run(DiskOp::Detach {
        id: "vol-early".into(),
        force: false,
    })
    .unwrap();
    let t0 = std::time::Instant::now();
    r.devices.disks.poll_hotplug(t0);
    let entry = r.table.get("vol-early").unwrap();
    assert_eq!(entry.eject_wait, Some(EjectWait::GuestNotListening));
    let wire = serde_json::to_value(&entry).unwrap();
    assert_eq!(wire["eject_wait"], "guest-not-listening");
    // The guest's ACPI comes up: it clears the stale status and enables
    // the hot-plug GPE, so the first signal is lost.
    r.pio_write8(PORT_GPE0, 1 << GPE_PCI_HOTPLUG);
    r.pio_write8(PORT_GPE0 + GPE0_BLOCK_LEN / 2, 1 << GPE_PCI_HOTPLUG);
    assert_eq!(r.gpe_status() & (1 << GPE_PCI_HOTPLUG), 0);
    r.devices.disks.poll_hotplug(t0);
    assert_eq!(
        r.table.get("vol-early").unwrap().eject_wait,
        Some(EjectWait::NotRead)
    );
    // The main loop signals it again.
    r.devices
        .disks
        .poll_hotplug(t0 + std::time::Duration::from_secs(2));
    assert_ne!(r.gpe_status() & (1 << GPE_PCI_HOTPLUG), 0);
    // PCNT reads PCIU and PCID: seen, not yet ejected.
    let _ = r.pio_read32(PORT_PCI_HOTPLUG);
    assert_eq!(r.pio_read32(PORT_PCI_HOTPLUG + 4), 1 << 2);
    r.devices.disks.poll_hotplug(t0);
    let entry = r.table.get("vol-early").unwrap();
    assert_eq!(entry.eject_wait, Some(EjectWait::GuestHolding));
    assert_eq!(
        serde_json::to_value(&entry).unwrap()["eject_wait"],
        "guest-holding"
    );
    r.guest_ejects(2);
    assert!(r.table.get("vol-early").is_none());
    // An attached disk's wire form has no eject_wait.
    let boot = r.table.list().remove(0);
    assert!(
        serde_json::to_value(&boot)
            .unwrap()
            .get("eject_wait")
            .is_none()
    );
}

#[test]
fn the_guest_may_move_a_hot_plugged_bar_and_unplug_follows_it() {
    let mut r = rig(0);
    let entry = r.attach("vol-moved").unwrap();
    let old = slot_bar(entry.slot);
    let new = 0x9000_0000u32;
    // What Linux does for a hot-added device: assign BAR0 from its window.
    r.pio_write32(
        PORT_PCI_CONFIG_ADDRESS,
        0x8000_0010 | u32::from(entry.slot) << 11,
    );
    r.pio_write32(PORT_PCI_CONFIG_ADDRESS + 4, new);
    let mut cap = [0u8; 8];
    assert!(
        !r.devices.mmio.read(old + 0x2000, &mut cap),
        "old window left"
    );
    assert!(r.devices.mmio.read(u64::from(new) + 0x2000, &mut cap));
    assert_eq!(u64::from_le_bytes(cap), (3 << 20) / 512);
    r.run(DiskOp::Detach {
        id: "vol-moved".into(),
        force: false,
    })
    .unwrap();
    r.guest_ejects(entry.slot);
    assert!(r.devices.mmio.is_free(u64::from(new), 0x1_0000));
    assert!(r.table.list().is_empty());
}

#[test]
fn an_eject_the_host_did_not_ask_for_changes_nothing() {
    let mut r = rig(2);
    let before = r.pci_id(2);
    assert_ne!(before, EMPTY);
    // A guest that powers a slot off by itself: the disk stays attached
    // (the host decides what is attached, as on EC2).
    r.guest_ejects(2);
    assert_eq!(r.pci_id(2), before);
    assert_eq!(r.table.list().len(), 2);
    // Slot 5 holds NICs: never a hot-plug slot, its eject is ignored.
    r.pio_write32(PORT_PCI_HOTPLUG + 8, 1 << 5);
    assert_eq!(r.devices.hotplug.take_ejected(), 0);
}

#[test]
fn forced_detach_quarantines_the_slot_until_the_guest_ejects() {
    let mut r = rig(1);
    assert_eq!(r.attach("a").unwrap().slot, 2);
    assert_eq!(r.attach("b").unwrap().slot, 3);
    let reply = r.run(DiskOp::Detach {
        id: "a".into(),
        force: true,
    });
    let Ok(DiskReply::Removed(removed)) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!((removed.slot, removed.state), (2, DiskState::Detached));
    assert!(r.table.get("a").is_none());
    assert_eq!(r.pci_id(2), EMPTY, "gone at once");
    // Its BAR reads 0 until the guest ejects: a driver's reset completes.
    let status_register = slot_bar(2) + 0x14;
    let mut status = [0xffu8; 1];
    assert!(r.devices.mmio.read(status_register, &mut status));
    assert_eq!(status, [0]);
    assert_eq!(
        r.pio_read32(PORT_PCI_HOTPLUG + 4),
        1 << 2,
        "the guest is asked to forget it"
    );
    assert_eq!(r.attach("c").unwrap().slot, 4, "slot 2 waits for the guest");
    r.guest_ejects(2);
    assert!(
        !r.devices.mmio.read(status_register, &mut status),
        "stand-in gone"
    );
    assert_eq!(r.attach("d").unwrap().slot, 2);
    assert_eq!(r.table.list().len(), 4);

    // The root volume stays.
    r.table.lock()[0].root = true;
    for force in [false, true] {
        let refused = r.run(DiskOp::Detach {
            id: "vol-boot0".into(),
            force,
        });
        assert_eq!(refused.map_err(|e| e.status()), Err(409));
    }
}

#[test]
fn attaching_past_the_last_slot_is_507() {
    let mut r = rig(0);
    let slots = crate::pci::slots::hotplug_slots().count_ones() as usize;
    for i in 0..slots {
        let e = r.attach(&format!("vol-{i}")).unwrap();
        assert!(!(5..9).contains(&e.slot), "NIC slot {}", e.slot);
        assert_eq!(r.pci_id(e.slot), VIRTIO_BLK_ID);
    }
    assert_eq!(r.attach("vol-last"), Err(DiskOpError::NoFreeSlot));
    assert_eq!(DiskOpError::NoFreeSlot.status(), 507);
}

#[test]
fn resize_and_limits_apply_live() {
    let mut r = rig(0);
    let entry = r.attach("vol-grow").unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&entry.path)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let resize = |id: &str| DiskOp::Resize { id: id.into() };
    assert_eq!(r.run(resize("vol-grow")), Ok(DiskReply::Resized(8 << 20)));
    assert_eq!(r.table.get("vol-grow").unwrap().size_bytes(), 8 << 20);
    // The guest reads the new capacity from the device config.
    let bar = slot_bar(entry.slot);
    let mut cap = [0u8; 8];
    r.devices.mmio.read(bar + 0x2000, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), (8 << 20) / 512);
    let unknown = r.run(resize("nope"));
    assert_eq!(unknown.map_err(|e| e.status()), Err(404));

    // Limits go to the volume the device runs on.
    let limits = serde_json::from_str(r#"{"volume_type":"io2","size_gib":8,"iops":1000}"#);
    let e = r.table.set_limits("vol-grow", limits.unwrap()).unwrap();
    assert_eq!(e.limits().unwrap().iops, Some(1000));
    let device = r.devices.disks.device_volume("vol-grow").unwrap();
    assert_eq!(device.limits().unwrap().iops, Some(1000));
    let bad = serde_json::from_str(r#"{"volume_type":"io2","size_gib":8}"#).unwrap();
    let refused = r.table.set_limits("vol-grow", Some(bad));
    assert_eq!(refused.map_err(|e| e.status()), Err(400));
    assert_eq!(device.limits().unwrap().iops, Some(1000), "unchanged");
    assert!(
        r.table
            .set_limits("vol-grow", None)
            .unwrap()
            .limits()
            .is_none()
    );
    assert!(device.limits().is_none());
    let unknown = r.table.set_limits("nope", None);
    assert_eq!(unknown.map_err(|e| e.status()), Err(404));
}

#[test]
fn a_hot_plugged_disk_is_throttled_by_its_limits_and_keeps_its_volume_across_boots() {
    let mut r = rig(0);
    let path = image(&r.dir, "vol-gp2.img", 1 << 20);
    let attach = |limits: &str| {
        DiskOp::Attach(AttachRequest {
            id: "vol-gp2".into(),
            path: path.clone(),
            read_only: false,
            serial: None,
            limits: serde_json::from_str(limits).unwrap(),
            direct: false,
        })
    };
    // EBS's rules for the type: gp2's IOPS follow from its size.
    let refused = r.run(attach(r#"{"volume_type":"gp2","size_gib":8,"iops":24}"#));
    assert_eq!(refused.map_err(|e| e.status()), Err(400));
    let Ok(DiskReply::Entry(entry)) = r.run(attach(r#"{"volume_type":"gp2","size_gib":8}"#)) else {
        panic!()
    };
    let device = r.devices.disks.device_volume("vol-gp2").unwrap();
    assert!(Arc::ptr_eq(&device, &entry.volume));
    assert_eq!(device.metrics().burst_balance, Some(100.0), "a gp2 bucket");
    let (table, dir) = (r.table.clone(), r.dir.clone());
    let config = config_with_disks(&dir, 0);
    drop(r);
    let r = boot(&config, table, dir);
    let after = r.devices.disks.device_volume("vol-gp2").unwrap();
    assert!(
        Arc::ptr_eq(&after, &entry.volume),
        "same limits and counters"
    );
    assert_eq!(after.limits().unwrap().size_gib, 8);
}

#[test]
fn a_new_boot_keeps_attached_disks_and_completes_detaches() {
    let mut r = rig(1);
    let kept = r.attach("vol-kept").unwrap();
    r.attach("vol-leaving").unwrap();
    let lost = r.attach("vol-lost").unwrap();
    std::fs::remove_file(&lost.path).unwrap();
    r.run(DiskOp::Detach {
        id: "vol-leaving".into(),
        force: false,
    })
    .unwrap();
    let (table, dir) = (r.table.clone(), r.dir.clone());
    let config = config_with_disks(&dir, 0);
    drop(r);
    // The boot disk's file is reopened: its config entry came from `table`;
    // the hot-plugged disk whose file went away is dropped, not fatal.
    let r = boot(&config, table, dir);
    let ids: Vec<String> = r.table.list().iter().map(|e| e.id().to_string()).collect();
    assert_eq!(ids, ["vol-boot0", "vol-kept"]);
    assert_eq!(r.pci_id(kept.slot), VIRTIO_BLK_ID);
    assert_eq!(r.pci_id(3), EMPTY);
}

#[test]
fn patch_bodies_tell_null_limits_from_absent_ones() {
    let p: DiskPatch = serde_json::from_str(r#"{"resize":true}"#).unwrap();
    assert_eq!((p.resize, p.limits), (true, None));
    let p: DiskPatch = serde_json::from_str(r#"{"limits":null}"#).unwrap();
    assert_eq!(p.limits, Some(None));
    p.validate().unwrap();
    assert!(serde_json::from_str::<DiskPatch>(r#"{"grow":1}"#).is_err());
    let nothing = DiskPatch::default().validate();
    assert_eq!(nothing.map_err(|e| e.status()), Err(400));
    let p: DiskPatch =
        serde_json::from_str(r#"{"resize":true,"limits":{"volume_type":"io1","size_gib":8}}"#)
            .unwrap();
    let e = p.validate().unwrap_err().to_string();
    assert!(e.contains("bad limits: a io1 volume needs iops"), "{e}");
    assert!(serde_json::from_str::<AttachRequest>(r#"{"path":"/x"}"#).is_err());
    let a: AttachRequest = serde_json::from_str(
        r#"{"id":"vol-1","path":"/x","read_only":true,"serial":"vol1","limits":null}"#,
    )
    .unwrap();
    assert!(a.read_only && a.limits.is_none());
    let long = AttachRequest {
        serial: Some("x".repeat(21)),
        ..a.clone()
    };
    assert_eq!(long.validate().map_err(|e| e.status()), Err(400));
    let bad_id = AttachRequest {
        id: "a/b".into(),
        ..a
    };
    assert_eq!(bad_id.validate().map_err(|e| e.status()), Err(400));
    let bad_limits: AttachRequest = serde_json::from_str(
        r#"{"id":"vol-1","path":"/x","limits":{"volume_type":"st1","size_gib":10}}"#,
    )
    .unwrap();
    assert_eq!(bad_limits.validate().map_err(|e| e.status()), Err(400));
}

#[test]
fn twenty_attach_detach_cycles_give_back_their_gsis_and_slot() {
    let mut r = rig(1);
    let gsis = r.vm.msi_gsis_in_use();
    let mut slots = Vec::new();
    for i in 0..20 {
        let entry = r.attach("vol-cycle").unwrap();
        assert!(r.vm.msi_gsis_in_use() > gsis, "the device holds vectors");
        slots.push(entry.slot);
        // Half of them forced: both paths must give everything back.
        let detach = DiskOp::Detach {
            id: "vol-cycle".into(),
            force: i % 2 == 1,
        };
        r.run(detach).unwrap();
        r.guest_ejects(entry.slot);
        assert!(r.table.get("vol-cycle").is_none(), "cycle {i}");
    }
    assert_eq!(r.vm.msi_gsis_in_use(), gsis, "GSIs leaked");
    assert!(slots.iter().all(|&s| s == slots[0]), "slots {slots:?}");
    assert_eq!(r.table.list().len(), 1, "only the boot disk");
}
