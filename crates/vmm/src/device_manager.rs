//! Builds a VM's devices and puts them on the buses: legacy PC devices,
//! the ACPI PM block and PCI hotplug controller, PCI bus 0, the virtio-pci
//! disks (`disks::plug`) and NICs. PCI slots are assigned in disk order from
//! slot 1 (slot 0 is the host bridge), each with a fixed 64 KiB BAR window,
//! so a slot's resources never move between boots; every slot but the
//! host bridge's and the NICs' is a hot-plug slot for disks.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use thiserror::Error;
use vm_memory::GuestAddress;

use crate::acpi::{PciHotplug, PciHotplugPorts, PmDevice, ResetDevice};
use crate::bus::{Bus, BusError};
use crate::config::NIC_SLOT_FIRST;
use crate::devices::legacy::cmos::{CMOS_PORT_LEN, Cmos};
use crate::devices::legacy::console_log::LogLimits;
use crate::devices::legacy::i8042::{self, I8042, I8042Port, I8042PortKind};
use crate::devices::legacy::serial::{
    ConsoleConfig as SerialConsole, SERIAL_PORT_LEN, SerialDevice, SerialInput,
};
use crate::devices::virtio::VirtioDevice;
use crate::devices::virtio::block::IoWork;
use crate::devices::virtio::net::Net;
use crate::devices::virtio::net::tap::Tap;
use crate::dhcp::{DhcpConfig, DhcpServer};
use crate::disks::DiskTable;
use crate::disks::plug::{DiskDevices, PlugContext};
use crate::events::Subscriber;
use crate::firmware;
use crate::imds::Imds;
use crate::layout;
use crate::memory::{self, GuestMemoryMmap};
use crate::netsvc::GuestLink;
use crate::pci::slots::{hotplug_slots, slot_bar};
use crate::pci::{PciRoot, VirtioPciDevice, virtio_pci};
use crate::power::PowerControl;
use crate::vm::{KvmIrqLine, Vm};
use flint_contract::config::VmConfig;

#[derive(Debug, Error)]
pub enum DeviceError {
    #[error("cannot place a device on the bus: {0}")]
    Bus(#[from] BusError),
    #[error(transparent)]
    Firmware(#[from] firmware::FirmwareError),
    #[error("{0}")]
    Setup(String),
}

/// The services on NIC `index`'s link: DHCP when it has an address, the
/// metadata service when given one.
fn guest_link(
    config: &VmConfig,
    index: usize,
    imds: Option<Arc<Mutex<Imds>>>,
) -> Result<GuestLink, String> {
    let nic = &config.nics[index];
    let mac = nic.mac_bytes().map_err(|e| e.to_string())?;
    let dhcp = match nic.address().map_err(|e| e.to_string())? {
        Some((ip, prefix)) => {
            let region = config
                .metadata
                .as_ref()
                .map_or("us-east-1", |m| m.region.as_str());
            let mut dhcp =
                DhcpConfig::ec2_style(mac, ip, prefix, region).map_err(|e| e.to_string())?;
            if let Some(gw) = nic.gateway_addr() {
                dhcp.router = gw;
            }
            Some(DhcpServer::new(dhcp).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    Ok(GuestLink::new(mac, dhcp, imds, Instant::now()))
}

/// What outlives one boot of the VM: the TAPs (opened before the seccomp
/// filter, kept across guest reboots), the metadata service's state and
/// the disks (with their volumes: limits, counters).
#[derive(Default, Clone, Copy)]
pub struct HostResources<'a> {
    pub taps: &'a [Arc<Tap>],
    pub imds: Option<&'a Arc<Mutex<Imds>>>,
    /// The disks (boot-time and hot-plugged); None: the config's disks.
    pub disks: Option<&'a Arc<DiskTable>>,
}

pub struct Devices {
    pub pio: Arc<Bus>,
    pub mmio: Arc<Bus>,
    pub pci: Arc<Mutex<PciRoot>>,
    pub pm: PmDevice,
    /// Where a direct-boot kernel finds the ACPI tables (`None` when
    /// firmware boots the VM: it places them).
    pub rsdp: Option<GuestAddress>,
    pub serial: Arc<Mutex<SerialDevice>>,
    pub subscribers: Vec<Subscriber>,
    /// The disks' devices; they join the event loop through `register`.
    pub disks: DiskDevices,
    /// The block work of all disks (read by the event loop's policy).
    pub io_work: Arc<IoWork>,
    pub hotplug: Arc<PciHotplug>,
}

impl Devices {
    pub fn build(
        vm: &Arc<Vm>,
        mem: &GuestMemoryMmap,
        config: &VmConfig,
        power: &PowerControl,
        host: HostResources,
    ) -> Result<Self, DeviceError> {
        let pio = Arc::new(Bus::new());
        let mmio = Arc::new(Bus::new());
        let port = |p: u16| u64::from(p);
        let mut subscribers: Vec<Subscriber> = Vec::new();
        let irqfd = |evt: &vmm_sys_util::eventfd::EventFd, gsi: u32| {
            vm.fd
                .register_irqfd(evt, gsi)
                .map_err(|e| DeviceError::Setup(format!("irqfd for GSI {gsi}: {e}")))
        };

        // The console: a log file and/or stdio (stdio when nothing is named).
        let stdio = config.console.stdio || config.console.file.is_none();
        let defaults = LogLimits::default();
        let serial = SerialDevice::from_config(&SerialConsole {
            log_path: config.console.file.clone(),
            stdio,
            log_limits: LogLimits {
                max_bytes: config.console.log_max_bytes.unwrap_or(defaults.max_bytes),
                rate_bytes_per_s: config
                    .console
                    .log_rate_bytes_per_s
                    .unwrap_or(defaults.rate_bytes_per_s),
                burst_bytes: defaults.burst_bytes,
            },
        })
        .map_err(|e| DeviceError::Setup(format!("console: {e}")))?;
        irqfd(serial.interrupt_evt(), layout::IRQ_COM1)?;
        let serial = Arc::new(Mutex::new(serial));
        pio.insert(serial.clone(), port(layout::PORT_COM1), SERIAL_PORT_LEN)?;
        if stdio {
            let input = SerialInput::stdin(serial.clone())
                .map_err(|e| DeviceError::Setup(format!("console input: {e}")))?;
            subscribers.push(Box::new(Arc::new(Mutex::new(input))));
        }

        let i8042 = I8042::new(power.clone()).map_err(|e| DeviceError::Setup(e.to_string()))?;
        irqfd(i8042.kbd_interrupt_evt(), i8042::IRQ_KBD)?;
        let i8042 = Arc::new(Mutex::new(i8042));
        for (kind, p) in [
            (I8042PortKind::Data, layout::PORT_I8042_DATA),
            (I8042PortKind::Command, layout::PORT_I8042_COMMAND),
        ] {
            pio.insert(
                Arc::new(Mutex::new(I8042Port::new(i8042.clone(), kind))),
                port(p),
                1,
            )?;
        }

        let (below, above) = memory::ram_split(config.memory_mib << 20);
        pio.insert(
            Arc::new(Mutex::new(Cmos::new(below, above, config.vcpus))),
            port(layout::PORT_CMOS),
            CMOS_PORT_LEN,
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

        let add_virtio = |slot: u8, device: Arc<Mutex<dyn VirtioDevice>>, what: &str| {
            let bar = slot_bar(slot);
            let transport = VirtioPciDevice::new(device, vm.clone(), mem.clone(), bar)
                .map_err(|e| DeviceError::Setup(format!("{what}: {e}")))?;
            let transport = Arc::new(Mutex::new(transport));
            mmio.insert(transport.clone(), bar, u64::from(virtio_pci::BAR_SIZE))?;
            pci.lock()
                .unwrap_or_else(|e| e.into_inner())
                .add_device(slot, transport.clone(), Some(transport))
                .map_err(|e| DeviceError::Setup(e.to_string()))
        };

        let hotplug = PciHotplug::new(hotplug_slots(), pm.clone(), pci.clone())
            .map_err(|e| DeviceError::Setup(e.to_string()))?;
        let hotplug = Arc::new(hotplug);
        pio.insert(
            Arc::new(Mutex::new(PciHotplugPorts(hotplug.clone()))),
            port(layout::PORT_PCI_HOTPLUG),
            u64::from(layout::PCI_HOTPLUG_LEN),
        )?;

        // Disks in their slots (the AMI image first, in slot 1).
        let table = match host.disks {
            Some(table) => table.clone(),
            None => Arc::new(
                DiskTable::from_config(config).map_err(|e| DeviceError::Setup(e.to_string()))?,
            ),
        };
        let io_work = Arc::new(IoWork::default());
        let plug = PlugContext {
            vm: vm.clone(),
            mem: mem.clone(),
            mmio: mmio.clone(),
            pci: pci.clone(),
            hotplug: hotplug.clone(),
            queues: u16::from(config.vcpus),
            work: io_work.clone(),
        };
        let disks = DiskDevices::build(plug, table).map_err(DeviceError::Setup)?;

        // NICs on their fixed slots; the first carries the metadata service.
        for (i, nic) in config.nics.iter().enumerate() {
            let what = format!("NIC {}", nic.tap);
            let tap = host
                .taps
                .get(i)
                .ok_or_else(|| DeviceError::Setup(format!("{what}: its TAP is not open")))?;
            let link = guest_link(config, i, host.imds.filter(|_| i == 0).cloned())
                .map_err(|e| DeviceError::Setup(format!("{what}: {e}")))?;
            let mac = nic
                .mac_bytes()
                .map_err(|e| DeviceError::Setup(e.to_string()))?;
            let net = Net::new(mac, tap.clone(), Box::new(link))
                .map_err(|e| DeviceError::Setup(format!("{what}: {e}")))?;
            let net = Arc::new(Mutex::new(net));
            subscribers.push(Box::new(net.clone()));
            add_virtio(NIC_SLOT_FIRST + i as u8, net, &what)?;
        }

        let rsdp = firmware::install_platform_tables(&pio, mem, &firmware::Platform::of(config))?;

        Ok(Devices {
            pio,
            mmio,
            pci,
            pm,
            rsdp,
            serial,
            subscribers,
            disks,
            io_work,
            hotplug,
        })
    }
}
