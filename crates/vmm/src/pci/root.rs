//! PCI bus 0 and configuration mechanism #1: the guest writes an address to
//! 0xcf8 and reads/writes the register through 0xcfc..0xcff. Slot 0 is the
//! host bridge; devices sit in slots 1..31 (function 0).

use std::sync::{Arc, Mutex};

use thiserror::Error;

use super::{BarMove, ConfigSpace, PciDevice, PciIds};
use crate::bus::{Bus, BusDevice, SharedDevice};
use crate::layout::PCI_SLOTS;

const ADDRESS_ENABLE: u32 = 1 << 31;

#[derive(Debug, Error)]
pub enum PciRootError {
    #[error("PCI slot {0} is taken or does not exist")]
    SlotUnavailable(u8),
    #[error("no free PCI slot")]
    NoFreeSlot,
}

struct Slot {
    device: Arc<Mutex<dyn PciDevice>>,
    /// What serves the device's BARs on the MMIO bus.
    bars: Option<SharedDevice>,
}

pub struct PciRoot {
    address: u32,
    slots: Vec<Option<Slot>>,
    mmio: Arc<Bus>,
    /// The reset control register at 0xcf9 shares the address register's
    /// dword; byte accesses there go to it.
    reset_register: Option<Box<dyn BusDevice>>,
}

/// The i440FX host bridge's identity, which firmware and guests know.
struct HostBridge {
    config: ConfigSpace,
}

impl PciDevice for HostBridge {
    fn config_read(&mut self, offset: usize, data: &mut [u8]) {
        self.config.read(offset, data);
    }
    fn config_write(&mut self, offset: usize, data: &[u8]) -> Option<BarMove> {
        self.config.write(offset, data)
    }
}

/// i440FX PAM0..PAM6: shadow-RAM control of 0xC0000..0xFFFFF. SeaBIOS
/// writes them to "unlock" its RAM copy and reads PAM0 back to tell a cold
/// boot (copy the BIOS down from 4 GiB) from a warm one. Guest RAM is
/// always RAM here, so the registers are only stored.
const I440FX_PAM0: usize = 0x59;
const PAM_REGISTERS: usize = 7;
/// Each PAM register holds two 2-bit read/write-enable fields.
const PAM_MASK: u8 = 0x33;

impl PciRoot {
    pub fn new(mmio: Arc<Bus>) -> Self {
        let mut config = ConfigSpace::new(&PciIds {
            vendor: 0x8086,
            device: 0x1237,
            revision: 2,
            class: 0x06_00_00,
            subsystem_vendor: 0x1af4,
            subsystem: 0x1100,
        });
        config.set_writable(I440FX_PAM0, &[PAM_MASK; PAM_REGISTERS]);
        let bridge = HostBridge { config };
        let mut slots: Vec<Option<Slot>> = (0..PCI_SLOTS).map(|_| None).collect();
        slots[0] = Some(Slot {
            device: Arc::new(Mutex::new(bridge)),
            bars: None,
        });
        PciRoot {
            address: 0,
            slots,
            mmio,
            reset_register: None,
        }
    }

    pub fn set_reset_register(&mut self, device: Box<dyn BusDevice>) {
        self.reset_register = Some(device);
    }

    pub fn free_slot(&self) -> Result<u8, PciRootError> {
        (1..PCI_SLOTS)
            .find(|&s| self.slots[s as usize].is_none())
            .ok_or(PciRootError::NoFreeSlot)
    }

    /// Puts a device in `slot`; its BARs (already programmed in its config
    /// space) must be mapped by the caller on the MMIO bus with `bars`.
    pub fn add_device(
        &mut self,
        slot: u8,
        device: Arc<Mutex<dyn PciDevice>>,
        bars: Option<SharedDevice>,
    ) -> Result<(), PciRootError> {
        match self.slots.get_mut(slot as usize) {
            Some(entry @ None) if slot != 0 => {
                *entry = Some(Slot { device, bars });
                Ok(())
            }
            _ => Err(PciRootError::SlotUnavailable(slot)),
        }
    }

    pub fn remove_device(&mut self, slot: u8) -> Option<Arc<Mutex<dyn PciDevice>>> {
        if slot == 0 {
            return None;
        }
        self.slots.get_mut(slot as usize)?.take().map(|s| s.device)
    }

    /// Takes the device out of `slot` (hot-unplug): its config space reads
    /// as an empty slot from now on and its BAR leaves the MMIO bus.
    pub fn unplug(&mut self, slot: u8) -> Option<Arc<Mutex<dyn PciDevice>>> {
        if slot == 0 {
            return None;
        }
        let taken = self.slots.get_mut(slot as usize)?.take()?;
        if let Some(bars) = &taken.bars {
            let window = taken
                .device
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .bar_window();
            if let Some((base, _)) = window {
                self.mmio.remove_device(base, bars);
            }
        }
        Some(taken.device)
    }

    /// Whether a device sits in `slot`.
    pub fn occupied(&self, slot: u8) -> bool {
        self.slots.get(slot as usize).is_some_and(Option::is_some)
    }

    /// The device the address register selects, if any (bus 0, function 0).
    fn selected(&self) -> Option<(&Slot, usize)> {
        if self.address & ADDRESS_ENABLE == 0 {
            return None;
        }
        let bus = (self.address >> 16) & 0xff;
        let slot = (self.address >> 11) & 0x1f;
        let function = (self.address >> 8) & 0x7;
        let register = (self.address & 0xfc) as usize;
        if bus != 0 || function != 0 {
            return None;
        }
        self.slots[slot as usize].as_ref().map(|s| (s, register))
    }

    fn follow_bar(&self, slot: &Slot, moved: BarMove) {
        let Some(bars) = &slot.bars else { return };
        // Only this device's own mapping: a guest can point two BARs at one
        // address, and then only the first got mapped.
        self.mmio.remove_device(moved.old, bars);
        // Sizing writes (all ones) and zero are not real placements.
        let plausible = moved.new != 0
            && moved
                .new
                .checked_add(moved.len)
                .is_some_and(|e| e <= 1 << 32);
        if plausible {
            let _ = self.mmio.insert(bars.clone(), moved.new, moved.len);
        }
    }
}

impl BusDevice for PciRoot {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match offset {
            1 if data.len() == 1 && self.reset_register.is_some() => {
                if let Some(r) = self.reset_register.as_mut() {
                    r.read(0, data);
                }
            }
            0..=3 => {
                let bytes = self.address.to_le_bytes();
                for (i, b) in data.iter_mut().enumerate() {
                    *b = bytes.get(offset as usize + i).copied().unwrap_or(0xff);
                }
            }
            4..=7 => match self.selected() {
                Some((slot, register)) => {
                    let at = register + (offset as usize - 4);
                    slot.device
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .config_read(at, data);
                }
                None => data.fill(0xff),
            },
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match offset {
            // Only whole-dword writes select a register (byte writes to
            // 0xcfb are mechanism #2 probes).
            0 if data.len() == 4 => {
                self.address = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            }
            1 if data.len() == 1 => {
                if let Some(r) = self.reset_register.as_mut() {
                    r.write(0, data);
                }
            }
            4..=7 => {
                if let Some((slot, register)) = self.selected() {
                    let at = register + (offset as usize - 4);
                    let moved = slot
                        .device
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .config_write(at, data);
                    if let Some(moved) = moved {
                        self.follow_bar(slot, moved);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(root: &mut PciRoot, slot: u32, register: u32) {
        root.write(0, &(ADDRESS_ENABLE | (slot << 11) | register).to_le_bytes());
    }

    #[test]
    fn host_bridge_and_empty_slots() {
        let mut root = PciRoot::new(Arc::new(Bus::new()));
        select(&mut root, 0, 0);
        let mut id = [0u8; 4];
        root.read(4, &mut id);
        assert_eq!(u32::from_le_bytes(id), 0x1237_8086);
        select(&mut root, 5, 0);
        root.read(4, &mut id);
        assert_eq!(id, [0xff; 4]);
        // Function 1 and other buses are empty.
        root.write(0, &(ADDRESS_ENABLE | (1 << 8)).to_le_bytes());
        root.read(4, &mut id);
        assert_eq!(id, [0xff; 4]);
        // Byte access to the data port at an offset.
        select(&mut root, 0, 0);
        let mut b = [0u8; 1];
        root.read(6, &mut b);
        assert_eq!(b[0], 0x37);
        assert!(root.remove_device(0).is_none());
    }

    #[test]
    fn host_bridge_keeps_pam_settings_only() {
        let mut root = PciRoot::new(Arc::new(Bus::new()));
        select(&mut root, 0, 0x58);
        let mut pam = [0u8; 4];
        root.read(5, &mut pam[..1]);
        assert_eq!(pam[0], 0, "PAM0 starts locked (SeaBIOS copies itself down)");
        root.write(4, &[0xff, 0x30, 0x33, 0xff]);
        root.read(4, &mut pam);
        assert_eq!(pam, [0, 0x30, 0x33, 0x33]);
        // The vendor id stays read-only.
        select(&mut root, 0, 0);
        root.write(4, &[0, 0, 0, 0]);
        root.read(4, &mut pam);
        assert_eq!(u32::from_le_bytes(pam), 0x1237_8086);
    }
}
