//! MSI-X: the vector table and pending-bit array a device exposes in a BAR,
//! backed by one KVM MSI route (GSI) and one irqfd per vector. Masked
//! vectors latch a pending bit and fire when unmasked, as the spec wants.

use std::sync::Arc;

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::vm::{Vm, VmError};

const ENTRY_SIZE: usize = 16;
const VECTOR_CONTROL_MASK: u32 = 1;

#[derive(Clone, Copy, Default)]
struct Entry {
    address: u64,
    data: u32,
    control: u32,
}

impl Entry {
    fn masked(&self) -> bool {
        self.control & VECTOR_CONTROL_MASK != 0
    }
}

pub struct MsixTable {
    vm: Arc<Vm>,
    entries: Vec<Entry>,
    pending: Vec<bool>,
    gsis: Vec<u32>,
    irqfds: Vec<EventFd>,
    enabled: bool,
    function_masked: bool,
}

impl MsixTable {
    pub fn new(vm: Arc<Vm>, vectors: u16) -> Result<Self, VmError> {
        let mut table = MsixTable {
            vm,
            entries: vec![
                Entry {
                    control: VECTOR_CONTROL_MASK,
                    ..Default::default()
                };
                vectors as usize
            ],
            pending: vec![false; vectors as usize],
            gsis: Vec::new(),
            irqfds: Vec::new(),
            enabled: false,
            function_masked: false,
        };
        for _ in 0..vectors {
            let gsi = table.vm.allocate_msi_gsi()?;
            table.gsis.push(gsi);
            let fd = EventFd::new(EFD_NONBLOCK).map_err(|e| VmError::Kvm {
                what: "create an irqfd",
                source: kvm_ioctls::Error::new(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
            table
                .vm
                .fd
                .register_irqfd(&fd, gsi)
                .map_err(|source| VmError::Kvm {
                    what: "register an irqfd",
                    source,
                })?;
            table.irqfds.push(fd);
        }
        Ok(table)
    }

    pub fn vectors(&self) -> u16 {
        self.entries.len() as u16
    }

    pub fn table_len(&self) -> usize {
        self.entries.len() * ENTRY_SIZE
    }

    pub fn pba_len(&self) -> usize {
        self.entries.len().div_ceil(64) * 8
    }

    /// Message control bits from the capability: enable (15), mask-all (14).
    pub fn set_control(&mut self, enabled: bool, function_masked: bool) {
        self.enabled = enabled;
        self.function_masked = function_masked;
        self.deliver_pending();
    }

    pub fn read_table(&self, offset: usize, data: &mut [u8]) {
        let raw = self.table_bytes(offset / ENTRY_SIZE);
        let start = offset % ENTRY_SIZE;
        for (i, b) in data.iter_mut().enumerate() {
            *b = raw.and_then(|r| r.get(start + i).copied()).unwrap_or(0);
        }
    }

    pub fn write_table(&mut self, offset: usize, data: &[u8]) {
        let index = offset / ENTRY_SIZE;
        let Some(mut raw) = self.table_bytes(index) else {
            return;
        };
        let start = offset % ENTRY_SIZE;
        for (i, b) in data.iter().enumerate() {
            if let Some(slot) = raw.get_mut(start + i) {
                *slot = *b;
            }
        }
        let word = |i: usize| u32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
        let new = Entry {
            address: u64::from(word(0)) | (u64::from(word(4)) << 32),
            data: word(8),
            control: word(12),
        };
        let old = self.entries[index];
        self.entries[index] = new;
        if (new.address, new.data) != (old.address, old.data) {
            // A failed route update leaves the old route: the guest sees a
            // misdirected interrupt at worst, never a VMM crash.
            let _ = self
                .vm
                .set_msi_route(self.gsis[index], new.address, new.data);
        }
        if old.masked() && !new.masked() {
            self.deliver_pending();
        }
    }

    pub fn read_pba(&self, offset: usize, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            let byte = offset + i;
            *b = (0..8)
                .filter(|bit| self.pending.get(byte * 8 + bit).copied().unwrap_or(false))
                .fold(0u8, |acc, bit| acc | (1 << bit));
        }
    }

    /// Signals `vector`; latches it when masked. Out-of-range vectors (the
    /// guest chose them) are ignored.
    pub fn trigger(&mut self, vector: u16) {
        let v = vector as usize;
        if v >= self.entries.len() || !self.enabled {
            return;
        }
        if self.function_masked || self.entries[v].masked() {
            self.pending[v] = true;
        } else {
            let _ = self.irqfds[v].write(1);
        }
    }

    fn deliver_pending(&mut self) {
        if !self.enabled || self.function_masked {
            return;
        }
        for v in 0..self.entries.len() {
            if self.pending[v] && !self.entries[v].masked() {
                self.pending[v] = false;
                let _ = self.irqfds[v].write(1);
            }
        }
    }

    fn table_bytes(&self, index: usize) -> Option<[u8; ENTRY_SIZE]> {
        let e = self.entries.get(index)?;
        let mut raw = [0u8; ENTRY_SIZE];
        raw[0..4].copy_from_slice(&(e.address as u32).to_le_bytes());
        raw[4..8].copy_from_slice(&((e.address >> 32) as u32).to_le_bytes());
        raw[8..12].copy_from_slice(&e.data.to_le_bytes());
        raw[12..16].copy_from_slice(&e.control.to_le_bytes());
        Some(raw)
    }
}

impl Drop for MsixTable {
    fn drop(&mut self) {
        for (fd, &gsi) in self.irqfds.iter().zip(&self.gsis) {
            let _ = self.vm.fd.unregister_irqfd(fd, gsi);
            let _ = self.vm.release_msi_gsi(gsi);
        }
    }
}
