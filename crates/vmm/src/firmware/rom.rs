//! The BIOS image of a firmware boot, placed as on a PC:
//! - the whole image read-only just below 4 GiB, so that the reset vector
//!   (0xffff_fff0) is its last 16 bytes;
//! - its last 128 KiB copied into RAM at 0xE0000..1 MiB, where the reset
//!   vector's far jump (F000:E05B) lands. On QEMU this is a ROM alias that
//!   the i440FX PAM registers later turn into RAM; SeaBIOS copies itself
//!   there again from the 4 GiB mirror when it "unlocks" the shadow RAM, so
//!   writable RAM from the start is what it ends up with anyway.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;
use vm_memory::{Bytes, GuestAddress, MmapRegion, VolatileMemory};

use crate::config::{FIRMWARE_MAX_BYTES, FIRMWARE_MIN_BYTES};
use crate::layout::{BIOS_LOW_ALIAS_LEN, BIOS_LOW_ALIAS_START, FOUR_GIB};
use crate::memory::GuestMemoryMmap;
use crate::vm::{Vm, VmError};

#[derive(Debug, Error)]
pub enum RomError {
    #[error("cannot read firmware {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "firmware {path} is {size} bytes; expected a multiple of 64 KiB from 128 KiB to 16 MiB"
    )]
    Size { path: PathBuf, size: usize },
    #[error("cannot allocate the firmware ROM: {0}")]
    Allocate(String),
    #[error("cannot copy the firmware into memory: {0}")]
    Copy(String),
    #[error(transparent)]
    Vm(#[from] VmError),
}

/// The mapped BIOS. Keep it alive as long as the VM: KVM reads it.
pub struct FirmwareRom {
    _region: MmapRegion<()>,
    pub base: u64,
    pub size: u64,
}

/// Reads the BIOS at `path` and maps it into the VM (see the module doc).
pub fn load(vm: &Vm, mem: &GuestMemoryMmap, path: &Path) -> Result<FirmwareRom, RomError> {
    let bytes = read_image(path)?;
    let size = bytes.len();
    let region = MmapRegion::<()>::new(size).map_err(|e| RomError::Allocate(e.to_string()))?;
    region
        .as_volatile_slice()
        .write_slice(&bytes, 0)
        .map_err(|e| RomError::Copy(e.to_string()))?;
    let base = FOUR_GIB - size as u64;
    vm.map_rom(base, &region)?;
    let alias = &bytes[size - BIOS_LOW_ALIAS_LEN as usize..];
    mem.write_slice(alias, GuestAddress(BIOS_LOW_ALIAS_START))
        .map_err(|e| RomError::Copy(e.to_string()))?;
    Ok(FirmwareRom {
        _region: region,
        base,
        size: size as u64,
    })
}

/// The whole image, its size checked again (the file may have changed
/// since the config was validated).
fn read_image(path: &Path) -> Result<Vec<u8>, RomError> {
    let read_err = |source| RomError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(read_err)?
        // One byte past the limit tells "too large" without reading it all.
        .take(FIRMWARE_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let size = bytes.len();
    let ok = (FIRMWARE_MIN_BYTES..=FIRMWARE_MAX_BYTES).contains(&(size as u64))
        && size.is_multiple_of(64 << 10);
    if !ok {
        return Err(RomError::Size {
            path: path.to_path_buf(),
            size,
        });
    }
    Ok(bytes)
}
