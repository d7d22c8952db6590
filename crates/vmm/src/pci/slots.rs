//! The PCI slot plan of bus 0: which slot each disk of the config gets,
//! which slots take hot-plugged disks, and each slot's fixed BAR window.
//! Slot 0 is the host bridge; the NICs have fixed slots from
//! `NIC_SLOT_FIRST`; every other slot is a hot-plug slot for disks.

use crate::config::NIC_SLOT_FIRST;
use crate::layout;
use flint_contract::config::MAX_NICS;

/// PCI slot of disk `index` (0 = the boot disk): from slot 1 up, around
/// the NICs' fixed slots.
pub fn disk_slot(index: usize) -> u8 {
    let index = index as u8;
    let first = NIC_SLOT_FIRST - 1;
    if index < first {
        1 + index
    } else {
        1 + index + MAX_NICS as u8
    }
}

/// Bitmap of the hot-plug slots: all but the host bridge's and the NICs'.
pub fn hotplug_slots() -> u32 {
    let nics = ((1u32 << MAX_NICS) - 1) << NIC_SLOT_FIRST;
    !1 & !nics
}

/// BAR window of PCI slot `slot`.
pub fn slot_bar(slot: u8) -> u64 {
    layout::PCI_MMIO32_START + u64::from(slot) * 0x1_0000
}
