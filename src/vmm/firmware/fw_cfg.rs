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
use crate::vmm::acpi::{AcpiTables, Blob, TABLES_ALIGN};
use crate::vmm::bus::BusDevice;
use crate::vmm::layout::PORT_COM1;
use crate::vmm::memory::{E820_RAM, E820_RESERVED, GuestMemoryMmap, e820_map};

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
pub const KVM_RESERVED_START: u64 = crate::vmm::layout::KVM_IDENTITY_MAP_START;
pub const KVM_RESERVED_LEN: u64 = crate::vmm::layout::KVM_RESERVED_END - KVM_RESERVED_START;

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
mod tests {
    use super::*;
    use crate::vmm::acpi::{AcpiConfig, build_acpi_tables};
    use crate::vmm::firmware::smbios::{build_smbios, tests::config as smbios_config};
    use crate::vmm::layout::{FOUR_GIB, HIGH_RAM_START, PCI_HOLE_START};

    const MIB: usize = 1 << 20;

    fn mem(size: usize) -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).unwrap()
    }

    fn select(dev: &mut FwCfg, key: u16) {
        dev.write(OFFSET_SELECTOR, &key.to_le_bytes());
    }

    fn read_port(dev: &mut FwCfg, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                let mut b = [0u8; 1];
                dev.read(OFFSET_DATA, &mut b);
                b[0]
            })
            .collect()
    }

    /// Writes a descriptor at `desc` and triggers it as SeaBIOS does: only
    /// the low half of the address, big-endian.
    fn dma(
        dev: &mut FwCfg,
        m: &GuestMemoryMmap,
        desc: u64,
        control: u32,
        len: u32,
        addr: u64,
    ) -> u32 {
        let mut d = Vec::new();
        d.extend_from_slice(&control.to_be_bytes());
        d.extend_from_slice(&len.to_be_bytes());
        d.extend_from_slice(&addr.to_be_bytes());
        m.write_slice(&d, GuestAddress(desc)).unwrap();
        trigger(dev, desc);
        let mut c = [0u8; 4];
        m.read_slice(&mut c, GuestAddress(desc)).unwrap();
        u32::from_be_bytes(c)
    }

    fn trigger(dev: &mut FwCfg, desc: u64) {
        dev.write(OFFSET_DMA_HIGH, &((desc >> 32) as u32).to_be_bytes());
        dev.write(OFFSET_DMA_LOW, &(desc as u32).to_be_bytes());
    }

    fn device_with_files() -> (FwCfg, GuestMemoryMmap) {
        let m = mem(4 * MIB);
        let mut dev = FwCfg::new(m.clone());
        dev.add_file("etc/zeta", b"last".to_vec()).unwrap();
        dev.add_file("bootorder", b"/pci@i0cf8/scsi@4\0".to_vec())
            .unwrap();
        dev.add_file("etc/alpha", (0..=255u8).cycle().take(1000).collect())
            .unwrap();
        (dev, m)
    }

    #[test]
    fn signature_and_id_through_the_data_port() {
        let (mut dev, _) = device_with_files();
        select(&mut dev, FW_CFG_SIGNATURE);
        assert_eq!(read_port(&mut dev, 4), b"QEMU");
        // Past the end: zeros.
        assert_eq!(read_port(&mut dev, 2), [0, 0]);
        select(&mut dev, FW_CFG_ID);
        let id = read_port(&mut dev, 4);
        assert_eq!(u32::from_le_bytes(id.try_into().unwrap()), 3);
        // Unknown key: zeros.
        select(&mut dev, 0x1234);
        assert_eq!(read_port(&mut dev, 3), [0, 0, 0]);
        // The DMA register reads as the DMA signature, at any width.
        let mut sig = [0u8; 8];
        dev.read(OFFSET_DMA_HIGH, &mut sig);
        assert_eq!(&sig, b"QEMU CFG");
        let mut low = [0u8; 4];
        dev.read(OFFSET_DMA_LOW, &mut low);
        assert_eq!(&low, b" CFG");
    }

    #[test]
    fn file_directory_is_sorted_big_endian() {
        let (mut dev, _) = device_with_files();
        select(&mut dev, FW_CFG_FILE_DIR);
        let count = u32::from_be_bytes(read_port(&mut dev, 4).try_into().unwrap());
        assert_eq!(count, 3);
        let mut entries = Vec::new();
        for _ in 0..count {
            let e = read_port(&mut dev, 64);
            let size = u32::from_be_bytes(e[0..4].try_into().unwrap());
            let select = u16::from_be_bytes([e[4], e[5]]);
            assert_eq!(&e[6..8], &[0, 0]);
            let name_len = e[8..].iter().position(|b| *b == 0).unwrap();
            let name = String::from_utf8(e[8..8 + name_len].to_vec()).unwrap();
            assert!(e[8 + name_len..].iter().all(|b| *b == 0));
            entries.push((name, size, select));
        }
        assert_eq!(
            entries,
            vec![
                ("bootorder".to_owned(), 18, 0x20),
                ("etc/alpha".to_owned(), 1000, 0x21),
                ("etc/zeta".to_owned(), 4, 0x22),
            ]
        );
        assert_eq!(dev.file_key("etc/zeta"), Some(0x22));
        // The directory's selectors reach the files.
        select(&mut dev, 0x22);
        assert_eq!(read_port(&mut dev, 5), b"last\0");
    }

    #[test]
    fn reading_a_file_byte_by_byte() {
        let (mut dev, _) = device_with_files();
        let key = dev.file_key("etc/alpha").unwrap();
        // The write-channel bit is ignored for reads.
        select(&mut dev, key | FW_CFG_WRITE_CHANNEL);
        let data = read_port(&mut dev, 1010);
        let want: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        assert_eq!(&data[..1000], &want[..]);
        assert!(data[1000..].iter().all(|b| *b == 0));
        // Reselecting rewinds; data-port writes change nothing.
        select(&mut dev, key);
        dev.write(OFFSET_DATA, &[0xaa]);
        assert_eq!(read_port(&mut dev, 3), [0, 1, 2]);
    }

    #[test]
    fn dma_select_read_skip() {
        let (mut dev, m) = device_with_files();
        let key = u32::from(dev.file_key("etc/alpha").unwrap());
        let desc = 0x1000;
        // SELECT + READ of the whole file.
        let status = dma(
            &mut dev,
            &m,
            desc,
            (key << 16) | DMA_CTL_SELECT | DMA_CTL_READ,
            1000,
            0x2000,
        );
        assert_eq!(status, 0);
        let mut buf = vec![0u8; 1000];
        m.read_slice(&mut buf, GuestAddress(0x2000)).unwrap();
        let want: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        assert_eq!(buf, want);

        // SELECT alone, then SKIP 300, then READ 10 at offset 300.
        assert_eq!(
            dma(&mut dev, &m, desc, (key << 16) | DMA_CTL_SELECT, 0, 0),
            0
        );
        assert_eq!(dma(&mut dev, &m, desc, DMA_CTL_SKIP, 300, 0), 0);
        assert_eq!(dma(&mut dev, &m, desc, DMA_CTL_READ, 10, 0x3000), 0);
        let mut buf = [0u8; 10];
        m.read_slice(&mut buf, GuestAddress(0x3000)).unwrap();
        assert_eq!(buf.to_vec(), want[300..310].to_vec());
        // The data port continues from where DMA stopped.
        assert_eq!(read_port(&mut dev, 1), [want[310]]);

        // READ past the end: the rest of the file, then zeros.
        m.write_slice(&[0xff; 64], GuestAddress(0x4000)).unwrap();
        let status = dma(
            &mut dev,
            &m,
            desc,
            (key << 16) | DMA_CTL_SELECT | DMA_CTL_SKIP,
            990,
            0,
        );
        assert_eq!(status, 0);
        assert_eq!(dma(&mut dev, &m, desc, DMA_CTL_READ, 64, 0x4000), 0);
        let mut buf = [0u8; 64];
        m.read_slice(&mut buf, GuestAddress(0x4000)).unwrap();
        assert_eq!(buf[..10].to_vec(), want[990..].to_vec());
        assert!(buf[10..].iter().all(|b| *b == 0));

        // A 64-bit trigger at 0x514 works too.
        let mut d = Vec::new();
        d.extend_from_slice(
            &((u32::from(FW_CFG_SIGNATURE) << 16) | DMA_CTL_SELECT | DMA_CTL_READ).to_be_bytes(),
        );
        d.extend_from_slice(&4u32.to_be_bytes());
        d.extend_from_slice(&0x5000u64.to_be_bytes());
        m.write_slice(&d, GuestAddress(desc)).unwrap();
        dev.write(OFFSET_DMA_HIGH, &(desc).to_be_bytes());
        let mut sig = [0u8; 4];
        m.read_slice(&mut sig, GuestAddress(0x5000)).unwrap();
        assert_eq!(&sig, b"QEMU");
    }

    #[test]
    fn dma_errors_never_panic() {
        let (mut dev, m) = device_with_files();
        let key = u32::from(dev.file_key("etc/alpha").unwrap());
        let sel_read = (key << 16) | DMA_CTL_SELECT | DMA_CTL_READ;
        let desc = 0x1000;
        let end = (4 * MIB) as u64;
        // Buffer outside guest memory, straddling its end, wrapping around.
        for (addr, len) in [
            (end, 16),
            (end - 8, 16),
            (u64::MAX - 3, 16),
            (0x2000, u32::MAX),
            (1 << 40, 1),
        ] {
            let status = dma(&mut dev, &m, desc, sel_read, len, addr);
            assert_eq!(status, DMA_CTL_ERROR, "addr {addr:#x} len {len:#x}");
        }
        // A partial overlap writes nothing.
        let mut tail = [0u8; 8];
        m.read_slice(&mut tail, GuestAddress(end - 8)).unwrap();
        assert_eq!(tail, [0; 8]);
        // Writes are refused.
        let status = dma(
            &mut dev,
            &m,
            desc,
            (key << 16) | DMA_CTL_SELECT | DMA_CTL_WRITE,
            4,
            0x2000,
        );
        assert_eq!(status, DMA_CTL_ERROR);
        // No operation, or zero length: success without effect.
        assert_eq!(dma(&mut dev, &m, desc, 0, 4, 0x2000), 0);
        assert_eq!(dma(&mut dev, &m, desc, DMA_CTL_READ, 0, end + 100), 0);
        // Descriptor outside guest memory, or straddling its end: nothing to
        // write the status to, no panic.
        trigger(&mut dev, end);
        trigger(&mut dev, end - 8);
        trigger(&mut dev, u64::MAX - 7);
        dev.write(OFFSET_DMA_HIGH, &u64::MAX.to_be_bytes());
        // Odd-sized and unaligned accesses are ignored.
        dev.write(OFFSET_DMA_HIGH + 1, &[1, 2, 3, 4]);
        dev.write(OFFSET_DMA_LOW, &[1, 2]);
        dev.write(OFFSET_SELECTOR, &[1, 2, 3, 4]);
        dev.write(2, &[0; 2]);
        let mut b = [0xffu8; 2];
        dev.read(2, &mut b);
        assert_eq!(b, [0, 0]);
        // Still working afterwards.
        assert_eq!(dma(&mut dev, &m, desc, sel_read, 4, 0x2000), 0);
    }

    /// The whole protocol through a PIO bus at the real port numbers.
    #[test]
    fn works_on_the_pio_bus_at_0x510() {
        use crate::vmm::bus::Bus;
        use std::sync::{Arc, Mutex};

        let m = mem(MIB);
        let mut dev = FwCfg::new(m.clone());
        dev.add_file("etc/hello", b"world".to_vec()).unwrap();
        let bus = Bus::new();
        bus.insert(
            Arc::new(Mutex::new(dev)),
            u64::from(PORT_FW_CFG_SELECTOR),
            FW_CFG_PORT_LEN,
        )
        .unwrap();
        let port = |p: u16| u64::from(p);
        assert!(bus.write(port(PORT_FW_CFG_SELECTOR), &FW_CFG_SIGNATURE.to_le_bytes()));
        let mut sig = Vec::new();
        for _ in 0..4 {
            let mut b = [0u8; 1];
            assert!(bus.read(port(PORT_FW_CFG_DATA), &mut b));
            sig.push(b[0]);
        }
        assert_eq!(sig, b"QEMU");
        let mut dma_sig = [0u8; 4];
        assert!(bus.read(port(PORT_FW_CFG_DMA), &mut dma_sig));
        assert_eq!(&dma_sig, b"QEMU");
        // DMA: SELECT + READ of the file by its directory key.
        let control = (u32::from(FW_CFG_FILE_FIRST) << 16) | DMA_CTL_SELECT | DMA_CTL_READ;
        let mut d = Vec::new();
        d.extend_from_slice(&control.to_be_bytes());
        d.extend_from_slice(&5u32.to_be_bytes());
        d.extend_from_slice(&0x3000u64.to_be_bytes());
        m.write_slice(&d, GuestAddress(0x2000)).unwrap();
        assert!(bus.write(port(PORT_FW_CFG_DMA) + 4, &0x2000u32.to_be_bytes()));
        let mut out = [0u8; 5];
        m.read_slice(&mut out, GuestAddress(0x3000)).unwrap();
        assert_eq!(&out, b"world");
        let mut status = [0xffu8; 4];
        m.read_slice(&mut status, GuestAddress(0x2000)).unwrap();
        assert_eq!(status, [0; 4]);
        // The range ends at 0x51b.
        assert!(!bus.read(port(PORT_FW_CFG_SELECTOR) + FW_CFG_PORT_LEN, &mut [0u8; 1]));
    }

    #[test]
    fn files_and_keys_are_validated() {
        let (mut dev, _) = device_with_files();
        assert_eq!(
            dev.add_file("etc/alpha", vec![]),
            Err(FwCfgError::DuplicateFile("etc/alpha".into()))
        );
        for bad in ["", "a\0b", &"n".repeat(56)] {
            assert!(matches!(
                dev.add_file(bad, vec![]),
                Err(FwCfgError::BadFileName(_))
            ));
        }
        dev.add_file(&"n".repeat(55), vec![1]).unwrap();
        for key in [
            FW_CFG_SIGNATURE,
            FW_CFG_ID,
            FW_CFG_FILE_DIR,
            0x20,
            0x3fff,
            0x4020,
        ] {
            assert!(matches!(
                dev.add_key(key, vec![1]),
                Err(FwCfgError::ReservedKey(_))
            ));
        }
        dev.add_key(0x8003, vec![0; 4]).unwrap();
        // Adding a file sorting earlier moves the later ones.
        let before = dev.file_key("etc/zeta").unwrap();
        dev.add_file("aaa", vec![]).unwrap();
        assert_eq!(dev.file_key("etc/zeta"), Some(before + 1));
        assert_eq!(dev.file_key("aaa"), Some(FW_CFG_FILE_FIRST));
    }

    #[test]
    fn standard_files() {
        let m = mem(MIB);
        let mut dev = FwCfg::new(m);
        let mem_bytes = 6u64 << 30;
        let acpi = build_acpi_tables(&AcpiConfig::new(2), 0).unwrap();
        let smbios = build_smbios(&smbios_config(2, mem_bytes)).unwrap();
        dev.add_seabios_items(
            2,
            mem_bytes,
            &["/pci@i0cf8/scsi@4/disk@0,0"],
            &smbios,
            &acpi,
        )
        .unwrap();
        let file =
            |dev: &FwCfg, name: &str| dev.item(dev.file_key(name).unwrap()).unwrap().to_vec();

        // etc/e820: 20-byte packed entries.
        let e820 = file(&dev, FILE_E820);
        assert_eq!(e820.len() % 20, 0);
        let entries: Vec<(u64, u64, u32)> = e820
            .chunks(20)
            .map(|c| {
                (
                    u64::from_le_bytes(c[0..8].try_into().unwrap()),
                    u64::from_le_bytes(c[8..16].try_into().unwrap()),
                    u32::from_le_bytes(c[16..20].try_into().unwrap()),
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                (0, 0x9_fc00, E820_RAM),
                (HIGH_RAM_START, PCI_HOLE_START - HIGH_RAM_START, E820_RAM),
                (KVM_RESERVED_START, KVM_RESERVED_LEN, E820_RESERVED),
                (FOUR_GIB, mem_bytes - PCI_HOLE_START, E820_RAM),
            ]
        );

        assert_eq!(file(&dev, FILE_BOOTORDER), b"/pci@i0cf8/scsi@4/disk@0,0\0");
        assert_eq!(
            file(&dev, FILE_BOOT_FAIL_WAIT),
            SEABIOS_BOOT_FAIL_WAIT_MS.to_le_bytes()
        );
        assert_eq!(file(&dev, FILE_SERCON_PORT), [0xf8, 0x03]);
        assert_eq!(file(&dev, FILE_BOOT_CPUS), [2, 0]);
        assert_eq!(dev.item(FW_CFG_NB_CPUS).unwrap(), [2, 0]);
        assert_eq!(dev.item(FW_CFG_MAX_CPUS).unwrap(), [2, 0]);
        assert_eq!(dev.item(FW_CFG_BOOT_MENU).unwrap(), [0, 0]);
        assert_eq!(dev.item(FW_CFG_NOGRAPHIC).unwrap(), [1, 0]);
        assert_eq!(dev.item(FW_CFG_RAM_SIZE).unwrap(), mem_bytes.to_le_bytes());
        assert_eq!(file(&dev, FILE_SMBIOS_ANCHOR).len(), 31);
        assert_eq!(file(&dev, FILE_SMBIOS_TABLES), smbios.tables);
        assert_eq!(file(&dev, FILE_ACPI_TABLES), acpi.tables);
        assert_eq!(file(&dev, FILE_ACPI_RSDP), acpi.rsdp);
        // The smbios anchor's table length matches the tables file, which
        // SeaBIOS insists on.
        let anchor = file(&dev, FILE_SMBIOS_ANCHOR);
        assert_eq!(
            usize::from(u16::from_le_bytes([anchor[22], anchor[23]])),
            smbios.tables.len()
        );

        assert_eq!(bootorder_file(&["a", "b"]).unwrap(), b"a\nb\0".to_vec());
        assert!(bootorder_file(&["a\nb"]).is_err());
        assert_eq!(pci_boot_path("scsi", 0x1a, 0), "/pci@i0cf8/scsi@1a");
        assert_eq!(pci_boot_path("ethernet", 3, 1), "/pci@i0cf8/ethernet@3,1");
    }

    /// A decoded table-loader command.
    #[derive(Debug, PartialEq)]
    enum Command {
        Allocate {
            file: String,
            align: u32,
            zone: u8,
        },
        AddPointer {
            dest: String,
            src: String,
            offset: u32,
            size: u8,
        },
        AddChecksum {
            file: String,
            offset: u32,
            start: u32,
            len: u32,
        },
    }

    fn name(field: &[u8]) -> String {
        assert_eq!(field.len(), 56);
        assert_eq!(field[55], 0, "names are NUL-terminated");
        let n = field.iter().position(|b| *b == 0).unwrap();
        assert!(field[n..].iter().all(|b| *b == 0));
        String::from_utf8(field[..n].to_vec()).unwrap()
    }

    fn decode(loader: &[u8]) -> Vec<Command> {
        assert_eq!(loader.len() % LOADER_ENTRY_LEN, 0);
        let u32_at = |e: &[u8], o: usize| u32::from_le_bytes(e[o..o + 4].try_into().unwrap());
        loader
            .chunks(LOADER_ENTRY_LEN)
            .map(|e| match u32_at(e, 0) {
                LOADER_ALLOCATE => {
                    assert!(e[65..].iter().all(|b| *b == 0));
                    Command::Allocate {
                        file: name(&e[4..60]),
                        align: u32_at(e, 60),
                        zone: e[64],
                    }
                }
                LOADER_ADD_POINTER => {
                    assert!(e[121..].iter().all(|b| *b == 0));
                    Command::AddPointer {
                        dest: name(&e[4..60]),
                        src: name(&e[60..116]),
                        offset: u32_at(e, 116),
                        size: e[120],
                    }
                }
                LOADER_ADD_CHECKSUM => {
                    assert!(e[72..].iter().all(|b| *b == 0));
                    Command::AddChecksum {
                        file: name(&e[4..60]),
                        offset: u32_at(e, 60),
                        start: u32_at(e, 64),
                        len: u32_at(e, 68),
                    }
                }
                other => panic!("unknown command {other}"),
            })
            .collect()
    }

    #[test]
    fn table_loader_commands() {
        let acpi = build_acpi_tables(&AcpiConfig::new(4), 0).unwrap();
        let cmds = decode(&table_loader(&acpi).unwrap());
        assert_eq!(cmds.len(), 2 + acpi.pointers.len() + acpi.checksums.len());
        assert_eq!(
            cmds[0],
            Command::Allocate {
                file: FILE_ACPI_TABLES.into(),
                align: 64,
                zone: LOADER_ZONE_HIGH
            }
        );
        assert_eq!(
            cmds[1],
            Command::Allocate {
                file: FILE_ACPI_RSDP.into(),
                align: 16,
                zone: LOADER_ZONE_FSEG
            }
        );
        let pointers = &cmds[2..2 + acpi.pointers.len()];
        for (cmd, p) in pointers.iter().zip(&acpi.pointers) {
            assert_eq!(
                *cmd,
                Command::AddPointer {
                    dest: blob_name(p.blob).into(),
                    src: FILE_ACPI_TABLES.into(),
                    offset: p.offset as u32,
                    size: p.size,
                }
            );
        }
        // The RSDP's XSDT pointer is among them.
        assert!(pointers.contains(&Command::AddPointer {
            dest: FILE_ACPI_RSDP.into(),
            src: FILE_ACPI_TABLES.into(),
            offset: 24,
            size: 8,
        }));
        for (cmd, c) in cmds[2 + acpi.pointers.len()..].iter().zip(&acpi.checksums) {
            assert_eq!(
                *cmd,
                Command::AddChecksum {
                    file: blob_name(c.blob).into(),
                    offset: c.field as u32,
                    start: c.start as u32,
                    len: c.len as u32,
                }
            );
        }
        // Tables built for a fixed address cannot be relocated.
        let placed = build_acpi_tables(&AcpiConfig::new(1), 0x1000).unwrap();
        assert_eq!(
            table_loader(&placed),
            Err(FwCfgError::AcpiNotRelocatable(0x1000))
        );
    }

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    /// Does what SeaBIOS's romfile_loader_execute does, reading everything
    /// through the device's data port: allocate each file at an address of
    /// our choosing, add the source's address to each pointer, subtract
    /// each range's sum from its checksum byte. Then checks the result the
    /// way a guest would: RSDP checksums, XSDT reached through the RSDP,
    /// FADT reached through the XSDT, DSDT/FACS through the FADT.
    #[test]
    fn applying_the_loader_yields_valid_tables() {
        let m = mem(MIB);
        let mut dev = FwCfg::new(m);
        let mut config = AcpiConfig::new(8);
        config.pci_hotplug = true;
        dev.add_acpi(&build_acpi_tables(&config, 0).unwrap())
            .unwrap();

        let read_file = |dev: &mut FwCfg, name: &str| {
            let key = dev.file_key(name).unwrap();
            let len = dev.item(key).unwrap().len();
            select(dev, key);
            read_port(dev, len)
        };
        let loader = read_file(&mut dev, FILE_TABLE_LOADER);
        // A flat "guest memory" of 4 GiB addresses, sparse via a map.
        let mut placed: BTreeMap<String, (u64, Vec<u8>)> = BTreeMap::new();
        let mut next_high = 0x7fff_0000u64;
        let mut next_fseg = 0xf_5a30u64;
        for cmd in decode(&loader) {
            match cmd {
                Command::Allocate { file, align, zone } => {
                    let data = read_file(&mut dev, &file);
                    let cursor = if zone == LOADER_ZONE_HIGH {
                        &mut next_high
                    } else {
                        &mut next_fseg
                    };
                    let addr = cursor.next_multiple_of(u64::from(align));
                    *cursor = addr + data.len() as u64;
                    placed.insert(file, (addr, data));
                }
                Command::AddPointer {
                    dest,
                    src,
                    offset,
                    size,
                } => {
                    let src_addr = placed[&src].0;
                    let d = &mut placed.get_mut(&dest).unwrap().1;
                    let field = &mut d[offset as usize..offset as usize + size as usize];
                    let mut v = [0u8; 8];
                    v[..field.len()].copy_from_slice(field);
                    let value = u64::from_le_bytes(v) + src_addr;
                    field.copy_from_slice(&value.to_le_bytes()[..size as usize]);
                }
                Command::AddChecksum {
                    file,
                    offset,
                    start,
                    len,
                } => {
                    let d = &mut placed.get_mut(&file).unwrap().1;
                    let s = sum(&d[start as usize..(start + len) as usize]);
                    d[offset as usize] = d[offset as usize].wrapping_sub(s);
                }
            }
        }
        let (tables_addr, tables) = placed[FILE_ACPI_TABLES].clone();
        let (rsdp_addr, rsdp) = placed[FILE_ACPI_RSDP].clone();
        assert_eq!(tables_addr % 64, 0);
        assert_eq!(rsdp_addr % 16, 0);
        assert!((0xe_0000..0x10_0000).contains(&rsdp_addr));

        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(sum(&rsdp[..20]), 0, "RSDP checksum");
        assert_eq!(sum(&rsdp), 0, "RSDP extended checksum");
        let table_at = |addr: u64| {
            let off = (addr - tables_addr) as usize;
            let len = u32::from_le_bytes(tables[off + 4..off + 8].try_into().unwrap()) as usize;
            &tables[off..off + len]
        };
        let xsdt_addr = u64::from_le_bytes(rsdp[24..32].try_into().unwrap());
        let xsdt = table_at(xsdt_addr);
        assert_eq!(&xsdt[..4], b"XSDT");
        assert_eq!(sum(xsdt), 0, "XSDT checksum");
        let mut sigs = Vec::new();
        for entry in xsdt[36..].chunks(8) {
            let t = table_at(u64::from_le_bytes(entry.try_into().unwrap()));
            assert_eq!(sum(t), 0, "{:?} checksum", &t[..4]);
            sigs.push(t[..4].to_vec());
        }
        assert_eq!(sigs, vec![b"FACP".to_vec(), b"APIC".to_vec()]);
        let fadt = table_at(u64::from_le_bytes(xsdt[36..44].try_into().unwrap()));
        let dsdt_addr = u64::from_le_bytes(fadt[140..148].try_into().unwrap());
        assert_eq!(
            u64::from(u32::from_le_bytes(fadt[40..44].try_into().unwrap())),
            dsdt_addr
        );
        let dsdt = table_at(dsdt_addr);
        assert_eq!(&dsdt[..4], b"DSDT");
        assert_eq!(sum(dsdt), 0);
        let facs_addr = u64::from_le_bytes(fadt[132..140].try_into().unwrap());
        assert_eq!(facs_addr % 64, 0);
        let facs_off = (facs_addr - tables_addr) as usize;
        assert_eq!(&tables[facs_off..facs_off + 4], b"FACS");

        // Identical to the tables built directly for those addresses.
        let direct = build_acpi_tables(&config, tables_addr).unwrap();
        assert_eq!(tables, direct.tables);
        assert_eq!(rsdp, direct.rsdp);
    }
}
