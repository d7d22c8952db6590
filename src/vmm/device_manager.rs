//! Builds a VM's devices and puts them on the buses: legacy PC devices,
//! the ACPI PM block, PCI bus 0 and the virtio-pci disks. PCI slots are
//! assigned in disk order from slot 1 (slot 0 is the host bridge), each
//! with a fixed 64 KiB BAR window, so a slot's resources never move between
//! boots and hot-plug can fill free slots later.

use std::sync::{Arc, Mutex};

use event_manager::{EventOps, Events, MutEventSubscriber};
use thiserror::Error;
use vm_memory::GuestAddress;

use crate::vmm::acpi::{self, AcpiConfig, PmDevice, ResetDevice};
use crate::vmm::bus::{Bus, BusDevice, BusError};
use crate::vmm::config::VmConfig;
use crate::vmm::layout;
use crate::vmm::memory::GuestMemoryMmap;
use crate::vmm::pci::PciRoot;
use crate::vmm::power::PowerControl;
use crate::vmm::vm::{KvmIrqLine, Vm};

#[derive(Debug, Error)]
pub enum DeviceError {
    #[error("cannot place a device on the bus: {0}")]
    Bus(#[from] BusError),
    #[error("ACPI tables: {0}")]
    Acpi(#[from] acpi::AcpiError),
    #[error("{0}")]
    Setup(String),
}

/// Event-loop subscribers are shared with the vCPU threads, which reach the
/// same devices through the buses.
pub type Subscriber = Box<dyn MutEventSubscriber + Send>;

pub struct SharedSubscriber<T: ?Sized>(pub Arc<Mutex<T>>);

impl<T: MutEventSubscriber + ?Sized> MutEventSubscriber for SharedSubscriber<T> {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .process(events, ops)
    }
    fn init(&mut self, ops: &mut EventOps) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).init(ops)
    }
}

/// BAR window of PCI slot `slot`.
pub fn slot_bar(slot: u8) -> u64 {
    layout::PCI_MMIO32_START + u64::from(slot) * 0x1_0000
}

pub struct Devices {
    pub pio: Arc<Bus>,
    pub mmio: Arc<Bus>,
    pub pci: Arc<Mutex<PciRoot>>,
    pub pm: PmDevice,
    pub rsdp: GuestAddress,
    pub subscribers: Vec<Subscriber>,
}

impl Devices {
    pub fn build(
        vm: &Arc<Vm>,
        mem: &GuestMemoryMmap,
        config: &VmConfig,
        power: &PowerControl,
        console: Box<dyn BusDevice>,
    ) -> Result<Self, DeviceError> {
        let pio = Arc::new(Bus::new());
        let mmio = Arc::new(Bus::new());
        let port = |p: u16| u64::from(p);

        pio.insert(
            Arc::new(Mutex::new(BoxedDevice(console))),
            port(layout::PORT_COM1),
            8,
        )?;

        let sci = Arc::new(KvmIrqLine {
            vm: vm.fd.clone(),
            gsi: layout::IRQ_SCI,
        });
        let pm = PmDevice::new(sci, power.clone());
        pio.insert(
            Arc::new(Mutex::new(pm.clone())),
            port(layout::PORT_PM1A_EVENT),
            u64::from(layout::PM_BLOCK_LEN),
        )?;
        pio.insert(
            Arc::new(Mutex::new(pm.gpe_device())),
            port(layout::PORT_GPE0),
            u64::from(layout::GPE0_BLOCK_LEN),
        )?;

        let mut root = PciRoot::new(mmio.clone());
        root.set_reset_register(Box::new(ResetDevice::new(power.clone())));
        let pci = Arc::new(Mutex::new(root));
        pio.insert(pci.clone(), port(layout::PORT_PCI_CONFIG_ADDRESS), 8)?;

        let rsdp = acpi::create_acpi_tables(mem, &AcpiConfig::new(config.vcpus))?;

        Ok(Devices {
            pio,
            mmio,
            pci,
            pm,
            rsdp,
            subscribers: Vec::new(),
        })
    }
}

/// Lets a boxed device sit on a bus.
struct BoxedDevice(Box<dyn BusDevice>);

impl BusDevice for BoxedDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.0.read(offset, data)
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        self.0.write(offset, data)
    }
}
