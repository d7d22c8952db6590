//! Disk hot-plug on a real KVM VM with the real device set: the guest's side
//! (conf1 reads, the AML's PCIU/PCID reads and B0EJ write) is played through
//! the same PIO bus a vCPU exit would reach.
//!
//! - `hotplug`: attach, detach, eject, forced removal, resize, reboots.
//! - `socket`: the control socket's endpoints over HTTP, and the cycle the
//!   seccomp tests run under the VMM thread's filter.

mod hotplug;
mod socket;

pub(crate) use socket::{hotplug_cycle, hotplug_files};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use event_manager::{EventManager, SubscriberOps};

use super::*;
use crate::device_manager::{Devices, HostResources};
use crate::events::Subscriber;
use crate::layout::{PORT_GPE0, PORT_PCI_CONFIG_ADDRESS, PORT_PCI_HOTPLUG};
use crate::memory;
use crate::power::PowerControl;
use crate::vm::Vm;
use flint_contract::config::DiskConfig;
use flint_contract::socket::DiskPatch;

fn scratch() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "flint-disks-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn image(dir: &Path, name: &str, len: u64) -> PathBuf {
    let path = dir.join(name);
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(len).unwrap();
    path
}

struct Rig {
    devices: Devices,
    events: EventManager<Subscriber>,
    table: Arc<DiskTable>,
    dir: PathBuf,
    // Kept alive for the devices (they hold clones; the VM must outlive them).
    vm: Arc<Vm>,
}

fn config_with_disks(dir: &Path, disks: usize) -> VmConfig {
    let mut config: VmConfig = serde_json::from_str("{}").unwrap();
    config.memory_mib = 64;
    config.console.file = Some(dir.join("console.log"));
    for i in 0..disks {
        let mut disk = DiskConfig::new(image(dir, &format!("boot{i}.img"), 1 << 20));
        disk.serial = Some(format!("vol-boot{i}"));
        config.disks.push(disk);
    }
    config
}

fn boot(config: &VmConfig, table: Arc<DiskTable>, dir: PathBuf) -> Rig {
    let mem = memory::create_guest_memory(64 << 20).unwrap();
    let vm = Arc::new(Vm::new(&mem).unwrap());
    let power = PowerControl::new().unwrap();
    let host = HostResources {
        disks: Some(&table),
        ..Default::default()
    };
    let mut devices = Devices::build(&vm, &mem, config, &power, host).unwrap();
    let mut events = EventManager::new().unwrap();
    for s in devices.subscribers.drain(..) {
        events.add_subscriber(s);
    }
    devices.disks.register(&mut events);
    Rig {
        devices,
        events,
        table,
        dir,
        vm,
    }
}

fn rig(boot_disks: usize) -> Rig {
    let dir = scratch();
    let config = config_with_disks(&dir, boot_disks);
    let table = Arc::new(DiskTable::from_config(&config).unwrap());
    boot(&config, table, dir)
}

impl Rig {
    fn run(&mut self, op: DiskOp) -> Result<DiskReply, DiskOpError> {
        let r = self.devices.disks.execute(op, &mut self.events);
        self.devices.disks.collect_ejected(&mut self.events);
        r
    }

    fn attach(&mut self, id: &str) -> Result<DiskEntry, DiskOpError> {
        let path = image(&self.dir, &format!("{id}.img"), 3 << 20);
        match self.run(DiskOp::Attach(AttachRequest {
            id: id.into(),
            path,
            read_only: false,
            serial: Some(id.into()),
            limits: None,
            direct: false,
        }))? {
            DiskReply::Entry(e) => Ok(e),
            other => panic!("attach answered {other:?}"),
        }
    }

    fn pio_read32(&self, port: u16) -> u32 {
        let mut b = [0u8; 4];
        assert!(self.devices.pio.read(u64::from(port), &mut b));
        u32::from_le_bytes(b)
    }

    fn pio_write8(&self, port: u16, value: u8) {
        assert!(self.devices.pio.write(u64::from(port), &[value]));
    }

    fn pio_write32(&self, port: u16, value: u32) {
        assert!(
            self.devices
                .pio
                .write(u64::from(port), &value.to_le_bytes())
        );
    }

    /// Vendor and device id in `slot`, as the guest's conf1 read sees them.
    fn pci_id(&self, slot: u8) -> u32 {
        self.pio_write32(PORT_PCI_CONFIG_ADDRESS, 0x8000_0000 | u32::from(slot) << 11);
        self.pio_read32(PORT_PCI_CONFIG_ADDRESS + 4)
    }

    fn gpe_status(&self) -> u8 {
        let mut b = [0u8; 1];
        self.devices.pio.read(u64::from(PORT_GPE0), &mut b);
        b[0]
    }

    /// What the guest's _EJ0 for `slot` does.
    fn guest_ejects(&mut self, slot: u8) {
        self.pio_write32(PORT_PCI_HOTPLUG + 8, 1 << slot);
        self.devices.disks.collect_ejected(&mut self.events);
    }
}

const VIRTIO_BLK_ID: u32 = 0x1042_1af4;
const EMPTY: u32 = u32::MAX;
