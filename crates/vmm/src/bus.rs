//! Port-I/O and MMIO buses: map guest address ranges to devices.
//!
//! A vCPU exit for an I/O port or an MMIO address is dispatched here; the
//! device sees offsets relative to the start of the range it was inserted at.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use thiserror::Error;

/// A device on a bus. Accesses are at most 8 bytes; `data.len()` is the
/// access width. Reads of registers a device does not implement should fill
/// `data` with what the hardware returns (usually all ones or zeros).
pub trait BusDevice: Send {
    fn read(&mut self, offset: u64, data: &mut [u8]);
    fn write(&mut self, offset: u64, data: &[u8]);
}

pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BusError {
    #[error("range {base:#x}+{len:#x} overlaps a device already on the bus")]
    Overlap { base: u64, len: u64 },
    #[error("range {base:#x}+{len:#x} is empty or wraps around")]
    BadRange { base: u64, len: u64 },
    #[error("no device at {0:#x}")]
    NotFound(u64),
}

struct Range {
    len: u64,
    device: SharedDevice,
}

#[derive(Default)]
pub struct Bus {
    ranges: RwLock<BTreeMap<u64, Range>>,
}

impl Bus {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, device: SharedDevice, base: u64, len: u64) -> Result<(), BusError> {
        if len == 0 || base.checked_add(len).is_none() {
            return Err(BusError::BadRange { base, len });
        }
        let mut ranges = self.ranges.write().unwrap_or_else(|e| e.into_inner());
        let overlaps_before = ranges
            .range(..=base)
            .next_back()
            .is_some_and(|(b, r)| b + r.len > base);
        let overlaps_after = ranges.range(base..base + len).next().is_some();
        if overlaps_before || overlaps_after {
            return Err(BusError::Overlap { base, len });
        }
        ranges.insert(base, Range { len, device });
        Ok(())
    }

    pub fn remove(&self, base: u64) -> Result<SharedDevice, BusError> {
        let mut ranges = self.ranges.write().unwrap_or_else(|e| e.into_inner());
        ranges
            .remove(&base)
            .map(|r| r.device)
            .ok_or(BusError::NotFound(base))
    }

    /// Whether `base..base+len` is inside the address space and no device
    /// covers any of it.
    pub fn is_free(&self, base: u64, len: u64) -> bool {
        let Some(end) = base.checked_add(len).filter(|_| len > 0) else {
            return false;
        };
        let ranges = self.ranges.read().unwrap_or_else(|e| e.into_inner());
        let before = ranges
            .range(..=base)
            .next_back()
            .is_some_and(|(b, r)| b + r.len > base);
        !before && ranges.range(base..end).next().is_none()
    }

    /// Removes the range at `base` only if `device` serves it (a hostile
    /// guest can point two BARs at one address; only one got mapped).
    pub fn remove_device(&self, base: u64, device: &SharedDevice) -> bool {
        let mut ranges = self.ranges.write().unwrap_or_else(|e| e.into_inner());
        let same = ranges
            .get(&base)
            .is_some_and(|r| std::ptr::addr_eq(Arc::as_ptr(&r.device), Arc::as_ptr(device)));
        if same {
            ranges.remove(&base);
        }
        same
    }

    fn lookup(&self, addr: u64) -> Option<(u64, SharedDevice)> {
        let ranges = self.ranges.read().unwrap_or_else(|e| e.into_inner());
        let (base, range) = ranges.range(..=addr).next_back()?;
        (addr - base < range.len).then(|| (addr - base, range.device.clone()))
    }

    /// Returns false when no device covers `addr` (the caller decides what
    /// an unclaimed access returns).
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.lookup(addr) {
            Some((offset, device)) => {
                device
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .read(offset, data);
                true
            }
            None => false,
        }
    }

    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.lookup(addr) {
            Some((offset, device)) => {
                device
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .write(offset, data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(u8);
    impl BusDevice for Echo {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(self.0 + offset as u8);
        }
        fn write(&mut self, _offset: u64, data: &[u8]) {
            self.0 = data[0];
        }
    }

    #[test]
    fn dispatches_by_range_with_relative_offsets() {
        let bus = Bus::new();
        bus.insert(Arc::new(Mutex::new(Echo(10))), 0x100, 8)
            .unwrap();
        let mut b = [0u8; 1];
        assert!(bus.read(0x103, &mut b));
        assert_eq!(b[0], 13);
        assert!(!bus.read(0x108, &mut b));
        assert!(!bus.read(0xff, &mut b));
        assert!(bus.write(0x100, &[1]));
        bus.read(0x100, &mut b);
        assert_eq!(b[0], 1);
    }

    #[test]
    fn refuses_overlaps_and_bad_ranges() {
        let bus = Bus::new();
        bus.insert(Arc::new(Mutex::new(Echo(0))), 0x100, 8).unwrap();
        let dev = Arc::new(Mutex::new(Echo(0)));
        assert!(bus.insert(dev.clone(), 0x104, 8).is_err());
        assert!(bus.insert(dev.clone(), 0xfc, 8).is_err());
        assert!(bus.insert(dev.clone(), 0x0, 0).is_err());
        assert!(bus.insert(dev.clone(), u64::MAX, 2).is_err());
        bus.insert(dev, 0x108, 8).unwrap();
        bus.remove(0x100).unwrap();
        assert!(bus.remove(0x100).is_err());
    }

    #[test]
    fn free_ranges_and_removal_by_owner() {
        let bus = Bus::new();
        let a: SharedDevice = Arc::new(Mutex::new(Echo(0)));
        let b: SharedDevice = Arc::new(Mutex::new(Echo(0)));
        bus.insert(a.clone(), 0x1000, 0x100).unwrap();
        assert!(!bus.is_free(0x1000, 1));
        assert!(!bus.is_free(0xf00, 0x101));
        assert!(!bus.is_free(0x10ff, 0x10));
        assert!(bus.is_free(0x1100, 0x100));
        assert!(bus.is_free(0xf00, 0x100));
        assert!(!bus.is_free(u64::MAX, 2));
        assert!(!bus.is_free(0, 0));
        assert!(!bus.remove_device(0x1000, &b), "not b's range");
        assert!(!bus.is_free(0x1000, 1));
        assert!(bus.remove_device(0x1000, &a));
        assert!(bus.is_free(0x1000, 0x100));
        assert!(!bus.remove_device(0x1000, &a));
    }
}
