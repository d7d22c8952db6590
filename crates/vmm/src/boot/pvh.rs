//! PVH boot: hvm_start_info and its memory map for ELF kernels with the
//! XEN_ELFNOTE_PHYS32_ENTRY note.

use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::elf::start_info::{hvm_memmap_table_entry, hvm_start_info};
use vm_memory::{ByteValued, GuestAddress};

use super::BootError;
use crate::layout::{CMDLINE_START, PVH_INFO_START};
use crate::memory::{GuestMemoryMmap, e820_map};

const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;

#[repr(transparent)]
#[derive(Clone, Copy, Default)]
struct StartInfo(hvm_start_info);
// SAFETY: hvm_start_info is a repr(C) struct of integers: any byte pattern
// is a valid value and it has no padding that could leak.
unsafe impl ByteValued for StartInfo {}

/// hvm_modlist_entry (linux-loader does not generate it).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct ModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}
// SAFETY: repr(C) struct of four u64: no padding, any bytes valid.
unsafe impl ByteValued for ModlistEntry {}

#[repr(transparent)]
#[derive(Clone, Copy, Default)]
struct MemmapEntry(hvm_memmap_table_entry);
// SAFETY: as above, a repr(C) struct of integers.
unsafe impl ByteValued for MemmapEntry {}

pub(super) fn write_start_info(
    mem: &GuestMemoryMmap,
    memory_bytes: u64,
    initrd: Option<(GuestAddress, u64)>,
    rsdp: GuestAddress,
) -> Result<(), BootError> {
    let map = e820_map(memory_bytes);
    let mut info = StartInfo::default();
    info.0.magic = XEN_HVM_START_MAGIC;
    info.0.version = 1;
    info.0.cmdline_paddr = CMDLINE_START;
    info.0.rsdp_paddr = rsdp.0;
    info.0.memmap_entries = map.len() as u32;
    let info_size = std::mem::size_of::<StartInfo>() as u64;
    let memmap_addr = GuestAddress(PVH_INFO_START + info_size);
    info.0.memmap_paddr = memmap_addr.0;

    // One module: the initrd, right after the memory map.
    let modlist_addr =
        GuestAddress(memmap_addr.0 + (map.len() * std::mem::size_of::<MemmapEntry>()) as u64);
    if initrd.is_some() {
        info.0.nr_modules = 1;
        info.0.modlist_paddr = modlist_addr.0;
    }
    let mut params = BootParams::new(&info, GuestAddress(PVH_INFO_START));
    let entries: Vec<MemmapEntry> = map
        .iter()
        .map(|&(addr, size, kind)| {
            MemmapEntry(hvm_memmap_table_entry {
                addr,
                size,
                type_: kind,
                reserved: 0,
            })
        })
        .collect();
    params.set_sections(&entries, memmap_addr);
    if let Some((addr, size)) = initrd {
        params.set_modules(
            &[ModlistEntry {
                paddr: addr.0,
                size,
                cmdline_paddr: 0,
                reserved: 0,
            }],
            modlist_addr,
        );
    }
    PvhBootConfigurator::write_bootparams(&params, mem)
        .map_err(|e| BootError::BootParams(e.to_string()))
}
