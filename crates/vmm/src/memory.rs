//! Guest RAM: its layout around the 32-bit PCI hole, and the e820 map the
//! guest is given to match it.

use thiserror::Error;
use vm_memory::GuestAddress;

use crate::layout::{FOUR_GIB, HIGH_RAM_START, LOW_RAM_END, PCI_HOLE_START};

/// The guest's RAM: mmap-backed regions. Cloning is cheap (shared regions).
pub type GuestMemoryMmap = vm_memory::GuestMemoryMmap<()>;

/// e820 entry types (ACPI address range types).
pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;

#[derive(Debug, Error)]
pub enum MemoryError {
    #[error("cannot allocate {mib} MiB of guest memory: {reason}")]
    Allocate { mib: u64, reason: String },
}

/// RAM below the PCI hole, then the rest from 4 GiB up.
pub fn ram_ranges(memory_bytes: u64) -> Vec<(GuestAddress, usize)> {
    let below = memory_bytes.min(PCI_HOLE_START);
    let mut ranges = vec![(GuestAddress(0), below as usize)];
    if memory_bytes > below {
        ranges.push((GuestAddress(FOUR_GIB), (memory_bytes - below) as usize));
    }
    ranges
}

pub fn create_guest_memory(memory_bytes: u64) -> Result<GuestMemoryMmap, MemoryError> {
    GuestMemoryMmap::from_ranges(&ram_ranges(memory_bytes)).map_err(|e| MemoryError::Allocate {
        mib: memory_bytes >> 20,
        reason: e.to_string(),
    })
}

/// (start, length, type) entries. The legacy BIOS area between the EBDA and
/// 1 MiB (where the ACPI tables and SMBIOS live) is reserved, not RAM.
pub fn e820_map(memory_bytes: u64) -> Vec<(u64, u64, u32)> {
    let below = memory_bytes.min(PCI_HOLE_START);
    let mut map = vec![
        (0, LOW_RAM_END, E820_RAM),
        (LOW_RAM_END, HIGH_RAM_START - LOW_RAM_END, E820_RESERVED),
        (HIGH_RAM_START, below - HIGH_RAM_START, E820_RAM),
    ];
    if memory_bytes > below {
        map.push((FOUR_GIB, memory_bytes - below, E820_RAM));
    }
    map
}

/// Bytes of RAM below and above 4 GiB (for CMOS and firmware tables).
pub fn ram_split(memory_bytes: u64) -> (u64, u64) {
    let below = memory_bytes.min(PCI_HOLE_START);
    (below, memory_bytes - below)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_vm_has_one_region_and_a_reserved_bios_area() {
        let mib = 1 << 20;
        assert_eq!(ram_ranges(512 * mib), vec![(GuestAddress(0), 512 << 20)]);
        let map = e820_map(512 * mib);
        assert_eq!(map.len(), 3);
        assert_eq!(
            map[2],
            (HIGH_RAM_START, (512 << 20) - HIGH_RAM_START, E820_RAM)
        );
        assert_eq!(map[1].2, E820_RESERVED);
    }

    #[test]
    fn large_vm_skips_the_pci_hole() {
        let mem = 6u64 << 30;
        let ranges = ram_ranges(mem);
        assert_eq!(ranges[1], (GuestAddress(FOUR_GIB), (3usize << 30)));
        let map = e820_map(mem);
        assert_eq!(map[3], (FOUR_GIB, 3 << 30, E820_RAM));
        let total: u64 = map.iter().filter(|e| e.2 == E820_RAM).map(|e| e.1).sum();
        assert_eq!(total, mem - (HIGH_RAM_START - LOW_RAM_END));
        assert_eq!(ram_split(mem), (PCI_HOLE_START, 3 << 30));
    }
}
