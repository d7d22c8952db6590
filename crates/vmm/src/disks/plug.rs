//! One boot's virtio-blk devices and the disk commands of the control
//! socket, run on the VMM's main loop (which owns the event loop; its
//! seccomp filter allows opening files and io_uring set-up).
//!
//! Hot-plug: the device is put on PCI bus 0 in a free hot-plug slot, then
//! the guest is told (PCIU + GPE: acpiphp scans the slot). Unplug: the
//! guest is asked (PCID + GPE: acpiphp unbinds the driver, then `_EJ0`
//! writes B0EJ, which takes the device off the bus); the main loop then
//! drops it. A forced unplug removes the device at once and still sends
//! the eject request, so the guest forgets the device; the slot is not
//! reused until the guest has ejected it (or the VM resets), and until then
//! its BAR reads as zeroes: Linux's virtio-pci driver resets a device it
//! removes and waits for the status register to read 0, which an empty
//! bus (all ones) would never give.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::warn;

use event_manager::{EventManager, SubscriberId, SubscriberOps};

use super::DiskTable;
use super::{AttachRequest, DiskEntry, DiskOp, DiskOpError, DiskReply, DiskState};
use crate::acpi::PciHotplug;
use crate::bus::{Bus, BusDevice, SharedDevice};
use crate::devices::virtio::block::{Block, BlockConfig, IoWork, SECTOR_SHIFT, Volume};
use crate::events::Subscriber;
use crate::layout::{PCI_MMIO32_SIZE, PCI_MMIO32_START, PCI_SLOTS};
use crate::memory::GuestMemoryMmap;
use crate::pci::slots::slot_bar;
use crate::pci::{PciDevice, PciRoot, VirtioPciDevice, virtio_pci};
use crate::vm::Vm;

/// A disk device of this boot.
struct Plugged {
    slot: u8,
    block: Arc<Mutex<Block>>,
    transport: Arc<Mutex<VirtioPciDevice>>,
    /// Its place in the event loop, once registered.
    subscriber: Option<SubscriberId>,
}

/// What plugging a device needs of the VM.
pub struct PlugContext {
    pub vm: Arc<Vm>,
    pub mem: GuestMemoryMmap,
    pub mmio: Arc<Bus>,
    pub pci: Arc<Mutex<PciRoot>>,
    pub hotplug: Arc<PciHotplug>,
    /// Request queues per disk: one per vCPU (capped by the device).
    pub queues: u16,
    /// Where every disk's queues count their work.
    pub work: Arc<IoWork>,
}

pub struct DiskDevices {
    ctx: PlugContext,
    table: Arc<DiskTable>,
    /// By disk id.
    plugged: BTreeMap<String, Plugged>,
    /// Slots whose device was removed by force and that the guest has not
    /// ejected yet (it may still think a device is there), with what
    /// stands in for the device's BAR meanwhile.
    quarantined: BTreeMap<u8, Option<(u64, SharedDevice)>>,
}

/// The BAR of a device removed by force, until the guest ejects its slot:
/// reads are 0 (a status register that says "reset done"), writes vanish.
struct RemovedBar;

impl BusDevice for RemovedBar {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&mut self, _offset: u64, _data: &[u8]) {}
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DiskDevices {
    /// Creates the devices of every disk in `table`, each in its slot with
    /// its BAR at the slot's fixed window and on its volume. Disks still
    /// detaching when the previous boot ended are gone: a reset completes
    /// their removal.
    pub fn build(ctx: PlugContext, table: Arc<DiskTable>) -> Result<Self, String> {
        let mut disks = DiskDevices {
            ctx,
            table,
            plugged: BTreeMap::new(),
            quarantined: BTreeMap::new(),
        };
        let entries = {
            let mut entries = disks.table.lock();
            entries.retain(|e| e.state == DiskState::Attached);
            entries.clone()
        };
        for entry in entries {
            let block = match open(&entry, &disks.ctx) {
                Ok(block) => block,
                // A disk of the config must be there; one attached later
                // whose file went away is detached, not fatal to the VM.
                Err(e) if entry.hotplugged => {
                    warn!(volume_id = %entry.id(), "flint vmm: {e}: detached");
                    disks.table.lock().retain(|d| d.id() != entry.id());
                    continue;
                }
                Err(e) => return Err(e),
            };
            disks.plug(entry.id(), entry.slot, slot_bar(entry.slot), block)?;
        }
        Ok(disks)
    }

    /// Puts every device not yet in the event loop there.
    pub fn register(&mut self, events: &mut EventManager<Subscriber>) {
        for p in self.plugged.values_mut() {
            if p.subscriber.is_none() {
                p.subscriber = Some(events.add_subscriber(Box::new(p.block.clone())));
            }
        }
    }

    fn plug(
        &mut self,
        id: &str,
        slot: u8,
        bar: u64,
        block: Arc<Mutex<Block>>,
    ) -> Result<(), String> {
        let what = |e: &dyn std::fmt::Display| format!("disk {id}: {e}");
        let ctx = &self.ctx;
        let transport = VirtioPciDevice::new(block.clone(), ctx.vm.clone(), ctx.mem.clone(), bar)
            .map_err(|e| what(&e))?;
        let transport = Arc::new(Mutex::new(transport));
        ctx.mmio
            .insert(transport.clone(), bar, u64::from(virtio_pci::BAR_SIZE))
            .map_err(|e| what(&e))?;
        let added = lock(&ctx.pci).add_device(slot, transport.clone(), Some(transport.clone()));
        if let Err(e) = added {
            let shared: crate::bus::SharedDevice = transport;
            ctx.mmio.remove_device(bar, &shared);
            return Err(what(&e));
        }
        self.plugged.insert(
            id.to_string(),
            Plugged {
                slot,
                block,
                transport,
                subscriber: None,
            },
        );
        Ok(())
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut DiskEntry)) -> Option<DiskEntry> {
        let mut entries = self.table.lock();
        let entry = entries.iter_mut().find(|e| e.id() == id)?;
        f(entry);
        Some(entry.clone())
    }

    /// Runs one command of the control socket.
    pub fn execute(
        &mut self,
        op: DiskOp,
        events: &mut EventManager<Subscriber>,
    ) -> Result<DiskReply, DiskOpError> {
        match op {
            DiskOp::Attach(request) => self.attach(request, events).map(DiskReply::Entry),
            DiskOp::Detach { id, force: false } => self.request_detach(&id),
            DiskOp::Detach { id, force: true } => self.force_detach(&id, events),
            DiskOp::Resize { id } => self.resize(&id),
        }
    }

    fn attach(
        &mut self,
        request: AttachRequest,
        events: &mut EventManager<Subscriber>,
    ) -> Result<DiskEntry, DiskOpError> {
        request.validate()?;
        if self.table.get(&request.id).is_some() {
            return Err(DiskOpError::AlreadyAttached(request.id));
        }
        let slot = self.free_slot().ok_or(DiskOpError::NoFreeSlot)?;
        // Its own limits and counters from here until it is detached.
        let entry = DiskEntry {
            volume: Volume::new(request.id, request.limits)?,
            path: request.path,
            read_only: request.read_only,
            serial: request.serial,
            direct: request.direct,
            slot,
            state: DiskState::Attached,
            root: false,
            hotplugged: true,
            eject_wait: None,
        };
        let block = open(&entry, &self.ctx).map_err(DiskOpError::CannotOpen)?;
        let bar = self.free_bar(slot).ok_or(DiskOpError::NoFreeSlot)?;
        self.plug(entry.id(), slot, bar, block)
            .map_err(DiskOpError::Device)?;
        self.register(events);
        self.table.lock().push(entry.clone());
        self.ctx
            .hotplug
            .request_insert(slot)
            .map_err(|e| DiskOpError::Device(e.to_string()))?;
        Ok(entry)
    }

    /// The lowest hot-plug slot no disk, device or pending eject holds.
    fn free_slot(&self) -> Option<u8> {
        let taken: Vec<u8> = self.table.lock().iter().map(|e| e.slot).collect();
        let pci = lock(&self.ctx.pci);
        (1..PCI_SLOTS).find(|&s| {
            self.ctx.hotplug.is_hotplug_slot(s)
                && !self.quarantined.contains_key(&s)
                && !taken.contains(&s)
                && !pci.occupied(s)
        })
    }

    /// Where the new device's BAR goes: its slot's own window if the guest
    /// (or firmware) has not moved another device's BAR there, else the
    /// first free window. The guest may move it anyway.
    fn free_bar(&self, slot: u8) -> Option<u64> {
        let len = u64::from(virtio_pci::BAR_SIZE);
        let windows = PCI_MMIO32_SIZE / len;
        std::iter::once(slot_bar(slot))
            .chain((0..windows).map(|i| PCI_MMIO32_START + i * len))
            .find(|&base| self.ctx.mmio.is_free(base, len))
    }

    fn request_detach(&mut self, id: &str) -> Result<DiskReply, DiskOpError> {
        let entry = self.detachable(id)?;
        self.ctx
            .hotplug
            .request_eject(entry.slot)
            .map_err(|e| DiskOpError::Device(e.to_string()))?;
        let entry = self
            .update(id, |e| e.state = DiskState::Detaching)
            .ok_or_else(|| DiskOpError::NotFound(id.to_string()))?;
        Ok(DiskReply::EjectRequested(entry))
    }

    fn force_detach(
        &mut self,
        id: &str,
        events: &mut EventManager<Subscriber>,
    ) -> Result<DiskReply, DiskOpError> {
        let entry = self.detachable(id)?;
        let slot = entry.slot;
        let window = self
            .plugged
            .get(id)
            .and_then(|p| lock(&p.transport).bar_window());
        let _ = lock(&self.ctx.pci).unplug(slot);
        self.remove(id, events);
        // The guest may still hold the device: ask it to eject the slot
        // (acpiphp then drops its stale device) before the slot is reused.
        let hotplug = &self.ctx.hotplug;
        hotplug.cancel(slot);
        if hotplug.request_eject(slot).is_ok() {
            let stand_in = window.and_then(|(base, len)| {
                let bar: SharedDevice = Arc::new(Mutex::new(RemovedBar));
                self.ctx.mmio.insert(bar.clone(), base, len).ok()?;
                Some((base, bar))
            });
            self.quarantined.insert(slot, stand_in);
        }
        Ok(DiskReply::Removed(DiskEntry {
            state: DiskState::Detached,
            ..entry
        }))
    }

    fn detachable(&self, id: &str) -> Result<DiskEntry, DiskOpError> {
        let entry = self
            .table
            .get(id)
            .ok_or_else(|| DiskOpError::NotFound(id.to_string()))?;
        if entry.root {
            return Err(DiskOpError::RootVolume(id.to_string()));
        }
        Ok(entry)
    }

    /// Drops the device of disk `id` (already off the PCI bus) and its
    /// table entry, and with it the disk's volume (limits, counters).
    fn remove(&mut self, id: &str, events: &mut EventManager<Subscriber>) {
        if let Some(p) = self.plugged.remove(id) {
            // Let in-flight I/O finish before the device goes.
            lock(&p.transport).unplug();
            if let Some(sub) = p.subscriber {
                let _ = events.remove_subscriber(sub);
            }
        }
        self.table.lock().retain(|e| e.id() != id);
    }

    /// Finishes the removals of the slots the guest ejected.
    pub fn collect_ejected(&mut self, events: &mut EventManager<Subscriber>) {
        let ejected = self.ctx.hotplug.take_ejected();
        if ejected == 0 {
            return;
        }
        for slot in (0..PCI_SLOTS).filter(|s| ejected & (1 << s) != 0) {
            if let Some(Some((base, bar))) = self.quarantined.remove(&slot) {
                self.ctx.mmio.remove_device(base, &bar);
            }
        }
        let gone: Vec<String> = self
            .plugged
            .iter()
            .filter(|(_, p)| ejected & (1 << p.slot) != 0)
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.remove(&id, events);
        }
    }

    /// Signals pending hot-plug requests again if the guest missed them,
    /// and records why each detaching disk is still there. Called on
    /// every pass of the main loop.
    pub fn poll_hotplug(&self, now: Instant) {
        let hotplug = &self.ctx.hotplug;
        hotplug.resignal(now);
        let mut entries = self.table.lock();
        for e in entries.iter_mut() {
            e.eject_wait = match e.state {
                DiskState::Detaching => hotplug.eject_wait(e.slot),
                _ => None,
            };
        }
    }

    /// The volume the device of disk `id` runs on.
    #[cfg(test)]
    pub(crate) fn device_volume(&self, id: &str) -> Option<Arc<Volume>> {
        Some(lock(&self.plugged.get(id)?.block).volume().clone())
    }

    /// Re-reads the backing file's size; the guest gets a configuration
    /// change interrupt, the volume the new size.
    fn resize(&mut self, id: &str) -> Result<DiskReply, DiskOpError> {
        let p = self
            .plugged
            .get(id)
            .ok_or_else(|| DiskOpError::NotFound(id.to_string()))?;
        let sectors = lock(&p.block)
            .resize()
            .map_err(|e| DiskOpError::Device(e.to_string()))?;
        // Not under the block's lock: the transport locks it itself.
        lock(&p.transport).config_changed();
        Ok(DiskReply::Resized(sectors << SECTOR_SHIFT))
    }
}

/// Opens the backing file of `entry` as a virtio-blk device with the
/// context's number of request queues.
fn open(entry: &DiskEntry, ctx: &PlugContext) -> Result<Arc<Mutex<Block>>, String> {
    Block::new(BlockConfig {
        path: entry.path.clone(),
        read_only: entry.read_only,
        serial: entry.serial.clone(),
        volume: Some(entry.volume.clone()),
        num_queues: ctx.queues,
        direct: entry.direct,
        work: ctx.work.clone(),
    })
    .map(|b| Arc::new(Mutex::new(b)))
    .map_err(|e| format!("disk {}: {e}", entry.id()))
}
