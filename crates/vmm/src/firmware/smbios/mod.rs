//! SMBIOS tables that give the guest EC2's identity.
//!
//! What a Nitro instance shows (dmidecode, /sys/class/dmi/id), and what
//! this module reproduces:
//! - SMBIOS 2.7 with a 32-bit ("_SM_") entry point;
//! - type 0: BIOS vendor "Amazon EC2", version "1.0", date "10/16/2017";
//! - type 1: manufacturer "Amazon EC2", product name = the instance type,
//!   serial number = the UUID string exactly as Linux prints it (lower
//!   case), a UUID that Linux prints as `ec2xxxxx-...`;
//! - type 2: manufacturer "Amazon EC2", asset tag = the instance id (AWS
//!   documents `board_asset_tag` as the way to read the instance id on
//!   Nitro);
//! - type 3: manufacturer "Amazon EC2", type "Other", asset tag
//!   "Amazon EC2" (what `chassis_asset_tag` reads on Nitro instances);
//! - type 4: one processor with one core per vCPU;
//! - types 16 + 17: one memory array, devices of at most 16 GiB (as QEMU and
//!   SeaBIOS split them) summing to the RAM size;
//! - type 127: end of table.
//!
//! The UUID's byte order: since SMBIOS 2.6 the first three fields of the
//! stored UUID are little-endian, and Linux (`dmi_save_uuid`, `%pUl` when the
//! version is >= 2.6) prints them byte-swapped. [`SmbiosConfig::uuid`] and
//! [`SmbiosTables::uuid`] are in the printed ("RFC 4122") order; the
//! structure stores the swapped form. cloud-init's ds-identify (22.4,
//! Debian 12) enables the Ec2 datasource when `product_uuid` and
//! `product_serial` both start with `ec2` (case-insensitively) and are equal
//! (case-insensitively); 25.1 looks only at `product_uuid`.
//!
//! Two ways to hand the tables to a guest:
//! - firmware boot: fw_cfg files `etc/smbios/smbios-anchor` (the 31-byte
//!   entry point, [`SmbiosTables::fw_cfg_anchor`]) and
//!   `etc/smbios/smbios-tables` ([`SmbiosTables::tables`]). SeaBIOS copies
//!   the tables where it likes, fills in the table address and fixes both
//!   entry point checksums; because our tables contain a type 0 it does not
//!   add its own.
//! - direct kernel boot: [`write_smbios`] writes the entry point at
//!   `layout::SMBIOS_START` (inside 0xF0000..0xFFFFF, 16-byte aligned, where
//!   Linux scans for "_SM_") and the tables right after it.

use thiserror::Error;
use vm_memory::{Bytes, GuestAddress};

use crate::memory::GuestMemoryMmap;

/// SMBIOS version we claim (what EC2 Nitro instances report).
pub const SMBIOS_MAJOR: u8 = 2;
pub const SMBIOS_MINOR: u8 = 7;
/// Length of the SMBIOS 2.1 (32-bit) entry point structure.
pub const ENTRY_POINT_LEN: usize = 0x1f;
/// The entry point must sit on a 16-byte boundary for the guest's scan.
pub const ENTRY_POINT_ALIGN: u64 = 16;
/// The legacy BIOS area the guest scans ends here.
const BIOS_AREA_END: u64 = 0x10_0000;
const FOUR_GIB: u64 = 0x1_0000_0000;

/// Vendor string of types 0, 1, 2 and 3.
pub const EC2_VENDOR: &str = "Amazon EC2";
const BIOS_VERSION: &str = "1.0";
const BIOS_RELEASE_DATE: &str = "10/16/2017";
/// Memory devices are at most this large (QEMU and SeaBIOS use 16 GiB).
const MAX_DIMM_MIB: u64 = 16 * 1024;
const MIB: u64 = 1 << 20;
/// Longest string we put in a table; EC2's longest is well below this.
const MAX_STRING_LEN: usize = 64;

// Structure types.
const TYPE_BIOS: u8 = 0;
const TYPE_SYSTEM: u8 = 1;
const TYPE_BASEBOARD: u8 = 2;
const TYPE_CHASSIS: u8 = 3;
const TYPE_PROCESSOR: u8 = 4;
const TYPE_MEMORY_ARRAY: u8 = 16;
const TYPE_MEMORY_DEVICE: u8 = 17;
const TYPE_END: u8 = 127;

// Handles, QEMU's scheme: type << 8, plus an instance number.
const HANDLE_CHASSIS: u16 = 0x0300;
const HANDLE_MEMORY_ARRAY: u16 = 0x1000;
const HANDLE_NONE: u16 = 0xfffe;
const HANDLE_NO_CACHE: u16 = 0xffff;

/// Offset of the UUID in the type 1 structure.
pub const TYPE1_UUID_OFFSET: usize = 8;

#[derive(Debug, Error)]
pub enum SmbiosError {
    #[error("a VM needs at least one vCPU")]
    NoVcpus,
    #[error("{0} vCPUs do not fit in an SMBIOS 2.7 processor structure (at most 255)")]
    TooManyVcpus(u32),
    #[error("memory size {0:#x} is not a positive multiple of 1 MiB")]
    BadMemorySize(u64),
    #[error("SMBIOS {field} {value:?} is invalid: {reason}")]
    BadString {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("SMBIOS tables need {0} bytes; a 2.x entry point describes at most 65535")]
    TablesTooLarge(usize),
    #[error("SMBIOS entry point address {0:#x} is not 16-byte aligned")]
    Misaligned(u64),
    #[error("SMBIOS at {start:#x} ({len:#x} bytes) does not fit below {limit:#x}")]
    DoesNotFit { start: u64, len: u64, limit: u64 },
    #[error("cannot write SMBIOS to guest memory: {0}")]
    GuestMemory(#[from] vm_memory::GuestMemoryError),
}

/// What the tables describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmbiosConfig {
    /// Type 1 product name, e.g. "t3.micro".
    pub instance_type: String,
    /// Type 2 asset tag, e.g. "i-0123456789abcdef0"; also seeds the UUID.
    pub instance_id: String,
    /// Cores of the one type 4 processor (1..=255).
    pub vcpus: u32,
    /// RAM size, a multiple of 1 MiB; types 16 and 17 describe it.
    pub memory_bytes: u64,
    /// The UUID in printed (RFC 4122, big-endian) byte order. `None`
    /// derives one from the instance id with [`ec2_uuid`]. A UUID that does
    /// not print as `ec2...` makes ds-identify ignore the platform.
    pub uuid: Option<[u8; 16]>,
}

/// The built tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmbiosTables {
    /// The structure table: every structure, type 127 last.
    pub tables: Vec<u8>,
    /// The UUID in printed byte order.
    pub uuid: [u8; 16],
    /// The UUID as Linux prints it (lower case); also the serial number.
    pub uuid_string: String,
    pub number_of_structures: u16,
    /// Size of the largest structure, strings included.
    pub max_structure_size: u16,
}

impl SmbiosTables {
    /// The 31-byte 2.1 entry point for tables placed at `table_address`,
    /// both checksums valid.
    pub fn entry_point(&self, table_address: u32) -> [u8; ENTRY_POINT_LEN] {
        let mut ep = [0u8; ENTRY_POINT_LEN];
        ep[0..4].copy_from_slice(b"_SM_");
        ep[5] = ENTRY_POINT_LEN as u8;
        ep[6] = SMBIOS_MAJOR;
        ep[7] = SMBIOS_MINOR;
        ep[8..10].copy_from_slice(&self.max_structure_size.to_le_bytes());
        ep[10] = 0; // entry point revision: 2.1 layout
        ep[16..21].copy_from_slice(b"_DMI_");
        // build_smbios refuses tables longer than u16::MAX.
        ep[22..24].copy_from_slice(&(self.tables.len() as u16).to_le_bytes());
        ep[24..28].copy_from_slice(&table_address.to_le_bytes());
        ep[28..30].copy_from_slice(&self.number_of_structures.to_le_bytes());
        ep[30] = (SMBIOS_MAJOR << 4) | SMBIOS_MINOR; // BCD revision
        // Intermediate checksum over 0x10.., then the whole structure;
        // together they make the first 16 bytes sum to zero as well, which
        // is what SeaBIOS checks.
        ep[21] = checksum(&ep[16..]);
        ep[4] = checksum(&ep);
        ep
    }

    /// `etc/smbios/smbios-anchor` for SeaBIOS: the entry point with a zero
    /// table address (SeaBIOS fills in where it copied the tables).
    pub fn fw_cfg_anchor(&self) -> Vec<u8> {
        self.entry_point(0).to_vec()
    }
}

/// The byte that makes `bytes` (with that byte at zero) sum to zero.
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// 64-bit FNV-1a: a stable, dependency-free hash (std's hasher may change
/// between Rust releases, and the UUID must not).
fn fnv1a64(seed: &[u8], data: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.iter().chain(data) {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A UUID (printed byte order) derived from the instance id: stable for an
/// instance, different between instances, printed as `ec2xxxxx-...`.
pub fn ec2_uuid(instance_id: &str) -> [u8; 16] {
    let mut uuid = [0u8; 16];
    let hi = fnv1a64(b"flint-smbios-uuid/0/", instance_id.as_bytes());
    let lo = fnv1a64(b"flint-smbios-uuid/1/", instance_id.as_bytes());
    uuid[..8].copy_from_slice(&hi.to_be_bytes());
    uuid[8..].copy_from_slice(&lo.to_be_bytes());
    uuid[0] = 0xec;
    uuid[1] = 0x20 | (uuid[1] & 0x0f);
    uuid
}

/// The stored form of a UUID in an SMBIOS >= 2.6 type 1 structure: the
/// first three fields little-endian.
pub fn uuid_to_smbios(uuid: &[u8; 16]) -> [u8; 16] {
    let mut stored = *uuid;
    stored[0..4].reverse();
    stored[4..6].reverse();
    stored[6..8].reverse();
    stored
}

/// Lower-case textual form of a UUID in printed byte order.
pub fn uuid_to_string(uuid: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in uuid.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn check_string(field: &'static str, value: &str) -> Result<(), SmbiosError> {
    let bad = |reason| {
        Err(SmbiosError::BadString {
            field,
            value: value.to_owned(),
            reason,
        })
    };
    if value.is_empty() {
        return bad("empty");
    }
    if value.len() > MAX_STRING_LEN {
        return bad("longer than 64 bytes");
    }
    if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return bad("not printable ASCII");
    }
    Ok(())
}

/// One structure: formatted area plus string set.
struct Structure {
    data: Vec<u8>,
    strings: Vec<String>,
}

impl Structure {
    fn new(kind: u8, handle: u16) -> Self {
        let mut data = vec![kind, 0];
        data.extend_from_slice(&handle.to_le_bytes());
        Structure {
            data,
            strings: Vec::new(),
        }
    }

    fn u8(&mut self, v: u8) -> &mut Self {
        self.data.push(v);
        self
    }

    fn u16(&mut self, v: u16) -> &mut Self {
        self.data.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.data.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.data.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.data.extend_from_slice(v);
        self
    }

    /// A string field: its 1-based index, or 0 ("Not Specified") for "".
    /// Callers pass validated or constant strings: non-empty, no NUL.
    fn string(&mut self, s: &str) -> &mut Self {
        if s.is_empty() {
            return self.u8(0);
        }
        self.strings.push(s.to_owned());
        // At most a dozen strings per structure here.
        let index = self.strings.len() as u8;
        self.u8(index)
    }

    /// Formatted area, then each string NUL-terminated, then the final NUL
    /// (two NULs when there are no strings).
    fn finish(mut self) -> Vec<u8> {
        // Every formatted area here is well below 256 bytes.
        self.data[1] = self.data.len() as u8;
        let mut out = self.data;
        for s in &self.strings {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        if self.strings.is_empty() {
            out.push(0);
        }
        out.push(0);
        out
    }
}

/// Builds every structure for `config`.
pub fn build_smbios(config: &SmbiosConfig) -> Result<SmbiosTables, SmbiosError> {
    check_string("instance type", &config.instance_type)?;
    check_string("instance id", &config.instance_id)?;
    if config.vcpus == 0 {
        return Err(SmbiosError::NoVcpus);
    }
    let cores = u8::try_from(config.vcpus)
        .ok()
        .filter(|c| *c != 0xff) // 0xFF means "see Core Count 2" (SMBIOS 3.0)
        .ok_or(SmbiosError::TooManyVcpus(config.vcpus))?;
    if config.memory_bytes == 0 || !config.memory_bytes.is_multiple_of(MIB) {
        return Err(SmbiosError::BadMemorySize(config.memory_bytes));
    }
    let memory_mib = config.memory_bytes / MIB;

    let uuid = config.uuid.unwrap_or_else(|| ec2_uuid(&config.instance_id));
    let uuid_string = uuid_to_string(&uuid);

    let mut structures = Vec::new();

    // Type 0, BIOS information (2.4+ layout, 0x18 bytes).
    let mut s = Structure::new(TYPE_BIOS, 0x0000);
    s.string(EC2_VENDOR)
        .string(BIOS_VERSION)
        .u16(0xe800) // starting address segment
        .string(BIOS_RELEASE_DATE)
        .u8(0) // ROM size: 64 KiB
        // Characteristics: PCI (bit 7), selectable boot (16), EDD (19).
        .u64((1 << 7) | (1 << 16) | (1 << 19))
        .u8(0x01) // extension byte 1: ACPI
        .u8(0x04 | 0x10) // byte 2: targeted content distribution, virtual machine
        .u8(1) // system BIOS major release
        .u8(0) // minor release
        .u8(0xff) // embedded controller: none
        .u8(0xff);
    structures.push(s.finish());

    // Type 1, system information (2.4+ layout, 0x1b bytes).
    let mut s = Structure::new(TYPE_SYSTEM, 0x0100);
    s.string(EC2_VENDOR)
        .string(&config.instance_type)
        .string("") // version
        .string(&uuid_string) // serial number
        .bytes(&uuid_to_smbios(&uuid))
        .u8(0x06) // wake-up type: power switch
        .string("") // SKU number
        .string(""); // family (EC2: Not Specified)
    structures.push(s.finish());

    // Type 2, baseboard (0x0f bytes, no contained objects).
    let mut s = Structure::new(TYPE_BASEBOARD, 0x0200);
    s.string(EC2_VENDOR)
        .string("") // product
        .string("") // version
        .string("") // serial number
        .string(&config.instance_id) // asset tag
        .u8(0x01) // feature flags: hosting board
        .string("") // location in chassis
        .u16(HANDLE_CHASSIS)
        .u8(0x0a) // board type: motherboard
        .u8(0); // contained object handles
    structures.push(s.finish());

    // Type 3, chassis (2.7 layout with SKU, 0x16 bytes).
    let mut s = Structure::new(TYPE_CHASSIS, HANDLE_CHASSIS);
    s.string(EC2_VENDOR)
        .u8(0x01) // type: other
        .string("") // version
        .string("") // serial number
        .string(EC2_VENDOR) // asset tag, as on Nitro
        .u8(0x03) // boot-up state: safe
        .u8(0x03) // power supply state: safe
        .u8(0x03) // thermal state: safe
        .u8(0x02) // security status: unknown
        .u32(0) // OEM-defined
        .u8(0) // height: unspecified
        .u8(0) // power cords: unspecified
        .u8(0) // contained element count
        .u8(0) // contained element record length
        .string(""); // SKU number
    structures.push(s.finish());

    // Type 4, processor (2.6+ layout, 0x2a bytes).
    let mut s = Structure::new(TYPE_PROCESSOR, 0x0400);
    s.string("CPU 0")
        .u8(0x03) // central processor
        .u8(0x01) // family: other (see family 2)
        .string("") // manufacturer
        .u64(0) // processor ID
        .string("") // version
        .u8(0) // voltage: unknown
        .u16(0) // external clock: unknown
        .u16(2000) // max speed, MHz (QEMU's value)
        .u16(2000) // current speed
        .u8(0x41) // socket populated, CPU enabled
        .u8(0x01) // upgrade: other
        .u16(HANDLE_NO_CACHE)
        .u16(HANDLE_NO_CACHE)
        .u16(HANDLE_NO_CACHE)
        .string("") // serial number
        .string("") // asset tag
        .string("") // part number
        .u8(cores) // core count
        .u8(cores) // cores enabled
        .u8(cores) // thread count
        .u16(0x0004) // characteristics: 64-bit capable
        .u16(0x0001); // family 2: other
    structures.push(s.finish());

    // Type 16, physical memory array (2.7 layout, 0x17 bytes).
    let devices = memory_mib.div_ceil(MAX_DIMM_MIB);
    let num_devices =
        u16::try_from(devices).map_err(|_| SmbiosError::BadMemorySize(config.memory_bytes))?;
    let capacity_kib = memory_mib * 1024;
    let (max_capacity, extended_capacity) = match u32::try_from(capacity_kib) {
        Ok(kib) if kib < 0x8000_0000 => (kib, 0),
        _ => (0x8000_0000, config.memory_bytes),
    };
    let mut s = Structure::new(TYPE_MEMORY_ARRAY, HANDLE_MEMORY_ARRAY);
    s.u8(0x01) // location: other
        .u8(0x03) // use: system memory
        .u8(0x06) // error correction: multi-bit ECC (as QEMU)
        .u32(max_capacity)
        .u16(HANDLE_NONE) // memory error information: not provided
        .u16(num_devices)
        .u64(extended_capacity);
    structures.push(s.finish());

    // Type 17, memory devices (2.7 layout, 0x22 bytes).
    let mut remaining = memory_mib;
    for i in 0..num_devices {
        let size_mib = remaining.min(MAX_DIMM_MIB);
        remaining -= size_mib;
        let mut s = Structure::new(TYPE_MEMORY_DEVICE, 0x1100 + i);
        s.u16(HANDLE_MEMORY_ARRAY)
            .u16(HANDLE_NONE) // memory error information
            .u16(64) // total width
            .u16(64) // data width
            // At most 16384 MiB: fits the 15-bit size field (MiB units).
            .u16(size_mib as u16)
            .u8(0x09) // form factor: DIMM
            .u8(0) // device set: none
            .string(&format!("DIMM {i}")) // device locator
            .string("") // bank locator
            .u8(0x07) // memory type: RAM
            .u16(0x0002) // type detail: unknown
            .u16(0) // speed: unknown
            .string(EC2_VENDOR) // manufacturer
            .string("") // serial number
            .string("") // asset tag
            .string("") // part number
            .u8(0) // attributes: rank unknown
            .u32(0) // extended size: unused
            .u16(0); // configured speed: unknown
        structures.push(s.finish());
    }

    structures.push(Structure::new(TYPE_END, 0x7f00).finish());

    let number_of_structures = structures.len() as u16;
    let max_structure_size = structures.iter().map(Vec::len).max().unwrap_or(0);
    let tables: Vec<u8> = structures.concat();
    if tables.len() > usize::from(u16::MAX) {
        return Err(SmbiosError::TablesTooLarge(tables.len()));
    }
    Ok(SmbiosTables {
        tables,
        uuid,
        uuid_string,
        number_of_structures,
        // Bounded by the tables' length, checked above.
        max_structure_size: max_structure_size as u16,
    })
}

/// Where [`write_smbios`] put the entry point and the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmbiosPlacement {
    pub entry_point: GuestAddress,
    pub tables: GuestAddress,
    /// Bytes used from the entry point to the end of the tables.
    pub len: u64,
}

/// Direct kernel boot: writes the entry point at `at` and the tables right
/// after it (next 16-byte boundary). Use `GuestAddress(layout::SMBIOS_START)`:
/// Linux finds the entry point by scanning 0xF0000..0xFFFFF on 16-byte
/// boundaries. An entry point inside the BIOS area must have its tables end
/// by 1 MiB (where the kernel goes); elsewhere they must end by 4 GiB (the
/// 2.x entry point holds a 32-bit table address).
pub fn write_smbios(
    mem: &GuestMemoryMmap,
    config: &SmbiosConfig,
    at: GuestAddress,
) -> Result<SmbiosPlacement, SmbiosError> {
    if !at.0.is_multiple_of(ENTRY_POINT_ALIGN) {
        return Err(SmbiosError::Misaligned(at.0));
    }
    let built = build_smbios(config)?;
    let limit = if at.0 < BIOS_AREA_END {
        BIOS_AREA_END
    } else {
        FOUR_GIB
    };
    let tables_at = (ENTRY_POINT_LEN as u64).next_multiple_of(ENTRY_POINT_ALIGN);
    let len = tables_at + built.tables.len() as u64;
    let fits = at.0.checked_add(len).is_some_and(|end| end <= limit);
    if !fits {
        return Err(SmbiosError::DoesNotFit {
            start: at.0,
            len,
            limit,
        });
    }
    let tables_addr = at.0 + tables_at;
    // Below `limit` <= 4 GiB, checked above.
    let ep = built.entry_point(tables_addr as u32);
    mem.write_slice(&built.tables, GuestAddress(tables_addr))?;
    mem.write_slice(&ep, at)?;
    Ok(SmbiosPlacement {
        entry_point: at,
        tables: GuestAddress(tables_addr),
        len,
    })
}

#[cfg(test)]
pub(crate) mod tests;
