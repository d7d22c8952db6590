//! Direct kernel boot: loads a bzImage or ELF vmlinux (linux-loader), the
//! initrd and the command line, and writes the boot parameters: the Linux
//! zero page for the 64-bit boot protocol, or hvm_start_info for PVH when
//! an ELF kernel carries the PVH note.

mod pvh;

use std::fs::File;
use std::path::Path;

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::boot_params;
use linux_loader::loader::{self, BzImage, Cmdline, Elf, KernelLoader, PvhBootCapability};
use thiserror::Error;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use crate::layout::{
    CMDLINE_MAX_SIZE, CMDLINE_START, HIGH_RAM_START, PCI_HOLE_START, ZERO_PAGE_START,
};
use crate::memory::{GuestMemoryMmap, e820_map};
use flint_contract::config::KernelConfig;

#[derive(Debug, Error)]
pub enum BootError {
    #[error("cannot open {what} {path}: {source}")]
    Open {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path} is neither a bzImage nor an x86-64 ELF kernel (bzImage: {bzimage}; ELF: {elf})"
    )]
    UnknownKernel {
        path: String,
        bzimage: loader::Error,
        elf: loader::Error,
    },
    #[error("kernel command line: {0}")]
    Cmdline(String),
    #[error("initrd of {size} bytes does not fit in guest memory below {limit:#x}")]
    InitrdTooLarge { size: u64, limit: u64 },
    #[error("cannot load the initrd: {0}")]
    InitrdLoad(String),
    #[error("cannot write boot parameters: {0}")]
    BootParams(String),
}

/// How the boot vCPU starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryPoint {
    /// 64-bit boot protocol: long mode, RSI = zero page.
    Linux64 { entry: GuestAddress },
    /// PVH: 32-bit protected mode, paging off, EBX = hvm_start_info.
    Pvh { entry: GuestAddress },
}

/// Loads the kernel, initrd and command line and writes the boot
/// parameters; returns where the boot vCPU starts.
pub fn load_kernel(
    mem: &GuestMemoryMmap,
    kernel: &KernelConfig,
    memory_bytes: u64,
    rsdp: GuestAddress,
) -> Result<EntryPoint, BootError> {
    let open = |what, path: &Path| {
        File::open(path).map_err(|source| BootError::Open {
            what,
            path: path.display().to_string(),
            source,
        })
    };
    let mut image = open("kernel", &kernel.path)?;
    let high = Some(GuestAddress(HIGH_RAM_START));
    let (result, is_elf) = match Elf::load(mem, None, &mut image, high) {
        Ok(result) => (result, true),
        Err(elf) => match BzImage::load(mem, None, &mut image, high) {
            Ok(result) => (result, false),
            Err(bzimage) => {
                return Err(BootError::UnknownKernel {
                    path: kernel.path.display().to_string(),
                    bzimage,
                    elf,
                });
            }
        },
    };

    let mut cmdline =
        Cmdline::new(CMDLINE_MAX_SIZE).map_err(|e| BootError::Cmdline(e.to_string()))?;
    cmdline
        .insert_str(&kernel.cmdline)
        .map_err(|e| BootError::Cmdline(e.to_string()))?;
    loader::load_cmdline(mem, GuestAddress(CMDLINE_START), &cmdline)
        .map_err(|e| BootError::Cmdline(e.to_string()))?;
    let cmdline_len = kernel.cmdline.len() as u32 + 1;

    // The zero page's header tells how high the initrd may go.
    let initrd_max = result
        .setup_header
        .map(|h| u64::from(h.initrd_addr_max))
        .filter(|&m| m != 0)
        .unwrap_or(0x37ff_ffff);
    let initrd = match &kernel.initrd {
        Some(path) => Some(load_initrd(
            mem,
            &mut open("initrd", path)?,
            memory_bytes,
            initrd_max,
            result.kernel_end,
        )?),
        None => None,
    };

    if is_elf && let PvhBootCapability::PvhEntryPresent(entry) = result.pvh_boot_cap {
        pvh::write_start_info(mem, memory_bytes, initrd, rsdp)?;
        return Ok(EntryPoint::Pvh { entry });
    }

    let mut params = boot_params::default();
    if let Some(header) = result.setup_header {
        params.hdr = header;
    } else {
        // An ELF vmlinux without the PVH note: a minimal header.
        params.hdr.boot_flag = 0xaa55;
        params.hdr.header = 0x5372_6448; // "HdrS"
        params.hdr.kernel_alignment = 0x0100_0000;
    }
    params.hdr.type_of_loader = 0xff;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_len;
    if let Some((addr, size)) = initrd {
        params.hdr.ramdisk_image = addr.0 as u32;
        params.hdr.ramdisk_size = size as u32;
    }
    params.acpi_rsdp_addr = rsdp.0;
    let map = e820_map(memory_bytes);
    for (i, &(addr, size, kind)) in map.iter().enumerate() {
        params.e820_table[i].addr = addr;
        params.e820_table[i].size = size;
        params.e820_table[i].r#type = kind;
    }
    params.e820_entries = map.len() as u8;
    LinuxBootConfigurator::write_bootparams(
        &BootParams::new(&params, GuestAddress(ZERO_PAGE_START)),
        mem,
    )
    .map_err(|e| BootError::BootParams(e.to_string()))?;

    // A bzImage's 64-bit entry is 0x200 past the protected-mode code; an
    // ELF's is its own entry point.
    let entry = if is_elf {
        result.kernel_load
    } else {
        GuestAddress(result.kernel_load.0 + 0x200)
    };
    Ok(EntryPoint::Linux64 { entry })
}

/// Puts the initrd as high as the kernel allows, page-aligned, above the
/// kernel. Returns (address, size).
fn load_initrd(
    mem: &GuestMemoryMmap,
    file: &mut File,
    memory_bytes: u64,
    initrd_max: u64,
    kernel_end: u64,
) -> Result<(GuestAddress, u64), BootError> {
    let size = file
        .metadata()
        .map_err(|e| BootError::InitrdLoad(e.to_string()))?
        .len();
    let top = memory_bytes.min(PCI_HOLE_START).min(initrd_max + 1);
    let limit = top;
    let addr = top
        .checked_sub(size)
        .map(|a| a & !0xfff)
        .filter(|&a| a >= kernel_end.max(HIGH_RAM_START))
        .ok_or(BootError::InitrdTooLarge { size, limit })?;
    let addr = GuestAddress(addr);
    if !mem.address_in_range(addr) {
        return Err(BootError::InitrdTooLarge { size, limit });
    }
    mem.read_exact_volatile_from(addr, file, size as usize)
        .map_err(|e| BootError::InitrdLoad(e.to_string()))?;
    Ok((addr, size))
}
