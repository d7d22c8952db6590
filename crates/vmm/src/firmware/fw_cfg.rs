//! QEMU's firmware configuration device (fw_cfg), the x86 I/O-port flavour
//! SeaBIOS talks to (QEMU docs/specs/fw_cfg.rst, hw/nvram/fw_cfg.c; SeaBIOS
//! src/fw/paravirt.c).
//!
//! Ports, all in one range: insert [`FwCfg`] on the PIO bus at
//! [`PORT_FW_CFG_SELECTOR`] with length [`FW_CFG_PORT_LEN`] (0x510..0x51b).
//! - 0x510, selector: a 16-bit little-endian write selects an item and
//!   rewinds its offset. (Byte reads here return data, as QEMU's combined
//!   port does.)
//! - 0x511, data: each byte read returns the next byte of the selected item,
//!   zero past its end or for an unknown item. Writes are ignored (QEMU
//!   dropped data-port writes in 2.4).
//! - 0x514..0x51b, DMA address (big-endian): a 32-bit write at 0x514 sets the
//!   high half, a 32-bit write at 0x518 the low half and starts the
//!   transfer; a 64-bit write at 0x514 does both. The guest address names a
//!   `FWCfgDmaAccess { control: be32, length: be32, address: be64 }`.
//!   Control bits: ERROR 1, READ 2, SKIP 4, SELECT 8 (selector in bits
//!   16..31), WRITE 0x10. The device writes `control` back as 0 on success
//!   or with ERROR set. Reads of 0x514.. return "QEMU CFG" (the DMA
//!   signature). SeaBIOS writes only the low half, so the address register
//!   is cleared after every transfer, as in QEMU.
//!
//! Items: numeric keys ([`FW_CFG_SIGNATURE`] "QEMU", [`FW_CFG_ID`] feature
//! bits, [`FW_CFG_FILE_DIR`] ...) and named files from key
//! [`FW_CFG_FILE_FIRST`] up, kept sorted by name (QEMU's order for current
//! machine types; adding a file renumbers the ones after it). Every file is
//! read-only: DMA WRITE always fails with ERROR.
//!
//! Guest memory: every DMA access is checked against guest RAM before
//! anything is copied; a descriptor or buffer outside it (or wrapping
//! around) fails that request with ERROR and never panics.
//!
//! For SeaBIOS, [`FwCfg::add_seabios_items`] adds everything it reads under
//! QEMU: CPU counts, RAM size, no boot menu, etc/e820, etc/boot-cpus,
//! bootorder, etc/boot-fail-wait, etc/sercon-port, the SMBIOS pair and the
//! ACPI tables with their table-loader script.

use std::collections::BTreeMap;

use thiserror::Error;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use super::smbios::SmbiosTables;
use crate::acpi::{AcpiTables, Blob, TABLES_ALIGN};
use crate::bus::BusDevice;
use crate::layout::PORT_COM1;
use crate::memory::{E820_RAM, E820_RESERVED, GuestMemoryMmap, e820_map};

// ---- Ports ----
pub const PORT_FW_CFG_SELECTOR: u16 = 0x510;
pub const PORT_FW_CFG_DATA: u16 = 0x511;
pub const PORT_FW_CFG_DMA: u16 = 0x514;
/// The device's port range from [`PORT_FW_CFG_SELECTOR`]: selector, data,
/// two unused ports, the 8-byte DMA address register.
pub const FW_CFG_PORT_LEN: u64 = 12;

const OFFSET_SELECTOR: u64 = 0;
const OFFSET_DATA: u64 = (PORT_FW_CFG_DATA - PORT_FW_CFG_SELECTOR) as u64;
const OFFSET_DMA_HIGH: u64 = (PORT_FW_CFG_DMA - PORT_FW_CFG_SELECTOR) as u64;
const OFFSET_DMA_LOW: u64 = OFFSET_DMA_HIGH + 4;

// ---- Keys ----
pub const FW_CFG_SIGNATURE: u16 = 0x0000;
pub const FW_CFG_ID: u16 = 0x0001;
pub const FW_CFG_RAM_SIZE: u16 = 0x0003;
/// QEMU's "-nographic": no display, the console is serial.
pub const FW_CFG_NOGRAPHIC: u16 = 0x0004;
pub const FW_CFG_NB_CPUS: u16 = 0x0005;
pub const FW_CFG_BOOT_MENU: u16 = 0x000e;
pub const FW_CFG_MAX_CPUS: u16 = 0x000f;
pub const FW_CFG_FILE_DIR: u16 = 0x0019;
pub const FW_CFG_FILE_FIRST: u16 = 0x0020;
/// x86-specific: whether IRQ0 is routed to GSI 2 (SeaBIOS's MP table).
pub const FW_CFG_IRQ0_OVERRIDE: u16 = 0x8002;
const FW_CFG_WRITE_CHANNEL: u16 = 0x4000;
const FW_CFG_ARCH_LOCAL: u16 = 0x8000;
const FW_CFG_ENTRY_MASK: u16 = !(FW_CFG_WRITE_CHANNEL | FW_CFG_ARCH_LOCAL);
/// File keys run from FW_CFG_FILE_FIRST to the top of the entry space.
pub const MAX_FILES: usize = (FW_CFG_ENTRY_MASK - FW_CFG_FILE_FIRST + 1) as usize;

/// FW_CFG_ID bits.
pub const FEATURE_TRADITIONAL: u32 = 1;
pub const FEATURE_DMA: u32 = 2;

// DMA control bits.
pub const DMA_CTL_ERROR: u32 = 0x01;
pub const DMA_CTL_READ: u32 = 0x02;
pub const DMA_CTL_SKIP: u32 = 0x04;
pub const DMA_CTL_SELECT: u32 = 0x08;
pub const DMA_CTL_WRITE: u32 = 0x10;
/// Read at the DMA port: "QEMU CFG", big-endian.
pub const DMA_SIGNATURE: [u8; 8] = *b"QEMU CFG";
const DMA_ACCESS_LEN: usize = 16;
/// Zero-fill chunk for reads past an item's end.
const ZERO_CHUNK: usize = 4096;

/// File names are at most 55 bytes: the directory holds 56 with the NUL.
pub const FILE_NAME_MAX: usize = 55;
const FILE_NAME_FIELD: usize = 56;
const FILE_DIR_ENTRY_LEN: usize = 64;

// ---- Standard file names ----
pub const FILE_E820: &str = "etc/e820";
pub const FILE_BOOTORDER: &str = "bootorder";
pub const FILE_BOOT_FAIL_WAIT: &str = "etc/boot-fail-wait";
pub const FILE_BOOT_CPUS: &str = "etc/boot-cpus";
pub const FILE_SERCON_PORT: &str = "etc/sercon-port";
pub const FILE_SMBIOS_TABLES: &str = "etc/smbios/smbios-tables";
pub const FILE_SMBIOS_ANCHOR: &str = "etc/smbios/smbios-anchor";
pub const FILE_ACPI_TABLES: &str = "etc/acpi/tables";
pub const FILE_ACPI_RSDP: &str = "etc/acpi/rsdp";
pub const FILE_TABLE_LOADER: &str = "etc/table-loader";

/// KVM's EPT identity-map page and real-mode TSS (layout.rs): reserved in
/// etc/e820, as QEMU does for the same addresses.
pub const KVM_RESERVED_START: u64 = crate::layout::KVM_IDENTITY_MAP_START;
pub const KVM_RESERVED_LEN: u64 = crate::layout::KVM_RESERVED_END - KVM_RESERVED_START;

/// After "No bootable device." SeaBIOS waits this long, then resets; the
/// VMM ends a firmware boot that resets twice without reaching 64-bit mode
/// (lifecycle.rs), so a disk that cannot boot ends the process in seconds
/// instead of idling forever.
pub const SEABIOS_BOOT_FAIL_WAIT_MS: u32 = 1000;

// ---- Table-loader (QEMU hw/acpi/bios-linker-loader.c, SeaBIOS romfile_loader.h) ----
pub const LOADER_ENTRY_LEN: usize = 128;
pub const LOADER_ALLOCATE: u32 = 1;
pub const LOADER_ADD_POINTER: u32 = 2;
pub const LOADER_ADD_CHECKSUM: u32 = 3;
/// ALLOCATE zones.
pub const LOADER_ZONE_HIGH: u8 = 1;
pub const LOADER_ZONE_FSEG: u8 = 2;
/// The RSDP goes in the F segment, on a 16-byte boundary, where the guest
/// (and SeaBIOS's find_acpi_rsdp) scans for it.
pub const RSDP_ALIGN: u32 = 16;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FwCfgError {
    #[error("fw_cfg file name {0:?} is empty, longer than 55 bytes or contains NUL")]
    BadFileName(String),
    #[error("fw_cfg already has a file named {0:?}")]
    DuplicateFile(String),
    #[error("fw_cfg cannot hold more than {MAX_FILES} files")]
    TooManyFiles,
    #[error("fw_cfg item of {0} bytes is larger than 4 GiB - 1")]
    TooLarge(usize),
    #[error("fw_cfg key {0:#06x} is reserved for the device itself or for files")]
    ReservedKey(u16),
    #[error("bootorder entry {0:?} is empty or contains a newline or NUL")]
    BadBootPath(String),
    #[error("ACPI tables for the table-loader must be built for base 0, not {0:#x}")]
    AcpiNotRelocatable(u64),
    #[error("table-loader field {field:#x}+{size} lies outside its {len}-byte blob")]
    LoaderRange {
        field: usize,
        size: usize,
        len: usize,
    },
}

/// The fw_cfg device.
pub struct FwCfg {
    mem: GuestMemoryMmap,
    /// Numeric items, by key without the write bit.
    keys: BTreeMap<u16, Vec<u8>>,
    /// Files sorted by name; file `i` has key `FW_CFG_FILE_FIRST + i`.
    files: Vec<(String, Vec<u8>)>,
    /// The file directory (key FW_CFG_FILE_DIR), rebuilt on every add.
    dir: Vec<u8>,
    /// Selected key (write bit cleared) and the offset into it.
    selected: u16,
    offset: u32,
    /// DMA address register.
    dma_address: u64,
}

impl FwCfg {
    /// A device with the signature, the feature bits (traditional + DMA)
    /// and an empty file directory. `mem` is where DMA goes.
    pub fn new(mem: GuestMemoryMmap) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(FW_CFG_SIGNATURE, b"QEMU".to_vec());
        keys.insert(
            FW_CFG_ID,
            (FEATURE_TRADITIONAL | FEATURE_DMA).to_le_bytes().to_vec(),
        );
        let mut fw_cfg = FwCfg {
            mem,
            keys,
            files: Vec::new(),
            dir: Vec::new(),
            selected: FW_CFG_SIGNATURE,
            offset: 0,
            dma_address: 0,
        };
        fw_cfg.rebuild_dir();
        fw_cfg
    }

    /// Adds a numeric item. The signature, ID, file directory and file keys
    /// belong to the device.
    pub fn add_key(&mut self, key: u16, bytes: Vec<u8>) -> Result<(), FwCfgError> {
        let key = key & !FW_CFG_WRITE_CHANNEL;
        let reserved = matches!(key, FW_CFG_SIGNATURE | FW_CFG_ID | FW_CFG_FILE_DIR)
            || (key & FW_CFG_ARCH_LOCAL == 0 && key >= FW_CFG_FILE_FIRST);
        if reserved {
            return Err(FwCfgError::ReservedKey(key));
        }
        check_size(&bytes)?;
        self.keys.insert(key, bytes);
        Ok(())
    }

    /// Adds a named file, keeping the directory sorted by name. Returns the
    /// file's current key (later additions may move it).
    pub fn add_file(&mut self, name: &str, bytes: Vec<u8>) -> Result<u16, FwCfgError> {
        if name.is_empty() || name.len() > FILE_NAME_MAX || name.contains('\0') {
            return Err(FwCfgError::BadFileName(name.to_owned()));
        }
        check_size(&bytes)?;
        // Byte-wise order, like QEMU's strcmp.
        let index = match self
            .files
            .binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes()))
        {
            Ok(_) => return Err(FwCfgError::DuplicateFile(name.to_owned())),
            Err(i) => i,
        };
        if self.files.len() >= MAX_FILES {
            return Err(FwCfgError::TooManyFiles);
        }
        self.files.insert(index, (name.to_owned(), bytes));
        self.rebuild_dir();
        Ok(file_key(index))
    }

    /// The key a file currently has.
    pub fn file_key(&self, name: &str) -> Option<u16> {
        self.files.iter().position(|(n, _)| n == name).map(file_key)
    }

    /// Directory blob: big-endian count, then 64-byte entries
    /// { size: be32, select: be16, reserved: u16, name: [u8; 56] }.
    fn rebuild_dir(&mut self) {
        let mut dir = Vec::with_capacity(4 + self.files.len() * FILE_DIR_ENTRY_LEN);
        // At most MAX_FILES entries.
        dir.extend_from_slice(&(self.files.len() as u32).to_be_bytes());
        for (i, (name, data)) in self.files.iter().enumerate() {
            // check_size keeps every item below 4 GiB.
            dir.extend_from_slice(&(data.len() as u32).to_be_bytes());
            dir.extend_from_slice(&file_key(i).to_be_bytes());
            dir.extend_from_slice(&[0, 0]);
            let mut field = [0u8; FILE_NAME_FIELD];
            field[..name.len()].copy_from_slice(name.as_bytes());
            dir.extend_from_slice(&field);
        }
        self.dir = dir;
    }

    fn item(&self, key: u16) -> Option<&[u8]> {
        if key == FW_CFG_FILE_DIR {
            return Some(&self.dir);
        }
        if key & FW_CFG_ARCH_LOCAL == 0 && key >= FW_CFG_FILE_FIRST {
            let index = usize::from(key - FW_CFG_FILE_FIRST);
            return self.files.get(index).map(|(_, d)| d.as_slice());
        }
        self.keys.get(&key).map(Vec::as_slice)
    }

    fn select(&mut self, key: u16) {
        self.selected = key & !FW_CFG_WRITE_CHANNEL;
        self.offset = 0;
    }

    fn read_data_byte(&mut self) -> u8 {
        let offset = self.offset as usize;
        match self
            .item(self.selected)
            .and_then(|d| d.get(offset))
            .copied()
        {
            Some(b) => {
                self.offset += 1;
                b
            }
            None => 0,
        }
    }

    /// Runs the DMA request whose descriptor is at `desc`.
    fn dma_transfer(&mut self, desc: u64) {
        let mut access = [0u8; DMA_ACCESS_LEN];
        let readable = desc.checked_add(DMA_ACCESS_LEN as u64).is_some()
            && self.mem.read_slice(&mut access, GuestAddress(desc)).is_ok();
        let status = if readable {
            let word = |i: usize| {
                u32::from_be_bytes([access[i], access[i + 1], access[i + 2], access[i + 3]])
            };
            let control = word(0);
            let length = word(4);
            let address = u64::from_be_bytes([
                access[8], access[9], access[10], access[11], access[12], access[13], access[14],
                access[15],
            ]);
            self.dma_run(control, length, address)
        } else {
            DMA_CTL_ERROR
        };
        // If even the control word cannot be written, the guest gets no
        // answer; there is nobody else to tell.
        let _ = self
            .mem
            .write_slice(&status.to_be_bytes(), GuestAddress(desc));
    }

    /// One request; returns the control word to write back.
    fn dma_run(&mut self, control: u32, length: u32, address: u64) -> u32 {
        if control & DMA_CTL_SELECT != 0 {
            self.select((control >> 16) as u16);
        }
        let (read, write) = if control & DMA_CTL_READ != 0 {
            (true, false)
        } else if control & DMA_CTL_WRITE != 0 {
            (false, true)
        } else if control & DMA_CTL_SKIP != 0 {
            (false, false)
        } else {
            return 0;
        };
        if length == 0 {
            return 0;
        }
        // Every item is read-only.
        if write {
            return DMA_CTL_ERROR;
        }
        let len = length as usize;
        let data = self.item(self.selected).unwrap_or(&[]);
        let start = (self.offset as usize).min(data.len());
        let available = &data[start..(start + len).min(data.len())];
        if read {
            let in_ram = address.checked_add(u64::from(length)).is_some()
                && self.mem.check_range(GuestAddress(address), len);
            if !in_ram {
                return DMA_CTL_ERROR;
            }
            if self
                .mem
                .write_slice(available, GuestAddress(address))
                .is_err()
            {
                return DMA_CTL_ERROR;
            }
            // Past the item's end the guest reads zeros.
            let zeros = [0u8; ZERO_CHUNK];
            let mut done = available.len();
            while done < len {
                let n = (len - done).min(ZERO_CHUNK);
                let at = GuestAddress(address + done as u64);
                if self.mem.write_slice(&zeros[..n], at).is_err() {
                    return DMA_CTL_ERROR;
                }
                done += n;
            }
        }
        // Items are below 4 GiB, so the offset stays in u32.
        self.offset = (start + available.len()) as u32;
        0
    }

    // ---- Standard items ----

    /// FW_CFG_NB_CPUS and FW_CFG_MAX_CPUS (u16 each) and etc/boot-cpus
    /// (u16): SeaBIOS waits for exactly `boot` CPUs to check in, so this
    /// must be the number of vCPUs that run.
    pub fn set_cpus(&mut self, boot: u16, max: u16) -> Result<(), FwCfgError> {
        self.add_key(FW_CFG_NB_CPUS, boot.to_le_bytes().to_vec())?;
        self.add_key(FW_CFG_MAX_CPUS, max.to_le_bytes().to_vec())?;
        self.add_file(FILE_BOOT_CPUS, boot.to_le_bytes().to_vec())?;
        Ok(())
    }

    /// FW_CFG_RAM_SIZE (u64, legacy; SeaBIOS reads RAM from CMOS + e820).
    pub fn set_ram_size(&mut self, memory_bytes: u64) -> Result<(), FwCfgError> {
        self.add_key(FW_CFG_RAM_SIZE, memory_bytes.to_le_bytes().to_vec())
    }

    /// FW_CFG_BOOT_MENU = 0: SeaBIOS reads it as "etc/show-boot-menu" and
    /// skips the menu prompt and its 2.5 s wait.
    pub fn disable_boot_menu(&mut self) -> Result<(), FwCfgError> {
        self.add_key(FW_CFG_BOOT_MENU, 0u16.to_le_bytes().to_vec())
    }

    /// FW_CFG_NOGRAPHIC = 1: the VM has no display (QEMU's -nographic);
    /// with etc/sercon-port, SeaBIOS writes its screen output to COM1.
    pub fn set_nographic(&mut self) -> Result<(), FwCfgError> {
        self.add_key(FW_CFG_NOGRAPHIC, 1u16.to_le_bytes().to_vec())
    }

    /// FW_CFG_IRQ0_OVERRIDE = 1: the in-kernel IOAPIC routes IRQ0 to GSI 2
    /// (SeaBIOS reads one byte, "etc/irq0-override").
    pub fn set_irq0_override(&mut self) -> Result<(), FwCfgError> {
        self.add_key(FW_CFG_IRQ0_OVERRIDE, 1u32.to_le_bytes().to_vec())
    }

    pub fn add_e820(&mut self, memory_bytes: u64) -> Result<(), FwCfgError> {
        self.add_file(FILE_E820, e820_file(memory_bytes))?;
        Ok(())
    }

    pub fn add_bootorder<S: AsRef<str>>(&mut self, paths: &[S]) -> Result<(), FwCfgError> {
        self.add_file(FILE_BOOTORDER, bootorder_file(paths)?)?;
        Ok(())
    }

    /// etc/boot-fail-wait: milliseconds SeaBIOS waits before rebooting when
    /// nothing boots; `u32::MAX` means never reboot (QEMU's default).
    pub fn add_boot_fail_wait(&mut self, millis: u32) -> Result<(), FwCfgError> {
        self.add_file(FILE_BOOT_FAIL_WAIT, millis.to_le_bytes().to_vec())?;
        Ok(())
    }

    /// etc/sercon-port: SeaBIOS mirrors its text console to this UART.
    pub fn add_sercon_port(&mut self, port: u16) -> Result<(), FwCfgError> {
        self.add_file(FILE_SERCON_PORT, sercon_port_file(port))?;
        Ok(())
    }

    /// etc/smbios/smbios-anchor + etc/smbios/smbios-tables.
    pub fn add_smbios(&mut self, smbios: &SmbiosTables) -> Result<(), FwCfgError> {
        self.add_file(FILE_SMBIOS_TABLES, smbios.tables.clone())?;
        self.add_file(FILE_SMBIOS_ANCHOR, smbios.fw_cfg_anchor())?;
        Ok(())
    }

    /// etc/acpi/tables, etc/acpi/rsdp and etc/table-loader, from tables
    /// built with `acpi::build_acpi_tables(config, 0)`.
    pub fn add_acpi(&mut self, acpi: &AcpiTables) -> Result<(), FwCfgError> {
        let loader = table_loader(acpi)?;
        self.add_file(FILE_ACPI_TABLES, acpi.tables.clone())?;
        self.add_file(FILE_ACPI_RSDP, acpi.rsdp.clone())?;
        self.add_file(FILE_TABLE_LOADER, loader)?;
        Ok(())
    }

    /// Everything SeaBIOS reads on a QEMU i440FX machine: CPU counts, RAM
    /// size, IRQ0 override, no boot menu, etc/e820, bootorder, a boot
    /// retry after [`SEABIOS_BOOT_FAIL_WAIT_MS`], the console on COM1,
    /// SMBIOS and ACPI.
    pub fn add_seabios_items<S: AsRef<str>>(
        &mut self,
        vcpus: u16,
        memory_bytes: u64,
        bootorder: &[S],
        smbios: &SmbiosTables,
        acpi: &AcpiTables,
    ) -> Result<(), FwCfgError> {
        self.set_cpus(vcpus, vcpus)?;
        self.set_ram_size(memory_bytes)?;
        self.set_irq0_override()?;
        self.disable_boot_menu()?;
        self.add_e820(memory_bytes)?;
        if !bootorder.is_empty() {
            self.add_bootorder(bootorder)?;
        }
        self.add_boot_fail_wait(SEABIOS_BOOT_FAIL_WAIT_MS)?;
        self.set_nographic()?;
        self.add_sercon_port(PORT_COM1)?;
        self.add_smbios(smbios)?;
        self.add_acpi(acpi)?;
        Ok(())
    }
}

fn file_key(index: usize) -> u16 {
    // add_file keeps the index below MAX_FILES.
    FW_CFG_FILE_FIRST + index as u16
}

fn check_size(bytes: &[u8]) -> Result<(), FwCfgError> {
    if u32::try_from(bytes.len()).is_err() {
        return Err(FwCfgError::TooLarge(bytes.len()));
    }
    Ok(())
}

impl BusDevice for FwCfg {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match offset {
            OFFSET_SELECTOR | OFFSET_DATA => {
                for b in data.iter_mut() {
                    *b = self.read_data_byte();
                }
            }
            OFFSET_DMA_HIGH..FW_CFG_PORT_LEN => {
                for (i, b) in data.iter_mut().enumerate() {
                    let at = (offset - OFFSET_DMA_HIGH) as usize + i;
                    *b = DMA_SIGNATURE.get(at).copied().unwrap_or(0);
                }
            }
            _ => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match (offset, data) {
            (OFFSET_SELECTOR, &[lo, hi]) => self.select(u16::from_le_bytes([lo, hi])),
            (OFFSET_DMA_HIGH, &[a, b, c, d]) => {
                self.dma_address = u64::from(u32::from_be_bytes([a, b, c, d])) << 32;
            }
            (OFFSET_DMA_LOW, &[a, b, c, d]) => {
                let desc = self.dma_address | u64::from(u32::from_be_bytes([a, b, c, d]));
                self.dma_address = 0;
                self.dma_transfer(desc);
            }
            (OFFSET_DMA_HIGH, &[a, b, c, d, e, f, g, h]) => {
                self.dma_address = 0;
                self.dma_transfer(u64::from_be_bytes([a, b, c, d, e, f, g, h]));
            }
            // Data-port writes (removed in QEMU 2.4) and anything else.
            _ => {}
        }
    }
}

// ---- File contents ----

/// etc/e820 for SeaBIOS: packed little-endian { address: u64, length: u64,
/// type: u32 } entries (QEMU's `struct e820_entry`, SeaBIOS's
/// `e820_reservation`). The RAM entries of `memory::e820_map`, then KVM's
/// reserved pages below 4 GiB. The legacy area between 640 KiB and 1 MiB
/// is left out: SeaBIOS lays that out itself (EBDA, option ROMs, its own
/// F segment). SeaBIOS ignores RAM entries that start below the RAM size it
/// read from CMOS and takes the rest (above 4 GiB) as RAM.
pub fn e820_file(memory_bytes: u64) -> Vec<u8> {
    let mut entries: Vec<(u64, u64, u32)> = e820_map(memory_bytes)
        .into_iter()
        .filter(|e| e.2 == E820_RAM)
        .collect();
    entries.push((KVM_RESERVED_START, KVM_RESERVED_LEN, E820_RESERVED));
    entries.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(entries.len() * 20);
    for (addr, len, kind) in entries {
        out.extend_from_slice(&addr.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
    }
    out
}

/// bootorder: OpenFirmware device paths, one per line, NUL-terminated (as
/// QEMU builds it). SeaBIOS matches its own globs against line prefixes;
/// for a PCI device in slot `n` of the root bus the line must start with
/// `/pci@i0cf8/<name>@<n hex>` (any name), e.g. `/pci@i0cf8/scsi@4/disk@0,0`
/// for virtio-blk in slot 4 — see [`pci_boot_path`].
pub fn bootorder_file<S: AsRef<str>>(paths: &[S]) -> Result<Vec<u8>, FwCfgError> {
    let mut out = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let p = p.as_ref();
        if p.is_empty() || p.contains(['\n', '\0']) {
            return Err(FwCfgError::BadBootPath(p.to_owned()));
        }
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(p.as_bytes());
    }
    out.push(0);
    Ok(out)
}

/// The bootorder line for a PCI device on the root bus (`function` 0 is
/// left out, as SeaBIOS's build_pci_path does).
pub fn pci_boot_path(name: &str, slot: u8, function: u8) -> String {
    if function == 0 {
        format!("/pci@i0cf8/{name}@{slot:x}")
    } else {
        format!("/pci@i0cf8/{name}@{slot:x},{function:x}")
    }
}

/// etc/sercon-port: SeaBIOS reads it with romfile_loadint, which accepts
/// 1, 2, 4 or 8 bytes, little-endian.
pub fn sercon_port_file(port: u16) -> Vec<u8> {
    port.to_le_bytes().to_vec()
}

fn loader_name(out: &mut [u8], name: &str) {
    // Our names are constants shorter than the 56-byte field.
    out[..name.len()].copy_from_slice(name.as_bytes());
}

fn blob_name(blob: Blob) -> &'static str {
    match blob {
        Blob::Tables => FILE_ACPI_TABLES,
        Blob::Rsdp => FILE_ACPI_RSDP,
    }
}

fn blob_len(acpi: &AcpiTables, blob: Blob) -> usize {
    match blob {
        Blob::Tables => acpi.tables.len(),
        Blob::Rsdp => acpi.rsdp.len(),
    }
}

fn check_field(acpi: &AcpiTables, blob: Blob, field: usize, size: usize) -> Result<(), FwCfgError> {
    let len = blob_len(acpi, blob);
    if field.checked_add(size).is_none_or(|end| end > len) {
        return Err(FwCfgError::LoaderRange { field, size, len });
    }
    Ok(())
}

fn loader_u32(field: usize) -> Result<u32, FwCfgError> {
    u32::try_from(field).map_err(|_| FwCfgError::TooLarge(field))
}

/// etc/table-loader: 128-byte little-endian commands.
/// - ALLOCATE { file[56], align: u32, zone: u8 }: etc/acpi/tables in the
///   high zone aligned to `acpi::TABLES_ALIGN` (the FACS comes first),
///   etc/acpi/rsdp in the F segment aligned to 16.
/// - ADD_POINTER { dest_file[56], src_file[56], offset: u32, size: u8 }: for
///   each pointer field, add the address of etc/acpi/tables.
/// - ADD_CHECKSUM { file[56], offset: u32, start: u32, length: u32 }: after
///   all pointers, in the order `AcpiTables::checksums` lists them.
pub fn table_loader(acpi: &AcpiTables) -> Result<Vec<u8>, FwCfgError> {
    if acpi.tables_base != 0 {
        return Err(FwCfgError::AcpiNotRelocatable(acpi.tables_base));
    }
    let mut out = Vec::new();
    let mut entry = |fill: &mut dyn FnMut(&mut [u8])| {
        let mut e = [0u8; LOADER_ENTRY_LEN];
        fill(&mut e);
        out.extend_from_slice(&e);
    };
    for (name, align, zone) in [
        (FILE_ACPI_TABLES, TABLES_ALIGN as u32, LOADER_ZONE_HIGH),
        (FILE_ACPI_RSDP, RSDP_ALIGN, LOADER_ZONE_FSEG),
    ] {
        entry(&mut |e| {
            e[0..4].copy_from_slice(&LOADER_ALLOCATE.to_le_bytes());
            loader_name(&mut e[4..60], name);
            e[60..64].copy_from_slice(&align.to_le_bytes());
            e[64] = zone;
        });
    }
    for p in &acpi.pointers {
        check_field(acpi, p.blob, p.offset, usize::from(p.size))?;
        let offset = loader_u32(p.offset)?;
        entry(&mut |e| {
            e[0..4].copy_from_slice(&LOADER_ADD_POINTER.to_le_bytes());
            loader_name(&mut e[4..60], blob_name(p.blob));
            loader_name(&mut e[60..116], FILE_ACPI_TABLES);
            e[116..120].copy_from_slice(&offset.to_le_bytes());
            e[120] = p.size;
        });
    }
    for c in &acpi.checksums {
        check_field(acpi, c.blob, c.field, 1)?;
        check_field(acpi, c.blob, c.start, c.len)?;
        let (field, start, len) = (
            loader_u32(c.field)?,
            loader_u32(c.start)?,
            loader_u32(c.len)?,
        );
        entry(&mut |e| {
            e[0..4].copy_from_slice(&LOADER_ADD_CHECKSUM.to_le_bytes());
            loader_name(&mut e[4..60], blob_name(c.blob));
            e[60..64].copy_from_slice(&field.to_le_bytes());
            e[64..68].copy_from_slice(&start.to_le_bytes());
            e[68..72].copy_from_slice(&len.to_le_bytes());
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
