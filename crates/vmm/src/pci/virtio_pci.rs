//! The modern virtio-pci transport (virtio 1.2, section 4.1): capabilities
//! pointing into one memory BAR that holds the common config, ISR, device
//! config, per-queue notify addresses (KVM ioeventfds) and the MSI-X table.

use std::sync::atomic::{AtomicU8, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use kvm_ioctls::{IoEventAddress, NoDatamatch};
use thiserror::Error;
use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::{BarMove, ConfigSpace, MsixTable, PciDevice, PciIds};
use crate::bus::BusDevice;
use crate::devices::virtio::{ActivatedQueue, FEATURE_VERSION_1, VirtioDevice, VirtioInterrupt};
use crate::memory::GuestMemoryMmap;
use crate::vm::{Vm, VmError};

pub const BAR_SIZE: u32 = 0x1_0000;
const COMMON_OFFSET: u64 = 0x0000;
const COMMON_LEN: u64 = 0x38;
const ISR_OFFSET: u64 = 0x1000;
const DEVICE_OFFSET: u64 = 0x2000;
const DEVICE_LEN: u64 = 0x1000;
const NOTIFY_OFFSET: u64 = 0x3000;
const NOTIFY_LEN: u64 = 0x1000;
const NOTIFY_MULTIPLIER: u32 = 4;
const MSIX_TABLE_OFFSET: u64 = 0x8000;
const MSIX_PBA_OFFSET: u64 = 0xc000;

const CAP_VENDOR: u8 = 0x09;
const CAP_MSIX: u8 = 0x11;
const CFG_COMMON: u8 = 1;
const CFG_NOTIFY: u8 = 2;
const CFG_ISR: u8 = 3;
const CFG_DEVICE: u8 = 4;

const STATUS_ACKNOWLEDGE: u8 = 1;
const STATUS_DRIVER: u8 = 2;
const STATUS_DRIVER_OK: u8 = 4;
const STATUS_FEATURES_OK: u8 = 8;
const STATUS_NEEDS_RESET: u8 = 0x40;
const STATUS_FAILED: u8 = 0x80;
const NO_VECTOR: u16 = 0xffff;
const MSIX_ENABLE: u16 = 1 << 15;
const MSIX_FUNCTION_MASK: u16 = 1 << 14;

#[derive(Debug, Error)]
pub enum VirtioPciError {
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error("cannot create a queue of size {0}")]
    Queue(u16),
    #[error("cannot set up an ioeventfd: {0}")]
    IoEvent(String),
}

/// Routes a device's interrupts to the MSI-X vectors the driver chose.
struct PciInterrupt {
    msix: Arc<Mutex<MsixTable>>,
    queue_vectors: Arc<Vec<AtomicU16>>,
    config_vector: Arc<AtomicU16>,
    isr: Arc<AtomicU8>,
}

impl PciInterrupt {
    fn fire(&self, vector: u16) {
        if vector != NO_VECTOR {
            self.msix
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .trigger(vector);
        }
    }
}

impl VirtioInterrupt for PciInterrupt {
    fn notify_queue(&self, queue_index: u16) -> std::io::Result<()> {
        self.isr.fetch_or(1, Ordering::SeqCst);
        if let Some(v) = self.queue_vectors.get(queue_index as usize) {
            self.fire(v.load(Ordering::SeqCst));
        }
        Ok(())
    }
    fn notify_config(&self) -> std::io::Result<()> {
        self.isr.fetch_or(2, Ordering::SeqCst);
        self.fire(self.config_vector.load(Ordering::SeqCst));
        Ok(())
    }
}

pub struct VirtioPciDevice {
    config: ConfigSpace,
    device: Arc<Mutex<dyn VirtioDevice>>,
    vm: Arc<Vm>,
    mem: GuestMemoryMmap,
    bar: u64,
    msix: Arc<Mutex<MsixTable>>,
    msix_cap: usize,
    interrupt: Arc<PciInterrupt>,
    queues: Vec<Queue>,
    /// Our own handles on the queue ioeventfds (the device gets clones).
    notify: Vec<EventFd>,
    device_features: u64,
    device_feature_select: u32,
    driver_feature_select: u32,
    driver_features: u64,
    status: u8,
    config_generation: u8,
    queue_select: u16,
}

impl VirtioPciDevice {
    /// `bar` is where BAR0 starts; the caller maps `BAR_SIZE` bytes of the
    /// MMIO bus to this device there.
    pub fn new(
        device: Arc<Mutex<dyn VirtioDevice>>,
        vm: Arc<Vm>,
        mem: GuestMemoryMmap,
        bar: u64,
    ) -> Result<Self, VirtioPciError> {
        let (device_type, max_sizes, features) = {
            let d = device.lock().unwrap_or_else(|e| e.into_inner());
            (
                d.device_type(),
                d.queue_max_sizes().to_vec(),
                d.device_features() | FEATURE_VERSION_1,
            )
        };
        let queue_count = max_sizes.len();
        let mut config = ConfigSpace::new(&PciIds {
            vendor: 0x1af4,
            device: 0x1040 + device_type as u16,
            revision: 1,
            class: match device_type {
                crate::devices::virtio::TYPE_NET => 0x02_00_00,
                _ => 0x01_80_00,
            },
            subsystem_vendor: 0x1af4,
            subsystem: 0x40,
        });
        config.add_memory_bar(0, bar as u32, BAR_SIZE);
        let cap = |cfg: u8, offset: u64, len: u64, extra: &[u8]| {
            let mut body = vec![16 + extra.len() as u8, cfg, 0, 0, 0, 0];
            body.extend_from_slice(&(offset as u32).to_le_bytes());
            body.extend_from_slice(&(len as u32).to_le_bytes());
            body.extend_from_slice(extra);
            body
        };
        config.add_capability(
            CAP_VENDOR,
            &cap(CFG_COMMON, COMMON_OFFSET, COMMON_LEN, &[]),
            &[],
        );
        config.add_capability(CAP_VENDOR, &cap(CFG_ISR, ISR_OFFSET, 4, &[]), &[]);
        config.add_capability(
            CAP_VENDOR,
            &cap(CFG_DEVICE, DEVICE_OFFSET, DEVICE_LEN, &[]),
            &[],
        );
        config.add_capability(
            CAP_VENDOR,
            &cap(
                CFG_NOTIFY,
                NOTIFY_OFFSET,
                NOTIFY_LEN,
                &NOTIFY_MULTIPLIER.to_le_bytes(),
            ),
            &[],
        );
        // One vector per queue plus one for config changes.
        let vectors = queue_count as u16 + 1;
        let mut msix_body = Vec::new();
        msix_body.extend_from_slice(&(vectors - 1).to_le_bytes());
        msix_body.extend_from_slice(&(MSIX_TABLE_OFFSET as u32).to_le_bytes());
        msix_body.extend_from_slice(&(MSIX_PBA_OFFSET as u32).to_le_bytes());
        let msix_cap = config.add_capability(CAP_MSIX, &msix_body, &[0, 0xc0]);

        let msix = Arc::new(Mutex::new(MsixTable::new(vm.clone(), vectors)?));
        let interrupt = Arc::new(PciInterrupt {
            msix: msix.clone(),
            queue_vectors: Arc::new(
                (0..queue_count)
                    .map(|_| AtomicU16::new(NO_VECTOR))
                    .collect(),
            ),
            config_vector: Arc::new(AtomicU16::new(NO_VECTOR)),
            isr: Arc::new(AtomicU8::new(0)),
        });
        let queues = max_sizes
            .iter()
            .map(|&size| Queue::new(size).map_err(|_| VirtioPciError::Queue(size)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut notify = Vec::new();
        for _ in 0..queue_count {
            notify.push(
                EventFd::new(EFD_NONBLOCK).map_err(|e| VirtioPciError::IoEvent(e.to_string()))?,
            );
        }
        let pci = VirtioPciDevice {
            config,
            device,
            vm,
            mem,
            bar,
            msix,
            msix_cap,
            interrupt,
            queues,
            notify,
            device_features: features,
            device_feature_select: 0,
            driver_feature_select: 0,
            driver_features: 0,
            status: 0,
            config_generation: 0,
            queue_select: 0,
        };
        pci.register_notify(bar)?;
        Ok(pci)
    }

    fn register_notify(&self, bar: u64) -> Result<(), VirtioPciError> {
        for (i, fd) in self.notify.iter().enumerate() {
            let addr =
                IoEventAddress::Mmio(bar + NOTIFY_OFFSET + i as u64 * u64::from(NOTIFY_MULTIPLIER));
            self.vm
                .fd
                .register_ioevent(fd, &addr, NoDatamatch)
                .map_err(|e| VirtioPciError::IoEvent(e.to_string()))?;
        }
        Ok(())
    }

    fn unregister_notify(&self, bar: u64) {
        for (i, fd) in self.notify.iter().enumerate() {
            let addr =
                IoEventAddress::Mmio(bar + NOTIFY_OFFSET + i as u64 * u64::from(NOTIFY_MULTIPLIER));
            let _ = self.vm.fd.unregister_ioevent(fd, &addr, NoDatamatch);
        }
    }

    /// The device's configuration changed (a disk was resized): a new
    /// generation, and the configuration-change interrupt (virtio 1.2,
    /// 4.1.4.3 and 4.1.5.3).
    pub fn config_changed(&mut self) {
        self.config_generation = self.config_generation.wrapping_add(1);
        if self.status & STATUS_DRIVER_OK != 0 {
            let _ = self.interrupt.notify_config();
        }
    }

    /// Quiesces the device before it leaves the bus, as a driver reset
    /// would: in-flight I/O completes, the queues stop.
    pub fn unplug(&mut self) {
        self.reset();
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_select as usize)
    }

    fn reset(&mut self) {
        let _ = self
            .device
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reset();
        for q in &mut self.queues {
            q.reset();
        }
        for v in self.interrupt.queue_vectors.iter() {
            v.store(NO_VECTOR, Ordering::SeqCst);
        }
        self.interrupt
            .config_vector
            .store(NO_VECTOR, Ordering::SeqCst);
        self.interrupt.isr.store(0, Ordering::SeqCst);
        self.driver_features = 0;
        self.device_feature_select = 0;
        self.driver_feature_select = 0;
        self.queue_select = 0;
        self.status = 0;
    }

    fn set_status(&mut self, value: u8) {
        if value == 0 {
            self.reset();
            return;
        }
        let mut value = value;
        let newly = value & !self.status;
        if newly & STATUS_FEATURES_OK != 0 {
            let acceptable = self.driver_features & !self.device_features == 0
                && self.driver_features & FEATURE_VERSION_1 != 0;
            if !acceptable {
                value &= !STATUS_FEATURES_OK;
            }
        }
        self.status = value;
        if newly & STATUS_DRIVER_OK != 0 && value & STATUS_FEATURES_OK != 0 {
            self.activate();
        }
    }

    fn activate(&mut self) {
        let mut activated = Vec::new();
        for (i, q) in self.queues.iter_mut().enumerate() {
            if !q.ready() {
                continue;
            }
            q.set_event_idx(
                self.driver_features & crate::devices::virtio::FEATURE_RING_EVENT_IDX != 0,
            );
            let Ok(notify) = self.notify[i].try_clone() else {
                self.status |= STATUS_NEEDS_RESET;
                return;
            };
            let Some(queue) = copy_queue(q) else {
                self.status |= STATUS_NEEDS_RESET;
                return;
            };
            activated.push(ActivatedQueue {
                index: i as u16,
                queue,
                notify,
            });
        }
        let result = self
            .device
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .activate(
                self.mem.clone(),
                self.driver_features,
                activated,
                self.interrupt.clone(),
            );
        if result.is_err() {
            self.status |= STATUS_NEEDS_RESET;
            let _ = self.interrupt.notify_config();
        }
    }

    fn common_read(&mut self, offset: u64, data: &mut [u8]) {
        let q = self.queues.get(self.queue_select as usize);
        let value: u64 = match offset {
            0x00 => u64::from(self.device_feature_select),
            0x04 => match self.device_feature_select {
                0 => self.device_features & 0xffff_ffff,
                1 => self.device_features >> 32,
                _ => 0,
            },
            0x08 => u64::from(self.driver_feature_select),
            0x0c => match self.driver_feature_select {
                0 => self.driver_features & 0xffff_ffff,
                1 => self.driver_features >> 32,
                _ => 0,
            },
            0x10 => u64::from(self.interrupt.config_vector.load(Ordering::SeqCst)),
            0x12 => self.queues.len() as u64,
            0x14 => {
                let needs_reset = self
                    .device
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .needs_reset();
                u64::from(self.status | if needs_reset { STATUS_NEEDS_RESET } else { 0 })
            }
            0x15 => u64::from(self.config_generation),
            0x16 => u64::from(self.queue_select),
            0x18 => q.map_or(0, |q| u64::from(q.size())),
            0x1a => self
                .interrupt
                .queue_vectors
                .get(self.queue_select as usize)
                .map_or(u64::from(NO_VECTOR), |v| {
                    u64::from(v.load(Ordering::SeqCst))
                }),
            0x1c => q.map_or(0, |q| u64::from(q.ready())),
            0x1e => u64::from(self.queue_select),
            0x20 => q.map_or(0, |q| q.desc_table()),
            0x24 => q.map_or(0, |q| q.desc_table() >> 32),
            0x28 => q.map_or(0, |q| q.avail_ring()),
            0x2c => q.map_or(0, |q| q.avail_ring() >> 32),
            0x30 => q.map_or(0, |q| q.used_ring()),
            0x34 => q.map_or(0, |q| q.used_ring() >> 32),
            _ => 0,
        };
        let bytes = value.to_le_bytes();
        let n = data.len().min(8);
        data[..n].copy_from_slice(&bytes[..n]);
    }

    fn common_write(&mut self, offset: u64, data: &[u8]) {
        let mut raw = [0u8; 8];
        let n = data.len().min(8);
        raw[..n].copy_from_slice(&data[..n]);
        let value = u64::from_le_bytes(raw);
        let low = value as u32;
        let driver_ok = self.status & STATUS_DRIVER_OK != 0;
        let vectors = self
            .msix
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .vectors();
        let valid_vector = |v: u16| if v < vectors { v } else { NO_VECTOR };
        match offset {
            0x00 => self.device_feature_select = low,
            0x08 => self.driver_feature_select = low,
            0x0c if self.status & STATUS_FEATURES_OK == 0 => match self.driver_feature_select {
                0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(low),
                1 => {
                    self.driver_features =
                        (self.driver_features & 0xffff_ffff) | (u64::from(low) << 32)
                }
                _ => {}
            },
            0x10 => self
                .interrupt
                .config_vector
                .store(valid_vector(value as u16), Ordering::SeqCst),
            0x14 => self.set_status(value as u8),
            0x16 => self.queue_select = value as u16,
            0x1a => {
                if let Some(v) = self.interrupt.queue_vectors.get(self.queue_select as usize) {
                    v.store(valid_vector(value as u16), Ordering::SeqCst);
                }
            }
            _ if driver_ok => {}
            0x18 => {
                if let Some(q) = self.selected_queue()
                    && !q.ready()
                {
                    let size = value as u16;
                    if size.is_power_of_two() && size <= q.max_size() {
                        q.set_size(size);
                    }
                }
            }
            0x1c => {
                if let Some(q) = self.selected_queue()
                    && value & 1 == 1
                {
                    q.set_ready(true);
                }
            }
            0x20..=0x37 => {
                let Some(q) = self.selected_queue() else {
                    return;
                };
                if q.ready() {
                    return;
                }
                let (lo, hi) = match (offset % 8, n) {
                    (0, 8) => (Some(low), Some((value >> 32) as u32)),
                    (0, _) => (Some(low), None),
                    _ => (None, Some(low)),
                };
                match offset & !7 {
                    0x20 => q.set_desc_table_address(lo, hi),
                    0x28 => q.set_avail_ring_address(lo, hi),
                    0x30 => q.set_used_ring_address(lo, hi),
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

impl PciDevice for VirtioPciDevice {
    fn config_read(&mut self, offset: usize, data: &mut [u8]) {
        self.config.read(offset, data);
    }

    fn bar_window(&self) -> Option<(u64, u64)> {
        Some((self.bar, u64::from(BAR_SIZE)))
    }

    fn config_write(&mut self, offset: usize, data: &[u8]) -> Option<BarMove> {
        let moved = self.config.write(offset, data);
        let control_at = self.msix_cap + 2;
        if offset < control_at + 2 && offset + data.len() > control_at {
            let control = self.config.u16_at(control_at);
            self.msix
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .set_control(
                    control & MSIX_ENABLE != 0,
                    control & MSIX_FUNCTION_MASK != 0,
                );
        }
        if let Some(m) = moved {
            self.unregister_notify(m.old);
            self.bar = m.new;
            if self.register_notify(m.new).is_err() {
                // Notifications still arrive as MMIO writes (see write()).
                self.unregister_notify(m.new);
            }
        }
        moved
    }
}

impl BusDevice for VirtioPciDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match offset {
            o if o < COMMON_OFFSET + COMMON_LEN => self.common_read(o, data),
            ISR_OFFSET => {
                // Reading the ISR clears it.
                let isr = self.interrupt.isr.swap(0, Ordering::SeqCst);
                data.fill(0);
                data[0] = isr;
            }
            o if (DEVICE_OFFSET..DEVICE_OFFSET + DEVICE_LEN).contains(&o) => self
                .device
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .read_config(o - DEVICE_OFFSET, data),
            o if (MSIX_TABLE_OFFSET..MSIX_PBA_OFFSET).contains(&o) => self
                .msix
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .read_table((o - MSIX_TABLE_OFFSET) as usize, data),
            o if o >= MSIX_PBA_OFFSET => self
                .msix
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .read_pba((o - MSIX_PBA_OFFSET) as usize, data),
            _ => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match offset {
            o if o < COMMON_OFFSET + COMMON_LEN => self.common_write(o, data),
            o if (DEVICE_OFFSET..DEVICE_OFFSET + DEVICE_LEN).contains(&o) => self
                .device
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_config(o - DEVICE_OFFSET, data),
            o if (NOTIFY_OFFSET..NOTIFY_OFFSET + NOTIFY_LEN).contains(&o) => {
                // Normally KVM's ioeventfd catches these; a write that
                // reached us (odd width) is forwarded the same way.
                let queue = ((o - NOTIFY_OFFSET) / u64::from(NOTIFY_MULTIPLIER)) as usize;
                if let Some(fd) = self.notify.get(queue) {
                    let _ = fd.write(1);
                }
            }
            o if (MSIX_TABLE_OFFSET..MSIX_PBA_OFFSET).contains(&o) => self
                .msix
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_table((o - MSIX_TABLE_OFFSET) as usize, data),
            _ => {}
        }
    }
}

impl Drop for VirtioPciDevice {
    fn drop(&mut self) {
        self.unregister_notify(self.bar);
    }
}

/// The device gets its own Queue with the driver's settings (Queue is not
/// Clone); the transport keeps its copy for register reads.
fn copy_queue(q: &Queue) -> Option<Queue> {
    let mut copy = Queue::new(q.max_size()).ok()?;
    copy.set_size(q.size());
    let split = |a: u64| (Some(a as u32), Some((a >> 32) as u32));
    let (lo, hi) = split(q.desc_table());
    copy.set_desc_table_address(lo, hi);
    let (lo, hi) = split(q.avail_ring());
    copy.set_avail_ring_address(lo, hi);
    let (lo, hi) = split(q.used_ring());
    copy.set_used_ring_address(lo, hi);
    copy.set_event_idx(q.event_idx_enabled());
    copy.set_ready(true);
    Some(copy)
}

/// Silences "unused" for status bits only the driver sets.
const _: [u8; 3] = [STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_FAILED];
