//! The KVM VM: in-kernel irqchip and PIT, guest memory slots, and the GSI
//! routing table (legacy IOAPIC/PIC pins plus MSI routes for MSI-X).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_MEM_READONLY, KVM_PIT_SPEAKER_DUMMY,
    KvmIrqRouting, kvm_irq_routing_entry, kvm_pit_config, kvm_userspace_memory_region,
};
use kvm_ioctls::{Kvm, VmFd};
use thiserror::Error;
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use crate::irq::IrqLine;
use crate::layout::{IOAPIC_PINS, KVM_IDENTITY_MAP_START, KVM_TSS_START, MSI_GSI_START};
use crate::memory::GuestMemoryMmap;

const KVM_IRQCHIP_PIC_MASTER: u32 = 0;
const KVM_IRQCHIP_PIC_SLAVE: u32 = 1;
const KVM_IRQCHIP_IOAPIC: u32 = 2;
/// GSIs available for MSI routes (KVM allows 1024 GSIs on x86).
const MAX_GSI: u32 = 1023;

#[derive(Debug, Error)]
pub enum VmError {
    #[error("cannot open /dev/kvm: {0}")]
    OpenKvm(kvm_ioctls::Error),
    #[error("KVM: cannot {what}: {source}")]
    Kvm {
        what: &'static str,
        source: kvm_ioctls::Error,
    },
    #[error("out of GSIs for MSI routes")]
    NoGsi,
    #[error("cannot build the GSI routing table: {0:?}")]
    Routing(vmm_sys_util::fam::Error),
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Kvm { what, source }
}

pub struct Vm {
    pub kvm: Kvm,
    pub fd: Arc<VmFd>,
    routes: Mutex<Routes>,
    /// KVM memory slots in use (guest RAM first, then ROMs).
    slots: Mutex<u32>,
}

struct Routes {
    entries: BTreeMap<u32, Vec<kvm_irq_routing_entry>>,
    next_msi_gsi: u32,
    free_msi_gsis: Vec<u32>,
}

/// KVM_CREATE_VM can fail with EINTR when a signal arrives while the
/// kernel sets the VM up (seen in CI with many VMs created in parallel);
/// the call has no side effect then, so it is simply retried a few times.
fn create_vm_retrying(kvm: &Kvm) -> Result<VmFd, VmError> {
    const ATTEMPTS: usize = 8;
    let mut attempt = 1;
    loop {
        match kvm.create_vm() {
            Err(e) if e.errno() == libc::EINTR && attempt < ATTEMPTS => attempt += 1,
            other => return other.map_err(kvm_err("create a VM")),
        }
    }
}

/// /dev/kvm: a duplicate of the descriptor opened before the jail (a
/// jailed VMM has no device nodes), else opened now.
fn open_kvm() -> Result<Kvm, VmError> {
    let Some(fd) = crate::jail::kvm_fd() else {
        return Kvm::new().map_err(VmError::OpenKvm);
    };
    let dup = fd
        .try_clone()
        .map_err(|e| VmError::OpenKvm(kvm_ioctls::Error::new(e.raw_os_error().unwrap_or(0))))?;
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: `dup` is a fresh descriptor of /dev/kvm that we own; Kvm
    // takes it over.
    Ok(unsafe { Kvm::from_raw_fd(dup.into_raw_fd()) })
}

impl Vm {
    pub fn new(mem: &GuestMemoryMmap) -> Result<Self, VmError> {
        let kvm = open_kvm()?;
        let fd = create_vm_retrying(&kvm)?;
        fd.set_identity_map_address(KVM_IDENTITY_MAP_START)
            .map_err(kvm_err("set the identity map address"))?;
        fd.set_tss_address(KVM_TSS_START as usize)
            .map_err(kvm_err("set the TSS address"))?;
        fd.create_irq_chip()
            .map_err(kvm_err("create the irqchip"))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        fd.create_pit2(pit).map_err(kvm_err("create the PIT"))?;
        for (slot, region) in mem.iter().enumerate() {
            let host = mem
                .get_host_address(region.start_addr())
                .map_err(|_| VmError::Kvm {
                    what: "map guest memory",
                    source: kvm_ioctls::Error::new(libc::EFAULT),
                })?;
            let region = kvm_userspace_memory_region {
                slot: slot as u32,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: host as u64,
                flags: 0,
            };
            // SAFETY: the region is a live mapping owned by `mem`, which the
            // VMM keeps for as long as the VM exists (the vCPUs and devices
            // hold clones of it), so KVM never sees unmapped memory.
            unsafe { fd.set_user_memory_region(region) }
                .map_err(kvm_err("register guest memory"))?;
        }
        let vm = Vm {
            kvm,
            fd: Arc::new(fd),
            routes: Mutex::new(Routes {
                entries: legacy_routes(),
                next_msi_gsi: MSI_GSI_START,
                free_msi_gsis: Vec::new(),
            }),
            slots: Mutex::new(mem.num_regions() as u32),
        };
        vm.commit_routes()?;
        Ok(vm)
    }

    /// Maps `region` read-only at `guest_addr`: guest reads see its bytes,
    /// guest writes exit as MMIO (and are dropped), as for a ROM.
    pub fn map_rom(
        &self,
        guest_addr: u64,
        region: &vm_memory::MmapRegion<()>,
    ) -> Result<(), VmError> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let region = kvm_userspace_memory_region {
            slot: *slots,
            guest_phys_addr: guest_addr,
            memory_size: region.size() as u64,
            userspace_addr: region.as_ptr() as u64,
            flags: KVM_MEM_READONLY,
        };
        // SAFETY: the caller keeps `region` mapped for as long as the VM
        // exists (the ROM lives in the boot's scope, which outlives the vCPU
        // threads), so KVM never sees unmapped memory.
        unsafe { self.fd.set_user_memory_region(region) }.map_err(kvm_err("map the firmware"))?;
        *slots += 1;
        Ok(())
    }

    /// Reserves a GSI for an MSI route (initially masked: no route).
    pub fn allocate_msi_gsi(&self) -> Result<u32, VmError> {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(gsi) = routes.free_msi_gsis.pop() {
            return Ok(gsi);
        }
        if routes.next_msi_gsi > MAX_GSI {
            return Err(VmError::NoGsi);
        }
        routes.next_msi_gsi += 1;
        Ok(routes.next_msi_gsi - 1)
    }

    /// MSI GSIs handed out and not released (each device's MSI-X vectors
    /// hold one each): a hot-plug cycle must give back what it took.
    pub fn msi_gsis_in_use(&self) -> u32 {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.next_msi_gsi - MSI_GSI_START - routes.free_msi_gsis.len() as u32
    }

    /// Points `gsi` at an MSI message (from an MSI-X table entry).
    pub fn set_msi_route(&self, gsi: u32, address: u64, data: u32) -> Result<(), VmError> {
        let mut entry = kvm_irq_routing_entry {
            gsi,
            type_: KVM_IRQ_ROUTING_MSI,
            ..Default::default()
        };
        entry.u.msi.address_lo = address as u32;
        entry.u.msi.address_hi = (address >> 32) as u32;
        entry.u.msi.data = data;
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .insert(gsi, vec![entry]);
        self.commit_routes()
    }

    /// Drops the route of `gsi` and returns it to the pool.
    pub fn release_msi_gsi(&self, gsi: u32) -> Result<(), VmError> {
        {
            let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            routes.entries.remove(&gsi);
            routes.free_msi_gsis.push(gsi);
        }
        self.commit_routes()
    }

    fn commit_routes(&self) -> Result<(), VmError> {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let all: Vec<kvm_irq_routing_entry> = routes.entries.values().flatten().copied().collect();
        let table = KvmIrqRouting::from_entries(&all).map_err(VmError::Routing)?;
        self.fd
            .set_gsi_routing(&table)
            .map_err(kvm_err("set GSI routing"))
    }
}

/// As a PC: GSI n is IOAPIC pin n (and PIC pin n below 16), except that the
/// PIT's IRQ 0 arrives on IOAPIC pin 2 (the MADT's override) and GSI 2 is the
/// PIC cascade.
fn legacy_routes() -> BTreeMap<u32, Vec<kvm_irq_routing_entry>> {
    let chip = |gsi: u32, irqchip: u32, pin: u32| {
        let mut e = kvm_irq_routing_entry {
            gsi,
            type_: KVM_IRQ_ROUTING_IRQCHIP,
            ..Default::default()
        };
        e.u.irqchip.irqchip = irqchip;
        e.u.irqchip.pin = pin;
        e
    };
    let mut routes = BTreeMap::new();
    for gsi in 0..IOAPIC_PINS {
        if gsi == 2 {
            continue;
        }
        let mut entries = vec![chip(
            gsi,
            KVM_IRQCHIP_IOAPIC,
            if gsi == 0 { 2 } else { gsi },
        )];
        if gsi < 8 {
            entries.push(chip(gsi, KVM_IRQCHIP_PIC_MASTER, gsi));
        } else if gsi < 16 {
            entries.push(chip(gsi, KVM_IRQCHIP_PIC_SLAVE, gsi - 8));
        }
        routes.insert(gsi, entries);
    }
    routes
}

/// A level-triggered legacy line driven with KVM_IRQ_LINE.
pub struct KvmIrqLine {
    pub vm: Arc<VmFd>,
    pub gsi: u32,
}

impl IrqLine for KvmIrqLine {
    fn set_level(&self, high: bool) {
        // A failure here means KVM itself is broken; the guest would see a
        // lost interrupt, nothing we can repair from a device.
        let _ = self.vm.set_irq_line(self.gsi, high);
    }
}
